"""A length index over a list of ops, so long documents can be cut by bisection.

The server keeps composing one-character edits into large documents.
quill-delta walks every op of the document for each edit; here the
cumulative op ends are kept beside the ops and found by bisection, and a
composed result takes them over from its source by list slicing.

Slicing alone would still leave every end after an edit off by the edit's
change in length, and rewriting them all costs a pass over the document per
edit.  So the ends are stored raw, in segments that each carry an offset to
add: an edit shifts the whole tail by adding one segment.  When segments
pile up they are folded back into the raw ends, once in a while.
"""

from bisect import bisect_right
from itertools import accumulate, repeat
from operator import add

from .ops import op_len, piece

# Fold the segments once there are this many; bisection scans them linearly.
MAX_SEGMENTS = 32


class OpIndex:
    """Cumulative ends of a list of ops and ``lead``, its count of leading inserts.

    The true end of op ``i`` (total length of ``ops[: i + 1]``) is
    ``raw[i] + adds[j]`` where segment ``j`` is the last with ``starts[j] <= i``.
    A document has ``lead == count``.
    """

    __slots__ = ("raw", "starts", "adds", "lead", "count")

    def __init__(self, raw: list, starts: list, adds: list, lead: int):
        self.raw = raw
        self.starts = starts
        self.adds = adds
        self.lead = lead
        self.count = len(raw)

    @classmethod
    def build(cls, ops: list) -> "OpIndex":
        raw = list(accumulate(map(op_len, ops)))
        return cls(raw, [0], [0], leading_inserts(ops, 0))

    def end(self, i: int) -> int:
        """Total length of ops ``0 .. i``."""
        if i < 0:
            return 0
        return self.raw[i] + self.adds[bisect_right(self.starts, i) - 1]

    def total(self) -> int:
        return self.end(self.count - 1)

    def find(self, at: int, hi: int | None = None) -> int:
        """The first op (below ``hi``) ending after position ``at``; ``hi`` if none does."""
        hi = self.count if hi is None else hi
        starts, adds, raw = self.starts, self.adds, self.raw
        j = 0
        last = len(starts) - 1
        while j < last and starts[j + 1] < hi and raw[starts[j + 1]] + adds[j + 1] <= at:
            j += 1
        stop = starts[j + 1] if j < last and starts[j + 1] < hi else hi
        return bisect_right(raw, at - adds[j], starts[j], stop)

    def carry(self, keep: int, middle: list, tail_start: int, tail_len: int) -> "OpIndex":
        """Index of ``ops[:keep] + middle + ops[tail_start : tail_start + tail_len]``."""
        at = self.end(keep - 1)
        mid_raw = list(accumulate(map(op_len, middle), initial=at))[1:]
        raw = self.raw[:keep]
        raw += mid_raw
        split = bisect_right(self.starts, keep - 1)
        starts, adds = self.starts[:split] or [0], self.adds[:split] or [0]
        if mid_raw and adds[-1] != 0:
            starts.append(keep)
            adds.append(0)
        if tail_len:
            tail_at = keep + len(middle)
            shift = (mid_raw[-1] if mid_raw else at) - self.end(tail_start - 1)
            raw += self.raw[tail_start : tail_start + tail_len]
            first = bisect_right(self.starts, tail_start) - 1
            for j in range(first, len(self.starts)):
                start = max(self.starts[j], tail_start)
                if start >= tail_start + tail_len:
                    break
                offset = self.adds[j] + shift
                if offset != adds[-1]:
                    starts.append(start - tail_start + tail_at)
                    adds.append(offset)
        index = OpIndex(raw, starts, adds, 0)
        if len(starts) > MAX_SEGMENTS:
            index.fold()
        return index

    def fold(self) -> None:
        """Add every segment's offset into the raw ends, leaving one segment."""
        raw, starts, adds = self.raw, self.starts, self.adds
        bounds = [*starts[1:], len(raw)]
        folded = []
        for start, stop, offset in zip(starts, bounds, adds, strict=True):
            part = raw[start:stop]
            folded += map(add, part, repeat(offset)) if offset else part
        self.raw = folded
        self.starts = [0]
        self.adds = [0]


def leading_inserts(ops: list, start: int) -> int:
    """How many ops from ``start`` on are inserts, up to the first that is not."""
    count = 0
    for op in ops[start:] if start else ops:
        if "insert" not in op:
            break
        count += 1
    return count


def slice_ops(ops: list, index: OpIndex, start: int, end) -> list:
    """The ops covering code units ``start`` to ``end`` (``end`` may be infinite).

    Cut ops are new dicts; whole ops are shared.  Like quill-delta's
    ``slice`` the pieces are not re-normalised.
    """
    if end <= start:
        return []
    count = len(ops)
    first = index.find(start)
    if first >= count:
        return []
    last = count - 1 if end == float("inf") else min(index.find(end - 1, count), count - 1)
    out = [_cut(ops, index, first, start, end)]
    if last > first:
        out += ops[first + 1 : last]
        out.append(_cut(ops, index, last, start, end))
    return out


def _cut(ops: list, index: OpIndex, i: int, start: int, end) -> dict:
    """The part of op ``i`` that lies between positions ``start`` and ``end``."""
    op_start, op_end = index.end(i - 1), index.end(i)
    cut_from = max(start, op_start)
    return piece(ops[i], cut_from - op_start, min(end, op_end) - cut_from, op_end - op_start)
