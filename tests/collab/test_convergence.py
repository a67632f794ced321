"""Many clients editing at once on stale versions: every client ends with the server's document."""

import asyncio
import json
import random

import pytest
from asgiref.sync import sync_to_async

from collab import store
from collab.models import Operation, Snapshot
from collab.ot import Delta
from tests.collab.simclient import SimClient, random_edit
from tests.waits import until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


class Wired:
    """A SimClient on a test socket, with a reader task feeding it messages."""

    def __init__(self, socket, drop=None):
        self.socket = socket
        self.sim = SimClient(socket.client_id, self._send)
        self.drop = drop  # a predicate: messages it accepts are lost on purpose
        self.dropped = 0

    async def _send(self, message):
        await self.socket.ws.send_to(text_data=json.dumps(message))

    async def start(self):
        await self._send({"type": "hello", "client_id": self.sim.client_id, "version": None})
        self.reader = asyncio.get_running_loop().create_task(self._read())
        while self.sim.doc is None:
            await asyncio.sleep(0.001)

    async def _read(self):
        while True:
            message = json.loads(await self.socket.ws.receive_from(timeout=30))
            if self.drop and self.drop(message):
                self.dropped += 1
                continue
            await self.sim.handle(message)


async def settle(clients, version_of_server, timeout=60):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        target = await version_of_server()
        if all(c.sim.settled and c.sim.version == target for c in clients):
            return target
        for client in clients:
            await client._send({"type": "ping"})
        await asyncio.sleep(0.05)
    states = [(c.sim.version, c.sim.settled) for c in clients]
    raise AssertionError(f"clients did not settle: {states}")


@pytest.fixture(autouse=True)
def no_rate_limit(settings):
    """These clients fetch on every gap they see, far faster than a browser would; the rate
    limit has tests of its own."""
    settings.TANDEM_RATE_LIMIT_PER_SECOND = 100_000


async def writers(connect, make_user, share, document, count):
    users = [await sync_to_async(make_user)(f"writer{n}") for n in range(count)]
    for user in users:
        await sync_to_async(share)(user, "editor")
    clients = [Wired(await connect(user, document, hello=False)) for user in users]
    for client in clients:
        await client.start()
    return clients


async def type_randomly(client, seed, edits, wait_for_ack):
    rng = random.Random(seed)
    for _ in range(edits):
        if wait_for_ack:
            while client.sim.inflight is not None:
                await asyncio.sleep(0)
        await client.sim.edit(random_edit(client.sim.doc, rng))
        # Random pauses interleave the clients; edits are made on whatever version each
        # client has, usually a stale one.
        await asyncio.sleep(rng.choice([0, 0, 0, 0.001, 0.003]))


async def test_ten_clients_two_hundred_random_edits_each(connect, make_user, share, document):
    clients = await writers(connect, make_user, share, document, 10)
    await asyncio.gather(*(type_randomly(c, seed, 200, True) for seed, c in enumerate(clients)))

    async def server_version():
        return (await sync_to_async(store.load)(document.pk)).version

    final = await settle(clients, server_version)
    assert [c.sim.seq for c in clients] == [200] * 10
    assert final == 2000, "every edit committed exactly once"
    loaded = await sync_to_async(store.load)(document.pk)
    versions = await sync_to_async(
        lambda: list(Operation.objects.filter(document=document).values_list("version", flat=True))
    )()
    assert sorted(versions) == list(range(1, 2001)), "versions are gapless"
    for client in clients:
        assert client.sim.doc == loaded.content
        assert client.sim.errors == []
    # Snapshots were taken along the way, and the latest one plus the ops after it is the doc.
    assert await sync_to_async(Snapshot.objects.filter(document=document).exists)()
    replay = Delta([{"insert": "\n"}])
    for op in await sync_to_async(store.ops_since)(document.pk, 0):
        replay = op.delta.apply_to(replay)
    assert replay == loaded.content
    for client in clients:
        client.reader.cancel()


async def test_buffered_edits_converge(connect, make_user, share, document):
    clients = await writers(connect, make_user, share, document, 5)
    await asyncio.gather(*(type_randomly(c, seed, 100, False) for seed, c in enumerate(clients)))

    async def server_version():
        return (await sync_to_async(store.load)(document.pk)).version

    final = await settle(clients, server_version)
    assert final == sum(c.sim.seq for c in clients)
    loaded = await sync_to_async(store.load)(document.pk)
    assert all(c.sim.doc == loaded.content for c in clients)
    assert all(c.sim.errors == [] for c in clients)
    for client in clients:
        client.reader.cancel()


async def test_dropped_broadcast_is_caught_up(connect, owner, editor_user, document):
    writer = Wired(await connect(owner, document, hello=False))
    # The reader loses every third `ops` frame, as an at-most-once layer may.
    frames = iter(range(10_000))
    reader = Wired(
        await connect(editor_user, document, hello=False),
        drop=lambda m: m["type"] == "ops" and m["ops"] and next(frames) % 3 == 0,
    )
    await writer.start()
    await reader.start()
    rng = random.Random(5)
    for _ in range(30):
        await writer.sim.edit(random_edit(writer.sim.doc, rng))
        await asyncio.sleep(0.002)

    async def server_version():
        return (await sync_to_async(store.load)(document.pk)).version

    # settle() pings; the pong's version shows the reader what it lost.
    await settle([writer, reader], server_version)
    assert reader.dropped > 0
    assert reader.sim.doc == writer.sim.doc
    writer.reader.cancel()
    reader.reader.cancel()


async def test_restart_mid_stream_loses_nothing(connect, make_user, share, document, engine):
    """The hub is torn down mid-stream (as a crash would) and clients reconnect and resend."""
    clients = await writers(connect, make_user, share, document, 3)
    tasks = [
        asyncio.get_running_loop().create_task(type_randomly(c, 70 + n, 10_000, True))
        for n, c in enumerate(clients)
    ]
    # Torn down once each has had a few edits committed, with more coming.
    await until(lambda: all(c.sim.version >= 10 for c in clients), "edits committed")
    await engine.reset()
    for task in tasks:
        task.cancel()
    for client in clients:
        client.reader.cancel()
        await client.socket.ws.disconnect()  # returns once the socket's session has ended
    rewired = []
    for client in clients:
        socket = await connect(client.socket.ws.scope["user"], document, hello=False)
        socket.client_id = client.sim.client_id
        fresh = Wired(socket)
        fresh.sim = client.sim
        client.sim.send = fresh._send
        await fresh._send({"type": "hello", "client_id": client.sim.client_id,
                           "version": client.sim.version})  # fmt: skip
        fresh.reader = asyncio.get_running_loop().create_task(fresh._read())
        rewired.append(fresh)
    await asyncio.gather(*(type_randomly(c, 90 + n, 30, True) for n, c in enumerate(rewired)))

    async def server_version():
        return (await sync_to_async(store.load)(document.pk)).version

    final = await settle(rewired, server_version)
    loaded = await sync_to_async(store.load)(document.pk)
    logged = {op.version: op for op in await sync_to_async(store.ops_since)(document.pk, 0)}
    for client in rewired:
        for version, delta in sorted(client.sim.history.items()):
            op = logged[version]
            assert delta == op.delta, (
                client.sim.client_id,
                version,
                op.client_id,
                op.seq,
                delta,
                op.delta,
            )
    assert final == sum(c.sim.seq for c in rewired)
    for client in rewired:
        assert client.sim.doc == loaded.content
        client.reader.cancel()
