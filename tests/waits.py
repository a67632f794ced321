"""Waiting on conditions, never on elapsed time: the suite runs on machines busy with other
work, where anything may take several times longer than it does on a quiet one.

The timeouts are upper bounds for a condition that should hold long before, generous so that
a slow machine does not fail a test; reaching one fails the test with `what` in the message.
"""

import asyncio
import time

TIMEOUT = 30


async def until(condition, what="the condition", timeout=TIMEOUT):
    """Return once `condition()` (a plain function, or one returning an awaitable) is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        met = condition()
        if asyncio.iscoroutine(met):
            met = await met
        if met:
            return
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.005)


def wait_until(condition, what="the condition", timeout=TIMEOUT):
    """`until` for threads without an event loop."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.005)
