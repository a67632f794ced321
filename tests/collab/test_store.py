"""The engine's SQL on the op log: commit, what others committed meanwhile, finding a resend."""

import json
import threading

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from collab import store
from collab.commit import Plan
from collab.models import Snapshot
from collab.ot import Delta
from editor.models import Document
from tests.waits import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the one-statement commit is PostgreSQL's"
)


def commit(document_id, known_version, client_id, seq, text, author=None):
    seen = {}

    def plan(missing):
        seen["missing"] = missing
        version = (missing[-1].version if missing else known_version) + 1
        op = store.Committed(version, Delta([{"insert": text}]), client_id, seq, author)
        return Plan(missing, None, [op], [], None)

    store.commit_locked(document_id, known_version, plan)
    return seen["missing"]


def test_a_commit_sees_what_was_committed_since_its_version(document):
    assert commit(document.pk, 0, "client-aaaa", 1, "a") == []
    assert commit(document.pk, 1, "client-bbbb", 1, "b") == []
    # A process still at version 1 gets version 2 handed in before it commits.
    missing = commit(document.pk, 1, "client-aaaa", 2, "c")
    assert [(op.version, op.client_id, op.seq, op.delta.ops) for op in missing] == [
        (2, "client-bbbb", 1, [{"insert": "b"}])
    ]
    assert store.load(document.pk).content.ops == [{"insert": "cba\n"}]


def test_newer_versions_names_the_documents_whose_log_went_past_the_version_known(document, owner):
    other = Document.objects.create(title="Other", owner=owner)
    quiet = Document.objects.create(title="Quiet", owner=owner)
    for seq in (1, 2, 3):
        commit(document.pk, seq - 1, "client-aaaa", seq, "a")
    commit(other.pk, 0, "client-bbbb", 1, "b")
    known = {document.pk: 1, other.pk: 1, quiet.pk: 0, 999_999: 0}
    with CaptureQueriesContext(connection) as queries:
        assert store.newer_versions(known) == {document.pk: 3}
    assert len(queries) == 1


def test_find_committed_names_the_version_and_author_of_a_client_edit(document):
    commit(document.pk, 0, "client-aaaa", 1, "a")
    commit(document.pk, 1, "client-bbbb", 1, "b", author=document.owner_id)
    assert store.find_committed(document.pk, "client-bbbb", 1) == (2, document.owner_id)
    assert store.find_committed(document.pk, "client-aaaa", 1) == (1, None)
    assert store.find_committed(document.pk, "client-bbbb", 2) is None
    assert store.find_committed(document.pk + 1, "client-aaaa", 1) is None


def test_last_edit_of_a_client_names_its_seq_version_and_author(document):
    assert store.last_edit_of(document.pk, "client-aaaa") is None
    commit(document.pk, 0, "client-aaaa", 1, "a", author=document.owner_id)
    commit(document.pk, 1, "client-bbbb", 1, "b")  # its author deleted since
    commit(document.pk, 2, "client-aaaa", 2, "c", author=document.owner_id)
    assert store.last_edit_of(document.pk, "client-aaaa") == (2, 3, document.owner_id)
    assert store.last_edit_of(document.pk, "client-bbbb") == (1, 2, None)
    assert store.last_edit_of(document.pk + 1, "client-aaaa") is None


def verbs(queries):
    """The first word of each statement a CaptureQueriesContext caught."""
    return [query["sql"].split()[0] for query in queries.captured_queries]


def pop_one_statement_commit(statements):
    """Take the one-statement commit off the front of the statements a commit ran (prepared
    first when it was the connection's first)."""
    if statements[0].startswith(f"PREPARE {store.UNOPPOSED}"):
        statements.pop(0)
    assert statements.pop(0).startswith(f"EXECUTE {store.UNOPPOSED}"), statements


def typing(client_id, seq, text, seen=None, known=0):
    """A plan that commits `text` at the start of the document (at version `known`), after what
    it was missing.

    `seen[client_id]` is what it was last missing: on PostgreSQL a plan runs first as if it
    missed nothing, and again when it did.
    """

    def plan(missing):
        if seen is not None:
            seen[client_id] = [op.version for op in missing or []]
        version = (missing[-1].version if missing else known) + 1
        op = store.Committed(version, Delta([{"insert": text}]), client_id, seq, None)
        return Plan(missing, None, [op], [], None)

    return plan


def test_documents_commit_together_in_one_transaction(document, owner):
    """Documents that others wrote to since their known versions: locked, read and written in
    one transaction (on PostgreSQL after the one-statement commit left them all out)."""
    others = [Document.objects.create(title=f"Doc {n}", owner=owner) for n in range(3)]
    for doc in [*others, document]:
        commit(doc.pk, 0, "client-eeee", 1, "e")  # one op in each already
    commit(others[1].pk, 1, "client-eeee", 2, "f")  # and a second in this one
    seen = {}
    requests = [
        (doc.pk, 0, typing(f"client-{n:04}", 1, str(n), seen))
        for n, doc in enumerate([*others, document])
    ]
    with CaptureQueriesContext(connection) as queries:
        outcomes = store.commit_all(requests)
    assert [outcome.committed[0].version for outcome in outcomes] == [2, 3, 2, 2]
    # Each plan got its own document's missing ops, whatever the order of the requests.
    assert sorted(seen.values()) == [[1], [1], [1], [1, 2]]
    assert store.load(others[1].pk).content.ops == [{"insert": "1fe\n"}]
    assert store.load(document.pk).content.ops == [{"insert": "3e\n"}]
    statements = [q["sql"] for q in queries.captured_queries]
    if connection.vendor == "postgresql":  # the one-statement commit first, which wrote none
        pop_one_statement_commit(statements)
    inserts = [sql for sql in statements if sql.startswith("INSERT")]
    assert len(inserts) == 1  # one statement for the four documents' rows
    assert len(statements) <= 5  # lock, read, insert, and the transaction's own


@postgresql_only
def test_a_document_others_wrote_to_is_left_to_the_locked_commit(document, owner):
    other = Document.objects.create(title="Other", owner=owner)
    commit(other.pk, 0, "client-eeee", 1, "e")  # by another process
    seen = {}
    requests = [
        (other.pk, 0, typing("client-aaaa", 1, "a", seen)),
        (document.pk, 0, typing("client-bbbb", 1, "b", seen)),
    ]
    with CaptureQueriesContext(connection) as queries:
        outcomes = store.commit_all(requests)
    assert [outcome.committed[0].version for outcome in outcomes] == [2, 1]
    assert seen == {"client-aaaa": [1], "client-bbbb": []}
    assert store.load(other.pk).content.ops == [{"insert": "ae\n"}]
    assert store.load(document.pk).content.ops == [{"insert": "b\n"}]
    statements = [q["sql"] for q in queries.captured_queries]
    pop_one_statement_commit(statements)  # wrote `document`'s row
    # then `other`'s transaction: begin, lock, read, insert, commit
    assert [sql.split()[0] for sql in statements] == [
        "BEGIN", "SELECT", "SELECT", "INSERT", "COMMIT"
    ]  # fmt: skip


def test_one_documents_failure_leaves_the_others_committed(document, owner):
    other = Document.objects.create(title="Other", owner=owner)

    def broken(missing):
        raise ValueError("this plan fails")

    outcomes = store.commit_all(
        [(other.pk, 0, broken), (document.pk, 0, typing("client-aaaa", 1, "a"))]
    )
    assert isinstance(outcomes[0], ValueError)
    assert outcomes[1].committed[0].version == 1
    assert store.load(document.pk).content.ops == [{"insert": "a\n"}]
    assert store.load(other.pk).version == 0


def test_two_batches_of_one_document_in_a_group_commit_one_after_the_other(document):
    outcomes = store.commit_all(
        [
            (document.pk, 0, typing("client-aaaa", 1, "a")),
            (document.pk, 0, typing("client-bbbb", 1, "b")),
        ]
    )
    assert [outcome.committed[0].version for outcome in outcomes] == [1, 2]
    assert store.load(document.pk).content.ops == [{"insert": "ba\n"}]


@postgresql_only
def test_commits_with_nothing_missing_are_one_statement(document, owner):
    others = [Document.objects.create(title=f"Doc {n}", owner=owner) for n in range(2)]
    seen = {}
    requests = [
        (doc.pk, 0, typing(f"client-{n:04}", 1, f"é{n}", seen))
        for n, doc in enumerate([document, *others])
    ]
    with CaptureQueriesContext(connection) as queries:
        outcomes = store.commit_all(requests)
    # Lock and insert, in its own transaction; the first on a connection prepares it first.
    assert verbs(queries) in (["EXECUTE"], ["PREPARE", "EXECUTE"]), queries.captured_queries
    assert [outcome.committed[0].version for outcome in outcomes] == [1, 1, 1]
    assert list(seen.values()) == [[], [], []]
    for n, doc in enumerate([document, *others]):
        assert store.load(doc.pk).content.ops == [{"insert": f"é{n}\n"}]
    assert store.find_committed(others[1].pk, "client-0002", 1) == (1, None)

    # The next batch on the same connection runs the prepared statement alone.
    with CaptureQueriesContext(connection) as queries:
        outcomes = store.commit_all([(document.pk, 1, typing("client-0000", 2, "x", known=1))])
    assert verbs(queries) == ["EXECUTE"]
    assert outcomes[0].committed[0].version == 2
    assert store.load(document.pk).content.ops == [{"insert": "xé0\n"}]


@postgresql_only
def test_a_new_connection_prepares_the_one_statement_commit_again(document):
    store.commit_all([(document.pk, 0, typing("client-aaaa", 1, "a"))])
    connection.close()  # as after a database error, or a restarted server
    with CaptureQueriesContext(connection) as queries:
        outcomes = store.commit_all([(document.pk, 1, typing("client-aaaa", 2, "b", known=1))])
    assert verbs(queries) == ["PREPARE", "EXECUTE"], queries.captured_queries
    assert outcomes[0].committed[0].version == 2
    assert store.load(document.pk).content.ops == [{"insert": "ba\n"}]


def blocking_another():
    """Whether another session waits for a lock this session holds (PostgreSQL)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # the activity seen afresh
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))"
        )
        return cursor.fetchone()[0] > 0


@postgresql_only
def test_the_one_statement_commit_waits_for_a_locking_commit(document):
    """A locking commit that has read the log must still find its version free to insert."""
    locked, failure = threading.Event(), []

    def plan(missing):
        locked.set()
        # The other commit comes now: go on once it waits for this transaction's lock.
        wait_until(blocking_another, "the one-statement commit waits for the lock")
        return typing("client-bbbb", 1, "b")(missing)

    def locking_commit():
        try:
            store.commit_locked(document.pk, 0, plan)
        except Exception as error:
            failure.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=locking_commit)
    thread.start()
    assert locked.wait(60)
    seen = {}
    outcomes = store.commit_all([(document.pk, 0, typing("client-aaaa", 1, "a", seen))])
    thread.join()
    assert failure == []
    assert outcomes[0].committed[0].version == 2
    assert seen == {"client-aaaa": [1]}
    assert store.load(document.pk).content.ops == [{"insert": "ab\n"}]


@postgresql_only
def test_a_session_that_lost_the_prepared_statement_still_commits(document):
    store.commit_all([(document.pk, 0, typing("client-aaaa", 1, "a"))])
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # as a pooler handing over another session would
    outcomes = store.commit_all([(document.pk, 1, typing("client-aaaa", 2, "b", known=1))])
    assert outcomes[0].committed[0].version == 2  # by the locked commit
    with CaptureQueriesContext(connection) as queries:
        outcomes = store.commit_all([(document.pk, 2, typing("client-aaaa", 3, "c", known=2))])
    assert verbs(queries) == ["PREPARE", "EXECUTE"], queries.captured_queries
    assert store.load(document.pk).content.ops == [{"insert": "cba\n"}]


@postgresql_only
def test_a_resend_planned_before_the_lock_is_refused_and_planned_again(document, owner):
    """The one-statement commit plans without asking the log for resends: the log's unique key
    refuses one, and the batch is planned again under the lock, with the log read."""
    other = Document.objects.create(title="Other", owner=owner)
    commit(document.pk, 0, "client-aaaa", 1, "a")  # the edit, committed before its ack was lost
    calls = []

    def resend(missing):
        calls.append(missing)
        if missing is None:  # unchecked: as if it were new
            return typing("client-aaaa", 1, "a", known=1)(missing)
        version, _ = store.find_committed(document.pk, "client-aaaa", 1)
        return Plan(missing, None, [], [("client", {"type": "ack", "version": version})], None)

    outcomes = store.commit_all([(document.pk, 1, resend), (other.pk, 0, typing("c-b", 1, "b"))])
    assert calls == [None, []]
    assert outcomes[0].committed == []
    assert outcomes[0].replies == [("client", {"type": "ack", "version": 1})]
    assert outcomes[1].committed[0].version == 1
    assert [op.version for op in store.ops_since(document.pk, 0)] == [1]
    assert store.load(other.pk).content.ops == [{"insert": "b\n"}]


def test_a_version_another_process_took_first_is_planned_again_with_it(document):
    commit(document.pk, 0, "client-bbbb", 1, "b")  # another process, unknown to this one
    seen = {}
    outcomes = store.commit_all([(document.pk, 0, typing("client-aaaa", 1, "a", seen))])
    assert outcomes[0].committed[0].version == 2
    assert seen == {"client-aaaa": [1]}
    assert store.load(document.pk).content.ops == [{"insert": "ab\n"}]
    assert [op.version for op in store.ops_since(document.pk, 0)] == [1, 2]


def test_a_deleted_document_fails_alone(document, owner):
    gone = Document.objects.create(title="Gone", owner=owner)
    gone_id = gone.pk
    gone.delete()
    outcomes = store.commit_all(
        [
            (gone_id, 0, typing("client-aaaa", 1, "a")),
            (document.pk, 0, typing("client-bbbb", 1, "b")),
        ]
    )
    assert isinstance(outcomes[0], Exception)
    assert outcomes[1].committed[0].version == 1
    assert store.load(document.pk).content.ops == [{"insert": "b\n"}]
    assert store.ops_since(gone_id, 0) == []


@postgresql_only
def test_the_one_statement_commit_reads_only_the_end_of_a_long_log(document, owner):
    """Planned against a long log and many documents, the prepared statement's generic plan
    looks up each document's newest version in the index, and the documents by primary key;
    it never scans the log or the documents."""
    log_table = store._commit_sql().log
    Document.objects.bulk_create(Document(title=f"Doc {n}", owner=owner) for n in range(5000))
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {store._commit_sql().documents}")
        cursor.execute(
            f"INSERT INTO {log_table} (document_id, version, delta, client_id, seq, created_at) "
            "SELECT %s, g, '[]', 'bulk', g, now() FROM generate_series(1, 50000) AS g",
            [document.pk],
        )
        cursor.execute(f"ANALYZE {log_table}")
        record = store._record(document.pk, 50000, typing("client-aaaa", 1, "a")([]).committed[0])
        # The generic plan, which PostgreSQL settles on after five runs of a prepared statement.
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        try:
            cursor.execute(
                "EXPLAIN " + store._unopposed_call(cursor, store._commit_sql()),
                [[document.pk], timezone.now(), json.dumps([record]), 1],
            )
            plan = "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("RESET plan_cache_mode")
    assert "Index Only Scan Backward" in plan, plan
    assert "Seq Scan on collab_operation" not in plan, plan
    assert "Index Scan using editor_document_pkey" in plan, plan
    assert "Seq Scan on editor_document" not in plan, plan


def test_a_snapshot_is_one_statement_and_a_twin_keeps_the_first(document, owner):
    with CaptureQueriesContext(connection) as queries:
        store.save_snapshot(document.pk, 3, Delta([{"insert": "first\n"}]), "idle", owner.pk)
    assert [verb for verb in verbs(queries) if verb not in ("BEGIN", "COMMIT")] == ["INSERT"]
    store.save_snapshot(document.pk, 3, Delta([{"insert": "twin\n"}]), "auto")  # no error
    saved = Snapshot.objects.get(document=document, version=3)
    assert (saved.content, saved.reason, saved.created_by_id) == (
        [{"insert": "first\n"}],
        "idle",
        owner.pk,
    )


def test_a_snapshot_of_a_deleted_document_is_dropped(document):
    gone_id = document.pk
    document.delete()
    store.save_snapshot(gone_id, 1, Delta([{"insert": "x\n"}]))
    assert not Snapshot.objects.filter(document_id=gone_id).exists()
