"""Every edit is answered however its commit fails: the database connection lost, a bad edit
in a batch, an error that does not go away (collab.commit.commit_batch)."""

import json
import threading

import psycopg
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.db import OperationalError, connection

from collab import store
from collab.dbthread import db
from collab.models import Operation
from tests.waits import until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def stored(document):
    """(version, text) of the document as the database has it."""
    loaded = await sync_to_async(store.load)(document.pk)
    return loaded.version, "".join(op.get("insert", "") for op in loaded.content.ops)


async def log_rows():
    rows = sync_to_async(lambda: sorted(Operation.objects.values_list("client_id", "seq")))
    return await rows()


class HeldCommit:
    """Holds the first commit until `release`, so that the edits sent meanwhile batch."""

    def __init__(self):
        self.entered = threading.Event()
        self.released = threading.Event()
        self.real = store.commit_all

    def __call__(self, requests):
        if not self.entered.is_set():
            self.entered.set()
            self.released.wait(30)
        return self.real(requests)


async def test_an_edit_whose_author_was_deleted_is_refused_alone_and_its_batch_commits(
    connect, engine, document, owner, editor_user, make_user, share, monkeypatch
):
    alice = await connect(owner, document)
    bob = await connect(editor_user, document)
    carol_user = await sync_to_async(lambda: share(make_user("carol"), "editor"))()
    carol = await connect(carol_user, document)
    held = HeldCommit()
    monkeypatch.setattr(store, "commit_all", held)
    try:
        await alice.submit(0, [{"insert": "a"}])
        await until(held.entered.is_set)
        bob_seq = await bob.submit(0, [{"insert": "b"}])
        carol_seq = await carol.submit(0, [{"insert": "c"}])
        hub = engine.registry.hubs[document.pk]
        await until(lambda: hub.queue.qsize() == 2)
        # Bob's account goes while his edit waits: its row breaks the log's foreign key.
        users = get_user_model().objects.filter(pk=editor_user.pk)
        await sync_to_async(users.delete, thread_sensitive=False)()
    finally:
        held.released.set()

    assert (await alice.receive_type("ack"))["version"] == 1
    assert (await carol.receive_commits(2))[2] == "ack"
    assert await stored(document) == (2, "ac\n")
    assert await log_rows() == sorted([(alice.client_id, 1), (carol.client_id, carol_seq)])
    # Bob is told, unless his socket was closed for the lost account first; never acked.
    assert await refusal_or_close(bob) in ({"code": "commit_failed", "seq": bob_seq}, "closed")


async def refusal_or_close(client):
    """The client's first error ({code, seq}), or "closed"; fails on an ack of its own edit."""
    while True:
        output = await client.ws.receive_output(2)
        if output["type"] == "websocket.close":
            return "closed"
        message = json.loads(output["text"])
        if message["type"] == "error":
            return {"code": message["code"], "seq": message.get("seq")}
        assert message["type"] != "ack", message
        if message["type"] == "ops":
            assert all(op["client_id"] != client.client_id for op in message["ops"]), message


class FailingCommit:
    """Raises OperationalError for the first `times` commits, then commits."""

    def __init__(self, times):
        self.left = times
        self.calls = 0
        self.real = store.commit_all

    def __call__(self, requests):
        self.calls += 1
        if self.left > 0:
            self.left -= 1
            raise OperationalError("server closed the connection unexpectedly")
        return self.real(requests)


async def test_a_connection_error_is_retried_once_and_the_edit_committed(
    connect, document, owner, monkeypatch
):
    alice = await connect(owner, document)
    failing = FailingCommit(1)
    monkeypatch.setattr(store, "commit_all", failing)
    seq = await alice.submit(0, [{"insert": "kept"}])
    assert await alice.receive_type(("ack", "error")) == {"type": "ack", "seq": seq, "version": 1}
    assert failing.calls == 2
    assert await stored(document) == (1, "kept\n")


async def test_a_connection_error_that_persists_refuses_the_batch_and_the_resend_commits_once(
    connect, engine, document, owner, editor_user, monkeypatch
):
    alice = await connect(owner, document)
    bob = await connect(editor_user, document)
    failing = FailingCommit(2)
    monkeypatch.setattr(store, "commit_all", failing)
    seq = await alice.submit(0, [{"insert": "a"}])
    refused = await alice.receive_type(("ack", "error"))
    assert (refused["code"], refused["seq"]) == ("unavailable", seq)
    assert failing.calls == 2
    assert await stored(document) == (0, "\n")
    # The client resends the same edit, unchanged, once the database is back.
    await alice.submit(0, [{"insert": "a"}], seq=seq)
    assert await alice.receive_type(("ack", "error")) == {"type": "ack", "seq": seq, "version": 1}
    assert [op["seq"] for op in (await bob.receive_type("ops"))["ops"]] == [seq]
    assert await log_rows() == [(alice.client_id, seq)]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="terminates a PostgreSQL backend")
async def test_edits_after_the_engine_s_connection_was_terminated_are_committed_once(
    connect, document, owner
):
    """pg_terminate_backend on the engine's connection, as an operator or a failover does."""
    alice = await connect(owner, document)
    version = 0
    for round in range(3):
        seq = await alice.submit(version, [{"insert": f"{round}"}])
        assert (await alice.receive_type(("ack", "error")))["seq"] == seq
        version += 1
        pid = await db(lambda: connection.connection.info.backend_pid)()
        settings = connection.settings_dict
        with psycopg.connect(
            host=settings["HOST"], port=settings["PORT"] or 5432, user=settings["USER"],
            dbname=settings["NAME"], password=settings["PASSWORD"] or None, autocommit=True,
        ) as admin:  # fmt: skip
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    seq = await alice.submit(version, [{"insert": "after"}])
    assert await alice.receive_type(("ack", "error")) == {"type": "ack", "seq": seq, "version": 4}
    assert await stored(document) == (4, "after210\n")
    assert await log_rows() == [(alice.client_id, n) for n in (1, 2, 3, 4)]
