"""Checking untrusted, already JSON-decoded deltas from clients.

Accepted shapes are exactly what Quill sends: a list of ops or ``{"ops": [...]}``.
Anything else is refused with a :class:`DeltaError` whose message names the
op and the problem.  Embed retains (``{"retain": {...}}``) are refused: the
editor has no embed handlers, so they cannot be composed.
"""

import math

from .delta import Delta
from .errors import DeltaError
from .ops import push
from .schema import Schema
from .utf16 import has_lone_surrogate, utf16_len

# Counts beyond JavaScript's exact integers would be rounded in the browser.
MAX_COUNT = 2**53 - 1
_SCALARS = (str, int, float)


def _bad(index: int, message: str) -> DeltaError:
    return DeltaError("bad_delta", f"op {index}: {message}")


def _check_scalar(index: int, where: str, value) -> int:
    """Raise unless ``value`` is a JSON scalar; return its length in code units."""
    if value is None or type(value) is bool:
        return 0
    if type(value) not in _SCALARS:
        raise _bad(index, f"{where} must be a string, number, boolean or null")
    if type(value) is float and not math.isfinite(value):
        raise _bad(index, f"{where} must be a finite number")
    if type(value) is str:
        if has_lone_surrogate(value):
            raise _bad(index, f"{where} holds a lone surrogate")
        return utf16_len(value)
    return 0


def _parse_attributes(index: int, attrs) -> tuple[dict | None, int]:
    if type(attrs) is not dict:
        raise _bad(index, "attributes must be an object")
    size = 0
    for key, value in attrs.items():
        if type(key) is not str or not key:
            raise _bad(index, "attribute names must be non-empty strings")
        size += len(key) + _check_scalar(index, f"attribute {key!r}", value)
    return (dict(attrs) if attrs else None), size


def _count(index: int, kind: str, value) -> int:
    if type(value) is not int:
        raise _bad(index, f"{kind} must be an integer, not {type(value).__name__}")
    if not 0 < value <= MAX_COUNT:
        raise _bad(index, f"{kind} must be positive and at most 2**53 - 1")
    return value


def _parse_insert(index: int, value) -> tuple[str | dict, int]:
    if type(value) is str:
        if not value:
            raise _bad(index, "insert must not be empty")
        if has_lone_surrogate(value):
            raise _bad(index, "insert holds a lone surrogate")
        return value, utf16_len(value)
    if type(value) is dict:
        if len(value) != 1:
            raise _bad(index, "an embed must have exactly one key")
        ((kind, data),) = value.items()
        if type(kind) is not str or not kind:
            raise _bad(index, "an embed type must be a non-empty string")
        size = 1 + len(kind) + _check_scalar(index, f"embed {kind!r}", data)
        return {kind: data}, size
    raise _bad(index, "insert must be a string or an embed object")


def parse_delta(
    data, *, max_ops: int = 10000, max_chars: int = 1_000_000, schema: Schema | None = None
) -> Delta:
    """A normalised :class:`Delta` from untrusted JSON data, or ``DeltaError``.

    ``max_ops`` bounds the number of ops and ``max_chars`` the code units of
    inserted text plus attribute names and values (code "too_large"). With a
    ``schema``, an embed or attribute it does not allow is "bad_delta" too.
    The input is copied, never kept or modified.
    """
    if type(data) is dict and data.keys() == {"ops"}:
        data = data["ops"]
    if type(data) is not list:
        raise DeltaError("bad_delta", "a delta must be a list of ops or {'ops': [...]}")
    if len(data) > max_ops:
        raise DeltaError("too_large", f"{len(data)} ops, at most {max_ops} allowed")
    ops = []
    chars = 0
    for index, raw in enumerate(data):
        if type(raw) is not dict:
            raise _bad(index, "an op must be an object")
        kinds = [key for key in ("insert", "retain", "delete") if key in raw]
        if len(kinds) != 1:
            raise _bad(index, "an op needs exactly one of insert, retain, delete")
        kind = kinds[0]
        allowed = {kind} if kind == "delete" else {kind, "attributes"}
        unknown = raw.keys() - allowed
        if unknown:
            raise _bad(index, f"unexpected key {sorted(map(str, unknown))[0]!r}")
        if kind == "insert":
            value, size = _parse_insert(index, raw["insert"])
        else:
            value, size = _count(index, kind, raw[kind]), 0
        op = {kind: value}
        if "attributes" in raw:
            attrs, attr_size = _parse_attributes(index, raw["attributes"])
            size += attr_size
            if attrs is not None:
                op["attributes"] = attrs
        chars += size
        if chars > max_chars:
            raise DeltaError("too_large", f"more than {max_chars} characters at op {index}")
        if schema is not None:
            schema.check_op(index, op)
        push(ops, op)
    return Delta(ops)
