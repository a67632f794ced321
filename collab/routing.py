"""WebSocket routes of the real-time engine."""

from django.urls import path

from .consumers import DocumentConsumer

websocket_urlpatterns = [
    path("ws/documents/<int:document_id>/", DocumentConsumer.as_asgi()),
]
