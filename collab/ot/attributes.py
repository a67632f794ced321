"""Attribute maps (``{"bold": True, "color": None}``) and their algebra.

Mirrors quill-delta's ``AttributeMap``.  A map is a dict or ``None`` (no
attributes); maps are never mutated once built, so results may share them.
A ``None`` value means "remove this format" and survives only where
quill-delta keeps it (composing onto a retain, transforming, inverting).

Values compare as JavaScript does: ``True`` and ``1`` are different values
even though Python calls them equal.
"""

_ABSENT = object()


def same_value(x, y) -> bool:
    """JavaScript equality of two attribute values (booleans are not numbers)."""
    return x == y and (type(x) is bool) == (type(y) is bool)


def same_attrs(a: dict | None, b: dict | None) -> bool:
    """Deep equality of two attribute maps; ``None`` equals only ``None``."""
    if a is b:
        return True
    if a is None or b is None or a != b:
        return False
    for key, value in a.items():
        if (type(value) is bool) != (type(b[key]) is bool):
            return False
    return True


def compose(a: dict | None, b: dict | None, keep_null: bool) -> dict | None:
    """Formats ``a`` followed by formats ``b``; ``b`` wins on shared keys.

    With ``keep_null`` (composing onto a retain) the removals in ``b`` are kept
    so that they still remove formats from the document later.
    """
    if not b:
        return a or None
    if keep_null:
        if not a:
            return b
        attrs = dict(b)
    else:
        attrs = {k: v for k, v in b.items() if v is not None}
        if not a:
            return attrs or None
    for key, value in a.items():
        if key not in b:
            attrs[key] = value
    return attrs or None


def transform(a: dict | None, b: dict | None, priority: bool) -> dict | None:
    """Formats ``b`` as seen after concurrent formats ``a``.

    With ``priority`` ``a`` happened first, so ``b`` loses every key ``a`` set.
    """
    if a is None:
        return b
    if b is None:
        return None
    if not priority:
        return b
    attrs = {k: v for k, v in b.items() if k not in a}
    return attrs or None


def invert(attrs: dict | None, base: dict | None) -> dict:
    """The formats that undo ``attrs`` applied over text formatted ``base``."""
    attrs = attrs or {}
    base = base or {}
    inverted = {}
    for key, value in base.items():
        if key in attrs and not same_value(value, attrs[key]):
            inverted[key] = value
    for key in attrs:
        if key not in base:
            inverted[key] = None
    return inverted


def diff(a: dict | None, b: dict | None) -> dict | None:
    """The formats that turn text formatted ``a`` into text formatted ``b``."""
    a = a or {}
    b = b or {}
    attrs = {}
    for key in (*a, *b):
        if key in attrs:
            continue
        old = a.get(key, _ABSENT)
        new = b.get(key, _ABSENT)
        if old is _ABSENT or new is _ABSENT or not same_value(old, new):
            attrs[key] = None if new is _ABSENT else new
    return attrs or None
