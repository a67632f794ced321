"""Routes of the real-time engine: the WebSocket, and the fallback event stream."""

from channels.auth import AuthMiddlewareStack
from django.urls import path

from .consumers import DocumentConsumer
from .eventstream import event_stream

websocket_urlpatterns = [
    path("ws/documents/<int:document_id>/", DocumentConsumer.as_asgi()),
]

# Served outside Django's request cycle: the stream stays open for as long as the client.
event_stream_urlpatterns = [
    path("documents/<int:document_id>/live/events/", AuthMiddlewareStack(event_stream)),
]
