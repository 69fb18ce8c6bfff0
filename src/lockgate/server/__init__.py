"""The server process: the ASGI app, its background loops, and retention."""
