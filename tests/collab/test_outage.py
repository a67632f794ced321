"""A Redis outage between two daphne processes: the quiet one catches up from the database.

Redis pub/sub drops what is published while it is down, and says nothing to the subscriber.
Without a way to notice, a process whose clients type nothing keeps serving the version it
had before the outage: its clients' `pong` reports that version, so they never ask for more,
and a new client there is given stale content (issue #16, item 5).
"""

import asyncio
import random
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.collab.simclient import random_edit
from tests.collab.test_processes import stored_content
from tests.collab.wsclient import WsClient, session_cookie
from tests.live_server import (
    DaphneServer,
    PrivateRedis,
    create_documents,
    create_users,
    manage,
    postgres_database,
)
from tests.waits import wait_until

pytestmark = pytest.mark.services


@pytest.fixture
def outage_env(postgres_url, tmp_path):
    """A fresh database, a private Redis and a way to start daphne processes on them."""
    servers = []
    with postgres_database(postgres_url, "tandem_out") as url, PrivateRedis(tmp_path) as redis:
        env = {"DATABASE_URL": url, "REDIS_URL": redis.url}
        manage("migrate", "--noinput", env=env)
        create_users({"ann": "pw-ann-123456", "ben": "pw-ben-123456"}, env=env)
        shares = {"ben": "editor"}
        document = create_documents("ann", ["Shared"], shares=shares, env=env)["Shared"]

        def server():
            started = DaphneServer(env=env, log_dir=tmp_path).start()
            servers.append(started)
            return started

        try:
            yield env, document, server, redis
        finally:
            for started in servers:
                started.kill()


async def type_acked(client, rng, edits):
    """Type `edits` edits, each acknowledged before the next."""
    for _ in range(edits):
        await client.sim.edit(random_edit(client.sim.doc, rng))
        while not client.sim.settled:
            await asyncio.sleep(0.005)


async def reaches(client, version, timeout=20):
    """Seconds until the client holds `version`; it sends nothing (no ping, no edit)."""
    started = time.monotonic()
    async with asyncio.timeout(timeout):
        while client.sim.version != version:
            await asyncio.sleep(0.01)
    return time.monotonic() - started


def link_metrics(server):
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("tandem_channel_layer_")
    }


def test_a_quiet_process_catches_up_during_and_after_a_redis_outage(outage_env):
    env, document, start_server, redis = outage_env
    busy, quiet = start_server(), start_server()
    cookies = {name: session_cookie(name, env) for name in ("ann", "ben")}
    rng = random.Random(16)

    async def scenario():
        typist = WsClient("outage-typist", cookies["ann"], busy, document)
        watcher = WsClient("outage-watcher", cookies["ben"], quiet, document)
        await typist.connect()
        await watcher.connect()
        await type_acked(typist, rng, 5)
        await reaches(watcher, typist.sim.version)

        await asyncio.to_thread(redis.stop)
        await type_acked(typist, rng, 10)  # committed and acked; their events are lost
        during = await reaches(watcher, typist.sim.version)
        newcomer = WsClient("outage-newcomer", cookies["ben"], quiet, document)
        await newcomer.connect()  # a fresh hello on the quiet process while Redis is down
        fresh_during = newcomer.joined_version
        await newcomer.close()

        await asyncio.to_thread(redis.start)
        await type_acked(typist, rng, 10)  # committed while the quiet process may still be
        after = await reaches(watcher, typist.sim.version)  # cut off, then through Redis
        late = WsClient("outage-late", cookies["ben"], quiet, document)
        await late.connect()
        result = {
            "version": typist.sim.version,
            "fresh_during": fresh_during,
            "fresh_after": late.joined_version,
            "docs": [typist.sim.doc.ops, watcher.sim.doc.ops, late.sim.doc.ops],
        }
        for client in (typist, watcher, late):
            await client.close()
        return result, during, after

    result, during, after = asyncio.run(asyncio.wait_for(scenario(), 120))
    print(f"quiet process caught up in {during:.2f} s during the outage, {after:.2f} s after")
    assert result["version"] == 25
    assert result["fresh_during"] == 15, "a hello during the outage gets the stored version"
    assert result["fresh_after"] == 25
    version, content = stored_content(env, document)
    assert version == 25
    assert all(doc == content for doc in result["docs"])
    # The watcher may have caught up from the database before the link was known to be back.
    wait_until(lambda: link_metrics(quiet)["tandem_channel_layer_link_up"] == 1,
               "the quiet process's link is up again")  # fmt: skip
    figures = link_metrics(quiet)
    assert figures["tandem_channel_layer_link_losses_total"] >= 1
    assert figures["tandem_channel_layer_recoveries_total"] >= 1
