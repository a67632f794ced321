"""The WebSocket endpoint of a document: parse, validate, call the hub, send.

The hub (not each socket) talks to the channel layer, so consumers have no layer channel.
"""

import logging
import time
import uuid

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404

from editor.access import access_document, can_edit

from . import hubs, presence
from .hub import HubClosed
from .protocol import (
    Fetch,
    Hello,
    Limits,
    Ping,
    Presence,
    ProtocolError,
    Submit,
    encode,
    parse_message,
)

log = logging.getLogger("tandem.socket")

# Closing codes (docs/protocol.md).
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NO_ACCESS = 4404
CLOSE_PROTOCOL = 4400
CLOSE_FLOOD = 4429

# Protocol errors tolerated on one socket before it is closed.
MAX_ERRORS = 20


class DocumentConsumer(AsyncWebsocketConsumer):
    # An alias with no layer: each socket gets no layer channel of its own (see module doc).
    channel_layer_alias = "tandem-sockets-use-the-hub"

    async def connect(self):
        self.hub = None
        self.client_id = None
        self.open = False
        user = self.scope["user"]
        await self.accept()
        if not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        document_id = self.scope["url_route"]["kwargs"]["document_id"]
        try:
            document, role = await database_sync_to_async(access_document)(user, document_id)
        except (Http404, PermissionDenied):
            await self.close(code=CLOSE_NO_ACCESS)
            return
        self.document_id = document.pk
        self.user_id = user.pk
        self.role = str(role)
        self.readonly = not can_edit(role, document)
        self.title = document.title
        self.session = uuid.uuid4().hex[:12]
        self.presence = presence.entry(self.session, user.pk, user.get_username())
        self.limits = Limits(max_bytes=settings.TANDEM_MAX_MESSAGE_BYTES)
        self.errors = 0
        self.allowance = float(settings.TANDEM_RATE_LIMIT_PER_SECOND)
        self.last_heard = self.last_refill = time.monotonic()
        self.open = True
        log.info("connect doc=%s user=%s session=%s", document.pk, user.pk, self.session)

    async def receive(self, text_data=None, bytes_data=None):
        if not self.open:
            return  # refused at connect; the close is on its way
        self.last_heard = time.monotonic()
        if not self._within_rate():
            await self.refuse(ProtocolError("rate_limited", "too many messages; slow down"))
            return
        try:
            message = parse_message(text_data, self.limits)
            await HANDLERS[type(message)](self, message)
        except ProtocolError as error:
            await self.refuse(error)

    async def on_hello(self, hello):
        if self.hub is not None:
            raise ProtocolError("bad_message", "hello was already sent on this socket")
        self.client_id = hello.client_id
        while True:
            hub = await hubs.registry.open(self.document_id)
            try:
                await hub.join(self, hello)
            except HubClosed:
                continue
            self.hub = hub
            return

    async def on_submit(self, submit):
        self._joined(submit.seq)
        if self.readonly:
            raise ProtocolError("read_only", "this document is read-only for you", seq=submit.seq)
        self.hub.submit(self, submit)

    async def on_fetch(self, fetch):
        self._joined()
        await self.hub.fetch(self, fetch.since)

    async def on_presence(self, update):
        self._joined()
        await self.hub.set_presence(self, update)

    async def on_ping(self, ping):
        # The version lets a client that lost a broadcast notice it even when nothing follows.
        version = self.hub.version if self.hub is not None else None
        await self.send_frame(encode({"type": "pong", "id": ping.id, "version": version}))

    async def disconnect(self, code):
        await self._leave()
        log.info("disconnect doc=%s session=%s code=%s", getattr(self, "document_id", None),
                 getattr(self, "session", None), code)  # fmt: skip

    async def close(self, code=None, reason=None):
        # Leave at once: others see the user go without waiting for the socket to wind down.
        await self._leave()
        await super().close(code=code, reason=reason)

    async def _leave(self):
        self.open = False
        hub, self.hub = self.hub, None
        if hub is not None:
            await hub.leave(self)

    async def send_frame(self, text):
        await self.base_send({"type": "websocket.send", "text": text})

    async def refuse(self, error):
        """Answer a bad message with an error; close the socket when it keeps happening."""
        await self.send_frame(encode(error.as_message()))
        self.errors += 1
        if self.errors >= MAX_ERRORS:
            code = CLOSE_FLOOD if error.code == "rate_limited" else CLOSE_PROTOCOL
            log.warning("closing session=%s after %s errors (%s)", self.session, self.errors,
                        error.code)  # fmt: skip
            await self.close(code=code)

    def _joined(self, seq=None):
        if self.hub is None:
            raise ProtocolError("not_joined", "send hello first", seq=seq)

    def _within_rate(self):
        """Token bucket: a burst of one second's allowance, refilled continuously."""
        now = time.monotonic()
        rate = settings.TANDEM_RATE_LIMIT_PER_SECOND
        self.allowance = min(rate, self.allowance + (now - self.last_refill) * rate)
        self.last_refill = now
        if self.allowance < 1:
            return False
        self.allowance -= 1
        return True


HANDLERS = {
    Hello: DocumentConsumer.on_hello,
    Submit: DocumentConsumer.on_submit,
    Fetch: DocumentConsumer.on_fetch,
    Presence: DocumentConsumer.on_presence,
    Ping: DocumentConsumer.on_ping,
}
