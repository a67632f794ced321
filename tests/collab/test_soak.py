"""Soak: 50 clients edit, drop their sockets and go offline at random against live daphne.

Each client is a `SimClient` (the browser's sync rules: one edit in flight, later edits
buffered, catch-up on `joined`, the in-flight edit resent unchanged) on a real WebSocket. It
types, now and then drops its socket (a clean close or a cut connection) and reconnects at
once, or goes offline: drops the socket, keeps typing locally, reconnects (to either process)
and resends. On PostgreSQL + Redis (`DATABASE_URL` and `REDIS_URL` set, as in `.ci/run`'s
second pass) two daphne processes share a fresh database and the clients of each document are
spread over both; otherwise one process on a fresh SQLite file.

The editing runs for `TANDEM_SOAK_MINUTES` minutes of the loop's own clock (default 2; set
30 for the long variant: `TANDEM_SOAK_MINUTES=30 pytest -m soak`), a warm-up first. The
duration only bounds the loop; what is checked does not depend on timing:

- every server process's open file descriptors, sampled with every client connected to its
  home process after the warm-up and again at the end, differ by at most FD_SLACK (a leak of
  one per connection would add hundreds), and its RSS grew by at most RSS_GROWTH_MB;
- every client ends with the same document, which equals what a fresh client is sent by each
  process, the stored content, the op log replayed from the empty document, and each
  snapshot plus the ops after it;
- the log's versions are gapless, every acknowledged edit is in it (at its version), and each
  client's edits are stored exactly once (seqs 1..n, n being how many it sent).

The figures (edits, reconnects, offline periods, RSS and fds at start / warm-up / end, time)
are printed; run with `-s` to see them. Marked `soak`: `.ci/run` runs it once, in the
PostgreSQL + Redis pass.
"""

import asyncio
import os
import random
import uuid

import psycopg
import pytest
import websockets

from tests.collab.simclient import RETRY_CODES, random_edit
from tests.collab.wsclient import WsClient
from tests.live_server import (
    DaphneServer,
    create_documents,
    create_users,
    manage,
    run_python,
    sqlite_database,
)

pytestmark = pytest.mark.soak

CLIENTS = 50
# Five clients per user: well under the cap on one user's connections, with room for the old
# socket of a cut connection that its process has not noticed yet.
USERS = ["ann", "ben", "cat", "dan", "eve", "fay", "gus", "hal", "ivy", "jon"]
# Clients per document: one busy document and two quieter ones.
DOCUMENTS = {"Busy": 30, "Notes": 10, "Plans": 10}
# Slack on a process's open file descriptors between warm-up and end (log rotation, a
# database connection reopened after CONN_MAX_AGE, a thread pool connection): a leak of one
# per connection or per reconnect adds hundreds over the run.
FD_SLACK = 16
# RSS grows while each hub's window of recent ops fills (up to 4000 per document, about a KB
# each: some 16 MB for three documents at most, whatever the run's length) and the allocator's
# arenas settle; a leak of a couple of hundred KB per connection exceeds it within 2 minutes
# (checked with one injected), and one of a few tens of KB within 30.
RSS_GROWTH_MB = 24
MINUTES = float(os.environ.get("TANDEM_SOAK_MINUTES", "2"))


# -- the servers --------------------------------------------------------------------------


@pytest.fixture
def soak_env(tmp_path):
    """Fresh storage on whatever backend this pass uses: (env, number of processes)."""
    database_url = os.environ.get("DATABASE_URL", "")
    redis_url = os.environ.get("REDIS_URL", "")
    if database_url.startswith("postgres") and redis_url:
        name = f"tandem_soak_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        env = {"DATABASE_URL": f"{database_url.rsplit('/', 1)[0]}/{name}", "REDIS_URL": redis_url}
        manage("migrate", "--noinput", env=env)
        yield env, 2
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    else:
        yield {"DATABASE_URL": sqlite_database(tmp_path), "REDIS_URL": ""}, 1


def sessions(users, env):
    """{username: session key}, signed in directly in the server's database."""
    code = f"""
import json
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
keys = {{}}
for name in {list(users)!r}:
    user = get_user_model().objects.get(username=name)
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    keys[name] = session.session_key
print(json.dumps(keys))
"""
    return run_python(code, env=env)


def stored(env, document_ids):
    """Per document: the log, the content three ways, and whether every snapshot fits."""
    code = f"""
import json
from collab import store
from collab.models import Operation, Snapshot
from collab.ot import Delta
out = {{}}
for document in {list(document_ids)!r}:
    rows = list(Operation.objects.filter(document_id=document).order_by("version")
                .values_list("version", "client_id", "seq", "delta"))
    snapshots = {{s.version: s.content for s in Snapshot.objects.filter(document_id=document)}}
    replay, misfits = Delta(store.EMPTY_DOCUMENT), []
    for version, _, _, delta in rows:
        replay = Delta(delta).apply_to(replay)
        if version in snapshots and Delta(snapshots[version]) != replay:
            misfits.append(version)
    latest = max(snapshots, default=0)
    from_snapshot = Delta(snapshots.get(latest, store.EMPTY_DOCUMENT))
    for _, _, _, delta in rows[latest:]:
        from_snapshot = Delta(delta).apply_to(from_snapshot)
    loaded = store.load(document)
    out[document] = {{
        "log": [row[:3] for row in rows],
        "replayed": replay.ops,
        "from_snapshot": from_snapshot.ops,
        "loaded": [loaded.version, loaded.content.ops],
        "snapshots": sorted(snapshots),
        "misfits": misfits,
    }}
print(json.dumps(out))
"""
    return {int(k): v for k, v in run_python(code, env=env).items()}


def sample(server):
    """(RSS in MB, open file descriptors) of a daphne process, from /proc."""
    pid = server.process.pid
    with open(f"/proc/{pid}/status") as status:
        rss_kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return round(rss_kb / 1024, 1), len(os.listdir(f"/proc/{pid}/fd"))


# -- the clients --------------------------------------------------------------------------


class SoakClient(WsClient):
    """A WsClient that counts what it does and records every acknowledgement it sees."""

    def __init__(self, client_id, cookie, servers, home, document_id, rng):
        super().__init__(client_id, cookie, servers[home], document_id)
        self.servers = servers
        self.home = servers[home]
        self.rng = rng
        self.edits = self.reconnects = self.offline = 0
        self.acked = set()  # (seq, version)
        self.pongs = []  # versions reported by pong, in order
        handle = self.sim.handle

        async def recording(message):
            kind = message["type"]
            if kind == "ack":
                self.acked.add((message["seq"], message["version"]))
            elif kind in ("ops", "joined"):
                for op in message.get("ops", []):
                    if op["client_id"] == self.sim.client_id:
                        self.acked.add((op["seq"], op["version"]))
            elif kind == "pong":
                self.pongs.append(message["version"])
            await handle(message)

        self.sim.handle = recording

    async def join(self, server):
        """Connect to `server` and wait for `joined` (the in-flight edit is resent then)."""
        self.server = server
        for _ in range(100):
            self.joined_version = None
            closes = len(self.closed_codes)
            try:
                await self.connect(timeout=60)
                return
            except (OSError, websockets.InvalidHandshake, TimeoutError):
                await self.drop()  # a socket that opened but never joined
                # The server closing with one of its codes (4xxx) is a refusal, not a hiccup.
                refused = [code for code in self.closed_codes[closes:] if code and code >= 4000]
                assert not refused, f"{self.sim.client_id} refused with {refused}"
                await asyncio.sleep(0.2)
        raise AssertionError(f"{self.sim.client_id} could not reconnect")

    async def drop(self, cut=False):
        """Lose the socket: a clean close, or (`cut`) the connection torn down unannounced."""
        socket = self.socket
        if socket is not None:
            if cut:
                socket.transport.abort()
            else:
                await socket.close()
        if self.reader is not None:
            await asyncio.gather(self.reader, return_exceptions=True)
            self.reader = None
        self.socket = None

    async def type(self):
        await self.sim.edit(random_edit(self.sim.doc, self.rng))
        self.edits += 1

    async def run(self, until, minimum=0):
        """Type, drop and go offline at random until the loop's clock passes `until`; then
        make up for any of `minimum` reconnects and offline periods chance did not bring."""
        loop = asyncio.get_running_loop()
        reconnects, offline = self.reconnects + minimum, self.offline + minimum
        while loop.time() < until:
            self._check()
            roll = self.rng.random()
            if roll < 0.9:
                await self.type()
                await asyncio.sleep(self.rng.expovariate(2.0))
            elif roll < 0.95:
                await self.reconnect_now()
            else:
                await self.go_offline()
        while self.reconnects < reconnects:
            await self.reconnect_now()
        while self.offline < offline:
            await self.go_offline()
        await self.go_home()

    async def go_home(self):
        """Be connected to the home process (so each process holds the same sockets at every
        sample)."""
        if self.connected and self.server is not self.home:
            await self.drop()
        if not self.connected:
            await self.join(self.home)

    async def reconnect_now(self):
        await self.drop(cut=self.rng.random() < 0.5)
        await self.join(self.rng.choice(self.servers))
        self.reconnects += 1

    async def go_offline(self):
        """Drop the socket, type on locally, reconnect; the in-flight edit is resent."""
        await self.drop(cut=self.rng.random() < 0.5)
        self.offline += 1
        for _ in range(self.rng.randint(1, 6)):
            await self.type()
            await asyncio.sleep(self.rng.uniform(0.05, 0.4))
        await self.join(self.rng.choice(self.servers))

    def _check(self):
        if self.failure is not None:
            raise self.failure


async def heartbeat(clients):
    """Ping every connected socket every 5 s, as the browser does, busy or idle."""
    while True:
        await asyncio.sleep(5)
        for client in clients:
            await client._send({"type": "ping"})


async def settle(clients, timeout=300):
    """Wait until the clients of one document hold no edits and agree with every process
    they ask; returns the version. Decided by answers (pongs), never by elapsed time."""
    async with asyncio.timeout(timeout):
        while True:
            for client in clients:
                client._check()
                assert client.connected, (client.sim.client_id, "closed", client.closed_codes)
            versions = {c.sim.version for c in clients}
            if len(versions) == 1 and all(c.sim.settled for c in clients):
                asked = [len(c.pongs) for c in clients]
                for client in clients:
                    await client._send({"type": "ping"})
                while any(len(c.pongs) <= n for c, n in zip(clients, asked, strict=True)):
                    await asyncio.sleep(0.02)
                answers = {c.pongs[n] for c, n in zip(clients, asked, strict=True)}
                if answers == versions and {c.sim.version for c in clients} == versions:
                    return versions.pop()
            else:
                for client in clients:
                    await client._send({"type": "ping"})
            await asyncio.sleep(0.05)


async def fresh_view(server, cookie, document_id):
    """The document as a new client is sent it by `server`."""
    client = WsClient(f"soak-fresh-{uuid.uuid4().hex[:8]}", cookie, server, document_id)
    await client.connect(timeout=60)
    doc = client.sim.doc
    await client.close()
    return doc


# -- the test -----------------------------------------------------------------------------


def test_fifty_clients_editing_dropping_and_offline_stay_flat_and_converge(soak_env, tmp_path):
    env, processes = soak_env
    create_users({name: f"pw-{name}-123456" for name in USERS}, env=env)
    shares = {name: "editor" for name in USERS[1:]}
    documents = create_documents("ann", list(DOCUMENTS), shares=shares, env=env)
    cookies = sessions(USERS, env)
    # DEBUG would keep each database connection's last 9000 queries (edits included), tens of
    # MB that read as growth for the first half hour; production runs without it.
    served = {**env, "DEBUG": "0"}
    servers = [DaphneServer(env=served, log_dir=tmp_path).start() for _ in range(processes)]
    figures = {"start": [sample(s) for s in servers]}
    seconds = MINUTES * 60
    warm_up = max(20.0, min(0.2 * seconds, 120.0))

    async def scenario():
        loop = asyncio.get_running_loop()
        began = loop.time()
        clients, owners = [], []
        for title, count in DOCUMENTS.items():
            for _ in range(count):
                n = len(clients)
                user = USERS[n % len(USERS)]
                clients.append(
                    SoakClient(
                        f"soak-{n:03d}-{uuid.uuid4().hex[:6]}",
                        cookies[user],
                        servers,
                        n % processes,
                        documents[title],
                        random.Random(n),
                    )  # fmt: skip
                )
                owners.append(title)
        for client in clients:
            await client.join(client.home)
        beating = asyncio.create_task(heartbeat(clients))
        by_document = {t: [c for c, o in zip(clients, owners, strict=True) if o == t]
                       for t in DOCUMENTS}  # fmt: skip

        # Warm-up: caches, connection pools and the allocator fill; then everyone goes home.
        await asyncio.gather(*(c.run(began + warm_up) for c in clients))
        await asyncio.gather(*(settle(group) for group in by_document.values()))
        figures["warm-up"] = [sample(s) for s in servers]
        warmed = loop.time()
        counts = [(c.edits, c.reconnects, c.offline) for c in clients]

        await asyncio.gather(*(c.run(began + seconds, minimum=1) for c in clients))
        settled = await asyncio.gather(*(settle(group) for group in by_document.values()))
        finals = dict(zip(by_document, settled, strict=True))
        figures["end"] = [sample(s) for s in servers]
        figures["seconds"] = (round(warmed - began), round(loop.time() - began))
        figures["main"] = [
            (c.edits - e, c.reconnects - r, c.offline - o)
            for c, (e, r, o) in zip(clients, counts, strict=True)
        ]
        fresh = {
            t: [await fresh_view(s, cookies["ann"], documents[t]) for s in servers]
            for t in DOCUMENTS
        }
        beating.cancel()
        for client in clients:
            await client.close()
        return clients, by_document, finals, fresh

    try:
        clients, by_document, finals, fresh = asyncio.run(
            asyncio.wait_for(scenario(), seconds + 900)
        )
    finally:
        for server in servers:
            server.stop()
    log = stored(env, documents.values())

    edits = sum(c.edits for c in clients)
    print(f"\nsoak: {len(clients)} clients on {processes} process(es), {len(DOCUMENTS)} documents")
    print(f"  editing loop {figures['seconds'][1]} s (warm-up {figures['seconds'][0]} s)")
    print(f"  edits {edits} (after warm-up {sum(m[0] for m in figures['main'])}), "
          f"reconnects {sum(c.reconnects for c in clients)}, "
          f"offline periods {sum(c.offline for c in clients)}, "
          f"refused for later {sum(len(c.sim.errors) for c in clients)}")  # fmt: skip
    for title, final in finals.items():
        print(f"  {title}: version {final}, snapshots {len(log[documents[title]]['snapshots'])}")
    for n in range(processes):
        row = ", ".join(f"{at} {figures[at][n][0]} MB / {figures[at][n][1]} fds"
                        for at in ("start", "warm-up", "end"))  # fmt: skip
        print(f"  process {n + 1}: {row}")

    for client in clients:
        # Only "later" refusals (rate limit, engine busy), whose edits the client resent.
        errors = [e for e in client.sim.errors if e["code"] not in RETRY_CODES]
        assert errors == [], (client.sim.client_id, errors[:3])
    assert all(m[1] >= 1 and m[2] >= 1 for m in figures["main"]), "each client reconnected"
    for title, group in by_document.items():
        document = documents[title]
        record = log[document]
        final = finals[title]
        assert [row[0] for row in record["log"]] == list(range(1, final + 1)), "gapless log"
        assert record["loaded"] == [final, group[0].sim.doc.ops]
        for client in group:
            assert client.sim.doc == group[0].sim.doc, f"{client.sim.client_id} diverged"
        for view in fresh[title]:
            assert view == group[0].sim.doc, "a process serves another document"
        assert record["replayed"] == group[0].sim.doc.ops, "the log replayed is the document"
        assert record["from_snapshot"] == group[0].sim.doc.ops
        assert record["misfits"] == [], "every snapshot is the log replayed to its version"
        entries = {(cid, seq): version for version, cid, seq in record["log"]}
        assert len(entries) == len(record["log"]), "no edit stored twice"
        for client in group:
            mine = sorted(seq for cid, seq in entries if cid == client.sim.client_id)
            assert mine == list(range(1, client.sim.seq + 1)), "each edit stored exactly once"
            for seq, version in client.acked | set(client.sim.acked.items()):
                assert entries.get((client.sim.client_id, seq)) == version, "acked is stored"
    for n in range(processes):
        (warm_rss, warm_fds), (end_rss, end_fds) = figures["warm-up"][n], figures["end"][n]
        assert end_fds <= warm_fds + FD_SLACK, f"process {n + 1} leaks file descriptors"
        assert end_rss - warm_rss <= RSS_GROWTH_MB, f"process {n + 1} leaks memory"
