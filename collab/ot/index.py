"""A length index over a list of ops, so long documents can be cut by bisection.

The server keeps composing one-character edits into large documents.  A
walk over every op of the document for each edit is what quill-delta does;
here the op lengths are kept beside the ops, summed into cumulative ends
with C-speed ``accumulate`` only when needed, and carried over to a
composed result by list slicing for the parts of the document it did not
touch.
"""

from bisect import bisect_left, bisect_right
from itertools import accumulate

from .ops import op_len, piece


class OpIndex:
    """Per-op lengths (``lens``), their running sums (``cum``) and ``lead``.

    ``lead`` is the number of leading ops that are inserts; a document has
    ``lead == len(lens)``.
    """

    __slots__ = ("lens", "lead", "_cum")

    def __init__(self, lens: list, lead: int):
        self.lens = lens
        self.lead = lead
        self._cum = None

    @classmethod
    def build(cls, ops: list) -> "OpIndex":
        lens = [op_len(op) for op in ops]
        return cls(lens, leading_inserts(ops, 0))

    @property
    def cum(self) -> list:
        """``cum[i]`` is the total length of ``ops[: i + 1]``."""
        if self._cum is None:
            self._cum = list(accumulate(self.lens))
        return self._cum

    def total(self) -> int:
        cum = self.cum
        return cum[-1] if cum else 0


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
    cum = index.cum
    first = bisect_right(cum, start)
    if first >= len(ops):
        return []
    last = bisect_left(cum, end, first)
    if last >= len(ops):
        last = len(ops) - 1
    if first == last:
        op_start = cum[first - 1] if first else 0
        offset = start - op_start
        length = min(end, cum[first]) - start
        return [piece(ops[first], offset, length, index.lens[first])]
    out = []
    op_start = cum[first - 1] if first else 0
    out.append(piece(ops[first], start - op_start, cum[first] - start, index.lens[first]))
    out += ops[first + 1 : last]
    last_start = cum[last - 1]
    out.append(piece(ops[last], 0, min(end, cum[last]) - last_start, index.lens[last]))
    return out
