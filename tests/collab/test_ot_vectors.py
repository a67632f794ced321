"""Replays the vectors that tests/collab/vectors/generate.mjs recorded from quill-delta 5.1.0.

Every result must equal quill-delta's op for op.  Op lists are compared as
canonical JSON so that ``True`` and ``1`` (equal in Python, not in JavaScript)
count as different.  Node is not needed: the vectors are committed.
"""

import copy
import json
from pathlib import Path

import pytest

from collab.ot import Delta, DeltaError

VECTORS = Path(__file__).parent / "vectors"
HAND = json.loads((VECTORS / "handwritten.json").read_text(encoding="utf-8"))
RANDOM = json.loads((VECTORS / "random.json").read_text(encoding="utf-8"))


def canon(ops) -> str:
    if isinstance(ops, Delta):
        ops = ops.ops
    return json.dumps(ops, sort_keys=True, ensure_ascii=False)


def same(actual, expected) -> None:
    assert canon(actual) == canon(expected)


def hand(kind):
    return pytest.mark.parametrize("case", HAND[kind], ids=[c["name"] for c in HAND[kind]])


def test_vectors_come_from_the_pinned_library():
    assert HAND["generator"] == "quill-delta 5.1.0"
    assert RANDOM["generator"] == "quill-delta 5.1.0"
    assert len(RANDOM["cases"]) >= 2000


@hand("builder")
def test_builder(case):
    delta = Delta()
    for method, *args in case["steps"]:
        getattr(delta, method)(*args)
    same(delta, case["expected"])


@hand("compose")
def test_compose(case):
    a, b = Delta(case["a"]), Delta(case["b"])
    same(a.compose(b), case["expected"])
    same(a, case["a"])
    same(b, case["b"])


@hand("transform")
def test_transform(case):
    a, b = Delta(case["a"]), Delta(case["b"])
    same(a.transform(b, case["priority"]), case["expected"])


@hand("transform_position")
def test_transform_position(case):
    delta = Delta(case["delta"])
    assert delta.transform_position(case["index"], case["priority"]) == case["expected"]


@hand("invert")
def test_invert(case):
    delta, base = Delta(case["delta"]), Delta(case["base"])
    inverted = delta.invert(base)
    same(inverted, case["expected"])
    same(base.compose(delta).compose(inverted), base)


@hand("diff")
def test_diff(case):
    a, b = Delta(case["a"]), Delta(case["b"])
    same(a.compose(a.diff(b)), b)
    same(a.compose(Delta(case["expected"])), b)


def test_diff_of_same_ops_is_empty():
    doc = Delta().insert("A").insert("B", {"bold": True})
    assert doc.diff(doc).ops == []


@hand("diff_errors")
def test_diff_rejects_non_documents(case):
    with pytest.raises(DeltaError) as err:
        Delta(case["a"]).diff(Delta(case["b"]))
    assert err.value.code == "not_document"


@hand("slice")
def test_slice(case):
    delta = Delta(case["delta"])
    same(delta.slice(case["start"], case["end"]), case["expected"])


@hand("concat")
def test_concat(case):
    a, b = Delta(case["a"]), Delta(case["b"])
    same(a.concat(b), case["expected"])
    same(a, case["a"])


@hand("length")
def test_length(case):
    assert Delta(case["delta"]).length() == case["expected"]


@hand("change_length")
def test_change_length(case):
    assert Delta(case["delta"]).change_length() == case["expected"]


def _chunks(items, size):
    return [items[i : i + size] for i in range(0, len(items), size)]


@pytest.mark.parametrize("batch", range(len(_chunks(RANDOM["cases"], 250))))
def test_random_cases(batch):
    for case in _chunks(RANDOM["cases"], 250)[batch]:
        before = copy.deepcopy(case)
        doc, a, b, c = (Delta(case[k]) for k in ("doc", "a", "b", "c"))
        same(doc.compose(a), case["doc_a"])
        same(a.compose(c), case["a_c"])
        same(a.transform(b, True), case["a_t_b"])
        same(a.transform(b, False), case["a_t_b_low"])
        assert [a.transform_position(p, True) for p in case["positions"]] == case["a_pos"]
        assert [a.transform_position(p, False) for p in case["positions"]] == case["a_pos_low"]
        same(a.invert(doc), case["a_inv"])
        other = Delta(case["other"] if case["other"] is not None else case["doc_a"])
        same(doc.compose(doc.diff(other)), other)
        same(doc.compose(Delta(case["diff"])), other)
        start, end, expected = case["slice"]
        same(doc.slice(start, end), expected)
        if case["a_concat_c"] is not None:
            same(a.concat(c), case["a_concat_c"])
        assert [a.length(), a.change_length()] == case["lengths"]
        assert case == before, "inputs were modified"


@pytest.mark.parametrize("chain", RANDOM["chains"], ids=range(len(RANDOM["chains"])))
def test_chained_composes_reuse_the_index(chain):
    doc = Delta(chain["doc"])
    for edit in chain["edits"]:
        doc = doc.compose(Delta(edit))
        # A fresh delta rebuilds its index from scratch; both must agree.
        assert doc.length() == Delta(doc.ops).length()
        assert doc.is_document() == Delta(doc.ops).is_document()
    same(doc, chain["expected"])
