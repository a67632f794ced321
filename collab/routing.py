"""WebSocket routes of the real-time engine."""

websocket_urlpatterns = []
