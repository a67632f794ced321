"""Full garbage-collection passes run in quiet moments, and at least every MAX_SECONDS."""

import gc
import weakref

import pytest

from collab import fullgc


class Clock:
    """Time and process CPU that pass only in the engine's sleeps, at the test's load."""

    def __init__(self):
        self.now = 1000.0
        self.cpu_used = 0.0
        self.load = 0.0  # share of a core the process uses meanwhile

    def time(self):
        return self.now

    def cpu(self):
        return self.cpu_used

    async def sleep(self, seconds):
        self.now += seconds
        self.cpu_used += seconds * self.load


@pytest.fixture
def collector_off():
    """No automatic pass may find the test's garbage before the engine's pass does."""
    was_enabled = gc.isenabled()
    gc.disable()
    yield
    if was_enabled:
        gc.enable()


@pytest.fixture
def timed(monkeypatch):
    """Full passes on the test's clock, with the process always active enough for one."""
    clock = Clock()
    monkeypatch.setattr(fullgc.asyncio, "sleep", clock.sleep)
    return clock, fullgc.FullPasses(clock=clock.time, cpu=clock.cpu, young=lambda: 50)


def _cyclic_garbage():
    class Node:
        pass

    node = Node()
    node.itself = node
    ref = weakref.ref(node)
    del node
    return ref


@pytest.mark.parametrize(
    "since_last, cpu_share, young_passes, expected",
    [
        (5.0, 0.0, 50, False),  # quiet, but a pass ran moments ago
        (fullgc.MIN_SECONDS, 0.0, 50, True),
        (fullgc.MIN_SECONDS, 0.0, 3, False),  # idle since the last pass: nothing to find
        (fullgc.MIN_SECONDS, 0.5, 50, False),  # busy: a pass would pause the typing
        (fullgc.MAX_SECONDS - 1, 0.9, 50, False),
        (fullgc.MAX_SECONDS, 0.9, 50, True),  # busy for ten minutes: the garbage must go anyway
    ],
)
def test_when_a_full_pass_is_due(since_last, cpu_share, young_passes, expected):
    assert fullgc.due(since_last, cpu_share, young_passes) is expected


async def test_a_quiet_process_collects_the_cycles_of_closed_objects(timed, collector_off):
    clock, passes = timed
    ref = _cyclic_garbage()

    clock.load = 0.0
    assert await passes.check(fullgc.MIN_SECONDS - 1) is False  # quiet, but too soon
    clock.load = 0.5
    assert await passes.check(1) is False  # due, but busy: a pass would pause the typing
    assert ref() is not None

    clock.load = 0.01
    assert await passes.check(1) is True
    assert ref() is None
    assert passes.last == clock.now
    assert await passes.check(1) is False  # and the next one is MIN_SECONDS away again


async def test_a_busy_process_still_collects_every_max_seconds(timed, collector_off):
    clock, passes = timed
    ref = _cyclic_garbage()
    clock.load = 1.0
    assert await passes.check(fullgc.MAX_SECONDS - 1) is False
    assert ref() is not None
    assert await passes.check(1) is True
    assert ref() is None


def test_taking_over_freezes_start_up_and_stops_pythons_full_passes(monkeypatch):
    threshold = gc.get_threshold()
    monkeypatch.setattr(fullgc, "_taken_over", False)
    try:
        fullgc.take_over()
        assert fullgc._taken_over
        assert gc.get_threshold()[:2] == threshold[:2]
        assert gc.get_threshold()[2] == fullgc.NEVER
        assert gc.get_freeze_count() > 0
    finally:
        gc.set_threshold(*threshold)


async def test_the_task_starts_only_where_the_engine_took_over(monkeypatch):
    monkeypatch.setattr(fullgc, "_taken_over", False)
    passes = fullgc.FullPasses()
    passes.start()
    assert passes.task is None
    monkeypatch.setattr(fullgc, "_taken_over", True)
    passes.start()
    assert passes.task is not None
    passes.stop()
