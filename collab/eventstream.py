"""The HTTP fallback transport: server-sent events down, POSTed messages up.

For browsers that cannot keep a WebSocket (a proxy that refuses the upgrade, or drops it).
A GET to the event stream opens a protocol session exactly like a socket does; its first
event names a token, and the client POSTs its messages, one JSON text per line, to
`collab.views.post_messages` with that token. Frames, acks, errors and close codes are the
same as on a WebSocket; only the framing differs (docs/protocol.md, "HTTP fallback").

Sessions live in the process that holds the stream. With several processes the token
names that process's channel, so a POST that reaches another process (a load balancer
without stickiness) is forwarded there over the channel layer. POSTs are numbered by the
client, so a forwarded one cannot be overtaken by the next one sent straight to the stream.

A token is signed (SECRET_KEY, which every process shares) with its stream's user, document
and channel, so any process can refuse a made-up or someone else's token before anything is
queued in the channel layer: no POST can address a channel that no stream named.
"""

import asyncio
import logging
import secrets

from channels.layers import get_channel_layer
from django.conf import settings
from django.core import signing

# Module imports: session -> hubs -> eventstream -> session/hubs is a cycle.
from . import hubs, metrics, session
from .origin import same_origin
from .protocol import CLOSE_PROTOCOL, encode

log = logging.getLogger("tandem.eventstream")

# Comment lines keep proxies from timing out an idle stream; clients also ping every 10 s.
KEEPALIVE_SECONDS = 15
# Lines accepted in one POST; the client sends what queued while the last POST was out.
MAX_LINES_PER_POST = 200


def max_post_bytes():
    """The largest POST body read: a POST carries at most one edit (a client has one in
    flight) and the small messages around it, so two messages' worth leaves room to spare."""
    return 2 * settings.TANDEM_MAX_MESSAGE_BYTES + 64 * 1024


# POSTs held while an earlier one (forwarded through another process) is still on its way.
MAX_EARLY_POSTS = 50

# Separates a stream token's signature from anything else signed with SECRET_KEY.
TOKEN_SALT = "tandem.eventstream.token"

streams = {}  # token -> EventStream, for this process


def make_token(user_id, document_id, channel=None):
    """A new stream's token: random, signed with its user, document and process channel."""
    claims = {"r": secrets.token_urlsafe(16), "u": user_id, "d": document_id, "c": channel}
    return signing.dumps(claims, salt=TOKEN_SALT)


def read_token(token, user_id, document_id):
    """The channel a POST's token names (None: this process only), or the refusal's code.

    Returns ("ok", channel), ("no_session", None) for a token no server made or made for
    another document, or ("not_yours", None) for another user's stream.
    """
    try:
        claims = signing.loads(token, salt=TOKEN_SALT)
    except signing.BadSignature:
        return "no_session", None
    if not isinstance(claims, dict) or claims.get("d") != document_id:
        return "no_session", None
    if claims.get("u") != user_id:
        return "not_yours", None
    return "ok", claims.get("c")


class EventStream:
    """One open event stream and the protocol session it carries."""

    def __init__(self, send, channel=None):
        self._asgi_send = send
        self.channel = channel  # the process's, when POSTs may reach another process
        self.token = None  # signed once the session is let in (make_token)
        self.edit = session.EditSession("http", self.send_frame, self.end)
        self.next_post = 1
        self.early = {}  # POST number -> lines that arrived before an earlier POST
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

    def accept(self, number, lines):
        """Queue a POST's lines in the client's order; False when too far ahead to hold."""
        if number < self.next_post:
            return True  # already had it
        self.early[number] = lines
        if len(self.early) > MAX_EARLY_POSTS:
            return False
        while self.next_post in self.early:
            self.inbox.put_nowait(self.early.pop(self.next_post))
            self.next_post += 1
        return True

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
    if not same_origin(scope, missing_ok=True):  # same-origin EventSources send none
        await _plain(send, 403, b"cross-origin event streams are refused")
        return
    headers = [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-cache, no-store"),
        (b"x-accel-buffering", b"no"),  # nginx: pass events on as they come
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    document_id = scope["url_route"]["kwargs"]["document_id"]
    bridge = hubs.registry.bridge
    await bridge.start()  # POSTs forwarded from other processes arrive on its channel
    stream = EventStream(send, bridge.channel if bridge.shared else None)
    refused = await stream.edit.start(scope["user"], document_id, scope.get("session"))
    if refused is not None:
        await stream.end(refused)
        return
    stream.token = make_token(stream.edit.user_id, stream.edit.document_id, stream.channel)
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


def deliver(stream, user_id, number, lines):
    """Queue POSTed lines for the session; False if they are not this user's."""
    if stream.edit.user_id != user_id:
        return False
    if not stream.accept(number, lines):
        log.warning("closing a stream whose POSTs never arrived in order", extra={
            "event": "refused", "session": stream.edit.session})  # fmt: skip
        asyncio.get_running_loop().create_task(stream.edit.close(CLOSE_PROTOCOL))
    return True


async def forward(channel, document_id, token, user_id, number, lines):
    """Pass lines to the process holding the stream; False when there is none to pass to.

    `channel` is the one `read_token` found in a checked token. Raises ChannelFull when the
    layer holds as much for that process as it will (a list layer, a process gone).
    """
    layer = get_channel_layer()
    if not channel or layer is None:
        return False
    message = {
        "type": "http.forward",
        "document": document_id,
        "token": token,
        "user": user_id,
        "number": number,
        "lines": lines,
    }
    await layer.send(channel, message)
    return True


def receive_forwarded(message):
    """Another process got a POST for one of our streams (see `forward`)."""
    stream = streams.get(message["token"])
    if stream is not None and stream.edit.document_id == message["document"]:
        deliver(stream, message["user"], message["number"], message["lines"])


async def _plain(send, status, body):
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
