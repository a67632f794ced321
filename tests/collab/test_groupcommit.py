"""Batches of different documents that wait together are committed in one transaction."""

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async

from collab import store
from collab.commit import Plan
from collab.groupcommit import GroupCommit
from collab.ot import Delta
from editor.models import Document
from tests.waits import until

pytestmark = pytest.mark.django_db(transaction=True)


def typing(text):
    def plan(missing):
        version = (missing[-1].version if missing else 0) + 1
        op = store.Committed(version, Delta([{"insert": text}]), f"client-{text}", 1, None)
        return Plan(missing, None, [op], [], None)

    return plan


def broken(missing):
    raise ValueError("this plan fails")


async def test_what_waits_during_a_commit_goes_in_the_next_one_together(owner, monkeypatch):
    documents = await sync_to_async(
        lambda: [Document.objects.create(title=str(n), owner=owner).pk for n in range(5)]
    )()
    groups = []
    release = threading.Event()
    commit_all = store.commit_all

    def recorded(requests):
        groups.append([document_id for document_id, _, _ in requests])
        release.wait(60)  # the first transaction takes its time; the others queue meanwhile
        return commit_all(requests)

    monkeypatch.setattr(store, "commit_all", recorded)
    commits = GroupCommit()
    first = asyncio.ensure_future(commits.commit(documents[0], 0, typing("a")))
    await until(lambda: len(groups) == 1, "the first transaction began")
    rest = [
        asyncio.ensure_future(commits.commit(documents[1], 0, typing("b"))),
        asyncio.ensure_future(commits.commit(documents[2], 0, broken)),
        asyncio.ensure_future(commits.commit(documents[3], 0, typing("d"))),
    ]
    await until(lambda: len(commits.waiting) == 3, "the others wait for it")
    release.set()
    assert (await first).committed[0].version == 1
    assert (await rest[0]).committed[0].version == 1
    with pytest.raises(ValueError):
        await rest[1]  # its own error, and only its own
    assert (await rest[2]).committed[0].version == 1
    assert groups == [[documents[0]], documents[1:4]]
    # Quiet again: the next commit goes at once, alone.
    assert (await commits.commit(documents[4], 0, typing("e"))).committed[0].version == 1
    assert groups[-1] == [documents[4]]
    assert commits.draining is None
