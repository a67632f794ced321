"""The bridge between processes keeps within Redis's connection pool."""

import asyncio

import pytest
from channels_redis.core import RedisChannelLayer

from collab.bridge import Bridge
from editor.notify import document_group

pytestmark = [pytest.mark.services, pytest.mark.asyncio]


async def test_a_thousand_documents_open_and_close_at_once(redis_url):
    layer = RedisChannelLayer(hosts=[redis_url], prefix="tandem-test-bridge")
    bridge = Bridge(registry=None)
    bridge.layer = layer
    bridge.channel = await layer.new_channel("tandem.process.")
    try:
        # redis-py fails the 101st connection a pool is asked for at the same time.
        await asyncio.gather(*(bridge.subscribe(doc) for doc in range(1000)))
        await layer.group_send(document_group(999), {"type": "doc.test"})
        assert (await asyncio.wait_for(layer.receive(bridge.channel), 5))["type"] == "doc.test"
        await asyncio.gather(*(bridge.unsubscribe(doc) for doc in range(1000)))
        await layer.group_send(document_group(999), {"type": "doc.test"})
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(layer.receive(bridge.channel), 0.5)
    finally:
        await layer.flush()


async def test_a_reopened_document_stays_subscribed_while_the_old_hub_leaves(redis_url):
    layer = RedisChannelLayer(hosts=[redis_url], prefix="tandem-test-bridge")
    bridge = Bridge(registry=None)
    bridge.layer = layer
    bridge.channel = await layer.new_channel("tandem.process.")
    try:
        await bridge.subscribe(7)
        # The old hub closes while its successor opens: both at once, in either order.
        await asyncio.gather(bridge.subscribe(7), bridge.unsubscribe(7))
        await layer.group_send(document_group(7), {"type": "doc.test"})
        assert (await asyncio.wait_for(layer.receive(bridge.channel), 5))["type"] == "doc.test"
        await asyncio.gather(bridge.unsubscribe(7), bridge.subscribe(7))
        await bridge.unsubscribe(7)
        await layer.group_send(document_group(7), {"type": "doc.test"})
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(layer.receive(bridge.channel), 0.5)
        assert bridge.members == {}
    finally:
        await layer.flush()
