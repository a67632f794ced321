"""Hypothesis strategies for hostile client messages, for tests/collab/test_fuzz.py.

A script is what one fuzzing session sends: frames (text or binary) made of valid-looking
messages with mutated fields, random JSON, garbage and oversized text, plus bursts of valid
submits duplicated and reordered. Values that only make sense against the live document (its
version and length, the client's next `seq`) are drawn as `Rel` placeholders and resolved
when the frame is sent (`render`), so that a drawn "edit on the current version" stays one
however far the document has moved.
"""

import json
import reprlib
from dataclasses import dataclass

from hypothesis import strategies as st

MAX_MESSAGE_BYTES = 256 * 1024  # the server's default TANDEM_MAX_MESSAGE_BYTES
MISSING = object()  # a field left out of its message


@dataclass(frozen=True)
class Rel:
    """`of` ("version", "length" or "seq") of the live state, plus `offset`."""

    of: str
    offset: int


_short = reprlib.Repr()
_short.maxstring = _short.maxother = 80


@dataclass(frozen=True)
class Big:
    """A big value, made only when sent: `times` copies of `unit` (a string, or a list's
    item), between `head` and `tail`. Drawn values are kept and shown by hypothesis, and a
    quarter of a megabyte each made it slow and hungry."""

    unit: object
    times: int
    head: str = ""
    tail: str = ""
    closing: str = ""  # repeated `times` too, before the tail: "[[[" then "]]]"

    def make(self):
        if isinstance(self.unit, str):
            return self.head + self.unit * self.times + self.closing * self.times + self.tail
        return [self.unit] * self.times


@dataclass(frozen=True, repr=False)
class Frame:
    """One frame: a `message` to render as JSON text, raw `text`, or `data` (binary)."""

    kind: str
    value: object

    def __repr__(self):  # huge strings would flood a failure's report
        return f"Frame({self.kind}={_short.repr(self.value)})"


@dataclass(frozen=True)
class Burst:
    """Valid inserts with consecutive seqs from the client's next, sent in `order` (indexes
    into them, repeats included): duplicated and reordered submits."""

    texts: tuple
    order: tuple


@dataclass(frozen=True)
class Script:
    hello_first: bool  # whether a valid hello opens the session
    client: int  # which of the fuzzing client ids (shared across sessions: resends)
    actions: tuple  # Frames and Bursts


# -- values ---------------------------------------------------------------------------------

EDGE_INTS = [0, -1, 1, 2, 2**31 - 1, 2**31, 2**53 - 1, 2**53, 2**63, 2**64, -(2**63), 10**30]
# Text the way editors send it, and the awkward kind: astral characters (two UTF-16 units),
# combining marks, controls, a BOM, right-to-left text.
TEXT = st.text(
    st.sampled_from(list("ab \n\té中😀") + ["\u0301", "\u200f", "\ufeff", "\x00", "\U0001f9d1"]),
    min_size=1,
    max_size=12,
)
LONE_SURROGATES = st.sampled_from(["\ud800", "a\udfffb", "\udbff\n", "x\ud83d"])
# Long enough to matter, or over the message limit (a document that grew by a quarter of a
# megabyte an edit would slow every later example).
HUGE_STRING = st.one_of(
    st.integers(1_000, 20_000), st.integers(MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES + 50_000)
).map(lambda n: Big("h", n))

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(EDGE_INTS),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),  # fmt: skip
    max_leaves=12,
)
weird = st.one_of(
    scalars,
    json_values,
    st.sampled_from([[], {}, "1", 1.0, 1.5, "null", True, False, float("nan"), float("inf")]),
    LONE_SURROGATES,
    HUGE_STRING,
)


def weighted(*choices):
    """One of the strategies, each as often as its weight: (weight, strategy), ..."""
    # Not st.one_of(*repeats): it drops repeated strategies, and with them the weights.
    pool = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.sampled_from(pool).flatmap(lambda strategy: strategy)


def field(good):
    """Mostly a good value, sometimes anything at all, sometimes left out."""
    return weighted((6, good), (1, weird), (1, st.just(MISSING)))


def rel(of, offsets):
    return st.sampled_from(offsets).map(lambda offset: Rel(of, offset))


versions = st.one_of(rel("version", [0, 0, 0, -1, -3, -40, 1, 2, 1000]), st.just(0))
lengths = st.one_of(st.integers(0, 30), rel("length", [-2, -1, 0, 1, 5]))
counts = st.one_of(lengths, lengths, weird, st.sampled_from([0, -1, 2**53, 2**53 - 1, 1.0]))

# -- deltas ---------------------------------------------------------------------------------

GOOD_ATTRIBUTES = st.sampled_from([
    {"bold": True}, {"italic": True, "underline": True}, {"color": "#a1b2c3"},
    {"link": "https://example.com/x"}, {"header": 2}, {"list": "bullet"}, {"indent": 3},
    {"code-block": "plain"}, {"bold": None}, {"blockquote": True},
])  # fmt: skip
BAD_ATTRIBUTES = st.one_of(
    st.sampled_from([
        {"bold": 1}, {"header": "1"}, {"header": 7}, {"color": "red"}, {"link": "javascript:x"},
        {"font": "serif"}, {"": True}, {"bold": {"nested": True}}, {"image": "x.png"},
        {"indent": 9}, {"link": "https://" + "a" * 3000}, {"align": "center"},
    ]),
    st.dictionaries(st.text(max_size=6), weird, max_size=3),
    weird,
)  # fmt: skip
attributes = st.one_of(GOOD_ATTRIBUTES, GOOD_ATTRIBUTES, BAD_ATTRIBUTES)


def _op(kind, value, attrs):
    op = {kind: value}
    if attrs is not MISSING:
        op["attributes"] = attrs
    return op


good_ops = st.one_of(
    st.builds(_op, st.just("insert"), TEXT, st.one_of(st.just(MISSING), GOOD_ATTRIBUTES)),
    st.builds(_op, st.just("retain"), lengths, st.one_of(st.just(MISSING), GOOD_ATTRIBUTES)),
    st.builds(_op, st.just("delete"), st.integers(1, 6), st.just(MISSING)),
)
bad_ops = st.one_of(
    st.builds(
        _op,
        st.sampled_from(["insert", "retain", "delete"]),
        counts | weird,
        st.one_of(st.just(MISSING), attributes),
    ),  # fmt: skip
    st.builds(
        _op,
        st.just("insert"),
        st.one_of(
            LONE_SURROGATES,
            st.just(""),
            HUGE_STRING,
            st.sampled_from([{"image": "x"}, {}, {"a": 1}]),
        ),
        st.just(MISSING),
    ),  # fmt: skip
    st.builds(_op, st.just("insert"), TEXT, BAD_ATTRIBUTES),
    st.fixed_dictionaries({"insert": TEXT, "retain": st.integers(1, 3)}),
    st.fixed_dictionaries({"delete": st.integers(1, 3), "attributes": GOOD_ATTRIBUTES}),
    st.fixed_dictionaries({"retain": st.integers(1, 3), "extra": weird}),
    st.just({}),
    weird,
)
deltas = st.one_of(
    st.lists(good_ops, min_size=1, max_size=6),
    st.lists(good_ops, min_size=1, max_size=6),
    st.lists(st.one_of(good_ops, bad_ops), min_size=0, max_size=8),
    st.lists(good_ops, min_size=1, max_size=4).map(lambda ops: {"ops": ops}),
    st.integers(10_001, 10_050).map(lambda n: Big({"retain": 1}, n)),  # too many ops
    weird,
)

# -- messages -------------------------------------------------------------------------------


def message(kind, **fields):
    """A message of `kind` (itself perhaps mutated) with `fields`, MISSING ones left out,
    sometimes with an attribute the protocol does not know."""
    return st.fixed_dictionaries(
        {"type": weighted((12, st.just(kind)), (1, weird), (1, st.just(MISSING))), **fields},
        optional={"unknown": weird, "extra_field": st.just(1)},
    ).map(lambda m: {k: v for k, v in m.items() if v is not MISSING})


client_ids = st.one_of(
    st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=8, max_size=64),
    st.sampled_from(["short", "x" * 65, "ünïcödé-client", "", " " * 8]),
)
selections = st.one_of(
    st.none(),
    st.fixed_dictionaries({"index": lengths, "length": st.integers(0, 5)}),
    st.fixed_dictionaries({"index": counts, "length": counts}),
    st.fixed_dictionaries({"index": lengths}, optional={"length": weird, "focus": weird}),
    weird,
)

messages = weighted(
    (
        4,
        message(
            "submit",
            seq=field(rel("seq", [1, 1, 1, 1, 0, -1, -3, 2, 50])),
            version=field(versions),
            delta=field(deltas),
        ),
    ),  # fmt: skip
    (4, message("submit", seq=rel("seq", [1]), version=versions, delta=deltas)),
    (
        1,
        message(
            "hello", client_id=field(client_ids), version=field(st.one_of(st.none(), versions))
        ),
    ),  # fmt: skip
    (1, message("fetch", **{"from": field(versions)})),
    (2, message("presence", selection=field(selections), version=field(versions))),
    (1, message("ping", id=field(st.one_of(st.integers(), st.text(max_size=70))))),
    (1, st.fixed_dictionaries({"type": st.one_of(st.text(max_size=10), weird)})),
    (1, st.dictionaries(st.text(max_size=8), weird, max_size=4)),
    (1, json_values),
)


def _nested(depth, head="", tail=""):
    return Big("[", depth, head, tail, closing="]")


garbage = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            '{"type":"ping"',
            '{"type": "submit", "seq": 1,',
            "null",
            '""',
            "[]",
            '{"type":"ping","id":1}{"type":"ping"}',
            "NaN",
            '{"type":"ping",}',
            "\ufeff{}",
            '{"type":"ping","type":"submit"}',
        ]
    ),  # fmt: skip
    st.integers(100, 100_000).map(_nested),
    st.integers(100, 5_000).map(lambda n: _nested(n, '{"type":"submit","delta":', "}")),
    st.integers(MAX_MESSAGE_BYTES - 100, MAX_MESSAGE_BYTES + 5_000).map(lambda n: Big("x", n)),
)
oversized_submit = st.integers(MAX_MESSAGE_BYTES - 200, MAX_MESSAGE_BYTES + 20_000).map(
    lambda n: {
        "type": "submit",
        "seq": Rel("seq", 1),
        "version": Rel("version", 0),
        "delta": [{"insert": Big("o", n)}],
    }  # fmt: skip
)

frames = weighted(
    (12, st.builds(Frame, st.just("message"), messages)),
    (2, st.builds(Frame, st.just("text"), garbage)),
    (1, st.builds(Frame, st.just("data"), st.binary(max_size=64))),
    (1, st.builds(Frame, st.just("message"), oversized_submit)),
)
bursts = st.lists(TEXT, min_size=2, max_size=6).flatmap(
    lambda texts: st.lists(st.integers(0, len(texts) - 1), min_size=1, max_size=2 * len(texts)).map(
        lambda order: Burst(tuple(texts), tuple(order))
    )
)
scripts = st.builds(
    Script,
    hello_first=st.sampled_from([True, True, True, False]),
    client=st.integers(0, 3),
    actions=st.lists(weighted((4, frames), (1, bursts)), min_size=4, max_size=30).map(tuple),
)

# -- sending --------------------------------------------------------------------------------


def resolve(value, state):
    """`value` with every Rel replaced by the live number it stands for, and every Big
    made."""
    if isinstance(value, Rel):
        return state[value.of] + value.offset
    if isinstance(value, Big):
        return value.make()
    if isinstance(value, dict):
        return {key: resolve(item, state) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, state) for item in value]
    return value


def render(value):
    """A message as JSON text: raw UTF-8 where it can be, \\u escapes where it holds lone
    surrogates (which no frame can carry raw); NaN and Infinity stay (invalid JSON)."""
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value)
    return text


def burst_submits(burst, state):
    """A Burst's submits, with seqs from the client's next, in the burst's order."""
    first = state["seq"] + 1
    made = [
        {
            "type": "submit",
            "seq": first + i,
            "version": state["version"],
            "delta": [{"insert": text}],
        }  # fmt: skip
        for i, text in enumerate(burst.texts)
    ]
    return [made[i] for i in burst.order]


def seq_of(message):
    """A submit's seq as the server counts them (for the client's next), else None."""
    if type(message) is dict and message.get("type") == "submit":
        seq = message.get("seq")
        if type(seq) is int and 1 <= seq < 2**31 - 1:
            return seq
    return None


# -- the HTTP fallback's POSTs -------------------------------------------------------------


@dataclass(frozen=True)
class PostShape:
    actions: int  # how many of the script's actions go into this POST
    mutation: str  # "normal", or how the POST is out of order or broken
    target: int  # which server it is sent to (with several, not always the stream's)


@dataclass(frozen=True)
class HttpPlan:
    home: int  # the server holding the event stream
    posts: tuple


MUTATIONS = st.sampled_from(
    ["normal"] * 12
    + ["duplicate", "early", "early", "bad_utf8", "too_many_lines", "no_number", "zero",
       "negative", "text_number", "no_csrf", "made_up_token", "other_document", "old_token",
       "huge_body"]
)  # fmt: skip
http_plans = st.builds(
    HttpPlan,
    home=st.integers(0, 1),
    posts=st.lists(
        st.builds(PostShape, st.integers(0, 4), MUTATIONS, st.integers(0, 1)), max_size=12
    ).map(tuple),
)
