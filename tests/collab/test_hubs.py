"""The registry of open hubs (collab.hubs): a hub's close, whatever its last snapshot does."""

import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError

from collab import hubs, store
from collab.models import Snapshot
from tests.waits import until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def test_a_hub_whose_last_snapshot_fails_still_leaves_the_documents_group(
    connect, document, owner, monkeypatch
):
    """The snapshot only spares a later load some replaying (the log has every op), but a
    failed one used to stop the close half-way: the process stayed in the document's
    channel-layer group, so it went on receiving the document's events with no hub to take
    them, and no later hub of the document ever left the group."""
    alice = await connect(owner, document)
    await alice.submit(0, [{"insert": "a"}])
    await alice.receive_type("ack")
    hub = hubs.registry.hubs[document.pk]
    assert hubs.registry.bridge.members == {document.pk: 1}

    def unavailable(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(store, "save_snapshot", unavailable)
    await alice.close()  # the last socket: the hub closes, with an "idle" snapshot first
    await hub.task
    assert hub.closed
    assert document.pk not in hubs.registry.bridge.members
    assert document.pk not in hubs.registry.hubs


async def test_a_snapshot_that_fails_while_typing_is_tried_again(
    connect, document, owner, monkeypatch, settings
):
    settings.TANDEM_SNAPSHOT_EVERY_OPS = 3
    real_save, calls = store.save_snapshot, []

    def first_fails(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(store, "save_snapshot", first_fails)
    alice = await connect(owner, document)
    for n in range(3):
        await alice.submit(n, [{"insert": "a"}])
        await alice.receive_type("ack")
    hub = hubs.registry.hubs[document.pk]
    await saved(hub, calls, 1)  # the third edit's: it fails
    assert calls == [3] and hub.snapshot_version == 0
    await alice.submit(3, [{"insert": "b"}])
    await alice.receive_type("ack")
    await saved(hub, calls, 2)
    assert calls == [3, 4] and hub.snapshot_version == 4
    versions = Snapshot.objects.filter(document=document).values_list("version", flat=True)
    assert await sync_to_async(list)(versions) == [4]


async def saved(hub, calls, count):
    """Wait until `count` snapshots were tried and the last one has finished."""
    await until(lambda: len(calls) >= count and hub.snapshot_task.done(), "the snapshot")
