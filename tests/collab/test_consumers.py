"""The document socket, message by message and error code by error code."""

import json
import threading
import time

import pytest
from asgiref.sync import sync_to_async

from collab import commit, store
from collab.models import Operation, Snapshot
from collab.ot import Delta
from tests.waits import until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def content_in_db(document):
    loaded = await sync_to_async(store.load)(document.pk)
    return loaded.version, loaded.content.ops


async def test_join_sends_document_role_and_presence(connect, document, owner, editor_user):
    alice = await connect(owner, document)
    assert alice.joined["version"] == 0
    assert alice.joined["content"] == [{"insert": "\n"}]
    assert alice.joined["role"] == "owner" and alice.joined["readonly"] is False
    assert alice.joined["title"] == "Plans"
    bob = await connect(editor_user, document)
    assert [p["user"]["name"] for p in bob.joined["presence"]] == ["olivia"]
    seen = await alice.receive_type("presence")
    assert seen["user"]["name"] == "eddie" and seen["session"] == bob.joined["you"]["session"]


async def test_submit_is_acked_broadcast_and_stored(connect, document, owner, editor_user):
    alice = await connect(owner, document)
    bob = await connect(editor_user, document)
    await alice.receive_type("presence")
    seq = await alice.submit(0, [{"insert": "Hi "}])
    assert await alice.receive_type("ack") == {"type": "ack", "seq": seq, "version": 1}
    ops = (await bob.receive_type("ops"))["ops"]
    assert ops == [
        {"version": 1, "delta": [{"insert": "Hi "}], "client_id": alice.client_id, "seq": seq,
         "user": owner.pk}
    ]  # fmt: skip
    assert await content_in_db(document) == (1, [{"insert": "Hi \n"}])


async def test_concurrent_edits_are_transformed(connect, document, owner, editor_user):
    alice = await connect(owner, document)
    bob = await connect(editor_user, document)
    await alice.submit(0, [{"insert": "abc"}])
    await alice.receive_type("ack")
    await bob.receive_type("ops")
    # Both edit version 1 at once; bob's arrives second and is transformed. They may be
    # committed apart (an ack, then the other's edit) or together (one `ops` batch).
    await alice.submit(1, [{"retain": 3}, {"insert": "X"}])
    await bob.submit(1, [{"insert": "Y"}])
    seen = await bob.receive_commits(3)
    assert seen[3] == "ack"
    assert seen[2]["client_id"] == alice.client_id
    got = await alice.receive_commits(3)
    assert got[2] == "ack"
    assert got[3]["delta"] == [{"insert": "Y"}]
    assert await content_in_db(document) == (3, [{"insert": "YabcX\n"}])


async def test_edits_that_arrive_together_go_out_as_one_frame(
    connect, engine, document, owner, editor_user, make_user, share
):
    alice = await connect(owner, document)
    bob = await connect(editor_user, document)
    carol_user = await sync_to_async(lambda: share(make_user("carol"), "editor"))()
    carol = await connect(carol_user, document)
    entered, first_commit = threading.Event(), threading.Event()
    real_commit = store.commit_all

    def held_commit(*args):
        entered.set()
        first_commit.wait(60)  # The edits below queue up meanwhile.
        return real_commit(*args)

    store.commit_all = held_commit
    try:
        await alice.submit(0, [{"insert": "a"}])
        await until(entered.is_set, "alice's edit is being committed")
        await bob.submit(0, [{"insert": "b"}])
        await carol.submit(0, [{"insert": "c"}])
        hub = engine.registry.hubs[document.pk]
        await until(lambda: hub.queue.qsize() == 2, "bob's and carol's edits wait for it")
        first_commit.set()
        assert (await alice.receive_type("ack"))["version"] == 1
        for client in (bob, carol):
            assert [op["version"] for op in (await client.receive_type("ops"))["ops"]] == [1]
        # One frame per socket for the batch: bob and carol find their acks in it.
        for client in (alice, bob, carol):
            batch = (await client.receive_type("ops"))["ops"]
            assert [(op["version"], op["client_id"]) for op in batch] == [
                (2, bob.client_id), (3, carol.client_id)
            ]  # fmt: skip
            # Nothing more: the answer to a ping sent now is the next message.
            await client.send(type="ping", id=1)
            assert (await client.receive_type(("ack", "ops", "pong")))["type"] == "pong"
    finally:
        store.commit_all = real_commit
        first_commit.set()
    assert (await content_in_db(document))[0] == 3


def test_a_hub_rests_as_long_as_its_batch_kept_it_busy_and_no_longer():
    assert commit.rest(0.004, 0.0) == pytest.approx(0.004 * commit.PACE)
    assert commit.rest(0.004, 0.003) == pytest.approx(0.001 * commit.PACE)
    assert commit.rest(1.0, 0.0) == commit.MAX_PAUSE
    assert commit.rest(0.003, 0.004) == 0.0


async def test_time_waiting_for_the_database_is_not_rested_again(
    connect, document, owner, monkeypatch
):
    """A slow commit (a disk flush) used to be followed by a rest as long, up to 20 ms, which
    every edit typed meanwhile waited out a second time."""
    alice = await connect(owner, document)
    real_commit, rests = store.commit_all, []

    def slow_commit(*args):
        time.sleep(0.1)
        return real_commit(*args)

    def recorded_rest(took, waited):
        rests.append((took, waited, real_rest(took, waited)))
        return rests[-1][2]

    real_rest = commit.rest
    monkeypatch.setattr(store, "commit_all", slow_commit)
    monkeypatch.setattr(commit, "rest", recorded_rest)
    await alice.submit(0, [{"insert": "a"}])
    assert (await alice.receive_type("ack"))["version"] == 1
    await until(lambda: rests, "the hub rested after its batch")
    [(took, waited, pause)] = rests
    assert took >= waited >= 0.1  # the slow commit is counted as waited for
    # What the batch cost besides the wait, which a busy machine stretches: printed, since
    # rest() itself is checked above to subtract what was waited.
    print(f"batch {took * 1e3:.1f} ms, waited {waited * 1e3:.1f} ms, rest {pause * 1e3:.1f} ms")


async def test_resend_is_acked_once_and_not_applied_twice(connect, document, owner):
    alice = await connect(owner, document)
    seq = await alice.submit(0, [{"insert": "once"}])
    await alice.receive_type("ack")
    await alice.close()

    again = await connect(owner, document, hello=False)
    again.client_id = alice.client_id
    joined = await again.hello(version=0)
    assert joined["ops"][0]["seq"] == seq
    await again.submit(0, [{"insert": "once"}], seq=seq)
    assert await again.receive_type("ack") == {"type": "ack", "seq": seq, "version": 1}
    assert await content_in_db(document) == (1, [{"insert": "once\n"}])
    assert await sync_to_async(Operation.objects.count)() == 1


async def test_a_resend_to_a_hub_that_never_met_the_client_is_acked_once(
    connect, engine, document, owner
):
    """The hub reopened from a snapshot knows nothing of the client: the log decides."""
    alice = await connect(owner, document)
    seq = await alice.submit(0, [{"insert": "once"}])
    await alice.receive_type("ack")
    await alice.close()
    snapshot = sync_to_async(Snapshot.objects.filter(document=document, version=1).exists)

    async def closed_with_snapshot():
        return document.pk not in engine.registry.hubs and await snapshot()

    await until(closed_with_snapshot, "the hub closes with an idle snapshot at version 1")

    again = await connect(owner, document, hello=False)
    again.client_id = alice.client_id
    await again.hello(version=0)
    # Loaded from the snapshot, the hub learnt of the client's edit from the log at hello.
    assert engine.registry.hubs[document.pk].last_seq == {alice.client_id: (seq, 1, owner.pk)}
    await again.submit(0, [{"insert": "once"}], seq=seq)
    assert await again.receive_type("ack") == {"type": "ack", "seq": seq, "version": 1}
    assert await content_in_db(document) == (1, [{"insert": "once\n"}])
    assert await sync_to_async(Operation.objects.count)() == 1


async def test_fetch_returns_missing_ops(connect, document, owner):
    alice = await connect(owner, document)
    for n in range(3):
        await alice.submit(n, [{"insert": str(n)}])
        await alice.receive_type("ack")
    await alice.send(type="fetch", **{"from": 1})
    ops = (await alice.receive_type("ops"))["ops"]
    assert [op["version"] for op in ops] == [2, 3]


async def test_reconnect_with_version_gets_only_the_ops_since(connect, document, owner):
    alice = await connect(owner, document)
    for n in range(3):
        await alice.submit(n, [{"insert": "x"}])
        await alice.receive_type("ack")
    late = await connect(owner, document, hello=False)
    joined = await late.hello(version=2)
    assert joined["version"] == 3
    assert "content" not in joined
    assert [op["version"] for op in joined["ops"]] == [3]


def commit_elsewhere(document_id, texts):
    """Commit edits straight to the log, as another process would, telling no hub here."""
    for version, text in enumerate(texts, start=1):
        op = store.Committed(version, Delta([{"insert": text}]), "elsewhere-1", version, None)
        store.commit_locked(document_id, version - 1, lambda missing, op=op: _only(op))


def _only(op):
    return commit.Plan([], None, [op], [], None)


async def test_a_hello_newer_than_the_hub_is_caught_up_from_the_database(
    connect, document, owner, editor_user
):
    alice = await connect(owner, document)  # the hub is open here at version 0
    await sync_to_async(commit_elsewhere)(document.pk, ["a", "b"])
    # A client another process served has version 2; this process missed the events.
    bob = await connect(editor_user, document, hello=False)
    joined = await bob.hello(version=2)
    assert joined["type"] == "joined" and joined["version"] == 2 and joined["ops"] == []
    assert [op["version"] for op in (await alice.receive_type("ops"))["ops"]] == [1, 2]
    await alice.send(type="ping", id=1)
    assert (await alice.receive_type("pong"))["version"] == 2


async def test_a_hello_newer_than_the_document_is_refused(connect, document, owner):
    await connect(owner, document)
    late = await connect(owner, document, hello=False)
    await late.send(type="hello", client_id="client-late-1", version=5)
    assert (await late.receive_type("error"))["code"] == "future_version"


async def test_ping_pong(connect, document, owner):
    alice = await connect(owner, document)
    await alice.send(type="ping", id=7)
    assert await alice.receive_type("pong") == {"type": "pong", "id": 7, "version": 0}


async def test_presence_is_shared_and_leave_announced(connect, document, owner, editor_user):
    alice = await connect(owner, document)
    bob = await connect(editor_user, document)
    await alice.receive_type("presence")
    await bob.send(type="presence", selection={"index": 0, "length": 0}, version=0)
    seen = await alice.receive_type("presence")
    assert seen["selection"] == {"index": 0, "length": 0}
    assert seen["user"]["color"].startswith("#")
    await bob.close()
    left = await alice.receive_type("leave")
    assert left["session"] == bob.joined["you"]["session"]


async def test_frames_and_closes_make_no_trip_to_the_database_thread(
    connect, document, owner, editor_user, monkeypatch
):
    """Channels closes old database connections in the database thread around its handlers;
    a socket's frames and its close skip that trip (it queued behind the commits)."""
    trips = []

    async def recorded():
        trips.append("aclose_old_connections")

    monkeypatch.setattr("channels.consumer.aclose_old_connections", recorded)
    monkeypatch.setattr("channels.generic.websocket.aclose_old_connections", recorded)
    alice = await connect(owner, document)
    bob = await connect(editor_user, document)
    await alice.send(type="ping", id=1)
    await alice.receive_type("pong")
    await bob.close()
    await alice.receive_type("leave")
    assert trips == []


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "bad_json"),
        ("[1, 2]", "bad_json"),
        (json.dumps({"type": "dance"}), "bad_message"),
        (json.dumps({"type": "submit", "seq": "1", "version": 0, "delta": []}), "bad_message"),
        (json.dumps({"type": "submit", "seq": 2, "version": -1, "delta": []}), "bad_message"),
        (json.dumps({"type": "submit", "seq": 2, "version": 0, "delta": [{"retain": 0}]}),
         "bad_delta"),
        (json.dumps({"type": "submit", "seq": 2, "version": 0, "delta": [{"insert": ""}]}),
         "bad_delta"),
        (json.dumps({"type": "submit", "seq": 2, "version": 0,
                     "delta": [{"insert": "a", "bold": True}]}), "bad_delta"),
        (json.dumps({"type": "submit", "seq": 2, "version": 0, "delta": [{"delete": 5}]}),
         "does_not_fit"),
        (json.dumps({"type": "submit", "seq": 2, "version": 9, "delta": [{"insert": "a"}]}),
         "future_version"),
        (json.dumps({"type": "fetch", "from": 9}), "future_version"),
        (json.dumps({"type": "presence", "selection": {"index": 1}, "version": 0}),
         "bad_message"),
        (json.dumps({"type": "hello", "client_id": "short", "version": None}), "bad_message"),
    ],
)  # fmt: skip
async def test_bad_input_gets_an_error_and_changes_nothing(connect, document, owner, frame, code):
    alice = await connect(owner, document)
    await alice.submit(0, [{"insert": "keep"}])
    await alice.receive_type("ack")
    await alice.ws.send_to(text_data=frame)
    error = await alice.receive_type("error")
    assert error["code"] == code, error
    assert error["message"]
    assert await content_in_db(document) == (1, [{"insert": "keep\n"}])
    # The socket still works.
    await alice.submit(1, [{"insert": "!"}])
    assert (await alice.receive_type("ack"))["version"] == 2


# What the editor cannot render: each would break every later load of the document.
UNRENDERABLE = [
    [{"insert": {"formula": "e^x"}}],
    [{"insert": "a", "attributes": {"font": "serif"}}],
    [{"insert": "a"}, {"insert": "\n", "attributes": {"header": 7}}],
    [{"insert": "a", "attributes": {"link": "javascript:alert(1)"}}],
]


@pytest.mark.parametrize("delta", UNRENDERABLE)
async def test_content_the_editor_cannot_render_is_refused_with_its_seq(
    connect, document, owner, editor_user, delta
):
    alice = await connect(owner, document)
    bob = await connect(editor_user, document)
    seq = await alice.submit(0, delta)
    error = await alice.receive_type("error")
    assert (error["code"], error["seq"]) == ("bad_delta", seq)
    # Nothing was stored or sent; the next edit is the next version.
    await alice.submit(0, [{"insert": "fine", "attributes": {"bold": True}}])
    assert (await alice.receive_type("ack"))["version"] == 1
    assert (await bob.receive_type("ops"))["ops"][0]["version"] == 1
    assert await content_in_db(document) == (
        1,
        [{"insert": "fine", "attributes": {"bold": True}}, {"insert": "\n"}],
    )


async def test_too_large_frame_is_refused(connect, document, owner, settings):
    settings.TANDEM_MAX_MESSAGE_BYTES = 1000
    alice = await connect(owner, document)
    seq = await alice.submit(0, [{"insert": "x" * 2000}])
    error = await alice.receive_type("error")
    assert (error["code"], error["seq"]) == ("too_large", seq)
    assert await content_in_db(document) == (0, [{"insert": "\n"}])
    # The refused seq was not used: the client sends its next edit under it.
    await alice.submit(0, [{"insert": "x"}], seq=seq)
    assert await alice.receive_type("ack") == {"type": "ack", "seq": seq, "version": 1}


async def test_message_limit_counts_utf8_bytes(connect, document, owner, settings):
    settings.TANDEM_MAX_MESSAGE_BYTES = 1000
    alice = await connect(owner, document)
    assert alice.joined["limits"]["message_bytes"] == 1000

    def frame(text):  # as a browser sends it: UTF-8, not \u escapes
        message = {"type": "submit", "seq": 1, "version": 0, "delta": [{"insert": text}]}
        return json.dumps(message, ensure_ascii=False)

    # 530 characters, 980 bytes of text in UTF-8: over the limit with the rest of the frame.
    await alice.ws.send_to(text_data=frame("é" * 450 + "x" * 80))
    error = await alice.receive_type("error")
    assert (error["code"], error["seq"]) == ("too_large", 1)
    await alice.ws.send_to(text_data=frame("é" * 400))
    assert (await alice.receive_type("ack"))["version"] == 1


async def test_joined_tells_the_limits(connect, document, owner, settings):
    settings.TANDEM_MAX_DOCUMENT_BYTES = 5000
    alice = await connect(owner, document)
    assert alice.joined["limits"] == {
        "message_bytes": settings.TANDEM_MAX_MESSAGE_BYTES,
        "delta_ops": 10_000,
        "delta_chars": 1_000_000,
        "document_bytes": 5000,
    }


async def test_edit_past_the_document_limit_is_refused_alone(
    connect, document, owner, editor_user, settings
):
    settings.TANDEM_MAX_DOCUMENT_BYTES = 20
    alice = await connect(owner, document)
    bob = await connect(editor_user, document)
    await alice.submit(0, [{"insert": "0123456789"}])
    assert (await alice.receive_type("ack"))["version"] == 1
    # Ten more bytes would reach 21 with the final newline: refused, named, nothing stored.
    seq = await alice.submit(1, [{"insert": "abcdefghij"}])
    error = await alice.receive_type("error")
    assert (error["code"], error["seq"]) == ("document_too_large", seq)
    assert await content_in_db(document) == (1, [{"insert": "0123456789\n"}])
    # Others' edits that fit still commit, and so do the author's next ones (same seq).
    await bob.submit(1, [{"insert": "é"}])  # two bytes: 13 in all
    assert (await bob.receive_commits(2))[2] == "ack"
    await alice.submit(1, [{"delete": 5}], seq=seq)
    assert (await alice.receive_commits(3))[3] == "ack"
    # Deleting made room, which the bound alone does not know: the document is measured.
    await alice.submit(3, [{"insert": "abcdefghi"}])
    assert (await alice.receive_commits(4))[4] == "ack"
    assert await content_in_db(document) == (4, [{"insert": "abcdefghié56789\n"}])


async def test_a_rate_limited_edit_is_named(connect, document, owner, settings):
    settings.TANDEM_RATE_LIMIT_PER_SECOND = 2
    alice = await connect(owner, document)
    for _ in range(3):
        await alice.send(type="ping")
    seq = await alice.submit(0, [{"insert": "x"}])
    while "seq" not in (message := await alice.receive()):
        assert message["type"] == "pong" or message["code"] == "rate_limited", message
    assert (message["code"], message["seq"]) == ("rate_limited", seq)


async def test_messages_before_hello_are_refused(connect, document, owner):
    alice = await connect(owner, document, hello=False)
    await alice.submit(0, [{"insert": "x"}])
    error = await alice.receive_type("error")
    assert error["code"] == "not_joined" and error["seq"] == 1


async def test_viewer_cannot_submit_but_receives(connect, document, owner, viewer_user):
    alice = await connect(owner, document)
    vera = await connect(viewer_user, document)
    assert vera.joined["readonly"] is True
    await vera.submit(0, [{"insert": "nope"}])
    assert (await vera.receive_type("error"))["code"] == "read_only"
    await alice.submit(0, [{"insert": "yes"}])
    assert (await vera.receive_type("ops"))["ops"][0]["delta"] == [{"insert": "yes"}]
    assert await content_in_db(document) == (1, [{"insert": "yes\n"}])


async def test_rate_limit_then_close(connect, document, owner, settings):
    settings.TANDEM_RATE_LIMIT_PER_SECOND = 5
    alice = await connect(owner, document)
    codes = []
    for _ in range(40):
        await alice.send(type="ping")
    while True:
        output = await alice.ws.receive_output(2)
        if output["type"] == "websocket.close":
            break
        message = json.loads(output["text"])
        codes.append(message.get("code"))
    assert "rate_limited" in codes
    assert output["code"] == 4429


async def test_repeated_garbage_closes_with_4400(connect, document, owner):
    alice = await connect(owner, document)
    for _ in range(25):
        await alice.ws.send_to(text_data="garbage")
    while True:
        output = await alice.ws.receive_output(2)
        if output["type"] == "websocket.close":
            assert output["code"] == 4400
            break


async def test_anonymous_and_strangers_are_closed(open_socket, document, stranger):
    from django.contrib.auth.models import AnonymousUser

    anonymous = await open_socket(AnonymousUser(), document.pk)
    assert await anonymous.closed_with() == 4401
    outsider = await open_socket(stranger, document.pk)
    assert await outsider.closed_with() == 4404
    missing = await open_socket(stranger, document.pk + 999)
    assert await missing.closed_with() == 4404
