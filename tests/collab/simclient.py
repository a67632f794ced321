"""A Python twin of the browser's sync state machine, for driving the server in tests.

It keeps at most one edit in flight, buffers further local edits, applies committed ops in
strict version order (holding early ones and fetching gaps), resends its in-flight edit
after a reconnect, and resends it after a pause when it is refused with a code that says
"later" (`rate_limited`, `unavailable`), exactly as docs/protocol.md asks of a client.
"""

import asyncio
import random

from collab.ot import Delta

# Error codes after which the named edit is resent unchanged after a pause (static/js/sync.js).
RETRY_CODES = {"rate_limited", "unavailable"}
RETRY_PAUSE = 0.05  # seconds, doubled for each refusal in a row, at most RETRY_PAUSE_MAX
RETRY_PAUSE_MAX = 1.0


class SimClient:
    def __init__(self, client_id, send):
        self.client_id = client_id
        self.send = send  # async callable taking a message dict
        self.doc = None
        self.version = None
        self.seq = 0
        self.inflight = None  # (seq, delta transformed so far, base version, delta as sent)
        self.buffer = None
        self.held = {}  # version -> ("ack", seq) or ("op", message)
        self.fetching = False
        self.errors = []
        self.history = {}  # version -> delta as this client applied or sent it
        self.acked = {}  # seq -> the version it was committed as, for every own edit acked
        self.refusals = 0  # refusals in a row with a RETRY_CODES code
        self._retry = None  # the task that resends after a pause

    # -- local side ------------------------------------------------------------------

    async def edit(self, delta):
        self.doc = delta.apply_to(self.doc)
        if self.inflight is None:
            await self._send_edit(delta)
        else:
            self.buffer = delta if self.buffer is None else self.buffer.compose(delta)

    async def _send_edit(self, delta):
        self.seq += 1
        self.inflight = (self.seq, delta, self.version, delta)
        await self.send(
            {"type": "submit", "seq": self.seq, "version": self.version, "delta": delta.ops}
        )

    async def resend(self):
        """After a reconnect: the in-flight edit again exactly as first sent (same version too:
        the server transforms it again from there)."""
        if self.inflight is not None:
            seq, _, version, sent = self.inflight
            await self.send({"type": "submit", "seq": seq, "version": version, "delta": sent.ops})

    @property
    def settled(self):
        return self.inflight is None and self.buffer is None

    # -- server side -----------------------------------------------------------------

    async def handle(self, message):
        kind = message["type"]
        if kind == "joined":
            self.held.clear()
            self.fetching = False
            if "content" in message:
                assert self.inflight is None and self.buffer is None, "cannot rebase on content"
                self.doc = Delta(message["content"])
                self.version = message["version"]
            else:
                await self._hold_ops(message["ops"])
            await self._drain()
            await self.resend()
        elif kind == "ack":
            if message["version"] > self.version:  # else a resent edit's repeated ack
                self.held[message["version"]] = ("ack", message["seq"])
            await self._drain()
        elif kind == "ops":
            self.fetching = False
            await self._hold_ops(message["ops"])
            await self._drain()
        elif kind == "pong":
            if message["version"] is not None and message["version"] > self.version:
                await self._fetch()
        elif kind == "error":
            self.errors.append(message)
            if message["code"] in RETRY_CODES:
                # The refused message may have been our fetch: allow the next one.
                self.fetching = False
            if (
                message["code"] in RETRY_CODES
                and self.inflight is not None
                and message.get("seq") == self.inflight[0]
            ):
                self.refusals += 1
                pause = min(RETRY_PAUSE_MAX, RETRY_PAUSE * 2 ** (self.refusals - 1))
                retry = self._resend_after(message["seq"], pause)
                self._retry = asyncio.get_running_loop().create_task(retry)

    async def _resend_after(self, seq, pause):
        await asyncio.sleep(pause)
        if self.inflight is not None and self.inflight[0] == seq:  # not answered meanwhile
            await self.resend()

    async def _hold_ops(self, ops):
        for op in ops:
            if op["version"] > self.version:
                self.held[op["version"]] = ("op", op)

    async def _drain(self):
        while self.version + 1 in self.held:
            kind, item = self.held.pop(self.version + 1)
            own = kind == "ack" or (
                self.inflight is not None
                and item["client_id"] == self.client_id
                and item["seq"] == self.inflight[0]
            )
            self.version += 1
            if own:
                self.history[self.version] = self.inflight[1]
                self.acked[self.inflight[0]] = self.version
                self.refusals = 0
                self.inflight = None
                if self.buffer is not None:
                    buffer, self.buffer = self.buffer, None
                    await self._send_edit(buffer)
            else:
                self.history[self.version] = Delta(item["delta"])
                self._apply_remote(Delta(item["delta"]))
        if self.held:
            # Something after a gap arrived: the ops in between were dropped or are late.
            await self._fetch()

    async def _fetch(self):
        if not self.fetching:
            self.fetching = True
            await self.send({"type": "fetch", "from": self.version})

    def _apply_remote(self, remote):
        if self.inflight is not None:
            seq, inflight, base, sent = self.inflight
            self.inflight = (seq, remote.transform(inflight, True), base, sent)
            remote = inflight.transform(remote, False)
        if self.buffer is not None:
            buffer = self.buffer
            self.buffer = remote.transform(buffer, True)
            remote = buffer.transform(remote, False)
        self.doc = remote.apply_to(self.doc)


def random_edit(doc, rng: random.Random):
    """A random insert, delete or formatting change that fits `doc` (keeps its last newline)."""
    text = doc.text()
    # Positions on code point boundaries, in UTF-16 units, so no edit splits an emoji.
    offsets = [0]
    for char in text:
        offsets.append(offsets[-1] + (2 if ord(char) > 0xFFFF else 1))
    end = len(offsets) - 2  # the final newline stays last
    at = rng.randrange(0, end + 1)
    kind = rng.random()
    if kind < 0.55 or end == 0:
        word = rng.choice(["a", "b", "cd", "ef ", "\n", "é", "中文", "😀", "x😀y"])
        attributes = rng.choice([None, None, {"bold": True}, {"italic": True}])
        return Delta().retain(offsets[at]).insert(word, attributes)
    stop = rng.randrange(at, min(end, at + 4) + 1)
    if stop == at:
        return Delta().retain(offsets[at]).insert("z")
    length = offsets[stop] - offsets[at]
    if kind < 0.8:
        return Delta().retain(offsets[at]).delete(length)
    return Delta().retain(offsets[at]).retain(length, rng.choice([{"bold": True}, {"bold": None}]))
