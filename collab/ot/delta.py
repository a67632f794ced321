"""The ``Delta``: a rich-text document or an edit to one, as quill-delta models it.

A document is a delta of inserts only.  An edit is a sequence of retains,
inserts and deletes walked from the start of a document.  Every method that
returns a delta returns a new one; the ops of a delta are never changed
after it is handed out, except by the builder methods on the delta being
built (``insert``, ``retain``, ``delete``, ``push``, ``chop``), which modify
only their own list.
"""

from .attributes import same_attrs
from .compose import compose as _compose
from .diff import diff as _diff
from .errors import DeltaError
from .index import OpIndex, slice_ops
from .invert import invert as _invert
from .ops import INFINITY, chop, op_len, push
from .transform import transform as _transform
from .transform import transform_position as _transform_position
from .utf16 import splits_pair


class Delta:
    """A list of quill ops with quill-delta 5.1.0's algebra.

    ``Delta(ops)`` trusts ``ops`` (use :func:`parse_delta` for input from
    clients) and takes the list as it is; do not change it afterwards.
    """

    __slots__ = ("ops", "_index")

    def __init__(self, ops: list | None = None):
        self.ops = ops if ops is not None else []
        self._index = None

    @classmethod
    def _with_index(cls, ops: list, index: OpIndex | None) -> "Delta":
        delta = cls(ops)
        delta._index = index
        return delta

    def _indexed(self) -> OpIndex:
        if self._index is None:
            self._index = OpIndex.build(self.ops)
        return self._index

    # Builders: they change this delta in place and return it.

    def push(self, op: dict) -> "Delta":
        """Append a copy of ``op``, merging it with the last op where possible."""
        op = dict(op)
        if op.get("attributes") is not None:
            op["attributes"] = dict(op["attributes"])
        self._index = None
        push(self.ops, op)
        return self

    def insert(self, value, attributes: dict | None = None) -> "Delta":
        """Insert text (``str``) or an embed (a one-key ``dict``); empty text is a no-op."""
        if type(value) is str and not value:
            return self
        op = {"insert": value}
        if attributes:
            op["attributes"] = dict(attributes)
        self._index = None
        push(self.ops, op)
        return self

    def retain(self, length: int, attributes: dict | None = None) -> "Delta":
        """Keep ``length`` code units, applying ``attributes`` if given; 0 is a no-op."""
        if length <= 0:
            return self
        op = {"retain": length}
        if attributes:
            op["attributes"] = dict(attributes)
        self._index = None
        push(self.ops, op)
        return self

    def delete(self, length: int) -> "Delta":
        """Remove ``length`` code units; 0 is a no-op."""
        if length <= 0:
            return self
        self._index = None
        push(self.ops, {"delete": length})
        return self

    def chop(self) -> "Delta":
        """Drop a trailing plain retain."""
        if self.ops and "retain" in self.ops[-1] and "attributes" not in self.ops[-1]:
            self._index = None
            chop(self.ops)
        return self

    # Measures.

    def length(self) -> int:
        """Total length of all ops in UTF-16 code units."""
        return self._indexed().total()

    def change_length(self) -> int:
        """How much applying this edit lengthens the document."""
        change = 0
        for op in self.ops:
            if "insert" in op:
                change += op_len(op)
            elif "delete" in op:
                change -= op["delete"]
        return change

    def base_length(self) -> int:
        """Retained plus deleted length: the shortest document this edit fits."""
        return sum(op.get("retain", 0) + op.get("delete", 0) for op in self.ops)

    def is_document(self) -> bool:
        """True if the delta holds only inserts."""
        return self._indexed().lead == len(self.ops)

    def text(self) -> str:
        """The plain text of a document; embeds are left out."""
        return "".join(op["insert"] for op in self.ops if type(op.get("insert")) is str)

    # Algebra.

    def compose(self, other: "Delta") -> "Delta":
        """This delta followed by ``other``, as one delta."""
        ops, index = _compose(self.ops, other.ops, self._compose_index(other))
        return Delta._with_index(ops, index)

    def _compose_index(self, other: "Delta") -> OpIndex | None:
        # The index pays off when other starts by skipping over part of self.
        if self._index is not None:
            return self._index
        first = other.ops[0] if other.ops else None
        if first is not None and "retain" in first and "attributes" not in first:
            return self._indexed()
        return None

    def transform(self, other: "Delta", priority: bool = False) -> "Delta":
        """``other`` rewritten to apply after this delta (both made concurrently)."""
        return Delta(_transform(self.ops, other.ops, bool(priority)))

    def transform_position(self, index: int, priority: bool = False) -> int:
        """Where position ``index`` moves once this delta is applied."""
        return _transform_position(self.ops, index, bool(priority))

    def invert(self, base: "Delta") -> "Delta":
        """The delta undoing this one, ``base`` being the document it applied to."""
        return Delta(_invert(self.ops, base.ops, base._indexed()))

    def diff(self, other: "Delta") -> "Delta":
        """A delta turning this document into document ``other``."""
        return Delta(_diff(self.ops, other.ops))

    def slice(self, start: int = 0, end: int | None = None) -> "Delta":
        """The ops covering code units ``start`` up to ``end`` (to the end if ``None``)."""
        stop = INFINITY if end is None else end
        return Delta(slice_ops(self.ops, self._indexed(), start, stop))

    def concat(self, other: "Delta") -> "Delta":
        """This delta's ops then ``other``'s, merging only at the seam."""
        ops = self.ops[:]
        if other.ops:
            push(ops, other.ops[0])
            ops += other.ops[1:]
        return Delta(ops)

    def apply_to(self, document: "Delta") -> "Delta":
        """``document`` with this edit applied, after checking that the edit fits.

        Raises ``DeltaError("does_not_fit")`` if the edit reaches past the end of
        the document or any of its op boundaries falls inside a surrogate pair
        (half an emoji), and ``DeltaError("not_document")`` if ``document``
        holds anything but inserts.
        """
        if not document.is_document():
            raise DeltaError("not_document", "an edit can only be applied to a document")
        need = self.base_length()
        have = document.length()
        if need > have:
            raise DeltaError(
                "does_not_fit", f"edit spans {need} code units, document has only {have}"
            )
        at = 0
        for i, op in enumerate(self.ops):
            if "insert" not in op:
                at += op_len(op)
            if _splits_pair_at(document, at):
                raise DeltaError("does_not_fit", f"op {i} cuts a surrogate pair (half a character)")
        return document.compose(self)

    # Plumbing.

    def to_json(self) -> list:
        """The ops as a new list of JSON-ready dicts (the dicts are shared: do not modify them)."""
        return list(self.ops)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Delta):
            return NotImplemented
        if len(self.ops) != len(other.ops):
            return False
        for mine, theirs in zip(self.ops, other.ops, strict=True):
            if mine.keys() != theirs.keys() or not same_attrs(
                mine.get("attributes"), theirs.get("attributes")
            ):
                return False
            for key in ("insert", "retain", "delete"):
                if key in mine and mine[key] != theirs[key]:
                    return False
        return True

    __hash__ = None

    def __repr__(self) -> str:
        return f"Delta({self.ops!r})"


def _splits_pair_at(document: Delta, at: int) -> bool:
    """True if document position ``at`` falls between the halves of an astral character."""
    if at <= 0:
        return False
    index = document._indexed()
    i = index.find(at)
    if i >= len(document.ops):
        return False
    ins = document.ops[i]["insert"]
    return type(ins) is str and splits_pair(ins, at - index.end(i - 1))
