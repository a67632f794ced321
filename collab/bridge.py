"""Links the hubs of one document across processes through the channel layer.

Each process has one channel, in the group of all engine processes (PROCESSES_GROUP) and in the
group of each document it holds open (for the views' messages: renames, locks, access
changes). Events between processes are one per event (not one per socket), sent in order by
a single sender task; what queued up while the previous send was under way goes as one
`bundle` to every process, which takes the events of the documents it holds. A
channel-layer message per event cost each process a Redis round trip or two on each side,
most of its CPU with a thousand documents typed in. With the in-memory layer there is only
one process, so nothing is published, but the views' messages still arrive through it.

A hub publishes only while another process holds its document too (`DocumentHub.has_peers`):
a document open in one process costs no Redis traffic. A hub announces itself when it opens
(`doc.here`), and the others answer with their version and who is connected there, so a
newcomer learns of edits it might have missed and of everyone present. Liveness (`alive`)
goes once per tick per process for all its shared documents, not once per document.

Events are at most once: what the layer drops (Redis down or restarted, a subscription cut
off) is not resent. A hub notices a gap by version when the next event comes, but a quiet
process gets no next event. So the bridge sends itself a beat every second through the layer
and judges the link from them (collab.link). While the link is suspect, every tick reads the
newest versions of the open documents from the database (one query) and the hubs catch up;
when the beats come back, every open document is resynced and announced again, so the
processes learn of each other's edits and sessions anew. Every SAFETY_NET_SECONDS the same
comparison runs anyway, in case something was lost that no beat noticed.
"""

import asyncio
import logging
import time
import uuid
import weakref

from channels.layers import InMemoryChannelLayer, get_channel_layer

from editor.notify import USERS_GROUP, document_group

from . import metrics
from .link import BEAT_SECONDS, LOST, MISSED, RESTORED, Link

log = logging.getLogger("tandem.bridge")

# With channels-redis's list layer (RedisChannelLayer, which a deployment may still configure),
# redis-py gives a pool at most 100 connections and fails the 101st asked for at once
# ("Too many connections"). A thousand documents opening or closing together would each want
# one for their group_add or group_discard, so they take turns; publishing already goes one
# message at a time through the outbox, and the receive loop holds one connection of its own.
LAYER_CALLS_AT_ONCE = 32
PROCESSES_GROUP = "tandem.processes"
# Events per bundle at most: channels-redis keeps a message whole in Redis and in memory.
BUNDLE_MAX = 500
# However healthy the link looks, compare the open documents with the database this often.
SAFETY_NET_SECONDS = 30
BEAT = "tandem.beat"


class Bridge:
    def __init__(self, registry):
        self.registry = registry
        self.origin = uuid.uuid4().hex
        self.layer = None
        self.starting = None
        self.channel = None
        self.outbox = None
        self.tasks = []
        self.send_failures = 0
        self.gate = asyncio.Semaphore(LAYER_CALLS_AT_ONCE)
        self.members = {}  # document -> hubs of this process that want its messages
        self.turns = weakref.WeakValueDictionary()  # document -> lock while in use
        self.link = Link(time.monotonic())
        self.resync_due = False

    async def start(self):
        """Join the layer once; every caller waits for the same start.

        Hubs open by the hundred at once: the first used to mark the bridge started before
        its channel and outbox existed, and the others published into no outbox.
        """
        if self.layer is not None:
            return
        if self.starting is None:
            self.starting = asyncio.get_running_loop().create_task(self._start())
        starting = self.starting
        try:
            await asyncio.shield(starting)
        except Exception:
            if self.starting is starting:
                self.starting = None  # the next caller tries again
            raise

    async def _start(self):
        layer = get_channel_layer()
        self.channel = await layer.new_channel("tandem.process.")
        await layer.group_add(USERS_GROUP, self.channel)
        await layer.group_add(PROCESSES_GROUP, self.channel)
        self.outbox = asyncio.Queue()
        loop = asyncio.get_running_loop()
        self.tasks = [loop.create_task(self._receive()), loop.create_task(self._send())]
        if not isinstance(layer, InMemoryChannelLayer):
            self.tasks.append(loop.create_task(self._watch()))
        self.layer = layer  # last: `shared` and publishing rely on the rest being ready

    @property
    def shared(self):
        return self.layer is not None and not isinstance(self.layer, InMemoryChannelLayer)

    @property
    def link_up(self):
        """False while the layer may be dropping events: read the database, not the events."""
        return self.link.up

    async def subscribe(self, document_id):
        """Receive the document's messages, for one more hub of this process.

        A closing hub and the hub that replaces it (a page reloaded) overlap: the group is
        left only when the last of them unsubscribes, and a document's group_add and
        group_discard run one after the other, in the order they were asked for.
        """
        await self.start()
        async with self._turn(document_id):
            self.members[document_id] = self.members.get(document_id, 0) + 1
            if self.members[document_id] > 1:
                return
            try:
                async with self.gate:
                    await self.layer.group_add(document_group(document_id), self.channel)
            except BaseException:
                del self.members[document_id]
                raise

    async def unsubscribe(self, document_id):
        async with self._turn(document_id):
            left = self.members.pop(document_id, 1) - 1
            if left > 0:
                self.members[document_id] = left
                return
            try:
                async with self.gate:
                    await self.layer.group_discard(document_group(document_id), self.channel)
            except Exception:
                # The document's messages keep coming until the group expires; no hub
                # takes them.
                if _cancelled():
                    raise asyncio.CancelledError() from None
                log.exception("channel layer group_discard failed doc=%s", document_id)

    def _turn(self, document_id):
        lock = self.turns.get(document_id)
        if lock is None:
            lock = self.turns[document_id] = asyncio.Lock()
        return lock

    def publish(self, hub, message, always=False):
        """Queue an event for the other processes that hold the document open."""
        if self.shared and (always or hub.has_peers()):
            message["origin"] = self.origin
            message["document"] = hub.document_id
            self.outbox.put_nowait(message)

    def publish_alive(self, documents):
        """Tell every process which of our sessions are alive: [(document, [session])]."""
        if self.shared and documents:
            self.outbox.put_nowait({"type": "alive", "origin": self.origin, "documents": documents})

    async def _send(self):
        while True:
            events = [await self.outbox.get()]
            while len(events) < BUNDLE_MAX and not self.outbox.empty():
                events.append(self.outbox.get_nowait())
            bundle = {"type": "bundle", "origin": self.origin, "events": events}
            try:
                await self.layer.group_send(PROCESSES_GROUP, bundle)
            except Exception:
                if _cancelled():
                    raise asyncio.CancelledError() from None
                # At-most-once: the receivers notice the gap by version and read the log.
                self.send_failures += 1
                metrics.send_failure()
                self._judged(self.link.failed())
                log.exception("channel layer send failed: %d events lost", len(events))

    async def _receive(self):
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                if _cancelled():
                    # A layer may turn our cancellation into its own error; stop all the same.
                    raise asyncio.CancelledError() from None
                log.exception("channel layer receive failed")
                self._judged(self.link.failed())
                await asyncio.sleep(1)
                continue
            if message.get("type") == BEAT:
                if message.get("origin") == self.origin:
                    self._judged(self.link.heard_back(message["n"], time.monotonic()))
                continue
            if message.get("origin") == self.origin:
                continue
            for event in message["events"] if message["type"] == "bundle" else [message]:
                try:
                    await self.registry.dispatch(event)
                except Exception:
                    log.exception("could not handle %s", event.get("type"))

    async def _watch(self):
        """Beat through the layer; catch up from the database while the link is suspect."""
        checked = time.monotonic()
        while True:
            beat = {"type": BEAT, "origin": self.origin, "n": self.link.beat()}
            try:
                async with asyncio.timeout(BEAT_SECONDS):
                    await self.layer.send(self.channel, beat)
            except Exception:
                if _cancelled():
                    raise asyncio.CancelledError() from None
                self._judged(self.link.failed())
            await asyncio.sleep(BEAT_SECONDS)
            self._judged(self.link.check(time.monotonic()))
            now = time.monotonic()
            resync, self.resync_due = self.resync_due, False
            if resync or not self.link.up or now - checked > SAFETY_NET_SECONDS:
                checked = now
                try:
                    await self.registry.catch_up_all(announce=resync)
                except Exception:
                    self.resync_due = self.resync_due or resync  # try again next beat
                    log.exception("catching up from the database failed")

    def _judged(self, verdict):
        """Act on what the link's judge said (collab.link)."""
        if verdict == LOST:
            metrics.link_lost()
            log.warning("channel layer link lost: reading the open documents from the database")
        elif verdict in (RESTORED, MISSED):
            if verdict == MISSED:
                metrics.link_lost()
            metrics.link_restored()
            self.resync_due = True
            log.warning("channel layer link %s: resyncing the open documents", verdict)


def _cancelled():
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
