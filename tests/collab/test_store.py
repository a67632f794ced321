"""The engine's SQL on the op log: commit, what others committed meanwhile, finding a resend."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from collab import store
from collab.commit import Plan
from collab.ot import Delta
from editor.models import Document

pytestmark = pytest.mark.django_db(transaction=True)


def commit(document_id, known_version, client_id, seq, text):
    seen = {}

    def plan(missing):
        seen["missing"] = missing
        version = (missing[-1].version if missing else known_version) + 1
        op = store.Committed(version, Delta([{"insert": text}]), client_id, seq, None)
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


def test_find_committed_names_the_version_of_a_client_edit(document):
    commit(document.pk, 0, "client-aaaa", 1, "a")
    commit(document.pk, 1, "client-bbbb", 1, "b")
    assert store.find_committed(document.pk, "client-bbbb", 1) == 2
    assert store.find_committed(document.pk, "client-bbbb", 2) is None
    assert store.find_committed(document.pk + 1, "client-aaaa", 1) is None


def typing(client_id, seq, text, seen=None):
    """A plan that commits `text` at the start of the document, after what it was missing."""

    def plan(missing):
        if seen is not None:
            seen.append([op.version for op in missing])
        version = (missing[-1].version if missing else 0) + 1
        op = store.Committed(version, Delta([{"insert": text}]), client_id, seq, None)
        return Plan(missing, None, [op], [], None)

    return plan


def test_documents_commit_together_in_one_transaction(document, owner):
    others = [Document.objects.create(title=f"Doc {n}", owner=owner) for n in range(3)]
    commit(others[1].pk, 0, "client-eeee", 1, "e")  # already one op in
    seen = []
    requests = [
        (doc.pk, 0, typing(f"client-{n:04}", 1, str(n), seen))
        for n, doc in enumerate([*others, document])
    ]
    with CaptureQueriesContext(connection) as queries:
        outcomes = store.commit_all(requests)
    assert [outcome.committed[0].version for outcome in outcomes] == [1, 2, 1, 1]
    # Each plan got its own document's missing ops, whatever the order of the requests.
    assert sorted(seen) == [[], [], [], [1]]
    assert store.load(others[1].pk).content.ops == [{"insert": "1e\n"}]
    assert store.load(document.pk).content.ops == [{"insert": "3\n"}]
    statements = [q["sql"] for q in queries.captured_queries]
    inserts = [sql for sql in statements if sql.startswith("INSERT")]
    assert len(inserts) == 1  # one statement for the four documents' rows
    assert len(statements) <= 5  # lock, read, insert, and the transaction's own


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
