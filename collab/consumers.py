"""The WebSocket transport of a document: frames in and out of its protocol session.

The hub (not each socket) talks to the channel layer, so consumers have no layer channel.
"""

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from . import wire
from .session import EditSession


class DocumentConsumer(AsyncWebsocketConsumer):
    # An alias with no layer: each socket gets no layer channel of its own (see module doc).
    channel_layer_alias = "tandem-sockets-use-the-hub"

    async def dispatch(self, message):
        # Channels closes old database connections before every handler, a trip to the
        # database thread per frame that queues behind the commits. The session reaches the
        # database only through collab.dbthread, which looks after its connection itself.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']}")
        await handler(message)

    async def connect(self):
        self.socket = wire.direct_socket(self.base_send)
        if self.socket is not None and settings.TANDEM_MAX_FRAME_BYTES:
            wire.bound_inbound(self.socket, settings.TANDEM_MAX_FRAME_BYTES)
        self.edit = EditSession("websocket", self.send_frame, self._close_socket)
        await self.accept()
        document_id = self.scope["url_route"]["kwargs"]["document_id"]
        refused = await self.edit.start(self.scope["user"], document_id, self.scope.get("session"))
        if refused is not None:
            await self._close_socket(refused)

    async def receive(self, text_data=None, bytes_data=None):
        await self.edit.receive(text_data)  # a binary frame is refused as bad_json

    async def websocket_disconnect(self, message):
        # Channels' own closes old database connections after `disconnect`: the same trip to
        # the database thread as in `dispatch`, once per socket, queued behind the commits.
        # With 3,000 sockets closing together it was a fifth of the loop's time.
        await self.disconnect(message["code"])
        raise StopConsumer()

    async def disconnect(self, code):
        await self.edit.leave(code)

    async def send_frame(self, text):
        if self.socket is None or not wire.send_text(self.socket, text):
            await self.base_send({"type": "websocket.send", "text": text})

    async def _close_socket(self, code):
        await super().close(code=code)
