"""Faults injected under two daphne processes on PostgreSQL and Redis (issue #16, item 13).

Each scenario has simulated clients on both processes type without pause, injects a fault
mid-typing, keeps typing through it and after, and then holds the server to its promise:
every acknowledged edit is in the op log exactly once, at the version it was acknowledged
as; every edit a client submitted was committed once (a client resends what got no answer
after a reconnect, and what was refused with `unavailable` after a pause); and every client
and every process holds the document the log replays to, which is also its latest snapshot
plus the ops after it. How long the service took to recover is printed, never asserted: the
machine is shared and may be several times slower at any moment.

The processes reach PostgreSQL through a TCP proxy (tests/stall_proxy.py) that can cut, hold
or refuse their connections, and Redis is a private redis-server to kill and start again;
the machine's own services are never stopped or reconfigured (pg_terminate_backend reaches
only the backends of the test's own database). `TANDEM_FAULT_ROUNDS=N` injects
each fault N times over (default 1, about ten seconds a scenario): the long variant.
"""

import asyncio
import contextlib
import os
import random
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import psycopg
import pytest

from tests.collab.simclient import RETRY_CODES, random_edit
from tests.collab.test_outage import link_metrics
from tests.collab.test_processes import settle
from tests.collab.wsclient import WsClient, session_cookie
from tests.live_server import (
    DaphneServer,
    PrivateRedis,
    create_documents,
    create_users,
    manage,
    postgres_database,
    run_python,
)
from tests.stall_proxy import StallProxy

pytestmark = pytest.mark.services

ROUNDS = int(os.environ.get("TANDEM_FAULT_ROUNDS", "1"))
CLIENTS_PER_PROCESS = 3
# Acknowledged edits every client makes before each fault and again after it: the fault
# always lands mid-typing, and each client proves it recovered by committing again.
EDITS = 12
# Pauses between one client's keystrokes (seconds): a fast typist, some bursts.
PAUSES = (0.0, 0.005, 0.01, 0.03)
# Seconds a database black hole lasts once every client has an edit stuck in it.
BLACK_HOLE_SECONDS = 2.0
# Seconds between a client's pings, as the browser sends them (static/js/connection.js): a
# client waiting on an edit the server forgot is not closed for silence, so it waits forever.
PING_EVERY = 10
# The longest any condition is waited for: the machine is shared and daphne starts slowly.
PATIENCE = 60
# The longest every client's next EDITS acks are waited for (a few seconds when all is well).
ACK_PATIENCE = 30


class Backing:
    """A migrated database on the machine's PostgreSQL and a private Redis, shared by the
    module's scenarios (migrating takes seconds), made when the first scenario asks."""

    def __init__(self, directory):
        self.directory = directory
        self.stack = contextlib.ExitStack()
        self.env = None

    def ensure(self, postgres_url):
        if self.env is None:
            url = self.stack.enter_context(postgres_database(postgres_url, "tandem_fault"))
            self.redis = self.stack.enter_context(PrivateRedis(self.directory))
            self.env = {"DATABASE_URL": url, "REDIS_URL": self.redis.url}
            manage("migrate", "--noinput", env=self.env)
            create_users({"ann": "pw-ann-123456", "ben": "pw-ben-123456"}, env=self.env)
            self.cookies = {name: session_cookie(name, self.env) for name in ("ann", "ben")}
        if self.redis.process is None:
            self.redis.start()  # a scenario that failed with Redis down
        return self


@pytest.fixture(scope="module")
def backing(tmp_path_factory):
    made = Backing(tmp_path_factory.mktemp("faults"))
    with made.stack:
        yield made


@dataclass
class Rig:
    """Two daphne processes on one document, reaching PostgreSQL through `proxy`."""

    env: dict  # the direct connection, for migrating and reading the log
    document: int
    servers: list
    proxy: StallProxy
    redis: PrivateRedis
    cookies: dict

    @property
    def database(self):
        return urllib.parse.urlsplit(self.env["DATABASE_URL"]).path.lstrip("/")

    def terminate_backends(self):
        """pg_terminate_backend on every connection to this test's database but ours (the
        daphne processes'); returns how many there were."""
        with psycopg.connect(self.env["DATABASE_URL"], autocommit=True) as admin:
            rows = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                [self.database],
            ).fetchall()
        return len(rows)


@pytest.fixture
def rig(postgres_url, backing, tmp_path):
    backing.ensure(postgres_url)
    env = backing.env
    title = f"Faults {uuid.uuid4().hex[:6]}"
    document = create_documents("ann", [title], shares={"ben": "editor"}, env=env)[title]
    direct = urllib.parse.urlsplit(env["DATABASE_URL"])
    with StallProxy(direct.port or 5432, direct.hostname) as proxy:
        # Only the daphne processes go through the proxy.
        user = direct.netloc.rsplit("@", 1)[0] + "@" if "@" in direct.netloc else ""
        proxied = direct._replace(netloc=f"{user}127.0.0.1:{proxy.port}")
        served = {**env, "DATABASE_URL": proxied.geturl()}
        servers = [DaphneServer(env=served, log_dir=tmp_path) for _ in range(2)]
        try:
            with ThreadPoolExecutor(len(servers)) as pool:
                list(pool.map(DaphneServer.start, servers))
            yield Rig(env, document, servers, proxy, backing.redis, backing.cookies)
        finally:
            for server in servers:
                server.kill()


@dataclass
class Outcome:
    """What the clients ended with, to be held against what the database stored."""

    final: int
    docs: list = field(default_factory=list)  # every client's document
    fresh: dict = field(default_factory=dict)  # port -> (version, content) a newcomer got
    acked: dict = field(default_factory=dict)  # client_id -> {seq: version}
    seqs: dict = field(default_factory=dict)  # client_id -> the last seq it submitted
    errors: list = field(default_factory=list)


class Crowd:
    """Simulated clients spread over the processes, typing until told to stop.

    A client whose socket drops reconnects at once, to its own process if that is running,
    else to another (as a load balancer would send it), and resends its in-flight edit.
    """

    def __init__(self, rig):
        self.rig = rig
        self.clients = []
        self.home = {}
        self.typing = []
        self.keepers = []  # the tasks that keep each client connected and pinging
        self.running = True
        self.quiet = set()  # clients that stop typing for a while (they still read)
        self.reconnects = 0

    async def join(self):
        servers = self.rig.servers
        run = uuid.uuid4().hex[:8]
        for n in range(CLIENTS_PER_PROCESS * len(servers)):
            server = servers[n % len(servers)]
            user = ("ann", "ben")[(n // len(servers)) % 2]
            client = WsClient(f"fault-{run}-{n:02d}", self.rig.cookies[user], server,
                              self.rig.document)  # fmt: skip
            await client.connect()
            self.clients.append(client)
            self.home[client] = server
        loop = asyncio.get_running_loop()
        for n, client in enumerate(self.clients):
            self.typing.append(loop.create_task(self._type(client, random.Random(n))))
            self.keepers.append(loop.create_task(self._keep_connected(client)))
            self.keepers.append(loop.create_task(self._ping(client)))

    def on(self, server):
        return [client for client in self.clients if client.server is server]

    async def _type(self, client, rng):
        while self.running:
            if client not in self.quiet:
                await client.sim.edit(random_edit(client.sim.doc, rng))
            await asyncio.sleep(rng.choice(PAUSES) if client not in self.quiet else 0.01)

    async def _keep_connected(self, client):
        while self.running:
            if client.connected:
                await asyncio.sleep(0.01)
                continue
            self.reconnects += 1
            await client.reconnect(attempts=PATIENCE * 10, server=lambda: self._pick(client))

    def _pick(self, client):
        """The client's own process if it runs, else another that does (asked before every
        attempt: a process just killed may not look dead yet at the first)."""
        home = self.home[client]
        running = [server for server in self.rig.servers if server.running]
        return home if home.running or not running else running[0]

    async def _ping(self, client):
        pinged = time.monotonic()
        while self.running:
            if time.monotonic() - pinged >= PING_EVERY:
                # id 0: settle() counts its own pings from 1 and waits for their pongs.
                await client._send({"type": "ping", "id": 0})
                pinged = time.monotonic()
            await asyncio.sleep(0.1)

    async def send_home(self):
        """Clients on another process than their own go back to it (it runs again)."""
        for client in self.clients:
            if client.server is not self.home[client] and client.socket is not None:
                await client.socket.close()

    async def acked_each(self, edits, clients=None):
        """Wait until every client (of `clients`) has had `edits` more edits acknowledged."""
        goal = {client: len(client.sim.acked) + edits for client in clients or self.clients}
        try:
            async with asyncio.timeout(ACK_PATIENCE):
                while any(len(c.sim.acked) < goal[c] for c in goal):
                    self._check()
                    await asyncio.sleep(0.01)
        except TimeoutError:
            stuck = [self.describe(c) for c in goal if len(c.sim.acked) < goal[c]]
            message = "no answer to these clients' edits:\n" + "\n".join(stuck)
            raise AssertionError(message) from None
        self._check()

    def _check(self):
        for client in self.clients:
            assert client.failure is None, f"{client.sim.client_id}: {client.failure!r}"
            unexpected = [e for e in client.sim.errors if e["code"] not in RETRY_CODES]
            assert not unexpected, f"{client.sim.client_id} was refused: {unexpected}"

    def describe(self, client):
        sim = client.sim
        inflight = sim.inflight[0] if sim.inflight else None
        return (
            f"  {sim.client_id} on :{client.server.port} connected={client.connected}"
            f" acked={len(sim.acked)} in flight seq={inflight} version={sim.version}"
            f" errors={[e['code'] for e in sim.errors][-5:]}"
        )

    async def caught_up(self, readers, typists):
        """Seconds until every reader holds the newest version any typist holds now."""
        started = time.monotonic()
        target = max(client.sim.version for client in typists)
        try:
            async with asyncio.timeout(ACK_PATIENCE):
                while any(client.sim.version < target for client in readers):
                    self._check()
                    await asyncio.sleep(0.01)
        except TimeoutError:
            behind = [self.describe(c) for c in readers if c.sim.version < target]
            message = f"these clients never reached version {target}:\n" + "\n".join(behind)
            raise AssertionError(message) from None
        return time.monotonic() - started

    @staticmethod
    def first_ack_after(clients, moment):
        """Seconds from `moment` to the first ack any of `clients` received after it, and to
        the moment each of them had received one."""
        firsts = [next(t for t in c.ack_times if t > moment) for c in clients]
        return min(firsts) - moment, max(firsts) - moment

    async def finish(self):
        """Stop typing, let everything settle, and report what each client and a newcomer
        on each process hold."""
        self.running = False
        await asyncio.gather(*self.typing)
        await asyncio.gather(*self.keepers)
        self._check()
        started = time.monotonic()
        final = await settle(self.clients, timeout=PATIENCE)
        print(f"  settled at version {final} {time.monotonic() - started:.2f} s after typing"
              f" stopped; {self.reconnects} reconnects")  # fmt: skip
        outcome = Outcome(final)
        for client in self.clients:
            outcome.docs.append(client.sim.doc.ops)
            outcome.acked[client.sim.client_id] = dict(client.sim.acked)
            outcome.seqs[client.sim.client_id] = client.sim.seq
            outcome.errors += client.sim.errors
        for server in self.rig.servers:
            newcomer = WsClient(f"fault-newcomer-{uuid.uuid4().hex[:8]}",
                                self.rig.cookies["ann"], server, self.rig.document)  # fmt: skip
            await newcomer.connect()
            outcome.fresh[server.port] = (newcomer.joined_version, newcomer.sim.doc.ops)
            await newcomer.close()
        for client in self.clients:
            await client.close()
        return outcome


def run_scenario(rig, inject):
    """Type on both processes; `inject(crowd, round)` once per round, between EDITS acked
    edits of every client before and after; then settle and check against the log."""

    async def scenario():
        crowd = Crowd(rig)
        await crowd.join()
        for round_ in range(ROUNDS):
            await crowd.acked_each(EDITS)
            await inject(crowd, round_)
            await crowd.acked_each(EDITS)
        return await crowd.finish()

    outcome = asyncio.run(asyncio.wait_for(scenario(), PATIENCE * (3 + 2 * ROUNDS)))
    assert_log_holds(outcome, stored_log(rig.env, rig.document))


def stored_log(env, document):
    """The op log as stored: its (version, client_id, seq) rows, the content replayed from
    every op, whether each snapshot equals that replay at its version, and what `store.load`
    (the latest snapshot plus the ops after it) gives."""
    code = f"""
import json
from collab import store
from collab.models import Operation, Snapshot
from collab.ot import Delta
rows = list(Operation.objects.filter(document_id={document}).order_by("version")
            .values_list("version", "client_id", "seq", "delta"))
snapshots = dict(Snapshot.objects.filter(document_id={document}).values_list("version", "content"))
content = Delta(store.EMPTY_DOCUMENT)
matches = {{0: snapshots.get(0, store.EMPTY_DOCUMENT) == content.ops}}
for version, _, _, delta in rows:
    content = Delta(delta).apply_to(content)
    if version in snapshots:
        matches[version] = snapshots[version] == content.ops
loaded = store.load({document})
print(json.dumps({{
    "rows": [row[:3] for row in rows],
    "replayed": content.ops,
    "snapshots": {{str(v): matches.get(v, False) for v in [0, *snapshots]}},
    "loaded": [loaded.version, loaded.content.ops],
}}))
"""
    return run_python(code, env=env)


def assert_log_holds(outcome, log):
    rows = log["rows"]
    versions = [version for version, _, _ in rows]
    assert versions == list(range(1, len(rows) + 1)), "gapless versions"
    assert outcome.final == len(rows)
    keys = [(client_id, seq) for _, client_id, seq in rows]
    assert len(set(keys)) == len(keys), "no (client_id, seq) is stored twice"
    stored = {(client_id, seq): version for version, client_id, seq in rows}
    for client_id, acked in outcome.acked.items():
        for seq, version in acked.items():
            assert stored.get((client_id, seq)) == version, f"acked {client_id} #{seq}"
    for client_id, last in outcome.seqs.items():
        seqs = sorted(seq for stored_id, seq in keys if stored_id == client_id)
        assert seqs == list(range(1, last + 1)), f"{client_id}: every edit committed once"
        assert sorted(outcome.acked[client_id]) == seqs, f"{client_id}: every edit acked"
    assert set(stored_id for stored_id, _ in keys) == set(outcome.seqs)
    assert all(log["snapshots"].values()), f"snapshots off the log: {log['snapshots']}"
    assert log["loaded"] == [len(rows), log["replayed"]], "snapshot plus ops is the log"
    for doc in outcome.docs:
        assert doc == log["replayed"], "every client converged on the log"
    for port, fresh in outcome.fresh.items():
        assert fresh == (len(rows), log["replayed"]), f"the process on :{port} converged"
    assert all(error["code"] in RETRY_CODES for error in outcome.errors)
    codes = sorted({error["code"] for error in outcome.errors})
    print(f"  {len(rows)} edits stored once each; {len(outcome.errors)} retried ({codes})")


def report(fault, round_, first, every, who="client"):
    print(f"  {fault} #{round_ + 1}: first commit {first:.2f} s after the fault ended, every"
          f" {who} committing again after {every:.2f} s")  # fmt: skip


def test_sigkill_of_one_process_mid_typing_loses_and_duplicates_nothing(rig):
    """Its clients reconnect to the other process and resend; the killed one restarts."""

    async def kill_one(crowd, round_):
        victim = rig.servers[round_ % 2]
        moved = crowd.on(victim)
        await asyncio.to_thread(victim.kill)
        ended = time.monotonic()
        await crowd.acked_each(EDITS)
        assert all(client.server is not victim for client in moved)
        first, every = crowd.first_ack_after(moved, ended)
        fault = f"SIGKILL of :{victim.port} ({len(moved)} clients moved)"
        report(fault, round_, first, every, who="moved client")
        await asyncio.to_thread(victim.start)
        await crowd.send_home()

    print()
    run_scenario(rig, kill_one)


async def link_up_everywhere(servers, up):
    """Wait until every process's channel-layer link is judged `up` (or down)."""
    while True:
        figures = await asyncio.gather(*(asyncio.to_thread(link_metrics, s) for s in servers))
        if all(f["tandem_channel_layer_link_up"] == (1 if up else 0) for f in figures):
            return
        await asyncio.sleep(0.1)


def test_redis_killed_and_restarted_mid_typing_loses_and_duplicates_nothing(rig):
    """Commits go on without Redis. While it is down, one process's clients stop typing: that
    process commits nothing, so only the database can tell it what the other commits; when
    Redis is back, the processes link up again and resync."""

    async def restart_redis(crowd, round_):
        busy, quiet = rig.servers[round_ % 2], rig.servers[(round_ + 1) % 2]
        typists, readers = crowd.on(busy), crowd.on(quiet)
        before = sum(len(client.sim.acked) for client in crowd.clients)
        await asyncio.to_thread(rig.redis.kill)
        await crowd.acked_each(EDITS)  # both processes commit with no channel layer
        async with asyncio.timeout(PATIENCE):
            await link_up_everywhere(rig.servers, up=False)
        crowd.quiet.update(readers)
        await crowd.acked_each(EDITS, typists)
        during = await crowd.caught_up(readers, typists)
        acked = sum(len(client.sim.acked) for client in crowd.clients) - before
        await asyncio.to_thread(rig.redis.start)
        ended = time.monotonic()
        async with asyncio.timeout(PATIENCE):
            await link_up_everywhere(rig.servers, up=True)
        relinked = time.monotonic() - ended
        await crowd.acked_each(EDITS, typists)
        after = await crowd.caught_up(readers, typists)
        crowd.quiet.clear()
        await crowd.acked_each(EDITS)
        print(
            f"  Redis SIGKILL #{round_ + 1}: {acked} edits acked while it was down; the quiet"
            f" process's clients caught up in {during:.2f} s then; both processes linked up"
            f" again {relinked:.2f} s after the restart, the quiet one's clients caught up in"
            f" {after:.2f} s after that"
        )

    print()
    run_scenario(rig, restart_redis)


def test_database_connections_dropped_mid_typing_lose_and_duplicate_nothing(rig):
    """The processes' connections to PostgreSQL are dropped three ways, one after the other:
    terminated by the server (pg_terminate_backend), reset by the network (the proxy cuts
    them), and reset and refused ("down") until every client has had an edit refused as
    `unavailable`. The engine reconnects, and the refused edits are resent."""

    async def drop(crowd, round_):
        for how in ("pg_terminate_backend", "proxy_cut", "down"):
            if how == "pg_terminate_backend":
                dropped = await asyncio.to_thread(rig.terminate_backends)
            else:
                dropped = len(rig.proxy.connections) // 2
                rig.proxy.refuse(how == "down")
                await asyncio.to_thread(rig.proxy.cut)
            if how == "down":
                await refused_everywhere(crowd)
                rig.proxy.refuse(False)
            ended = time.monotonic()
            await crowd.acked_each(EDITS)
            first, every = crowd.first_ack_after(crowd.clients, ended)
            report(f"{how} of {dropped} connections", round_, first, every)

    print()
    run_scenario(rig, drop)


async def refused_everywhere(crowd):
    """Wait until every client has had an edit refused (as `unavailable`: Crowd checks)."""
    refused = {client: len(client.sim.errors) for client in crowd.clients}
    try:
        async with asyncio.timeout(ACK_PATIENCE):
            while any(len(c.sim.errors) == refused[c] for c in crowd.clients):
                await asyncio.sleep(0.01)
    except TimeoutError:
        unanswered = [c for c in crowd.clients if len(c.sim.errors) == refused[c]]
        message = "with the database down, no `unavailable` for:\n"
        raise AssertionError(message + "\n".join(map(crowd.describe, unanswered))) from None


def test_database_black_holed_mid_typing_loses_and_duplicates_nothing(rig):
    """The proxy holds every byte both ways, connections open, then lets them through."""

    async def black_hole(crowd, round_):
        acked = {client: len(client.sim.acked) for client in crowd.clients}
        rig.proxy.stall()
        # Every client has an edit in flight, which cannot be answered now, and the hole
        # lasts a while longer.
        async with asyncio.timeout(PATIENCE):
            while not all(client.sim.inflight is not None for client in crowd.clients):
                await asyncio.sleep(0.01)
        await asyncio.sleep(BLACK_HOLE_SECONDS)
        stuck = sum(len(c.sim.acked) == acked[c] for c in crowd.clients)
        rig.proxy.resume()
        ended = time.monotonic()
        await crowd.acked_each(EDITS)
        first, every = crowd.first_ack_after(crowd.clients, ended)
        report(f"black hole of {BLACK_HOLE_SECONDS:.0f} s ({stuck} clients waiting)",
               round_, first, every)  # fmt: skip

    print()
    run_scenario(rig, black_hole)
