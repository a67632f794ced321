"""Single operations: their length, normalising push, and a cutting iterator.

An op is a plain dict: ``{"insert": str | dict, "attributes"?: dict}``,
``{"retain": int, "attributes"?: dict}`` or ``{"delete": int}``.  Op dicts
are never mutated after they are built, so lists of ops may share them
freely; whenever a merged or cut op is needed a new dict is made.
"""

from .attributes import same_attrs
from .utf16 import join, substr, utf16_len

INSERT, RETAIN, DELETE = 0, 1, 2
INFINITY = float("inf")
# What an exhausted iterator yields: an endless plain retain, as in quill-delta.
_ENDLESS = {"retain": INFINITY}


def op_len(op: dict) -> int:
    """Length of an op in UTF-16 code units (an embed counts 1)."""
    if "insert" in op:
        ins = op["insert"]
        if type(ins) is str:
            return len(ins) if ins.isascii() else utf16_len(ins)
        return 1
    if "retain" in op:
        return op["retain"]
    return op["delete"]


def op_type(op: dict) -> int:
    if "insert" in op:
        return INSERT
    if "retain" in op:
        return RETAIN
    return DELETE


def push(ops: list, op: dict) -> None:
    """Append ``op`` to ``ops`` with quill-delta's normalisation.

    Adjacent deletes merge; an insert goes before a trailing delete (the
    order of the two at one index does not matter, so one canonical form is
    kept); adjacent text inserts or retains with equal attributes merge.
    """
    if not ops:
        ops.append(op)
        return
    last = ops[-1]
    if "delete" in last:
        if "delete" in op:
            ops[-1] = {"delete": last["delete"] + op["delete"]}
            return
        if "insert" in op:
            if len(ops) == 1:
                ops.insert(0, op)
            elif not _merged(ops, len(ops) - 2, op):
                ops.insert(len(ops) - 1, op)
            return
        ops.append(op)
        return
    if not _merged(ops, len(ops) - 1, op):
        ops.append(op)


def _merged(ops: list, at: int, op: dict) -> bool:
    """Merge ``op`` into ``ops[at]`` if both are text or both retains with equal attributes."""
    prev = ops[at]
    attrs = op.get("attributes")
    prev_attrs = prev.get("attributes")
    if attrs is not prev_attrs and not same_attrs(attrs, prev_attrs):
        return False
    if "retain" in op:
        if "retain" not in prev:
            return False
        merged = {"retain": prev["retain"] + op["retain"]}
    else:
        a, b = prev.get("insert"), op.get("insert")
        if type(a) is not str or type(b) is not str:
            return False
        merged = {"insert": join(a, b)}
    if attrs is not None:
        merged["attributes"] = attrs
    ops[at] = merged
    return True


def chop(ops: list) -> list:
    """Drop a trailing plain retain, which changes nothing; returns ``ops``."""
    if ops:
        last = ops[-1]
        if "retain" in last and "attributes" not in last:
            ops.pop()
    return ops


def piece(op: dict, offset: int, length: int, op_length: int) -> dict:
    """The part of ``op`` from ``offset`` spanning ``length`` code units."""
    if offset == 0 and length >= op_length:
        return op
    if "insert" in op:
        ins = op["insert"]
        cut = {"insert": substr(ins, offset, length) if type(ins) is str else ins}
    elif "retain" in op:
        cut = {"retain": length}
    else:
        return {"delete": length}
    attrs = op.get("attributes")
    if attrs is not None:
        cut["attributes"] = attrs
    return cut


class OpIter:
    """Walks a list of ops, handing out pieces of a requested length.

    Past the end it yields an endless plain retain, which lets compose treat
    a shorter delta as retaining the rest of the document.
    """

    __slots__ = ("ops", "index", "offset", "count", "cur_len")

    def __init__(self, ops: list, index: int = 0):
        self.ops = ops
        self.count = len(ops)
        self.index = index
        self.offset = 0
        self.cur_len = op_len(ops[index]) if index < self.count else INFINITY

    def peek_len(self):
        return self.cur_len - self.offset

    def peek_type(self) -> int:
        if self.index < self.count:
            return op_type(self.ops[self.index])
        return RETAIN

    def next(self, length=INFINITY) -> dict:
        """The next piece of at most ``length`` code units (the whole rest by default)."""
        if self.index >= self.count:
            return _ENDLESS
        op = self.ops[self.index]
        offset = self.offset
        op_length = self.cur_len
        if length >= op_length - offset:
            length = op_length - offset
            self.advance()
        else:
            self.offset = offset + length
        return piece(op, offset, length, op_length)

    def advance(self) -> None:
        """Skip to the start of the next op."""
        self.index += 1
        self.offset = 0
        self.cur_len = op_len(self.ops[self.index]) if self.index < self.count else INFINITY

    def rest(self) -> list:
        """The remaining ops, the current one cut at the offset; does not advance."""
        if self.index >= self.count:
            return []
        if self.offset == 0:
            return self.ops[self.index :]
        op = self.ops[self.index]
        first = piece(op, self.offset, self.cur_len - self.offset, self.cur_len)
        return [first, *self.ops[self.index + 1 :]]
