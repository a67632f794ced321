"""Transformation of concurrent deltas and of cursor positions (quill-delta 5.1.0)."""

from . import attributes
from .ops import INFINITY, INSERT, RETAIN, chop, op_len, op_type, push


def transform(a_ops: list, b_ops: list, priority: bool) -> list:
    """Ops of ``b`` rewritten to apply after ``a``, both made on the same document.

    ``priority`` says ``a`` came first: its inserts at the same index go
    before ``b``'s, and its formats win over ``b``'s.
    """
    # This is the hot path of the real-time server, so quill-delta's op
    # iterators are inlined: inserts are always taken whole, so only retains
    # and deletes are ever cut, and their lengths need no UTF-16 counting.
    out = []
    count_a, count_b = len(a_ops), len(b_ops)
    i = j = 0
    cut_a = cut_b = 0
    while i < count_a or j < count_b:
        a = a_ops[i] if i < count_a else None
        b = b_ops[j] if j < count_b else None
        b_inserts = b is not None and "insert" in b
        if a is not None and "insert" in a and (priority or not b_inserts):
            push(out, {"retain": op_len(a)})
            i += 1
        elif b_inserts:
            push(out, b)
            j += 1
        else:
            left_a = INFINITY if a is None else _span(a) - cut_a
            left_b = INFINITY if b is None else _span(b) - cut_b
            if left_a <= left_b:
                length = left_a
                i += 1
                cut_a = 0
            else:
                length = left_b
                cut_a += length
            if left_b <= length:
                j += 1
                cut_b = 0
            else:
                cut_b += length
            if a is not None and "delete" in a:
                # Our delete makes their delete redundant or removes what they retain.
                continue
            if b is not None and "delete" in b:
                push(out, {"delete": length})
                continue
            attrs = attributes.transform(
                a.get("attributes") if a is not None else None,
                b.get("attributes") if b is not None else None,
                priority,
            )
            push(out, {"retain": length, "attributes": attrs} if attrs else {"retain": length})
    return chop(out)


def _span(op: dict) -> int:
    return op["retain"] if "retain" in op else op["delete"]


def transform_position(ops: list, index: int, priority: bool) -> int:
    """Where position ``index`` moves to once ``ops`` are applied.

    With ``priority`` an insert exactly at ``index`` goes after the position.
    """
    offset = 0
    for op in ops:
        if offset > index:
            break
        length = op_len(op)
        kind = op_type(op)
        if kind == RETAIN:
            offset += length
        elif kind == INSERT:
            if offset < index or not priority:
                index += length
            offset += length
        else:
            index -= min(length, index - offset)
    return index
