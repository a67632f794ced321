"""The process's open documents: opening and closing hubs, and routing layer messages."""

import asyncio
import logging
import time

from django.conf import settings

from . import commit, eventstream, store
from .bridge import Bridge
from .checkpoint import Checkpointer
from .connections import ConnectionCounts
from .dbthread import db
from .fullgc import FullPasses
from .groupcommit import GroupCommit
from .hub import DocumentHub
from .protocol import CLOSE_NO_ACCESS, CLOSE_UNAUTHENTICATED

log = logging.getLogger("tandem.hubs")

TICK_SECONDS = 5


class Registry:
    def __init__(self):
        self.hubs = {}
        # Every protocol session of this process from the start of its access check on,
        # joined or not: the ones a revocation must reach (collab.session).
        self.sessions = set()
        self.bridge = Bridge(self)
        self.checkpointer = Checkpointer()
        self.full_passes = FullPasses()
        self.commits = GroupCommit()
        self.connections = ConnectionCounts(self.bridge.origin, settings.REDIS_URL)
        self.ticker = None

    async def open(self, document_id):
        """The running hub of the document, loading it on first use."""
        while True:
            hub = self.hubs.get(document_id)
            if hub is None:
                hub = DocumentHub(document_id, self)
                self.hubs[document_id] = hub
                asyncio.get_running_loop().create_task(self._start(hub))
            await asyncio.shield(hub.ready)
            if not hub.closed:
                return hub

    async def _start(self, hub):
        try:
            loaded = await db(store.load)(hub.document_id)
            hub.load(loaded)
            await self.bridge.subscribe(hub.document_id)
            self.bridge.publish(hub, {"type": "doc.here", "version": hub.version}, always=True)
        except Exception as error:
            hub.closed = True
            self.hubs.pop(hub.document_id, None)
            hub.ready.set_exception(error)
            return
        hub.task = asyncio.get_running_loop().create_task(commit.run(hub))
        if self.ticker is None:
            self.ticker = asyncio.get_running_loop().create_task(self._tick())
            self.checkpointer.start()
            self.full_passes.start()
        hub.ready.set_result(None)

    async def close(self, hub):
        """Called by the hub's commit task once its last socket has left."""
        if self.hubs.get(hub.document_id) is hub:
            del self.hubs[hub.document_id]
        hub.closed = True
        if hub.version > hub.snapshot_version:
            hub.snapshot_soon("idle")
        try:
            if hub.snapshot_task is not None:
                await hub.snapshot_task
        except Exception:
            # The log holds every op, so a lost snapshot costs the next load some replaying;
            # the close goes on, or the process would stay in the document's group for good.
            log.warning("snapshot failed doc=%s", hub.document_id, exc_info=True)
        await self.bridge.unsubscribe(hub.document_id)

    async def _tick(self):
        while True:
            await asyncio.sleep(TICK_SECONDS)
            alive = []
            for hub in list(self.hubs.values()):
                try:
                    await hub.tick()
                except Exception:
                    log.exception("tick failed doc=%s", hub.document_id)
                if hub.connections and hub.has_peers():
                    alive.append([hub.document_id, list(hub.connections)])
            self.bridge.publish_alive(alive)

    async def dispatch(self, message):
        """Route a channel-layer message from another process or from a view."""
        kind = message["type"]
        if kind == "access.user":
            await self.sign_out(message["user"], message["keep"])
            return
        if kind == "access.document":
            await self.access_changed(message["document"], message["gone"])
            return
        if kind == "http.forward":
            eventstream.receive_forwarded(message)
            return
        if kind == "alive":
            self._alive(message["documents"])
            return
        hub = self.hubs.get(message.get("document"))
        if hub is None or hub.closed:
            return
        if "origin" in message:  # from another process, not from a view
            hub.peer_heard = time.monotonic()
        if kind == "doc.here":
            await hub.peer_arrived(message["version"])
        elif kind == "doc.roster":
            await hub.roster(message["version"], message["entries"], message["answer"])
        elif kind == "doc.ops":
            hub.queue.put_nowait(("remote", message["ops"]))
        elif kind == "doc.presence":
            await hub.remote_presence(message["entry"])
        elif kind == "doc.leave":
            await hub.remote_leave(message["session"])
        elif kind == "doc.changed":
            await hub.changed(message["change"])

    async def catch_up_all(self, announce=False):
        """Compare every open document with the database (one query) and let the hubs that
        are behind catch up; with `announce`, tell the other processes about each anew.

        The bridge calls it while its link to the other processes is suspect, when the link
        comes back (`announce`: they may have stopped counting us as a peer) and now and then
        as a safety net (collab.bridge).
        """
        open_hubs = [hub for hub in self.hubs.values() if not hub.closed]
        if not open_hubs:
            return
        known = {hub.document_id: hub.version for hub in open_hubs}
        newer = await db(store.newer_versions)(known)
        for hub in open_hubs:
            if hub.document_id in newer:
                hub.behind(newer[hub.document_id])
            if announce:
                self.bridge.publish(hub, {"type": "doc.here", "version": hub.version}, always=True)

    def _alive(self, documents):
        now = time.monotonic()
        for document_id, sessions in documents:
            hub = self.hubs.get(document_id)
            if hub is not None and not hub.closed:
                hub.peer_heard = now
                hub.remote.confirm(sessions)

    # -- revocation (editor.revocation sends these from the models' signals) ---------------

    async def sign_out(self, user_id, keep=None):
        """Close the user's sessions (4401), but for those of the browser session `keep`."""
        for session in [s for s in self.sessions if s.user_id == user_id]:
            if keep is None or session.login != keep:
                await session.revoke(CLOSE_UNAUTHENTICATED)

    async def access_changed(self, document_id, gone=False):
        """Read the roles of the document's sessions afresh; close those left without one
        (4404), or all of them when the document is `gone`."""
        sessions = [s for s in self.sessions if s.document_id == document_id]
        if gone:
            for session in sessions:
                await session.revoke(CLOSE_NO_ACCESS)
            return
        started = [s for s in sessions if s.open]
        for session in sessions:
            session.recheck = not session.open  # a start under way checks again
        if not started:
            return
        roles = await db(store.roles)(document_id, list({s.user_id for s in started}))
        for session in started:
            await session.role_changed(roles[session.user_id])


registry = Registry()


async def reset():
    """Stop every hub and start afresh (tests run each case on a new event loop)."""
    global registry
    old = registry
    registry = Registry()
    old.checkpointer.stop()
    old.full_passes.stop()
    old.commits.stop()
    await old.connections.stop()
    tasks = [*old.bridge.tasks, *[t for t in (old.ticker, old.bridge.starting) if t]]
    for hub in old.hubs.values():
        hub.closed = True
        if getattr(hub, "task", None):
            tasks.append(hub.task)
    for task in tasks:
        task.cancel()
