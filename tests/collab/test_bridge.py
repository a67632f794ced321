"""The bridge between processes keeps within Redis's connection pool."""

import asyncio
import uuid
from types import SimpleNamespace

import pytest
from channels_redis.pubsub import RedisPubSubChannelLayer

from collab import bridge as bridge_module
from collab.bridge import Bridge
from editor.notify import USERS_GROUP, document_group
from tests.waits import until

pytestmark = [pytest.mark.services, pytest.mark.asyncio]


@pytest.fixture
async def layer(redis_url):
    # Pub/sub channels are the Redis server's, whatever the database: a prefix of its own
    # keeps concurrent runs on one server apart.
    prefix = f"tandem-test-bridge-{uuid.uuid4().hex[:8]}"
    layer = RedisPubSubChannelLayer(hosts=[redis_url], prefix=prefix)
    yield layer
    await layer.flush()


@pytest.fixture
async def started(layer):
    """A bridge on the Redis layer with its process channel, its tasks not running."""
    bridge = Bridge(registry=None)
    bridge.layer = layer
    bridge.channel = await layer.new_channel("tandem.process.")
    return bridge


async def gets_document_messages(bridge, document_id, wait=30):
    """Whether a message to the document's group reaches the bridge within `wait` seconds:
    generous where it should come, short where it should not (the only way to see nothing)."""
    await bridge.layer.group_send(document_group(document_id), {"type": "doc.test"})
    try:
        await asyncio.wait_for(bridge.layer.receive(bridge.channel), wait)
    except TimeoutError:
        return False
    return True


async def test_a_thousand_documents_open_and_close_at_once(started):
    # redis-py fails the 101st connection a pool is asked for at the same time.
    await asyncio.gather(*(started.subscribe(doc) for doc in range(1000)))
    assert await gets_document_messages(started, 999)
    await asyncio.gather(*(started.unsubscribe(doc) for doc in range(1000)))
    assert not await gets_document_messages(started, 999, wait=0.5)


async def test_a_reopened_document_stays_subscribed_while_the_old_hub_leaves(started):
    await started.subscribe(7)
    # The old hub closes while its successor opens: both at once, in either order.
    await asyncio.gather(started.subscribe(7), started.unsubscribe(7))
    assert await gets_document_messages(started, 7)
    await asyncio.gather(started.unsubscribe(7), started.subscribe(7))
    await started.unsubscribe(7)
    assert not await gets_document_messages(started, 7, wait=0.5)
    assert started.members == {}


async def test_hubs_opening_together_wait_for_one_start_before_publishing(layer, monkeypatch):
    monkeypatch.setattr(bridge_module, "get_channel_layer", lambda: layer)

    async def idle(self):
        await asyncio.Event().wait()

    monkeypatch.setattr(Bridge, "_send", idle)  # the outbox keeps what was published
    monkeypatch.setattr(Bridge, "_receive", idle)
    group_add, start = layer.group_add, Bridge.start
    opening, all_opening = [], asyncio.Event()

    async def counted_start(self):
        opening.append(True)
        if len(opening) == 50:
            all_opening.set()
        await start(self)

    async def slow_first_join(group, channel):
        if group == USERS_GROUP:
            await all_opening.wait()  # the start lasts until every document waits for it
        await group_add(group, channel)

    monkeypatch.setattr(Bridge, "start", counted_start)
    monkeypatch.setattr(layer, "group_add", slow_first_join)
    bridge = Bridge(registry=None)

    async def open_document(doc):
        await bridge.subscribe(doc)
        bridge.publish(SimpleNamespace(document_id=doc), {"type": "doc.here"}, always=True)

    try:
        await asyncio.gather(*(open_document(doc) for doc in range(50)))
        assert bridge.outbox.qsize() == 50
        assert bridge.members == {doc: 1 for doc in range(50)}
    finally:
        for task in bridge.tasks:
            task.cancel()


class Recorder:
    """A registry that keeps what the bridge hands it."""

    def __init__(self):
        self.events = []

    async def dispatch(self, event):
        self.events.append(event)


async def test_events_queued_together_travel_as_one_bundle_in_order(layer, monkeypatch):
    monkeypatch.setattr(bridge_module, "get_channel_layer", lambda: layer)
    bundles = []
    group_send = layer.group_send

    async def counted(group, message):
        bundles.append((group, len(message["events"])))
        await group_send(group, message)

    monkeypatch.setattr(layer, "group_send", counted)
    here, there = Bridge(Recorder()), Bridge(Recorder())
    try:
        await asyncio.gather(here.start(), there.start())
        hub = SimpleNamespace(document_id=5, has_peers=lambda: True)
        for n in range(20):  # all queued before the sender task runs
            here.publish(hub, {"type": "doc.ops", "ops": [n]})
        await until(lambda: len(there.registry.events) == 20, "the other process got all 20")
        assert [event["ops"] for event in there.registry.events] == [[n] for n in range(20)]
        assert {event["document"] for event in there.registry.events} == {5}
        assert bundles == [(bridge_module.PROCESSES_GROUP, 20)]
        assert here.registry.events == []  # a process skips its own bundle
    finally:
        for task in [*here.tasks, *there.tasks]:
            task.cancel()
