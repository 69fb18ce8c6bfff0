"""The server process: its ASGI app and its background loops, assembled in one place."""
