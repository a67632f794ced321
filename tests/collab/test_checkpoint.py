"""SQLite's write-ahead log is checkpointed by the engine's own thread, never inside a commit."""

import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from collab import checkpoint, store
from collab.commit import Plan
from collab.ot import Delta
from tests.waits import until

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "sqlite", reason="a checkpoint is SQLite's"),
]


def _pragma(name):
    with connection.cursor() as cursor:
        cursor.execute(f"PRAGMA {name}")
        return cursor.fetchone()[0]


def _commit_one(document_id, version):
    def plan(missing):
        op = store.Committed(version + 1, Delta([{"insert": "x"}]), "c", version + 1, None)
        return Plan(missing, None, [op], [], None)

    store.commit_locked(document_id, version, plan)


def test_commits_leave_the_log_to_the_checkpointer(document):
    assert _pragma("journal_mode") == "wal"
    assert _pragma("wal_autocheckpoint") == 0
    for version in range(300):  # Past the 1000 pages at which SQLite would checkpoint.
        _commit_one(document.pk, version)
    busy, pages, copied = checkpoint.checkpoint()
    assert busy == 0
    assert pages > 1000  # no commit checkpointed on the way
    assert copied == pages
    assert len(store.ops_since(document.pk, 0)) == 300


@pytest.mark.asyncio
async def test_the_engine_checkpoints_every_interval(document, monkeypatch):
    results = []
    original = checkpoint.checkpoint

    def recorded():
        results.append(original())
        return results[-1]

    monkeypatch.setattr(checkpoint, "INTERVAL_SECONDS", 0.05)
    monkeypatch.setattr(checkpoint, "checkpoint", recorded)
    checkpointer = checkpoint.Checkpointer()
    checkpointer.start()
    try:
        await sync_to_async(_commit_one)(document.pk, 0)
        await until(lambda: any(copied for _, _, copied in results), "a checkpoint copied")
    finally:
        checkpointer.stop()
    assert any(copied > 0 for _, _, copied in results), results
