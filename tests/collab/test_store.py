"""The engine's SQL on the op log: commit, what others committed meanwhile, finding a resend."""

import pytest

from collab import store
from collab.commit import Plan
from collab.ot import Delta

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
