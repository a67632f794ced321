"""A client id belongs to the user who used it first in a document: nobody else may join or
edit under it, so de-duplication by (client_id, seq) cannot drop anyone's edits."""

import pytest
from asgiref.sync import sync_to_async

from collab import store
from collab.models import Operation, Snapshot
from tests.waits import until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def text_in_db(document):
    loaded = await sync_to_async(store.load)(document.pk)
    return "".join(op["insert"] for op in loaded.content.ops)


async def thief_says_hello_as(connect, user, document, client_id):
    thief = await connect(user, document, hello=False)
    thief.client_id = client_id
    await thief.send(type="hello", client_id=client_id, version=None)
    return thief, await thief.receive_type(("joined", "error"))


async def test_another_user_cannot_join_under_a_client_id_seen_in_ops(
    connect, document, owner, editor_user
):
    victim = await connect(owner, document)
    await victim.submit(0, [{"insert": "mine "}])
    await victim.receive_type("ack")

    thief, answer = await thief_says_hello_as(connect, editor_user, document, victim.client_id)
    assert (answer["type"], answer["code"]) == ("error", "client_id_taken")
    # Not joined: the victim's next seq sent under its id is refused, not acked as the victim's.
    await thief.submit(1, [{"insert": "stolen "}], seq=2)
    assert (await thief.receive_type("error"))["code"] == "not_joined"

    await victim.submit(1, [{"retain": 5}, {"insert": "and more"}])
    assert await victim.receive_type("ack") == {"type": "ack", "seq": 2, "version": 2}
    assert await text_in_db(document) == "mine and more\n"


async def test_a_hub_reopened_from_a_snapshot_asks_the_log_who_owns_the_id(
    connect, engine, document, owner, editor_user
):
    victim = await connect(owner, document)
    await victim.submit(0, [{"insert": "mine"}])
    await victim.receive_type("ack")
    await victim.close()
    await closed_with_snapshot(engine, document)

    thief, answer = await thief_says_hello_as(connect, editor_user, document, victim.client_id)
    assert (answer["type"], answer["code"]) == ("error", "client_id_taken")
    # The hub was reopened from the snapshot: the log told it whose the id is.
    assert engine.registry.hubs[document.pk].last_seq == {victim.client_id: (1, 1, owner.pk)}

    back = await connect(owner, document, hello=False)
    back.client_id = victim.client_id
    await back.hello(version=1)  # the owner of the id may come back with it
    await back.submit(1, [{"retain": 4}, {"insert": "!"}], seq=2)
    assert await back.receive_type("ack") == {"type": "ack", "seq": 2, "version": 2}


async def test_a_fresh_id_joined_by_one_user_is_refused_to_another(
    connect, document, owner, editor_user
):
    first = await connect(owner, document)
    _, answer = await thief_says_hello_as(connect, editor_user, document, first.client_id)
    assert (answer["type"], answer["code"]) == ("error", "client_id_taken")
    seq = await first.submit(0, [{"insert": "ok"}])
    assert await first.receive_type("ack") == {"type": "ack", "seq": seq, "version": 1}


async def test_an_edit_under_another_user_s_committed_id_is_refused_at_commit(
    connect, engine, document, owner, editor_user
):
    """Another process let the thief in before the victim's first edit reached this one's
    memory (the hello check cannot see that): the commit checks the author too."""
    victim = await connect(owner, document)
    thief = await connect(editor_user, document)
    await victim.submit(0, [{"insert": "mine"}])
    await victim.receive_type("ack")
    await thief.receive_type("ops")
    thief.client_id = victim.client_id
    hub = engine.registry.hubs[document.pk]
    hub.connections[thief.joined["you"]["session"]].client_id = victim.client_id
    await thief.submit(1, [{"insert": "stolen"}], seq=2)
    refused = await thief.receive_type("error")
    assert (refused["code"], refused["seq"]) == ("client_id_taken", 2)

    await victim.submit(1, [{"retain": 4}, {"insert": "!"}])
    assert await victim.receive_type("ack") == {"type": "ack", "seq": 2, "version": 2}
    assert await text_in_db(document) == "mine!\n"
    rows = Operation.objects.values_list("author_id", flat=True)
    assert await sync_to_async(lambda: list(rows))() == [owner.pk, owner.pk]


async def test_a_whole_document_join_names_the_client_s_last_committed_seq(
    connect, engine, document, owner
):
    """So that a client whose ack was lost does not submit its edit again on top of it."""
    alice = await connect(owner, document)
    assert alice.joined["committed_seq"] == 0
    await alice.submit(0, [{"insert": "once"}])
    await alice.receive_type("ack")
    await alice.close()
    back = await connect(owner, document, hello=False)
    back.client_id = alice.client_id
    assert (await back.hello(version=None))["committed_seq"] == 1  # this hub's memory
    await back.close()
    await closed_with_snapshot(engine, document)
    again = await connect(owner, document, hello=False)
    again.client_id = alice.client_id
    assert (await again.hello(version=None))["committed_seq"] == 1  # the log's


async def closed_with_snapshot(engine, document, version=1):
    """Until the idle hub has closed, with its snapshot saved."""
    saved = sync_to_async(Snapshot.objects.filter(document=document, version=version).exists)

    async def closed():
        return document.pk not in engine.registry.hubs and await saved()

    await until(closed, "the idle hub closes with its snapshot")
