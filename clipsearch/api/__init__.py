"""The HTTP API (`clipsearch serve`): FastAPI routes over the one search service.

Only app.py, engine.py, security.py and server.py use the web framework (the `api` extra);
client.py and record.py are standard library only, so `clipsearch query` can use a running
server without importing it.
"""
