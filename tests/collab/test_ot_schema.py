"""The formats schema: what the editor registers is accepted, anything else is bad_delta."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collab.ot import DeltaError, Schema, load_schema, parse_delta
from collab.protocol import FORMATS_FILE

EDITOR = load_schema(FORMATS_FILE)
RAW = json.loads(FORMATS_FILE.read_text())

# Values the editor's Quill produces, per format (every listed value, plus pattern examples).
ALLOWED = {name: list(rule.get("values", [])) for name, rule in RAW["attributes"].items()}
ALLOWED["color"] = ["#e60000", "#FFFFFF", "#0a0B0c"]
ALLOWED["link"] = ["https://example.com/a?b=c#d", "http://x", "mailto:a@b.c", "tel:+1555"]

REFUSED_VALUES = {
    "bold": [False, 1, "true", {}],
    "header": [True, 0, 4, 7, "1", 1.0],
    "list": ["check", "weird", 5, True],
    "indent": [0, 9, True, "+1"],
    "code-block": ["javascript", False],
    "color": ["red", "#fff", "#ff00000", "rgb(1,2,3)", "#ff0000\n", 16711680],
    "link": [
        "javascript:alert(1)",
        "example.com",
        "/relative",
        "https://",
        "https://a b",
        "data:text/html,x",
        "https://" + "x" * 2048,
        True,
    ],
}


def parse(ops, schema=EDITOR):
    return parse_delta(ops, schema=schema)


def test_every_format_in_the_file_has_allowed_examples():
    assert set(ALLOWED) == set(RAW["attributes"])
    assert all(ALLOWED.values())


@pytest.mark.parametrize(
    ("name", "value"), [(name, value) for name, values in ALLOWED.items() for value in values]
)
def test_the_editors_formats_are_accepted_on_inserts_and_retains(name, value):
    attributes = {name: value}
    delta = parse(
        [{"insert": "a", "attributes": attributes}, {"retain": 2, "attributes": attributes}]
    )
    assert delta.ops[0]["attributes"] == attributes


@pytest.mark.parametrize(
    ("name", "value"),
    [(name, value) for name, values in REFUSED_VALUES.items() for value in values],
)
def test_values_the_editor_does_not_register_are_bad_delta(name, value):
    with pytest.raises(DeltaError) as error:
        parse([{"insert": "ok"}, {"retain": 1, "attributes": {name: value}}])
    assert error.value.code == "bad_delta"
    assert str(error.value).startswith("op 1: ")


@pytest.mark.parametrize("name", ["font", "size", "background", "align", "script", "zzz"])
def test_formats_the_editor_does_not_register_are_bad_delta(name):
    with pytest.raises(DeltaError, match=f"op 0: the editor has no format {name!r}"):
        parse([{"insert": "a", "attributes": {name: "x"}}])


@pytest.mark.parametrize(
    "embed", [{"image": "https://x/y.png"}, {"video": "v"}, {"formula": "x"}, {"foo": 1}]
)
def test_embeds_the_editor_does_not_register_are_bad_delta(embed):
    with pytest.raises(DeltaError, match="op 1: the editor has no embed") as error:
        parse([{"insert": "a"}, {"insert": embed}])
    assert error.value.code == "bad_delta"


def test_null_removes_any_known_format_and_only_those():
    nulls = {name: None for name in RAW["attributes"]}
    assert parse([{"retain": 1, "attributes": nulls}]).ops == [{"retain": 1, "attributes": nulls}]
    with pytest.raises(DeltaError, match="no format 'font'"):
        parse([{"retain": 1, "attributes": {"font": None}}])


def test_without_a_schema_any_well_formed_delta_parses():
    ops = [{"insert": {"formula": "x"}}, {"insert": "a", "attributes": {"font": "serif"}}]
    assert parse(ops, schema=None).ops == ops


def test_a_schema_with_embeds_checks_their_values():
    schema = Schema.from_dict(
        {
            "attributes": {},
            "embeds": {
                "divider": {"values": [True]},
                "image": {"pattern": "https://\\S+", "maxLength": 20},
            },
        }
    )
    assert parse([{"insert": {"divider": True}}, {"insert": {"image": "https://a/b"}}], schema)
    for embed in ({"divider": 1}, {"image": "http://a"}, {"image": "https://" + "a" * 20}):
        with pytest.raises(DeltaError, match="does not allow"):
            parse([{"insert": embed}], schema)


def test_max_length_counts_utf16_code_units_as_the_browser_does():
    schema = Schema.from_dict(
        {"attributes": {"t": {"pattern": ".+", "maxLength": 4}}, "embeds": {}}
    )
    assert parse([{"insert": "a", "attributes": {"t": "\U0001f600\U0001f600"}}], schema)
    with pytest.raises(DeltaError):
        parse([{"insert": "a", "attributes": {"t": "\U0001f600\U0001f600x"}}], schema)


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"attributes": {}},
        {"attributes": {"bold": {}}, "embeds": {}},
        {"attributes": {"bold": {"value": [True]}}, "embeds": {}},
        {"attributes": {}, "embeds": {"x": []}},
    ],
)
def test_a_malformed_formats_file_is_refused_when_loaded(data):
    with pytest.raises(ValueError):
        Schema.from_dict(data)


# ---- properties ---------------------------------------------------------------------------

allowed_attributes = st.dictionaries(
    st.sampled_from(sorted(ALLOWED)), st.none(), max_size=4
).flatmap(
    lambda keys: st.fixed_dictionaries(
        {name: st.sampled_from(ALLOWED[name] + [None]) for name in keys}
    )
)
text = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=5)
allowed_ops = st.one_of(
    st.builds(lambda s, a: {"insert": s, "attributes": a}, text, allowed_attributes),
    st.builds(lambda n, a: {"retain": n, "attributes": a}, st.integers(1, 9), allowed_attributes),
    st.builds(lambda n: {"delete": n}, st.integers(1, 9)),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 12),
    st.text(max_size=12),
    st.sampled_from(["#abcdef", "https://x", "ordered"]),
)


def _strip_empty(ops):
    return [{k: v for k, v in op.items() if v != {}} for op in ops]


@given(st.lists(allowed_ops, max_size=12))
def test_deltas_of_registered_formats_parse_as_without_a_schema(ops):
    ops = _strip_empty(ops)
    assert parse(ops).ops == parse(ops, schema=None).ops


@given(st.lists(allowed_ops, max_size=8), st.data())
def test_one_unregistered_attribute_or_value_anywhere_is_refused(ops, data):
    ops = _strip_empty(ops)
    name = data.draw(st.sampled_from(sorted(ALLOWED) + ["font", "size", "x"]))
    value = data.draw(json_scalars)
    assume_refused = name not in ALLOWED or (
        value is not None and not EDITOR.attributes[name].allows(value)
    )
    at = data.draw(st.integers(0, len(ops)))
    op = data.draw(st.sampled_from([{"insert": "z"}, {"retain": 1}]))
    ops.insert(at, {**op, "attributes": {name: value}})
    if not assume_refused:
        assert parse(ops).ops == parse(ops, schema=None).ops
        return
    with pytest.raises(DeltaError) as error:
        parse(ops)
    assert error.value.code == "bad_delta"
    assert str(error.value).startswith(f"op {at}: ")
    # Refused for that op alone: the rest parses.
    del ops[at]
    parse(ops)


@given(json_scalars)
def test_registered_values_are_exactly_the_listed_ones_or_pattern_matches(value):
    for name, rule in RAW["attributes"].items():
        listed = any(type(value) is type(v) and value == v for v in rule.get("values", []))
        if "pattern" in rule:
            continue
        assert EDITOR.attributes[name].allows(value) == listed
