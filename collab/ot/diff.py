"""Difference of two documents as a delta, validated against quill-delta's diff.

The text comparison is diff-match-patch's (quill-delta uses fast-diff, so the
two may choose different but equally valid edits).  Each embed stands for
one placeholder character, as in quill-delta, and equal characters whose ops
hold different inserts (an embed against a NUL character, or two different
embeds) become a re-insert.
"""

from diff_match_patch import diff_match_patch

from . import attributes
from .errors import DeltaError
from .ops import OpIter, chop, push
from .utf16 import utf16_len

_EMBED = "\0"
_DMP = diff_match_patch()
_DMP_INSERT, _DMP_DELETE = diff_match_patch.DIFF_INSERT, diff_match_patch.DIFF_DELETE


def _document_text(ops: list, which: str) -> str:
    parts = []
    for op in ops:
        if "insert" not in op:
            raise DeltaError("not_document", f"diff() called {which} a non-document")
        ins = op["insert"]
        parts.append(ins if type(ins) is str else _EMBED)
    return "".join(parts)


def diff(a_ops: list, b_ops: list) -> list:
    """Ops that turn document ``a`` into document ``b`` (text and formats)."""
    if a_ops is b_ops:
        return []
    a_text = _document_text(a_ops, "with")
    b_text = _document_text(b_ops, "on")
    changes = _DMP.diff_main(a_text, b_text, False)
    _DMP.diff_cleanupSemantic(changes)
    this = OpIter(a_ops)
    other = OpIter(b_ops)
    out = []
    for kind, text in changes:
        length = utf16_len(text)
        while length > 0:
            if kind == _DMP_INSERT:
                step = min(other.peek_len(), length)
                push(out, other.next(step))
            elif kind == _DMP_DELETE:
                step = min(length, this.peek_len())
                this.next(step)
                push(out, {"delete": step})
            else:
                step = min(this.peek_len(), other.peek_len(), length)
                this_op = this.next(step)
                other_op = other.next(step)
                if this_op["insert"] == other_op["insert"]:
                    attrs = attributes.diff(this_op.get("attributes"), other_op.get("attributes"))
                    push(out, {"retain": step, "attributes": attrs} if attrs else {"retain": step})
                else:
                    push(out, other_op)
                    push(out, {"delete": step})
            length -= step
    return chop(out)
