"""The HTTP fallback transport: server-sent events down, POSTed messages up.

For browsers that cannot keep a WebSocket (a proxy that refuses the upgrade, or drops it).
A GET to the event stream opens a protocol session exactly like a socket does; its first
event names a token, and the client POSTs its messages, one JSON text per line, to
`collab.views.post_messages` with that token. Frames, acks, errors and close codes are the
same as on a WebSocket; only the framing differs (docs/protocol.md, "HTTP fallback").

Sessions live in the process that holds the stream. A POST that reaches another process
(a load balancer without stickiness) is forwarded to the document's group on the channel
layer, where the owning process picks it up (`deliver`).
"""

import asyncio
import logging
import secrets
from urllib.parse import urlsplit

from channels.layers import InMemoryChannelLayer, get_channel_layer

from editor.notify import document_group

from . import metrics, session  # a module import: session -> hubs -> eventstream is a cycle
from .protocol import encode

log = logging.getLogger("tandem.eventstream")

# Comment lines keep proxies from timing out an idle stream; clients also ping every 10 s.
KEEPALIVE_SECONDS = 15
# Lines accepted in one POST; the client sends what queued while the last POST was out.
MAX_LINES_PER_POST = 200

streams = {}  # token -> EventStream, for this process


class EventStream:
    """One open event stream and the protocol session it carries."""

    def __init__(self, send):
        self._asgi_send = send
        self.token = secrets.token_urlsafe(24)
        self.edit = session.EditSession("http", self.send_frame, self.end)
        self.ended = asyncio.Event()
        # POSTed lines wait here and are handled by the stream's own task, in order: never in
        # the POST's request, whose context (and database thread) ends with it.
        self.inbox = asyncio.Queue()

    async def send_frame(self, text):
        if not self.ended.is_set():
            await self._body(b"data: " + text.encode() + b"\n\n")

    async def end(self, code):
        """Close from the server: tell the client the code (as a socket close would)."""
        if self.ended.is_set():
            return
        await self.send_frame(encode({"type": "close", "code": code}))
        self.ended.set()
        await self._asgi_send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _body(self, data):
        await self._asgi_send({"type": "http.response.body", "body": data, "more_body": True})

    async def pump(self):
        while True:
            for line in await self.inbox.get():
                await self.edit.receive(line)

    async def keepalive(self):
        while not self.ended.is_set():
            await asyncio.sleep(KEEPALIVE_SECONDS)
            if not self.ended.is_set():
                await self._body(b": keepalive\n\n")


async def event_stream(scope, receive, send):
    """ASGI app for GET /documents/<id>/live/events/ (behind AuthMiddlewareStack)."""
    while (await receive()).get("more_body"):
        pass  # a GET has no body worth reading
    if scope["method"] != "GET":
        await _plain(send, 405, b"GET only")
        return
    if not _same_origin(scope):
        await _plain(send, 403, b"cross-origin event streams are refused")
        return
    stream = EventStream(send)
    headers = [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-cache, no-store"),
        (b"x-accel-buffering", b"no"),  # nginx: pass events on as they come
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    document_id = scope["url_route"]["kwargs"]["document_id"]
    refused = await stream.edit.start(scope["user"], document_id)
    if refused is not None:
        await stream.end(refused)
        return
    streams[stream.token] = stream
    metrics.fell_back()  # browsers open an event stream only when WebSockets fail them
    await stream.send_frame(encode({"type": "transport", "token": stream.token}))
    loop = asyncio.get_running_loop()
    pump = loop.create_task(stream.pump())
    keepalive = loop.create_task(stream.keepalive())
    gone = loop.create_task(receive())  # http.disconnect
    ended = loop.create_task(stream.ended.wait())
    try:
        await asyncio.wait([gone, ended, pump], return_when=asyncio.FIRST_COMPLETED)
    finally:
        streams.pop(stream.token, None)
        stream.ended.set()
        for task in (pump, keepalive, gone, ended):
            task.cancel()
        await stream.edit.leave()
        if pump.done() and not pump.cancelled() and pump.exception() is not None:
            log.error("event stream failed", exc_info=pump.exception())


def deliver(stream, user_id, lines):
    """Queue POSTed lines for the session, in order; False if they are not this user's."""
    if stream.edit.user_id != user_id:
        return False
    stream.inbox.put_nowait(lines)
    return True


async def forward(document_id, token, user_id, lines):
    """Pass lines to the process holding the stream; False when no other process can."""
    layer = get_channel_layer()
    if layer is None or isinstance(layer, InMemoryChannelLayer):
        return False
    message = {
        "type": "http.forward",
        "document": document_id,
        "token": token,
        "user": user_id,
        "lines": lines,
    }
    await layer.group_send(document_group(document_id), message)
    return True


def receive_forwarded(message):
    """Another process got a POST for one of our streams (see `forward`)."""
    stream = streams.get(message["token"])
    if stream is not None and stream.edit.document_id == message["document"]:
        deliver(stream, message["user"], message["lines"])


def _same_origin(scope):
    headers = dict(scope.get("headers") or [])
    origin = headers.get(b"origin")
    if origin is None:
        return True  # same-origin EventSource requests need not send one
    return urlsplit(origin.decode("latin-1")).netloc == headers.get(b"host", b"").decode()


async def _plain(send, status, body):
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
