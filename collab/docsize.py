"""How big a document is, for TANDEM_MAX_DOCUMENT_BYTES, without measuring it on every edit.

A document's size is the UTF-8 bytes of its text plus the JSON bytes of its embeds.
Formatting is not counted: each edit's formatting is bounded by the message limit. The size
is additive (an edit adds what it inserts and takes away what it deletes), so an edit can
only grow a document by the bytes it inserts: the commit path adds that to a bound it keeps
and measures the document itself only when the bound would pass the limit.
"""

import orjson


def _bytes(value):
    if type(value) is str:
        return len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
    return len(orjson.dumps(value))


def measure(document):
    """The size of a document (a delta of inserts), exactly."""
    return sum(_bytes(op["insert"]) for op in document.ops)


def inserted(edit):
    """The bytes an edit inserts: at most how much it grows any document it applies to."""
    return sum(_bytes(op["insert"]) for op in edit.ops if "insert" in op)


class SizeBound:
    """An upper bound on the size of one content (a hub's), exact when last measured.

    `of(content)` answers for the content it was last told about, and measures any other.
    """

    __slots__ = ("content", "bound")

    def __init__(self):
        self.content = None
        self.bound = 0

    def of(self, content):
        return self.bound if content is self.content else measure(content)

    def record(self, content, bound):
        self.content, self.bound = content, bound


def check(size, edit, after, limit):
    """The size of `after` (`edit` applied to a document of at most `size` bytes), as a bound,
    or None when it is over `limit`. Measures `after` only when the bound would pass it."""
    bound = size + inserted(edit)
    if bound <= limit:
        return bound
    exact = measure(after)
    return exact if exact <= limit else None
