"""When the garbage collector makes its full passes: in a quiet moment, not mid-typing.

A full pass walks every object the process holds and stops every socket meanwhile: with 3,000
open sockets it took 140-290 ms (bench/load.py, 1,000 x 3). Python starts one whenever the
objects that outlived the young passes have grown by a quarter, which under load came every few
seconds, each a typing pause for everyone. The young passes still find the cycles of
short-lived objects; what only a full pass finds is long-lived objects that became garbage in a
cycle, mostly sockets that closed. So the server process turns Python's own full passes off
(`take_over`, at start-up) and the engine makes them: once the process has been quiet for a
second and has been busy enough since the last one to leave something to find (YOUNG_PASSES,
Python's own rule), at most every MIN_SECONDS, and at least every MAX_SECONDS whatever the load.
"""

import asyncio
import gc
import logging
import time

log = logging.getLogger("tandem.gc")

CHECK_SECONDS = 1.0
MIN_SECONDS = 30.0
MAX_SECONDS = 600.0
# Quiet: the process's threads used less than this share of a core over the last check.
QUIET_CPU = 0.05
# Python's own full passes wait for ten passes of the middle generation; an idle process with
# ten thousand sockets open need not stop for half a second every MIN_SECONDS.
YOUNG_PASSES = 10
# gc's third threshold counts those passes; this many never comes.
NEVER = 2**31 - 1

_taken_over = False


def take_over():
    """At start-up, with the long-lived code loaded: freeze it, and stop Python's full passes.

    Freezing keeps what is loaded by now (all of Django) out of every later pass, full ones
    included: with it in them they took 45 ms each even with no socket open.
    """
    global _taken_over
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, NEVER)
    _taken_over = True


def due(since_last, cpu_share, young_passes):
    """Whether a full pass should run now, `since_last` seconds after the previous one, with
    `young_passes` passes of the middle generation since."""
    if since_last >= MAX_SECONDS:
        return True
    return since_last >= MIN_SECONDS and cpu_share < QUIET_CPU and young_passes >= YOUNG_PASSES


class FullPasses:
    """The task that makes the full passes of a process that `take_over` was called in."""

    def __init__(
        self, clock=time.monotonic, cpu=time.process_time, young=lambda: gc.get_count()[2]
    ):
        self.clock = clock
        self.cpu = cpu
        self.young = young
        self.task = None
        self.last = clock()

    def start(self):
        if self.task is None and _taken_over:
            self.task = asyncio.get_running_loop().create_task(self._run())

    def stop(self):
        if self.task is not None:
            self.task.cancel()

    async def _run(self):
        while True:
            await self.check(CHECK_SECONDS)

    async def check(self, seconds):
        """Wait `seconds`, then make a full pass if one is due; returns whether it did."""
        cpu_before, before = self.cpu(), self.clock()
        await asyncio.sleep(seconds)
        now = self.clock()
        share = (self.cpu() - cpu_before) / max(now - before, 1e-9)
        if not due(now - self.last, share, self.young()):
            return False
        found = gc.collect()
        self.last = self.clock()
        log.debug("full pass: %d unreachable, %.1f ms", found, (self.last - now) * 1e3)
        return True
