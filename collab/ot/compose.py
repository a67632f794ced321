"""Composition of two deltas, op for op the result quill-delta 5.1.0 gives.

The structure follows quill-delta's algorithm so that the output (including
where it leaves ops unmerged) is identical.  Two of its steps are done with
list slicing instead of op-by-op walks: the leading inserts of ``a`` that a
leading plain retain of ``b`` skips (found by bisection on the length index)
and the tail of ``a`` left after ``b`` ends.
"""

from . import attributes
from .index import OpIndex, leading_inserts
from .ops import DELETE, INSERT, OpIter, chop, push


def compose(a_ops: list, b_ops: list, a_index: OpIndex | None):
    """Ops of ``a`` followed by ``b``, and an index for them when ``a_index`` is given.

    ``a_index`` must describe ``a_ops``; it is required when ``b`` starts
    with a plain retain (the caller builds it) and reused for the result.
    """
    this = None
    out = []
    first = b_ops[0] if b_ops else None
    skipped = 0
    if first is not None and "retain" in first and "attributes" not in first:
        head = a_index.find(first["retain"], a_index.lead)
        if head:
            out = a_ops[:head]
            skipped = a_index.end(head - 1)
        this = OpIter(a_ops, head)
    else:
        head = 0
        this = OpIter(a_ops)
    other = OpIter(b_ops)
    if skipped:
        other.next(skipped)

    tail_start = None
    while this.index < this.count or other.index < other.count:
        if other.peek_type() == INSERT:
            push(out, other.next())
        elif this.peek_type() == DELETE:
            push(out, this.next())
        else:
            length = min(this.peek_len(), other.peek_len())
            this_op = this.next(length)
            other_op = other.next(length)
            if "retain" in other_op:
                this_is_retain = "retain" in this_op
                new_op = {"retain": length} if this_is_retain else {"insert": this_op["insert"]}
                attrs = attributes.compose(
                    this_op.get("attributes"), other_op.get("attributes"), this_is_retain
                )
                if attrs:
                    new_op["attributes"] = attrs
                push(out, new_op)
                if other.index >= other.count and out[-1] is new_op:
                    # Nothing of b is left: the rest of a passes through unchanged.
                    rest_at = this.index
                    rest = this.rest()
                    if rest:
                        push(out, rest[0])
                        tail_start = rest_at + 1
                        out += a_ops[tail_start:]
                    break
            elif "retain" in this_op:
                # A delete in b over a retain in a; over an insert both vanish.
                push(out, other_op)
    chop(out)
    if a_index is None:
        return out, None
    return out, _carry_index(a_ops, a_index, out, head, tail_start)


def _carry_index(a_ops, a_index, out, head, tail_start) -> OpIndex:
    """Index of ``out``, carried over from ``a``'s for the ops copied unchanged.

    ``out[: head - 1]`` is untouched prefix of ``a`` (pushing may rewrite
    only the op before the last); ``out`` ends with ``a_ops[tail_start:]``.
    """
    keep = head - 1 if head > 1 else 0
    tail_len = 0 if tail_start is None else len(a_ops) - tail_start
    if tail_len and (not out or out[-1] is not a_ops[-1]):
        # chop() removed a trailing retain of the tail.
        tail_len -= 1
    middle_end = len(out) - tail_len
    middle = out[keep:middle_end]
    index = a_index.carry(keep, middle, tail_start or 0, tail_len)
    lead = keep + leading_inserts(middle, 0)
    if tail_len and lead == middle_end:
        if a_index.lead >= tail_start:
            lead += min(tail_len, a_index.lead - tail_start)
        else:
            lead += leading_inserts(out, middle_end)
    index.lead = lead
    return index
