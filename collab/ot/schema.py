"""Which attributes, values and embeds a document may hold: the formats the editor registers.

A delta that is well formed (see :mod:`.parse`) can still carry content the editor cannot
render, and one such insert breaks every later load of the document. A :class:`Schema`
says what is allowed, read from the same file the page's Quill setup reads
(``static/js/formats.json``), so the two cannot disagree.

The file is ``{"attributes": {name: rule}, "embeds": {kind: rule}}``; a rule is
``{"values": [...]}`` (one of these JSON values, of the same JSON type) and/or
``{"pattern": regex, "maxLength": n}`` (a string the regex matches as a whole, of at most
``n`` UTF-16 code units). An attribute may always be ``null``, which removes it.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import DeltaError
from .utf16 import utf16_len

_RULE_KEYS = {"values", "pattern", "maxLength"}


@dataclass(frozen=True, slots=True)
class Rule:
    """The values one attribute or embed may take."""

    # (type, value) pairs: JSON's true is not 1, though Python's True == 1.
    values: frozenset | None = None
    pattern: re.Pattern | None = None
    max_length: int | None = None

    @classmethod
    def from_dict(cls, name: str, data) -> "Rule":
        if type(data) is not dict or not data or data.keys() - _RULE_KEYS:
            raise ValueError(f"format {name!r}: a rule has only {sorted(_RULE_KEYS)}")
        values = data.get("values")
        if values is not None:
            values = frozenset((type(value), value) for value in values)
        pattern = data.get("pattern")
        return cls(
            values, re.compile(pattern) if pattern is not None else None, data.get("maxLength")
        )

    def allows(self, value) -> bool:
        if self.values is not None and (type(value), value) in self.values:
            return True
        if self.pattern is None or type(value) is not str:
            return False
        if self.max_length is not None and utf16_len(value) > self.max_length:
            return False
        return self.pattern.fullmatch(value) is not None


class Schema:
    """The allowed attributes and embeds; :meth:`check_op` refuses anything else."""

    __slots__ = ("attributes", "embeds")

    def __init__(self, attributes: dict[str, Rule], embeds: dict[str, Rule]):
        self.attributes = attributes
        self.embeds = embeds

    @classmethod
    def from_dict(cls, data) -> "Schema":
        """A schema from the parsed file; ``ValueError`` if the file is not one."""
        if type(data) is not dict or not {"attributes", "embeds"} <= data.keys():
            raise ValueError("a formats file has 'attributes' and 'embeds'")
        return cls(
            {name: Rule.from_dict(name, rule) for name, rule in data["attributes"].items()},
            {kind: Rule.from_dict(kind, rule) for kind, rule in data["embeds"].items()},
        )

    def check_op(self, index: int, op: dict) -> None:
        """Raise ``DeltaError("bad_delta")`` unless the parsed op ``op`` (``index`` in its
        delta, for the message) inserts only allowed embeds and sets only allowed attributes.
        """
        insert = op.get("insert")
        if type(insert) is dict:
            ((kind, data),) = insert.items()
            rule = self.embeds.get(kind)
            if rule is None:
                raise _bad(index, f"the editor has no embed {kind!r}")
            if not rule.allows(data):
                raise _bad(index, f"embed {kind!r} does not allow {_show(data)}")
        attributes = op.get("attributes")
        if attributes:
            rules = self.attributes
            for name, value in attributes.items():
                rule = rules.get(name)
                if rule is None:
                    raise _bad(index, f"the editor has no format {name!r}")
                if value is not None and not rule.allows(value):
                    raise _bad(index, f"format {name!r} does not allow {_show(value)}")


def load_schema(path: str | Path) -> Schema:
    """The schema in the JSON file at ``path``."""
    with open(path, encoding="utf-8") as file:
        return Schema.from_dict(json.load(file))


def _bad(index: int, message: str) -> DeltaError:
    return DeltaError("bad_delta", f"op {index}: {message}")


def _show(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."
