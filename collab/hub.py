"""One hub per open document per process: its state, its local sockets, and their presence.

All changes to a hub's document state happen in its single commit task (collab.commit), so
no lock is needed: joins and fetches read the state between two commits, and a join adds the
socket in the same step as it reads the version, so the socket misses no later broadcast.
Sockets are sent frames directly (serialised once per frame), never through the channel
layer; the layer only links processes (collab.bridge).
"""

import asyncio
import logging
import time
import uuid

from django.conf import settings

from . import docsize, metrics, presence, store
from .dbthread import db, in_snapshot_thread
from .protocol import CLOSE_SILENT, ProtocolError, encode

log = logging.getLogger("tandem.hub")

# Ops kept in memory for transforming late edits and answering fetches; older ones are read
# from the database.
RECENT_OPS = 2000
# A client further behind than this on reconnect gets the whole document instead of the ops.
CATCH_UP_MAX_OPS = 1000
# How long a `hello` waits for its hub to catch up with the database before it is answered
# with what the hub has (a client ahead of it is then refused with future_version).
JOIN_CATCH_UP_SECONDS = 5


class HubClosed(Exception):
    """The hub closed while a socket was joining it; open the document again."""


class DocumentHub:
    def __init__(self, document_id, registry):
        self.document_id = document_id
        self.registry = registry
        self.uid = uuid.uuid4().hex
        self.connections = {}  # session -> consumer
        self.remote = presence.RemoteSessions()
        self.queue = asyncio.Queue()
        self.closed = False
        self.ready = asyncio.get_running_loop().create_future()
        self._waiting = []  # (version, future) of joins waiting for the hub to reach it
        # Document state, owned by the commit task.
        self.version = 0
        self.content = None
        self.size = docsize.SizeBound()  # of self.content, kept by the commit task
        self.locked = False
        self.recent = []  # Committed ops, consecutive, ending at self.version
        self.last_seq = {}  # client_id -> (seq, version, user) of its latest committed edit
        # client_id -> the user whose `hello` claimed it here, checked against the log first
        # (claim_client): de-duplication by (client_id, seq) must not let one user have
        # another's edits acked and dropped.
        self.claims = {}
        self.snapshot_version = 0
        self.snapshot_time = time.monotonic()
        self.snapshot_task = None
        self.peer_heard = None  # when another process last spoke about this document

    # -- state -------------------------------------------------------------------------

    @property
    def version(self):
        return self._version

    @version.setter
    def version(self, version):
        # A property so that whatever advances the version (a commit, a catch-up) wakes the
        # joins waiting for it, without the commit task having to know of them.
        self._version = version
        if self._waiting:
            still = []
            for wanted, future in self._waiting:
                if version >= wanted:
                    if not future.done():
                        future.set_result(None)
                else:
                    still.append((wanted, future))
            self._waiting = still

    async def reach(self, version, seconds):
        """Wait (at most `seconds`) until the commit task has caught up to `version`; ask it
        to. Returns whether it did."""
        if self._version >= version:
            return True
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((version, future))
        self.behind(version)
        try:
            async with asyncio.timeout(seconds):
                await future
        except TimeoutError:
            return False
        return True

    async def catch_up_for_join(self, wanted):
        """Before answering a `hello`: when the link to the other processes is suspect, or the
        client knows a version newer than ours (it was served by another process), read the
        newest version from the database and catch up to it first."""
        if self.registry.bridge.link_up and (wanted is None or wanted <= self._version):
            return
        newer = await db(store.newer_versions)({self.document_id: self._version})
        if self.document_id in newer:
            await self.reach(newer[self.document_id], JOIN_CATCH_UP_SECONDS)

    def load(self, loaded):
        self.version = loaded.version
        self.content = loaded.content
        self.locked = loaded.locked
        self.snapshot_version = loaded.version - len(loaded.ops)
        self.remember(loaded.ops)

    def remember(self, ops):
        """Record committed ops (already applied to self.content) in the recent window."""
        for op in ops:
            self.last_seq[op.client_id] = (op.seq, op.version, op.user)
        self.recent.extend(ops)
        if len(self.recent) > RECENT_OPS * 2:
            del self.recent[:-RECENT_OPS]

    async def ops_after(self, version):
        """Committed ops after `version` up to the hub's version."""
        if version >= self.version:
            return []
        oldest = self.recent[0].version if self.recent else self.version + 1
        if version + 1 >= oldest:
            return self.recent[version + 1 - oldest :]
        return await db(store.ops_since)(self.document_id, version, self.version - version)

    # -- sockets -----------------------------------------------------------------------

    def others(self, consumer):
        return [c for c in self.connections.values() if c is not consumer]

    async def claim_client(self, client_id, user_id):
        """Let `user_id` use `client_id` here unless another user's edits or `hello` have it.

        An id the hub has not met is looked up in the log, and its latest edit remembered
        like one the hub committed (the join tells the client of it, and the commit needs no
        lookup of its own for the client's resend).
        """
        if client_id not in self.claims:
            if client_id not in self.last_seq:
                last = await db(store.last_edit_of)(self.document_id, client_id)
                if last is not None:
                    # A commit of the client's while the database answered is newer.
                    self.last_seq.setdefault(client_id, last)
            known = self.last_seq.get(client_id)
            # Another join may have claimed it while the database answered.
            self.claims.setdefault(client_id, known[2] if known is not None else user_id)
        if self.claims[client_id] != user_id:
            raise ProtocolError("client_id_taken", "this client id belongs to someone else")

    async def join(self, consumer, hello):
        """Answer a `hello`: the document (or the ops the client lacks) and who is here."""
        await self.claim_client(hello.client_id, consumer.user_id)
        await self.catch_up_for_join(hello.version)
        if hello.version is not None and hello.version > self.version:
            raise ProtocolError("future_version", "this document has no such version yet")
        if self.closed:
            raise HubClosed()
        reply = {
            "type": "joined",
            "version": self.version,
            "role": consumer.role,
            "readonly": consumer.readonly,
            "locked": self.locked,
            "title": consumer.title,
            "you": {"session": consumer.session, "user": consumer.presence["user"]},
            "presence": self.presence_list(exclude=consumer.session),
            "limits": consumer.limits.as_message(),
        }
        if hello.version is None or self.version - hello.version > CATCH_UP_MAX_OPS:
            reply["content"] = self.content.ops
            # Whether the edit the client still holds in flight is in that content already.
            reply["committed_seq"] = self.last_seq.get(hello.client_id, (0,))[0]
        else:
            missing = await self.ops_after(hello.version)
            if missing and missing[-1].version != self.version:
                # Commits happened while the database answered; the client fetches the rest.
                reply["version"] = missing[-1].version
            reply["ops"] = [op.as_message() for op in missing]
        if self.closed:
            raise HubClosed()
        self.connections[consumer.session] = consumer
        await consumer.send_frame(encode(reply))
        await self.share_presence(consumer)
        log.info("join doc=%s session=%s user=%s", self.document_id, consumer.session,
                 consumer.user_id)  # fmt: skip

    async def fetch(self, consumer, since):
        if since > self.version:
            raise ProtocolError("future_version", "this document has no such version yet")
        ops = await self.ops_after(since)
        await consumer.send_frame(encode({"type": "ops", "ops": [op.as_message() for op in ops]}))

    def submit(self, consumer, submission):
        # The arrival time is for the ack latency metric (collab.metrics).
        self.queue.put_nowait(("submit", consumer, submission, time.monotonic()))

    async def leave(self, consumer):
        if self.connections.pop(consumer.session, None) is None:
            return
        frame = encode({"type": "leave", "session": consumer.session})
        await self.fan_out(frame, list(self.connections.values()))
        self.registry.bridge.publish(self, {"type": "doc.leave", "session": consumer.session})
        if not self.connections:
            self.queue.put_nowait(("idle",))

    async def fan_out(self, frame, consumers):
        """Send one serialised frame to local sockets.

        daphne hands a frame to the socket without suspending, so one slow reader cannot hold
        up the others.
        """
        for consumer in consumers:
            await consumer.send_frame(frame)

    # -- presence ----------------------------------------------------------------------

    def presence_list(self, exclude=None):
        local = [c.presence for s, c in self.connections.items() if s != exclude]
        return local + list(self.remote.entries.values())

    async def set_presence(self, consumer, update):
        consumer.presence["selection"] = update.selection
        consumer.presence["version"] = update.version
        await self.share_presence(consumer)

    async def share_presence(self, consumer):
        message = {"type": "presence", **consumer.presence}
        await self.fan_out(encode(message), self.others(consumer))
        self.registry.bridge.publish(self, {"type": "doc.presence", "entry": consumer.presence})

    async def remote_presence(self, item):
        self.remote.put(item)
        await self.fan_out(encode({"type": "presence", **item}), list(self.connections.values()))

    async def remote_leave(self, session):
        if self.remote.remove(session):
            frame = encode({"type": "leave", "session": session})
            await self.fan_out(frame, list(self.connections.values()))

    # -- housekeeping ------------------------------------------------------------------

    async def tick(self):
        """Every few seconds: drop dead sockets and stale remote presence, snapshot if due."""
        now = time.monotonic()
        for consumer in list(self.connections.values()):
            if now - consumer.last_heard > settings.TANDEM_HEARTBEAT_TIMEOUT:
                await consumer.close(code=CLOSE_SILENT)
        for session in self.remote.expired():
            frame = encode({"type": "leave", "session": session})
            await self.fan_out(frame, list(self.connections.values()))
        if self.version > self.snapshot_version and (
            now - self.snapshot_time > settings.TANDEM_SNAPSHOT_EVERY_SECONDS
        ):
            self.snapshot_soon("auto")
        metrics.sampler.sample_if_due()  # One sample per interval, however many hubs tick.

    def has_peers(self):
        """Whether another process has spoken about this document lately (collab.bridge)."""
        heard = self.peer_heard
        return heard is not None and time.monotonic() - heard < presence.REMOTE_TTL_SECONDS

    async def peer_arrived(self, version):
        """Another process opened the document: tell it our version and who is here."""
        self.send_roster(answer=True)
        self.behind(version)

    def send_roster(self, answer):
        entries = [consumer.presence for consumer in self.connections.values()]
        message = {"type": "doc.roster", "version": self.version, "entries": entries}
        self.registry.bridge.publish(self, {**message, "answer": answer})

    async def roster(self, version, entries, answer):
        """Another process's version and sessions; answer with ours when it asks us."""
        for entry in entries:
            await self.remote_presence(entry)
        self.behind(version)
        if answer:
            # We opened the document before we knew of the other process, so it has not
            # heard of the sessions that joined here meanwhile.
            self.send_roster(answer=False)

    def behind(self, version):
        """Another process has the document at `version`: catch up if that is ahead of us."""
        if version > self.version:
            self.queue.put_nowait(("behind", version))

    def snapshot_soon(self, reason):
        """Save the current content in the background; acks never wait for it."""
        if self.snapshot_task is not None and not self.snapshot_task.done():
            return
        version, content = self.version, self.content
        previous = self.snapshot_version
        self.snapshot_version, self.snapshot_time = version, time.monotonic()
        self.snapshot_task = asyncio.get_running_loop().create_task(
            self._save_snapshot(version, content, reason, previous)
        )

    async def _save_snapshot(self, version, content, reason, previous):
        try:
            save = in_snapshot_thread(store.save_snapshot)
            await save(self.document_id, version, content, reason)
        except Exception:
            # Nothing is lost (the log has every op), but the snapshot is due again: the next
            # commit past TANDEM_SNAPSHOT_EVERY_OPS, or the next tick, tries once more.
            log.warning("snapshot failed doc=%s version=%s", self.document_id, version,
                        exc_info=True)  # fmt: skip
            if self.snapshot_version == version:
                self.snapshot_version = previous

    # -- changes made outside the edit stream --------------------------------------------

    async def changed(self, change):
        """Apply a rename or lock made in a view to the open sockets (access changes go to
        every session through the registry: hubs.Registry.access_changed)."""
        consumers = list(self.connections.values())
        if "title" in change:
            for consumer in consumers:
                consumer.title = change["title"]
            await self.fan_out(encode({"type": "title", "title": change["title"]}), consumers)
        if "locked" in change:
            self.locked = change["locked"]
            for consumer in consumers:
                consumer.readonly = consumer.role == "viewer" or self.locked
                frame = {"type": "lock", "locked": self.locked, "readonly": consumer.readonly}
                await consumer.send_frame(encode(frame))
