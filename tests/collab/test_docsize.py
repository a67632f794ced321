"""The document size measure and its bound (collab/docsize.py)."""

from collab import docsize
from collab.ot import Delta


def test_size_counts_utf8_text_and_embed_json_but_not_formatting():
    document = Delta([
        {"insert": "ab", "attributes": {"bold": True}},
        {"insert": "é€😀"},
        {"insert": {"image": "x.png"}},
        {"insert": "\n"},
    ])  # fmt: skip
    assert docsize.measure(document) == 2 + (2 + 3 + 4) + len('{"image":"x.png"}') + 1


def test_an_edit_grows_a_document_by_at_most_what_it_inserts():
    document = Delta([{"insert": "hello world\n"}])
    edit = Delta([{"retain": 2}, {"delete": 3}, {"insert": "€€", "attributes": {"bold": True}}])
    after = edit.apply_to(document)
    assert docsize.inserted(edit) == 6
    assert docsize.measure(after) == docsize.measure(document) - 3 + 6


def test_check_measures_only_near_the_limit():
    document = Delta([{"insert": "0123456789\n"}])
    shrink = Delta([{"delete": 8}])
    smaller = shrink.apply_to(document)
    bound = docsize.check(11, shrink, smaller, 20)
    assert bound == 11  # a bound: the deletion is not measured
    grow = Delta([{"insert": "x" * 12}])
    after = grow.apply_to(smaller)
    assert docsize.check(bound, grow, after, 20) == 15  # 11 + 12 > 20: measured exactly
    assert docsize.check(15, grow, grow.apply_to(after), 20) is None


def test_size_bound_answers_for_its_content_and_measures_any_other():
    size = docsize.SizeBound()
    document = Delta([{"insert": "abc\n"}])
    assert size.of(document) == 4
    size.record(document, 100)
    assert size.of(document) == 100
    assert size.of(Delta([{"insert": "\n"}])) == 1
