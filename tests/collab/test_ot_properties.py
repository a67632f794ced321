"""Algebraic properties of collab.ot checked with hypothesis.

Documents mix formatted runs, embeds, emoji, combining marks and CJK; edits
are made against a given document and cut it only between characters, as
the browser does.  The "ot" profile sets the number of examples per property
(OT_EXAMPLES overrides it; the default keeps the whole OT suite well under a
minute on two cores).
"""

import json
import os
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collab.ot import Delta, parse_delta, utf16_len

settings.register_profile(
    "ot",
    max_examples=int(os.environ.get("OT_EXAMPLES", "3000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
OT = settings.get_profile("ot")

ATOMS = ["a", "b", " ", "\n", "é", "e\u0301", "漢", "字", "😀", "👍🏽", "𝒳"]
EMBEDS = [{"image": "x.png"}, {"video": "v.mp4"}]
FORMATS = {"bold": [True], "italic": [True], "color": ["red", "blue"], "header": [1, 2]}


class Maker:
    """Builds random documents and edits from a seed.

    Hypothesis draws only the seed and the sizes: drawing every character
    through hypothesis costs ten times more, and small sizes still shrink
    failures to short examples.
    """

    def __init__(self, seed: int, runs: int, steps: int):
        self.rng = random.Random(seed)
        self.runs = runs
        self.steps = steps

    def formats(self, nulls: bool) -> dict | None:
        rng = self.rng
        out = {}
        for key, values in FORMATS.items():
            if rng.random() < 0.3:
                out[key] = None if nulls and rng.random() < 0.35 else rng.choice(values)
        return out or None

    def content(self):
        if self.rng.random() < 0.15:
            return dict(self.rng.choice(EMBEDS))
        return "".join(self.rng.choice(ATOMS) for _ in range(self.rng.randint(1, 6)))

    def document(self) -> Delta:
        doc = Delta()
        for _ in range(self.rng.randint(0, self.runs)):
            doc.insert(self.content(), self.formats(nulls=False))
        return doc

    def edit(self, doc: Delta) -> Delta:
        """A random edit of ``doc`` whose cuts all fall between characters."""
        rng = self.rng
        points = boundaries(doc)
        last = len(points) - 1
        edit = Delta()
        at = 0
        for _ in range(rng.randint(0, self.steps)):
            kind = rng.random()
            if kind < 0.35 or at == last:
                edit.insert(self.content(), self.formats(nulls=False))
                continue
            to = rng.randint(at + 1, min(at + 5, last))
            span = points[to] - points[at]
            if kind < 0.7:
                edit.retain(span, self.formats(nulls=True))
            else:
                edit.delete(span)
            at = to
        return edit


makers = st.builds(
    Maker, seed=st.integers(0, 2**64), runs=st.integers(0, 8), steps=st.integers(0, 8)
)


def boundaries(doc: Delta) -> list:
    """Code-unit positions of a document that fall between characters."""
    points = [0]
    for op in doc.ops:
        ins = op["insert"]
        for ch in ins if type(ins) is str else "\0":
            points.append(points[-1] + utf16_len(ch))
    return points


@OT
@given(makers)
def test_concurrent_edits_converge(make):
    doc = make.document()
    a, b = make.edit(doc), make.edit(doc)
    left = doc.compose(a).compose(a.transform(b, True))
    right = doc.compose(b).compose(b.transform(a, False))
    assert left == right


@OT
@given(makers)
def test_compose_is_associative(make):
    doc = make.document()
    a = make.edit(doc)
    b = make.edit(doc.compose(a))
    c = make.edit(doc.compose(a).compose(b))
    assert doc.compose(a).compose(b) == doc.compose(a.compose(b))
    assert a.compose(b).compose(c) == a.compose(b.compose(c))


@OT
@given(makers)
def test_invert_undoes(make):
    doc = make.document()
    edit = make.edit(doc)
    assert doc.compose(edit).compose(edit.invert(doc)) == doc


@OT
@given(makers, st.booleans())
def test_transform_position_agrees_with_transform(make, priority):
    doc = make.document()
    edit = make.edit(doc)
    for at in boundaries(doc):
        marker = Delta().retain(at).insert("|")
        moved = edit.transform(marker, not priority)
        first = moved.ops[0]
        where = first["retain"] if "retain" in first else 0
        assert edit.transform_position(at, priority) == where


@OT
@given(makers)
def test_diff_turns_one_document_into_the_other(make):
    a = make.document()
    b = make.document() if make.rng.random() < 0.5 else a.compose(make.edit(a))
    assert a.compose(a.diff(b)) == b


@OT
@given(makers)
def test_apply_to_matches_compose_and_survives_json(make):
    doc = make.document()
    edit = make.edit(doc)
    wire = json.loads(json.dumps(edit.to_json()))
    result = parse_delta(wire).apply_to(doc)
    assert result == doc.compose(edit)
    assert result.is_document()
    stored = parse_delta(json.loads(json.dumps(result.to_json(), ensure_ascii=False)))
    assert stored == result
    assert stored.text() == result.text()
    assert stored.length() == utf16_len(result.text()) + sum(
        1 for op in result.ops if type(op["insert"]) is dict
    )
