"""Real daphne processes sharing PostgreSQL and Redis behave as one server."""

import asyncio
import itertools
import random

import pytest

from tests.collab.simclient import random_edit
from tests.collab.wsclient import WsClient, session_cookie
from tests.live_server import (
    DaphneServer,
    create_documents,
    create_users,
    manage,
    postgres_database,
    run_python,
)
from tests.waits import until

pytestmark = pytest.mark.services


@pytest.fixture
def shared_env(postgres_url, redis_url, tmp_path):
    """A fresh PostgreSQL database and Redis db for the processes of one test."""
    servers = []
    with postgres_database(postgres_url, "tandem_mp") as url:
        env = {"DATABASE_URL": url, "REDIS_URL": redis_url}
        manage("migrate", "--noinput", env=env)
        create_users({"ann": "pw-ann-123456", "ben": "pw-ben-123456"}, env=env)
        shares = {"ben": "editor"}
        document = create_documents("ann", ["Shared"], shares=shares, env=env)["Shared"]

        def server():
            started = DaphneServer(env=env, log_dir=tmp_path).start()
            servers.append(started)
            return started

        try:
            yield env, document, server
        finally:
            for started in servers:
                started.kill()


def stored_ops(env, document):
    code = f"""
import json
from collab.models import Operation
rows = Operation.objects.filter(document_id={document}).order_by("version")
print(json.dumps([[r.version, r.client_id, r.seq] for r in rows]))
"""
    return run_python(code, env=env)


def stored_content(env, document):
    code = f"""
import json
from collab import store
loaded = store.load({document})
print(json.dumps([loaded.version, loaded.content.ops]))
"""
    return run_python(code, env=env)


async def settle(clients, timeout=60):
    """The version every client ends on, once none has an edit in flight and each one's
    process answers a ping with the version the client has (a pong ahead makes it fetch)."""
    pinged = 0

    def answered_all():
        return all(c.pong and c.pong["id"] >= pinged for c in clients)

    async with asyncio.timeout(timeout):
        for pinged in itertools.count(1):
            for client in clients:
                await client._send({"type": "ping", "id": pinged})
            await until(answered_all, "pongs")
            versions = {c.sim.version for c in clients}
            answered = {c.pong["version"] for c in clients}
            if all(c.sim.settled for c in clients) and len(versions) == 1 and answered == versions:
                return versions.pop()
            await asyncio.sleep(0.05)  # between rounds of pings, while clients catch up


async def type_into(client, rng, edits):
    for _ in range(edits):
        while client.sim.inflight is not None:
            await asyncio.sleep(0.001)
        await client.sim.edit(random_edit(client.sim.doc, rng))
        await asyncio.sleep(rng.choice([0, 0.001, 0.005]))


def test_two_processes_converge_and_share_presence(shared_env):
    env, document, start_server = shared_env
    first, second = start_server(), start_server()
    cookies = {name: session_cookie(name, env) for name in ("ann", "ben")}

    async def scenario():
        clients = []
        for n in range(6):
            server = first if n % 2 == 0 else second
            user = "ann" if n < 3 else "ben"
            client = WsClient(f"proc-client-{n:03d}", cookies[user], server, document)
            await client.connect()
            clients.append(client)
        await asyncio.gather(*(type_into(c, random.Random(n), 60) for n, c in enumerate(clients)))
        final = await settle(clients)
        # Presence crosses processes: the first client sees all five others.
        await until(lambda: len(clients[0].presence) >= 5, "presence of the five others")
        docs = [c.sim.doc for c in clients]
        for client in clients:
            await client.close()
        return final, docs

    final, docs = asyncio.run(asyncio.wait_for(scenario(), 120))
    assert final == 360
    version, content = stored_content(env, document)
    assert version == 360
    for doc in docs:
        assert doc.ops == content
    ops = stored_ops(env, document)
    assert [row[0] for row in ops] == list(range(1, 361)), "gapless versions"


def test_sigkill_loses_no_acked_edit_and_duplicates_none(shared_env):
    env, document, start_server = shared_env
    server = start_server()
    cookie = session_cookie("ann", env)

    async def scenario():
        clients = [WsClient(f"kill-client-{n:03d}", cookie, server, document) for n in range(3)]
        for client in clients:
            await client.connect()
        acked = set()

        def record(client):
            original = client.sim.handle

            async def handle(message):
                if message["type"] == "ack":
                    acked.add((client.sim.client_id, message["seq"], message["version"]))
                await original(message)

            client.sim.handle = handle

        for client in clients:
            record(client)
        writers = [
            asyncio.create_task(type_into(c, random.Random(40 + n), 10_000))
            for n, c in enumerate(clients)
        ]

        # Killed mid-stream, once a few edits of each are acked and more are coming.
        def acked_each(at_least):
            ids = [client_id for client_id, _, _ in acked]
            return all(ids.count(c.sim.client_id) >= at_least for c in clients)

        await until(lambda: acked_each(8), "edits of each acked")
        await asyncio.to_thread(server.kill)
        for writer in writers:
            writer.cancel()
        await asyncio.gather(*writers, return_exceptions=True)
        await until(lambda: not any(c.connected for c in clients), "every socket closed")
        typed_before_kill = sum(c.sim.seq for c in clients)
        await asyncio.to_thread(server.start)
        for client in clients:
            await client.reconnect()
        # Keep typing after the restart, then settle.
        await asyncio.gather(*(type_into(c, random.Random(90 + n), 20) for n, c in
                               enumerate(clients)))  # fmt: skip
        final = await settle(clients)
        docs = [c.sim.doc for c in clients]
        seqs = {c.sim.client_id: c.sim.seq for c in clients}
        for client in clients:
            await client.close()
        return acked, final, docs, seqs, typed_before_kill

    acked, final, docs, seqs, typed_before_kill = asyncio.run(asyncio.wait_for(scenario(), 120))
    assert typed_before_kill > 20, "the kill happened during a stream of edits"
    ops = stored_ops(env, document)
    stored = {(client_id, seq, version) for version, client_id, seq in ops}
    assert acked <= stored, "every acknowledged edit survived the SIGKILL"
    assert len(ops) == sum(seqs.values()), "each submitted edit is stored exactly once"
    assert [row[0] for row in ops] == list(range(1, final + 1))
    version, content = stored_content(env, document)
    assert version == final
    for doc in docs:
        assert doc.ops == content
