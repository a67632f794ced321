"""Transformation of concurrent deltas and of cursor positions (quill-delta 5.1.0)."""

from . import attributes
from .ops import INSERT, RETAIN, OpIter, chop, op_len, op_type, push


def transform(a_ops: list, b_ops: list, priority: bool) -> list:
    """Ops of ``b`` rewritten to apply after ``a``, both made on the same document.

    ``priority`` says ``a`` came first: its inserts at the same index go
    before ``b``'s, and its formats win over ``b``'s.
    """
    this = OpIter(a_ops)
    other = OpIter(b_ops)
    out = []
    while this.index < this.count or other.index < other.count:
        this_type = this.peek_type()
        other_type = other.peek_type()
        if this_type == INSERT and (priority or other_type != INSERT):
            push(out, {"retain": op_len(this.next())})
        elif other_type == INSERT:
            push(out, other.next())
        else:
            length = min(this.peek_len(), other.peek_len())
            this_op = this.next(length)
            other_op = other.next(length)
            if "delete" in this_op:
                # Our delete makes their delete redundant or removes what they retain.
                continue
            if "delete" in other_op:
                push(out, other_op)
                continue
            attrs = attributes.transform(
                this_op.get("attributes"), other_op.get("attributes"), priority
            )
            push(out, {"retain": length, "attributes": attrs} if attrs else {"retain": length})
    return chop(out)


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
