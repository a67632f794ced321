"""The collab.ot contract beyond quill-delta parity: parsing, fitting, UTF-16, immutability."""

import json
import random
from itertools import accumulate

import pytest

from collab.ot import Delta, DeltaError, parse_delta, utf16_len


@pytest.mark.parametrize(
    ("text", "units"),
    [("", 0), ("abc", 3), ("漢字", 2), ("e\u0301", 2), ("😀", 2), ("a👍🏽b", 6), ("\ud83d", 1)],
)
def test_utf16_len_counts_like_javascript(text, units):
    assert utf16_len(text) == units


def test_lengths_are_in_code_units():
    doc = Delta().insert("a😀", {"bold": True}).insert({"image": "x.png"}).insert("字")
    assert doc.length() == 5
    edit = Delta().retain(1).delete(2).insert("é")
    assert (edit.base_length(), edit.change_length(), edit.length()) == (3, -1, 4)


def test_builders_return_self_and_copy_the_callers_dicts():
    attrs = {"bold": True}
    op = {"insert": "x", "attributes": attrs}
    delta = Delta()
    assert delta.push(op) is delta
    assert delta.insert("y", attrs).retain(2, attrs).delete(1).chop() is delta
    attrs["bold"] = False
    op["insert"] = "changed"
    assert delta.ops == [
        {"insert": "xy", "attributes": {"bold": True}},
        {"retain": 2, "attributes": {"bold": True}},
        {"delete": 1},
    ]


def test_results_never_share_mutated_ops():
    doc = Delta().insert("Hello", {"bold": True})
    before = json.dumps(doc.to_json())
    doc.compose(Delta().retain(5).insert("!", {"bold": True}))
    doc.compose(Delta().retain(2, {"italic": True}))
    doc.slice(1, 3)
    doc.concat(Delta().insert("?", {"bold": True}))
    assert json.dumps(doc.to_json()) == before


def test_equality_tells_booleans_from_numbers():
    assert Delta().insert("a", {"indent": 1}) != Delta().insert("a", {"indent": True})
    assert Delta().insert("a", {"indent": 1}) == Delta().insert("a", {"indent": 1})
    merged = Delta().insert("a", {"indent": 1}).insert("b", {"indent": True})
    assert len(merged.ops) == 2


def test_document_helpers():
    doc = Delta().insert("Hi ", {"bold": True}).insert({"image": "x.png"}).insert("there\n")
    assert doc.is_document()
    assert not Delta().retain(1).insert("a").is_document()
    assert doc.text() == "Hi there\n"
    assert doc.slice(3).ops[0] == {"insert": {"image": "x.png"}}
    assert repr(Delta().insert("a")) == "Delta([{'insert': 'a'}])"
    # As an edit, the whole document is inserted before position 2.
    assert doc.transform_position(2) == 12


def test_apply_to_composes_a_fitting_edit():
    doc = Delta().insert("a😀b")
    assert Delta().retain(3).insert("!").apply_to(doc) == Delta().insert("a😀!b")
    assert Delta().retain(1).delete(2).apply_to(doc) == Delta().insert("ab")
    assert Delta().retain(4).apply_to(doc) == doc


@pytest.mark.parametrize(
    "edit",
    [
        Delta().retain(2).insert("x"),
        Delta().retain(1).delete(1),
        Delta().retain(2).delete(2),
        Delta().retain(2, {"bold": True}),
        Delta().retain(1).retain(1, {"bold": True}),
    ],
    ids=["insert", "delete-half", "delete-from-half", "format-half", "format-second-half"],
)
def test_apply_to_refuses_to_split_an_astral_character(edit):
    with pytest.raises(DeltaError) as err:
        edit.apply_to(Delta().insert("a😀b"))
    assert err.value.code == "does_not_fit"


def test_apply_to_refuses_an_edit_longer_than_the_document():
    with pytest.raises(DeltaError) as err:
        Delta().retain(3).delete(2).apply_to(Delta().insert("abcd"))
    assert err.value.code == "does_not_fit"
    assert "5" in str(err.value) and "4" in str(err.value)


def test_apply_to_needs_a_document():
    with pytest.raises(DeltaError) as err:
        Delta().insert("x").apply_to(Delta().retain(1))
    assert err.value.code == "not_document"


def test_parse_delta_accepts_quill_shapes_and_normalises():
    data = {
        "ops": [
            {"insert": "a", "attributes": {"bold": True, "header": 1, "color": "#fff"}},
            {"insert": "b", "attributes": {"bold": True, "header": 1, "color": "#fff"}},
            {"insert": {"image": "x.png"}, "attributes": {}},
            {"retain": 2, "attributes": {"bold": None, "size": 1.5}},
            {"delete": 1},
            {"insert": "😀"},
        ]
    }
    delta = parse_delta(data)
    assert delta.ops == [
        {"insert": "ab", "attributes": {"bold": True, "header": 1, "color": "#fff"}},
        {"insert": {"image": "x.png"}},
        {"retain": 2, "attributes": {"bold": None, "size": 1.5}},
        {"insert": "😀"},
        {"delete": 1},
    ]
    data["ops"][0]["attributes"]["bold"] = False
    assert delta.ops[0]["attributes"]["bold"] is True


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ("insert", "list of ops"),
        ({"ops": [], "extra": 1}, "list of ops"),
        ([["insert", "a"]], "op 0: an op must be an object"),
        ([{}], "exactly one of"),
        ([{"insert": "a", "delete": 1}], "exactly one of"),
        ([{"insert": "a", "bold": True}], "unexpected key 'bold'"),
        ([{"delete": 1, "attributes": {"bold": True}}], "unexpected key 'attributes'"),
        ([{"insert": ""}], "must not be empty"),
        ([{"insert": 5}], "string or an embed"),
        ([{"insert": None}], "string or an embed"),
        ([{"insert": {"image": "a", "alt": "b"}}], "exactly one key"),
        ([{"insert": {"image": ["a"]}}], "embed 'image'"),
        ([{"insert": "\ud83d"}], "lone surrogate"),
        ([{"retain": True}], "retain must be an integer, not bool"),
        ([{"retain": 0}], "positive"),
        ([{"delete": -2}], "positive"),
        ([{"retain": 1.0}], "not float"),
        ([{"retain": "3"}], "not str"),
        ([{"retain": {"image": "x"}}], "not dict"),
        ([{"retain": 2**60}], "positive and at most"),
        ([{"insert": "a", "attributes": ["bold"]}], "attributes must be an object"),
        ([{"insert": "a", "attributes": {"bold": {"x": 1}}}], "attribute 'bold'"),
        ([{"insert": "a", "attributes": {"size": float("nan")}}], "finite"),
        ([{"insert": "a", "attributes": {"": True}}], "non-empty strings"),
        ([{"insert": "a"}, {"insert": "b"}, {"delete": 0}], "op 2:"),
    ],
)
def test_parse_delta_rejects_malformed_input(data, fragment):
    with pytest.raises(DeltaError) as err:
        parse_delta(data)
    assert err.value.code == "bad_delta"
    assert fragment in str(err.value)


def test_parse_delta_enforces_size_limits():
    with pytest.raises(DeltaError) as err:
        parse_delta([{"insert": "a"}, {"delete": 1}, {"insert": "b"}], max_ops=2)
    assert err.value.code == "too_large"
    with pytest.raises(DeltaError) as err:
        parse_delta([{"insert": "ab"}, {"insert": "😀"}], max_chars=3)
    assert err.value.code == "too_large"
    assert parse_delta([{"insert": "a😀"}], max_chars=3).length() == 3


def test_delta_error_is_a_value_error():
    assert issubclass(DeltaError, ValueError)
    assert DeltaError("bad_delta", "x").code == "bad_delta"


def test_emoji_cut_by_an_edit_comes_back_whole():
    # quill-delta works in code units, so an edit may split a pair mid-way;
    # composing the halves back must give the real character again.
    doc = Delta().insert("😀")
    first = Delta().retain(1).insert("x")
    second = Delta().retain(1).delete(1)
    assert doc.compose(first).compose(second) == doc
    assert doc.compose(first).compose(second).text() == "😀"


def test_large_document_compose_keeps_every_character():
    runs = [
        ("漢字😀e\u0301" * 3, {"bold": True}),
        ("plain text ", None),
        ("ital", {"italic": True}),
    ]
    doc = Delta()
    for i in range(3000):
        text, attrs = runs[i % 3]
        doc.insert(text, attrs)
    expected_text = doc.text()
    length = doc.length()
    points = list(accumulate(utf16_len(ch) for ch in expected_text))
    for at in points[::997]:
        doc = Delta().retain(at).insert("+").delete(0).apply_to(doc)
        doc = Delta().retain(at).delete(1).apply_to(doc)
    assert doc.text() == expected_text
    assert doc.length() == length == Delta(doc.ops).length()


def test_long_edit_sessions_agree_with_fresh_deltas():
    # Composed documents reuse their source's length index; after hundreds of
    # edits (enough to fold its segments many times) every answer must match
    # a delta that indexes the same ops from scratch.
    rng = random.Random(5)
    doc = Delta()
    for i in range(300):
        doc.insert(f"run😀{i} ", [{"bold": True}, None, {"italic": True}][i % 3])
    for step in range(600):
        length = doc.length()
        at = rng.randrange(0, length)
        kind = step % 4
        if kind == 0:
            edit = Delta().retain(at).insert("é")
        elif kind == 1:
            edit = Delta().retain(at).delete(min(3, length - at))
        elif kind == 2:
            edit = Delta().retain(at).retain(min(40, length - at), {"color": "red"})
        else:
            edit = Delta().insert("z").retain(at).delete(1)
        try:
            result = edit.apply_to(doc)
        except DeltaError as err:
            assert err.code == "does_not_fit"
            continue
        assert result == Delta(doc.ops).compose(edit)
        doc = result
        fresh = Delta(doc.ops)
        assert doc.length() == fresh.length()
        start = rng.randrange(0, doc.length())
        assert doc.slice(start, start + 25) == fresh.slice(start, start + 25)
