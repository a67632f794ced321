"""The commits of every open document of the process that wait together share one transaction.

A hub's commit task hands its batch here (collab.commit) and waits. When no transaction is
under way the batch goes at once, alone; the batches that arrive while one is under way go
together in the next (`store.commit_all`). So a quiet process commits each edit without
delay, and a busy one pays one thread hand-off and one transaction for many documents.
"""

import asyncio

from . import store
from .dbthread import db

# Documents per transaction at most, so that none holds its locks for long.
MAX_DOCUMENTS = 200


class GroupCommit:
    def __init__(self):
        self.waiting = []
        self.draining = None

    async def commit(self, document_id, known_version, plan):
        """`store.commit_locked(document_id, known_version, plan)`, shared with others."""
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((document_id, known_version, plan, future))
        if self.draining is None:
            self.draining = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self):
        try:
            while self.waiting:
                group = self.waiting[:MAX_DOCUMENTS]
                del self.waiting[:MAX_DOCUMENTS]
                try:
                    outcomes = await db(store.commit_all)([request[:3] for request in group])
                except Exception as error:
                    outcomes = [error] * len(group)
                for (*_, future), outcome in zip(group, outcomes, strict=True):
                    if future.done():
                        continue  # its hub was cancelled meanwhile
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self.draining = None

    def stop(self):
        if self.draining is not None:
            self.draining.cancel()
