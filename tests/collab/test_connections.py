"""The cap on each user's open sockets and event streams (collab/connections.py)."""

import asyncio
import random

import pytest
import redis.asyncio as aioredis

from collab import connections
from collab.connections import ConnectionCounts
from collab.protocol import CLOSE_TOO_MANY
from tests.collab.conftest import Client
from tests.collab.test_eventstream import HttpClient
from tests.live_server import free_port

pytestmark = pytest.mark.asyncio


async def slots_in_redis(url, user_id):
    client = aioredis.from_url(url)
    try:
        return await client.zcard(connections.KEY.format(user_id))
    finally:
        await client.aclose()


async def until(condition, timeout=20):
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.05)


@pytest.mark.django_db(transaction=True)
async def test_a_connection_over_the_cap_is_closed_before_it_joins(
    engine, document, owner, editor_user, settings
):
    settings.TANDEM_MAX_CONNECTIONS_PER_USER = 3
    counts = engine.registry.connections
    sockets = [await Client(owner, document.pk).connect() for _ in range(2)]
    await sockets[0].hello()
    web = HttpClient(owner, document.pk)
    await web.join()
    assert counts.held(owner.pk) == 3

    extra = await Client(owner, document.pk).connect()
    assert await extra.closed_with() == CLOSE_TOO_MANY
    late = HttpClient(owner, document.pk)
    assert await late.open() == 200
    assert await late.event() == {"type": "close", "code": CLOSE_TOO_MANY}
    assert await late.finished()
    assert counts.held(owner.pk) == 3
    hub = engine.registry.hubs[document.pk]
    assert sorted(s.user_id for s in hub.connections.values()) == [owner.pk, owner.pk]

    other = await Client(editor_user, document.pk).connect()  # another user is not counted
    await other.hello()

    for sock in sockets:
        await sock.close()
    await web.disconnect()
    assert counts.held(owner.pk) == 0 and owner.pk not in counts.local
    again = await Client(owner, document.pk).connect()
    assert (await again.hello())["type"] == "joined"
    await again.close()
    await other.close()
    assert counts.local == {}
    if settings.REDIS_URL:  # the slots in Redis are given back too, not left to expire
        for user in (owner, editor_user):
            await until(lambda user=user: _zero(settings.REDIS_URL, user.pk))


async def _zero(url, user_id):
    return await slots_in_redis(url, user_id) == 0


@pytest.mark.django_db(transaction=True)
async def test_sessions_refused_for_access_take_no_slot(engine, document, stranger, settings):
    settings.TANDEM_MAX_CONNECTIONS_PER_USER = 1
    for _ in range(3):
        sock = await Client(stranger, document.pk).connect()
        assert await sock.closed_with() == 4404
    assert engine.registry.connections.local == {}


async def test_without_redis_the_count_is_the_processes():
    counts = ConnectionCounts("p1")
    assert [await counts.take(7, f"s{n}", 2) for n in range(3)] == [True, True, False]
    counts.give_back(7, "s0")
    counts.give_back(7, "s0")  # twice is once
    counts.give_back(7, "never-held")
    assert await counts.take(7, "s3", 2)
    counts.give_back(7, "s1")
    counts.give_back(7, "s3")
    assert counts.local == {} and counts.returned == []


@pytest.mark.services
async def test_processes_share_the_cap_through_redis(redis_url, monkeypatch):
    monkeypatch.setattr(connections, "TTL_SECONDS", 2)
    monkeypatch.setattr(connections, "RENEW_SECONDS", 0.5)
    user = random.randrange(10**9, 10**10)  # no other test's user
    one, two = ConnectionCounts("one", redis_url), ConnectionCounts("two", redis_url)
    try:
        assert await one.take(user, "a", 3) and await one.take(user, "b", 3)
        assert await two.take(user, "c", 3)
        assert not await two.take(user, "d", 3)  # the cap counts the other process's too
        assert await slots_in_redis(redis_url, user) == 3
        one.give_back(user, "a")
        await until(lambda: _count_is(redis_url, user, 2))
        assert await two.take(user, "d", 3)
        # Held slots outlive their TTL while the process renews them.
        await asyncio.sleep(connections.TTL_SECONDS * 2)
        assert not await two.take(user, "e", 3)
        # A process that dies without giving its slots back: they expire, and only they.
        one._task.cancel()
        await until(lambda: two.take(user, "e", 3))
        assert await slots_in_redis(redis_url, user) == 3  # c, d (two's) and e
    finally:
        await one.stop()
        await two.stop()
    assert await slots_in_redis(redis_url, user) == 0


async def _count_is(url, user_id, n):
    return await slots_in_redis(url, user_id) == n


async def test_an_unreachable_redis_falls_back_to_the_processes_count():
    counts = ConnectionCounts("p1", f"redis://127.0.0.1:{free_port()}/0")
    try:
        assert [await counts.take(5, f"s{n}", 2) for n in range(3)] == [True, True, False]
        counts.give_back(5, "s0")
        assert await counts.take(5, "s3", 2)
    finally:
        await counts.stop()


@pytest.mark.services
async def test_a_stopped_process_stops_renewing_even_if_redis_swallows_the_cancel(
    redis_url, monkeypatch
):
    """redis-py 8.2 lets a cancellation in the middle of a call go unnoticed: a process whose
    renewing task kept running after its stop would hold its users' slots for good."""
    monkeypatch.setattr(connections, "RENEW_SECONDS", 0.01)
    counts = ConnectionCounts("one", redis_url)
    assert await counts.take(random.randrange(10**9, 10**10), "a", 3)
    renewing = asyncio.Event()

    async def swallowing_renew(**kwargs):
        renewing.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            return 0  # what redis-py does with a cancellation mid-call, more often than not

    counts._renew = swallowing_renew
    await asyncio.wait_for(renewing.wait(), 30)
    counts._task.cancel()
    done, _ = await asyncio.wait({counts._task}, timeout=30)
    assert done and counts._task.cancelled()
    await counts.stop()
