"""The web layer: HTTP routes, the WebSocket, static page. Knows nothing of pixels or audio."""

from avatarchat.server.app import create_app

__all__ = ["create_app"]
