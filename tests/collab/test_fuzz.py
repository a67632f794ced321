"""Hostile input through a live server: malformed, oversized, out-of-order, duplicated and
type-confused messages over a real WebSocket and the HTTP fallback (issue 16, item 12).

Each hypothesis example runs one hostile WebSocket session and one hostile event stream
with its POSTs at the same time (tests/collab/fuzzmessages.py draws them), while an honest
editor types into the same document throughout. After each example: every server message
and POST answer was one docs/protocol.md documents (error and close codes included), each
hostile session still answered a ping and a valid edit, and a fresh client can join and
edit. At the end: the honest editor's edits were all acked, exactly once, and its view is
the document; the op log replayed with the OT core gives every stored snapshot, the stored
document, and what a fresh `hello` on every process returns; every edit acked to a hostile
client is in the log where its ack said; and no process logged an error.

On SQLite it is one daphne with the in-memory channel layer; with DATABASE_URL pointing at
PostgreSQL (and REDIS_URL set), as .ci/run's second pass does, two daphne processes on a
fresh database, POSTs going to either. TANDEM_FUZZ_EXAMPLES sets the number of examples
(the default keeps the test near a minute; try 2000 for a long run). The default run draws
the same examples every time, so that the suite's verdict is the code's, not the draw's;
any other number of examples, or TANDEM_FUZZ_RANDOM=1, draws new ones.
"""

import asyncio
import os
import random
import threading
import time
import uuid

import psycopg
import pytest
from hypothesis import HealthCheck, Phase, given, settings

from collab.ot import Delta
from tests.collab import fuzzmessages as fm
from tests.collab.fuzzclients import (
    PATIENCE,
    Documented,
    Poster,
    Tally,
    fuzz_socket,
    fuzz_stream,
)
from tests.collab.wsclient import WsClient, session_cookie
from tests.conftest import require_service
from tests.live_server import (
    DaphneServer,
    create_documents,
    create_users,
    manage,
    run_python,
    sqlite_database,
)

EXAMPLES = int(os.environ.get("TANDEM_FUZZ_EXAMPLES", "100"))
FRESH_DRAW = "TANDEM_FUZZ_EXAMPLES" in os.environ or os.environ.get("TANDEM_FUZZ_RANDOM") == "1"


class Loop:
    """An event loop in a thread, so that the honest editor types while hypothesis (which
    runs examples synchronously) draws the next one."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine, timeout):
        async def bounded():
            async with asyncio.timeout(timeout):
                return await coroutine

        return asyncio.run_coroutine_threadsafe(bounded(), self.loop).result()

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class Live:
    """The servers, the document, and everyone who talks to it."""

    def __init__(self, env, servers, document, other_document):
        self.env = env
        self.servers = servers
        self.document = document
        self.other_document = other_document
        self.documented = Documented.read()
        self.tally = Tally()
        self.fuzz_cookie = session_cookie("mallory", env)
        self.honest_cookie = session_cookie("hana", env)
        self.poster = Poster(self)
        self.old_token = None
        self.run_id = uuid.uuid4().hex[:6]
        self.honest = WsClient(f"honest-{self.run_id}", self.honest_cookie, servers[-1],
                               document)  # fmt: skip
        self.alive_clients = []
        self.durations = []  # of each example, seconds
        self.honest_edits = 0
        self.typing = None
        self.stop_typing = None

    def fuzz_client(self, index):
        """The hostile user's client ids: a few, shared by its sessions (resends, replays)."""
        return f"fuzz-{self.run_id}-{index}"

    async def start(self):
        await self.honest.connect(timeout=PATIENCE)
        self.stop_typing = asyncio.Event()
        self.typing = asyncio.get_running_loop().create_task(self._type())

    async def _type(self):
        rng = random.Random(16)
        while not self.stop_typing.is_set():
            sim = self.honest.sim
            if sim.settled and self.honest.connected:
                await sim.edit(honest_edit(sim.doc, rng))
                self.honest_edits += 1
            await asyncio.sleep(0.02)  # a typist's pace; nothing waits on it

    async def case(self, ws_script, http_script, plan):
        """One example: both hostile sessions at once, then a fresh client joins and edits."""
        server = self.servers[ws_script.client % len(self.servers)]
        started = time.monotonic()
        await asyncio.gather(
            fuzz_socket(self, server, ws_script), fuzz_stream(self, http_script, plan)
        )
        assert not self.tally.problems, "\n".join(self.tally.problems[:20])
        honest = self.honest
        assert honest.connected and not honest.sim.errors and honest.failure is None, (
            honest.closed_codes,
            honest.sim.errors,
            honest.failure,
        )
        await self.prove_alive(self.servers[len(self.alive_clients) % len(self.servers)])
        self.durations.append(time.monotonic() - started)

    async def prove_alive(self, server):
        client = WsClient(f"alive-{self.run_id}-{len(self.alive_clients):05d}",
                          self.honest_cookie, server, self.document)  # fmt: skip
        self.alive_clients.append(client)
        try:
            await client.connect(timeout=PATIENCE)
            await client.sim.edit(Delta().insert("+"))
            async with asyncio.timeout(PATIENCE):
                while not client.sim.settled and not client.sim.errors:
                    await asyncio.sleep(0.005)
            assert not client.sim.errors, client.sim.errors
        finally:
            await client.close()

    async def finish(self):
        """Stop typing, let everything settle; the honest editor's version and view."""
        self.stop_typing.set()
        await self.typing
        sim = self.honest.sim
        async with asyncio.timeout(PATIENCE):
            while not sim.settled:
                await asyncio.sleep(0.01)
        return sim.version, sim.doc

    async def joined_everywhere(self, version):
        """What a fresh hello returns on each process, once it has reached `version`."""
        views = []
        for server in self.servers:
            async with asyncio.timeout(PATIENCE):
                while True:
                    client = WsClient(f"check-{uuid.uuid4().hex[:8]}", self.honest_cookie,
                                      server, self.document)  # fmt: skip
                    await client.connect(timeout=PATIENCE)
                    await client.close()
                    if client.joined_version >= version:
                        views.append((client.joined_version, client.sim.doc))
                        break
                    await asyncio.sleep(0.05)
        return views


def honest_edit(doc, rng):
    """An edit that fits any document, even one hostile edits left without its last newline."""
    offsets = [0]
    for char in doc.text():
        offsets.append(offsets[-1] + (2 if ord(char) > 0xFFFF else 1))
    at = rng.randrange(len(offsets))
    if rng.random() < 0.6 or at == len(offsets) - 1:
        return Delta().retain(offsets[at]).insert(rng.choice(["h", "on", "é", "😀", "\n"]))
    stop = rng.randrange(at + 1, min(len(offsets), at + 4))
    return Delta().retain(offsets[at]).delete(offsets[stop] - offsets[at])


def replay(env, document):
    """The op log replayed with the OT core, next to the stored snapshots and document."""
    code = f"""
import json
from collab import store
from collab.models import Operation, Snapshot
from collab.ot import Delta
snapshots = Snapshot.objects.filter(document_id={document})
versions = set(snapshots.values_list("version", flat=True))
rows = (Operation.objects.filter(document_id={document}).order_by("version")
        .values_list("version", "delta", "client_id", "seq"))
content, differ, log = Delta(store.EMPTY_DOCUMENT), [], []
for version, delta, client_id, seq in rows.iterator():  # one op, one snapshot at a time
    content = Delta(delta).apply_to(content)  # raises if an accepted edit does not fit
    log.append([version, client_id, seq])
    if version in versions and Delta(snapshots.get(version=version).content) != content:
        differ.append(version)
loaded = store.load({document})
print(json.dumps({{
    "log": log,
    "content": content.ops,
    "snapshots": sorted(versions),
    "differ": differ,
    "stored": [loaded.version, loaded.content.ops],
}}))
"""
    return run_python(code, env=env)


@pytest.fixture
def live(tmp_path):
    database_url = os.environ.get("DATABASE_URL", "")
    env = {"TANDEM_SNAPSHOT_EVERY_OPS": "50", "TANDEM_SNAPSHOT_EVERY_SECONDS": "5"}
    dropped = None
    if database_url.startswith("postgres"):
        redis = os.environ.get("REDIS_URL") or require_service(
            "TANDEM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"
        )
        name = f"tandem_fuzz_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        dropped = name
        env |= {"DATABASE_URL": f"{database_url.rsplit('/', 1)[0]}/{name}", "REDIS_URL": redis}
        manage("migrate", "--noinput", env=env)
        processes = 2
    else:
        env |= {"DATABASE_URL": sqlite_database(tmp_path), "REDIS_URL": ""}
        processes = 1
    servers = []
    try:
        create_users({"mallory": "pw-mallory-1234", "hana": "pw-hana-123456"}, env=env)
        ids = create_documents("mallory", ["Fuzzed", "Other"], shares={"hana": "editor"},
                               env=env)  # fmt: skip
        for _ in range(processes):
            servers.append(DaphneServer(env=env, log_dir=tmp_path).start())
        yield Live(env, servers, ids["Fuzzed"], ids["Other"])
    finally:
        for server in servers:
            server.kill()
        if dropped:
            with psycopg.connect(database_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE "{dropped}" WITH (FORCE)')


def test_hostile_messages_leave_the_server_and_the_document_sound(live):
    loop = Loop()
    try:
        loop.run(live.start(), PATIENCE)

        @settings(
            max_examples=EXAMPLES,
            derandomize=not FRESH_DRAW,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],  # a live server cannot shrink a case
            suppress_health_check=list(HealthCheck),
        )
        @given(fm.scripts, fm.scripts, fm.http_plans)
        def case(ws_script, http_script, plan):
            loop.run(live.case(ws_script, http_script, plan), 4 * PATIENCE)

        case()
        version, view = loop.run(live.finish(), 2 * PATIENCE)
        joined = loop.run(live.joined_everywhere(version), 2 * PATIENCE)
        loop.run(live.honest.close(), PATIENCE)
    finally:
        loop.stop()

    tally = live.tally
    print(
        f"\nmessages fuzzed: {tally.messages_ws + tally.messages_http} "
        f"({tally.messages_ws} WebSocket frames, {tally.messages_http} POSTed lines in "
        f"{tally.posts} POSTs) in {EXAMPLES} examples, {tally.sessions} hostile sessions; "
        f"honest edits {live.honest_edits}, document version {version}; "
        f"errors {dict(sorted(tally.errors.items(), key=str))}, closes {tally.closes}, "
        f"connections dropped after a due 4400 or 1009 close {tally.drops}; "
        f"slowest examples {sorted(live.durations)[-3:]} s"
    )
    stored = replay(live.env, live.document)
    log = stored["log"]
    assert [v for v, _, _ in log] == list(range(1, len(log) + 1)) and len(log) == version
    assert not stored["differ"], f"snapshots unlike the replayed log at {stored['differ']}"
    assert stored["snapshots"], "the run made no snapshot to compare"
    assert stored["stored"] == [version, stored["content"]]
    assert view.ops == stored["content"]
    assert all(doc.ops == stored["content"] and v == version for v, doc in joined)
    # Every honest edit committed exactly once, and every ack told the truth.
    seqs = [seq for _, client, seq in log if client == live.honest.sim.client_id]
    assert seqs == list(range(1, live.honest.sim.seq + 1))
    by_version = {v: (client, seq) for v, client, seq in log}
    wrong = [
        (seq, version, where, "log at that version:", by_version.get(version))
        for ids, seq, version, where in tally.acked
        if by_version.get(version, (None, None))[0] not in ids or by_version[version][1] != seq
    ]
    assert not wrong, f"acks that the log contradicts: {wrong[:10]}"
    for server in live.servers:
        errors = [line for line in server.log().splitlines()
                  if "Traceback" in line or " ERROR " in line]  # fmt: skip
        assert not errors, "\n".join(errors[:20])
