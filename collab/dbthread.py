"""How the engine reaches the ORM: in the one database thread, keeping its connection open.

Channels' `database_sync_to_async` closes obsolete connections before and after every call.
With `CONN_MAX_AGE = 0` (right for request threads, which come and go) that means a new
connection for every commit. The engine's calls all run in asgiref's single thread-sensitive
thread, so its connection is kept open instead, and closed only after a database error left
it unusable (a restarted server, say), to be opened afresh by the next call.
"""

from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import SyncToAsync
from django.db import connections

# Snapshots write whole documents, and a thousand open documents fall due together; in a
# thread of their own they never hold up the commits queued in the engine's thread.
_snapshots = ThreadPoolExecutor(1, thread_name_prefix="tandem-snapshots")


class _InEngineThread(SyncToAsync):
    def thread_handler(self, loop, *args, **kwargs):
        try:
            return super().thread_handler(loop, *args, **kwargs)
        finally:
            for connection in connections.all(initialized_only=True):
                if connection.errors_occurred:
                    connection.close_if_unusable_or_obsolete()


def db(func):
    """`func` as a coroutine function run in the engine's database thread."""
    return _InEngineThread(func, thread_sensitive=True)


def in_snapshot_thread(func):
    """`func` as a coroutine function run in the snapshot thread (its own connection)."""
    return _InEngineThread(func, thread_sensitive=False, executor=_snapshots)
