"""Every client message is validated here: types, bounds and sizes, each failure with a code.

See docs/protocol.md. Parsing returns small dataclasses; anything else raises ProtocolError,
which the consumer turns into an `error` message without touching the document.
"""

from dataclasses import dataclass
from pathlib import Path

import orjson

from collab.ot import Delta, DeltaError, Schema, load_schema, parse_delta

MAX_VERSION = 2**31 - 1

# The formats the editor registers, read by the page's Quill setup too (docs/protocol.md).
FORMATS_FILE = Path(__file__).resolve().parent.parent / "static" / "js" / "formats.json"
EDITOR_SCHEMA = load_schema(FORMATS_FILE)

# Closing codes (docs/protocol.md).
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NO_ACCESS = 4404
CLOSE_PROTOCOL = 4400
CLOSE_FLOOD = 4429
CLOSE_SILENT = 4408
CLOSE_TOO_MANY = 4409  # the user has TANDEM_MAX_CONNECTIONS_PER_USER open already


class ProtocolError(Exception):
    def __init__(self, code, message, seq=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.seq = seq

    def as_message(self):
        message = {"type": "error", "code": self.code, "message": self.message}
        if self.seq is not None:
            message["seq"] = self.seq
        return message


@dataclass(frozen=True, slots=True)
class Hello:
    client_id: str
    version: int | None


@dataclass(frozen=True, slots=True)
class Submit:
    seq: int
    version: int
    delta: Delta


@dataclass(frozen=True, slots=True)
class Fetch:
    since: int


@dataclass(frozen=True, slots=True)
class Presence:
    selection: dict | None
    version: int


@dataclass(frozen=True, slots=True)
class Ping:
    id: object


def _int(message, key, low=0, high=MAX_VERSION, optional=False):
    value = message.get(key)
    if value is None and optional:
        return None
    # bool is an int in Python but never a valid count or version.
    if type(value) is not int or not low <= value <= high:
        raise ProtocolError("bad_message", f"'{key}' must be an integer from {low} to {high}")
    return value


def _hello(message, limits):
    client_id = message.get("client_id")
    # Printable: the id is stored with every edit, and PostgreSQL's text refuses a NUL.
    if (
        not isinstance(client_id, str)
        or not 8 <= len(client_id) <= 64
        or not (client_id.isascii() and client_id.isprintable())
    ):
        raise ProtocolError("bad_message", "'client_id' must be 8-64 printable ASCII characters")
    return Hello(client_id, _int(message, "version", optional=True))


def _submit(message, limits):
    seq = _int(message, "seq", low=1)
    version = _int(message, "version")
    try:
        delta = parse_delta(
            message.get("delta"),
            max_ops=limits.max_ops,
            max_chars=limits.max_chars,
            schema=limits.schema,
        )
    except DeltaError as error:
        raise ProtocolError(error.code, str(error), seq=seq) from None
    if _holds_nul(delta):
        # SQLite would keep it, but PostgreSQL's jsonb cannot: the commit would fail.
        raise ProtocolError("bad_delta", "text cannot hold a NUL character (U+0000)", seq=seq)
    return Submit(seq, version, delta)


def _holds_nul(delta):
    """Whether a string of the (parsed) delta holds U+0000: text, embed or attribute value."""
    for op in delta.ops:
        insert = op.get("insert")
        values = [insert, *insert.values()] if type(insert) is dict else [insert]
        values.extend((op.get("attributes") or {}).values())
        if any(type(value) is str and "\x00" in value for value in values):
            return True
    return False


def _fetch(message, limits):
    return Fetch(_int(message, "from"))


def _presence(message, limits):
    selection = message.get("selection")
    if selection is not None:
        if not isinstance(selection, dict) or set(selection) != {"index", "length"}:
            raise ProtocolError("bad_message", "'selection' must be {index, length} or null")
        selection = {
            "index": _int(selection, "index"),
            "length": _int(selection, "length"),
        }
    return Presence(selection, _int(message, "version"))


def _ping(message, limits):
    ping_id = message.get("id")
    if ping_id is not None and not (
        type(ping_id) is int or (isinstance(ping_id, str) and len(ping_id) <= 64)
    ):
        raise ProtocolError("bad_message", "'id' must be an integer or a short string")
    return Ping(ping_id)


PARSERS = {
    "hello": _hello,
    "submit": _submit,
    "fetch": _fetch,
    "presence": _presence,
    "ping": _ping,
}


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int = 256 * 1024  # one message, in UTF-8 bytes
    max_ops: int = 10_000
    max_chars: int = 1_000_000
    max_document_bytes: int = 10 * 1024 * 1024  # collab.docsize
    # What an edit may insert and format; None accepts any well-formed delta.
    schema: Schema | None = EDITOR_SCHEMA

    def as_message(self):
        """The limits as `joined` tells them, so that a client can cut its edits to fit."""
        return {
            "message_bytes": self.max_bytes,
            "delta_ops": self.max_ops,
            "delta_chars": self.max_chars,
            "document_bytes": self.max_document_bytes,
        }


def utf8_len(text):
    """Length of `text` in UTF-8 bytes, as it travelled (isascii is a flag check)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def parse_message(text, limits):
    """Decode one client frame into a message object, or raise ProtocolError."""
    if text is None:
        raise ProtocolError("bad_json", "binary frames are not part of the protocol")
    if utf8_len(text) > limits.max_bytes:
        raise ProtocolError(
            "too_large", f"messages are limited to {limits.max_bytes} bytes", seq=_seq_of(text)
        )
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ProtocolError("bad_json", "the frame is not valid JSON") from None
    if not isinstance(message, dict):
        raise ProtocolError("bad_json", "a frame must be a JSON object")
    kind = message.get("type")
    # Only a string can name a type: a list or an object would not even hash.
    parser = PARSERS.get(kind) if type(kind) is str else None
    if parser is None:
        raise ProtocolError("bad_message", f"unknown message type {_show(kind)}")
    return parser(message, limits)


def _show(value):
    """A client's value for an error message, cut short."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _seq_of(text):
    """The `seq` of a frame refused before parsing, if it is a submit, so that the error names
    the edit. The transport bounds a frame (daphne's limits), so decoding it is bounded too."""
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(message, dict) or message.get("type") != "submit":
        return None
    seq = message.get("seq")
    return seq if type(seq) is int and 1 <= seq <= MAX_VERSION else None


def encode(message):
    """Serialise a server message once; the same text goes to every recipient."""
    return orjson.dumps(message).decode()
