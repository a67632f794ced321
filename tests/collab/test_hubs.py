"""The registry of open hubs (collab.hubs): a hub's close, whatever its last snapshot does."""

import pytest
from django.db import OperationalError

from collab import hubs, store

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
