"""The server `clipsearch ui` runs: the page (app.py) behind the front door (gate.py).

`streamlit run` finds the `app` object here and serves it with its usual options.
"""

from __future__ import annotations

import streamlit as st
from starlette.middleware import Middleware

from clipsearch.ui.gate import Gate

app = st.App("app.py", middleware=[Middleware(Gate)])
