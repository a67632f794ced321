"""One client's protocol session on one document, whatever carries its messages.

A transport (the WebSocket consumer, or the HTTP event stream with its POST endpoint) owns
the connection; the session owns everything the protocol says: who the client is, what it
may do, rate limits, and the calls into the document's hub. Hubs see sessions only, so both
transports share one hub and one commit path.
"""

import asyncio
import logging
import time
import uuid

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404

from editor.access import access_document, can_edit
from editor.revocation import LOGIN_KEY, still_signed_in

from . import hubs, metrics, presence, store
from .dbthread import db
from .hub import HubClosed
from .protocol import (
    CLOSE_FLOOD,
    CLOSE_NO_ACCESS,
    CLOSE_PROTOCOL,
    CLOSE_SILENT,
    CLOSE_TOO_MANY,
    CLOSE_UNAUTHENTICATED,
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

log = logging.getLogger("tandem.session")

# Protocol errors tolerated in one session before it is closed.
MAX_ERRORS = 20


class EditSession:
    """The protocol side of one connection.

    `send(text)` delivers one frame to the client and `close(code)` ends the connection; both
    are the transport's and must not wait for the client (one slow reader cannot hold up a
    broadcast).
    """

    def __init__(self, transport, send, close):
        self.transport = transport
        self._send = send
        self._close = close
        self.hub = None
        self.client_id = None
        self.open = False
        self.session = uuid.uuid4().hex[:12]
        self.document_id = None
        self.user_id = None
        self.login = None  # the browser session's login marker (editor.revocation)
        self.registry = None
        self.revoked = None  # a close code that arrived while start() checked access
        self.recheck = False  # access changed while start() checked it
        self._hello_timer = None
        self._counts = None  # where this session holds its user's connection slot

    async def start(self, user, document_id, browser_session=None):
        """Check who may join; returns None when the session is open, else a close code.

        `browser_session` is the Django session the user was read from (None where a test
        sets the user alone): the user is checked afresh against it, after this session is
        known to the process's registry, so that a revocation that lands meanwhile is seen
        either by the check or by the registry (hubs.Registry.sign_out, .access_changed).
        """
        if not user.is_authenticated:
            return CLOSE_UNAUTHENTICATED
        self.user_id = user.pk
        self.document_id = document_id
        self.registry = hubs.registry
        await self.registry.bridge.start()  # its group brings the revocations (collab.bridge)
        self.registry.sessions.add(self)
        admitted = None
        try:
            admitted = await self._take_slot()
            if admitted is None:
                admitted = await self._admit(user, document_id, browser_session)
        finally:
            if not isinstance(admitted, tuple):
                self.registry.sessions.discard(self)  # refused, or the check failed
                self._give_back()
        if not isinstance(admitted, tuple):
            return admitted
        document, role, self.login = admitted
        self.document_id = document.pk
        self.role = str(role)
        self.locked = document.locked
        self.readonly = not can_edit(role, document)
        self.title = document.title
        self.presence = presence.entry(self.session, user.pk, user.get_username())
        self.limits = Limits(
            max_bytes=settings.TANDEM_MAX_MESSAGE_BYTES,
            max_document_bytes=settings.TANDEM_MAX_DOCUMENT_BYTES,
        )
        self.errors = 0
        self.allowance = float(settings.TANDEM_RATE_LIMIT_PER_SECOND)
        self.last_heard = self.last_refill = time.monotonic()
        self.open = True
        # The hub's heartbeat watches joined sessions; this one watches the wait for hello.
        self._hello_timer = asyncio.get_running_loop().call_later(
            settings.TANDEM_HEARTBEAT_TIMEOUT, self._no_hello
        )
        log.info(
            "connect doc=%s user=%s session=%s transport=%s",
            document.pk,
            user.pk,
            self.session,
            self.transport,
            extra=self._fields("connect"),
        )
        return None

    async def _admit(self, user, document_id, browser_session):
        """(document, role, login marker), or the close code that refuses the session."""
        while True:
            self.recheck = False
            try:
                admitted = await db(_admit)(user, document_id, browser_session)
            except (Http404, PermissionDenied):
                return CLOSE_NO_ACCESS
            if admitted is None:
                return CLOSE_UNAUTHENTICATED
            if self.revoked is not None:
                return self.revoked
            if not self.recheck:
                return admitted

    async def revoke(self, code):
        """The user's access ended (collab.hubs): close now, or refuse at the end of start."""
        if self.open:
            await self.close(code)
        elif self.revoked is None:
            self.revoked = code

    async def role_changed(self, role):
        """Access to the document changed: close when no role is left, else take the new one
        (a `lock` message tells a joined client when it becomes read-only or writable)."""
        if not self.open:
            return
        if role is None:
            await self.close(CLOSE_NO_ACCESS)
            return
        self.role = str(role)
        locked = self.hub.locked if self.hub is not None else self.locked
        readonly = self.role == "viewer" or locked
        if readonly != self.readonly:
            self.readonly = readonly
            if self.hub is not None:
                frame = {"type": "lock", "locked": locked, "readonly": readonly}
                await self.send_frame(encode(frame))

    async def receive(self, text):
        """Handle one client message (a WebSocket text frame, or one line of a POST)."""
        if not self.open:
            return  # refused or closed; the close is on its way
        self.last_heard = time.monotonic()
        try:
            message = parse_message(text, self.limits)
            if not self._within_rate():
                # After parsing, so that a refused edit is named and its client resends it.
                seq = getattr(message, "seq", None)
                raise ProtocolError("rate_limited", "too many messages; slow down", seq=seq)
            await HANDLERS[type(message)](self, message)
        except ProtocolError as error:
            await self.refuse(error)
        except store.TRANSIENT:
            # The database was unreachable for a join or a fetch: the client asks again.
            log.warning("database unavailable session=%s", self.session, exc_info=True)
            seq = getattr(message, "seq", None)
            await self.refuse(ProtocolError("unavailable", "storage unavailable; retry", seq=seq))

    async def on_hello(self, hello):
        if self.hub is not None:
            raise ProtocolError("bad_message", "hello was already sent on this connection")
        self.client_id = hello.client_id
        if hello.version is not None:
            metrics.reconnected(self.transport)  # only a client that was here knows a version
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

    def _no_hello(self):
        if self.open and self.hub is None:
            self._closing = asyncio.get_running_loop().create_task(self.close(CLOSE_SILENT))

    async def send_frame(self, text):
        await self._send(text)

    async def close(self, code=None):
        """End the session from the server side: leave the hub at once, then the connection."""
        await self.leave()
        await self._close(code)

    async def leave(self, code=None):
        """The connection is gone (or going): others see the user leave without waiting."""
        was_open, self.open = self.open, False
        if self.registry is not None:
            self.registry.sessions.discard(self)
        if self._hello_timer is not None:
            self._hello_timer.cancel()
        self._give_back()
        hub, self.hub = self.hub, None
        if hub is not None:
            await hub.leave(self)
        if was_open:
            log.info(
                "disconnect doc=%s session=%s code=%s",
                self.document_id,
                self.session,
                code,
                extra={**self._fields("disconnect"), "code": code},
            )

    async def _take_slot(self):
        """None once the session holds one of its user's connection slots, else 4409."""
        cap = settings.TANDEM_MAX_CONNECTIONS_PER_USER
        if not cap:
            return None
        if not await self.registry.connections.take(self.user_id, self.session, cap):
            log.warning("refused user=%s: %s connections open", self.user_id, cap,
                        extra=self._fields("refused"))  # fmt: skip
            return CLOSE_TOO_MANY
        self._counts = self.registry.connections
        return None

    def _give_back(self):
        counts, self._counts = self._counts, None
        if counts is not None:
            counts.give_back(self.user_id, self.session)

    async def refuse(self, error):
        """Answer a bad message with an error; close when it keeps happening."""
        await self.send_frame(encode(error.as_message()))
        metrics.rejected(error.code)
        self.errors += 1
        if self.errors >= MAX_ERRORS:
            code = CLOSE_FLOOD if error.code == "rate_limited" else CLOSE_PROTOCOL
            log.warning(
                "closing session=%s after %s errors (%s)",
                self.session,
                self.errors,
                error.code,
                extra={**self._fields("refused"), "code": code, "error": error.code},
            )
            await self.close(code)

    def _fields(self, event):
        return {
            "event": event,
            "doc": self.document_id,
            "user": self.user_id,
            "session": self.session,
            "transport": self.transport,
        }

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


def _admit(user, document_id, browser_session):
    """In the database thread: (document, role, login marker), or None when the user is no
    longer signed in; raises as access_document does."""
    if not still_signed_in(user.pk, browser_session):
        return None
    document, role = access_document(user, document_id)
    login = browser_session.get(LOGIN_KEY) if browser_session is not None else None
    return document, role, login


HANDLERS = {
    Hello: EditSession.on_hello,
    Submit: EditSession.on_submit,
    Fetch: EditSession.on_fetch,
    Presence: EditSession.on_presence,
    Ping: EditSession.on_ping,
}
