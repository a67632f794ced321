"""Inversion: the edit that undoes an edit, given the document it was applied to."""

from . import attributes
from .index import OpIndex, slice_ops
from .ops import chop, op_len, push


def invert(ops: list, base_ops: list, base_index: OpIndex) -> list:
    """Ops undoing ``ops`` once they were applied to the document ``base_ops``.

    Inserts become deletes, deletes re-insert what the base held there and
    format changes restore the base's formats.
    """
    out = []
    base_at = 0
    for op in ops:
        if "insert" in op:
            push(out, {"delete": op_len(op)})
            continue
        attrs = op.get("attributes")
        if "retain" in op and attrs is None:
            push(out, {"retain": op["retain"]})
            base_at += op["retain"]
            continue
        is_delete = "delete" in op
        length = op["delete"] if is_delete else op["retain"]
        for base_op in slice_ops(base_ops, base_index, base_at, base_at + length):
            if is_delete:
                push(out, base_op)
                continue
            undo = attributes.invert(attrs, base_op.get("attributes"))
            base_len = op_len(base_op)
            push(out, {"retain": base_len, "attributes": undo} if undo else {"retain": base_len})
        base_at += length
    return chop(out)
