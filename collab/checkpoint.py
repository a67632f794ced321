"""SQLite only: the write-ahead log is copied into the database away from the commits.

Left to itself, SQLite checkpoints inside whichever commit takes the log past 1000 pages: a
commit in about 250 then took 5 ms instead of 0.1 ms (an fsync among it), and every edit
queued behind it waited. The settings turn that off (`wal_autocheckpoint=0`) and this runs a
PASSIVE checkpoint every second in a thread of its own; a passive checkpoint never blocks a
commit, and one second of log keeps the file small.
"""

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from django.db import connection

log = logging.getLogger("tandem.checkpoint")

INTERVAL_SECONDS = 1.0


class Checkpointer:
    def __init__(self):
        self.task = None
        self.executor = None

    def start(self):
        """Checkpoint every INTERVAL_SECONDS from now on, if the database is SQLite."""
        if self.task is not None or connection.vendor != "sqlite":
            return
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="tandem-checkpoint")
        self.task = asyncio.get_running_loop().create_task(self._run())

    def stop(self):
        if self.task is not None:
            self.task.cancel()
            self.executor.shutdown(wait=False)

    async def _run(self):
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(INTERVAL_SECONDS)
            try:
                await loop.run_in_executor(self.executor, checkpoint)
            except Exception:
                log.exception("checkpoint failed")


def checkpoint():
    """Copy what the log holds into the database; returns SQLite's (busy, log, copied) pages."""
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
        return cursor.fetchone()
