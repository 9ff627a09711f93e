"""The Streamlit web UI: `clipsearch ui` runs ui/app.py."""
