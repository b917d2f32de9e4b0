"""optimum_gliner2.runtime.formatting builds gliner2's public payload exactly as
gliner2.inference.runtime.format_results does."""

from __future__ import annotations

import copy
import os

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from optimum_gliner2.runtime.formatting import format_results
from tests.support.parity import assert_identical

runtime = pytest.importorskip("gliner2.inference.runtime")

EXAMPLES = int(os.environ.get("HOST_FUZZ_EXAMPLES", "300"))
fuzz = settings(max_examples=EXAMPLES, derandomize=True, deadline=None)

# Few distinct texts, case variants and offsets, so that deduplication happens often.
texts = st.sampled_from(["Apple", "apple", "APPLE", "Tim Cook", "", "\u0130stanbul"])
scores = st.sampled_from([0.5, 0.9, 1, 0.0])
offsets = st.sampled_from([0, 3, 5, None])
span_tuples = st.tuples(texts, scores, offsets, offsets)
# Malformed spans: short or long tuples, texts that are not strings.
bad_spans = st.sampled_from(
    [("x", 0.5), ("x", 0.5, 1, 2, 3), (5, 0.5, 0, 1), (None, 0.5, 0, 1), 3, {"text": None}]
)


def span_dicts():
    optional = {"confidence": scores, "start": offsets, "end": offsets}
    optional["sentiment"] = st.just({"label": "pos"})
    return st.fixed_dictionaries({"text": texts}, optional=optional)


def span_lists(bad=False):
    forms = [span_tuples, span_dicts(), texts] + ([bad_spans] if bad else [])
    return st.lists(st.one_of(*forms), max_size=6)


def entity_results(bad):
    value = st.one_of(span_lists(bad), span_tuples, st.sampled_from([None, "", "Apple", [], 0]))
    label_map = st.dictionaries(st.sampled_from(["company", "person", "city"]), value, max_size=3)
    return st.one_of(st.lists(label_map, min_size=1, max_size=2), st.just([]), st.none(), label_map)


relation_dicts = st.fixed_dictionaries(
    {"head": texts, "tail": texts}, optional={"confidence": scores}
)
relation_values = st.one_of(
    st.lists(st.tuples(texts, texts), min_size=1, max_size=3),
    st.lists(relation_dicts, min_size=1, max_size=3),
    st.sampled_from([[], None, "oops"]),
)


def structure_results(bad):
    field = st.one_of(
        span_lists(bad),
        span_tuples,
        st.fixed_dictionaries({"text": texts, "confidence": scores}),  # a choice
        st.sampled_from([None, "", "free", 0, [], {}, 2.5]),
    )
    instance = st.dictionaries(st.sampled_from(["name", "price", "kind"]), field, max_size=3)
    return st.one_of(st.lists(instance, min_size=1, max_size=3), instance)


labels = st.sampled_from(["positive", "negative", "neutral"])
label_pairs = st.one_of(
    st.tuples(labels, scores), st.lists(labels | scores, min_size=2, max_size=2)
)
classification_values = st.one_of(
    st.tuples(labels, scores),
    st.lists(label_pairs, min_size=1, max_size=3),  # multi-label
    st.tuples(labels, scores).map(list),  # JSON [label, score]
    st.lists(labels, min_size=2, max_size=2),  # two labels, not a pair
    st.tuples(labels, st.booleans()).map(list),  # a bool is no score
    st.sampled_from([[], None, "positive", (), [["solo"]], [("solo",)]]),
)
other_values = st.sampled_from(
    [1, "text", True, None, "", [1, 2], ["a"], {}, ("a", 0.5), ("a", 0.5, 1), [("a", 1, 2)]]
)
KEYS = [
    "entities", "works_for", "lives_in", "product", "sentiment", "topics", "misc",
    "relation_extraction",
]


@st.composite
def raw_results(draw, bad=False):
    keys = draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=6))
    by_kind = {
        "entities": entity_results(bad),
        "works_for": relation_values,
        "lives_in": relation_values,
        "product": structure_results(bad),
        "sentiment": classification_values,
        "topics": classification_values,
        "misc": other_values,
        "relation_extraction": st.one_of(relation_values, other_values),
    }
    results = {}
    for key in keys:
        # Any key may hold any kind of value now and then (a relation named like a task, etc.).
        kind = draw(st.sampled_from([key] * 6 + KEYS))
        results[key] = draw(by_kind[kind])
    return results


name_lists = st.one_of(st.none(), st.lists(st.sampled_from(KEYS + ["absent"]), max_size=4))


def outcome(results, **options):
    try:
        return True, format_results(copy.deepcopy(results), **options)
    except Exception as error:  # noqa: BLE001 - the type is what is compared
        return False, type(error)


def reference_outcome(results, **options):
    try:
        return True, runtime.format_results(copy.deepcopy(results), **options)
    except Exception as error:  # noqa: BLE001
        return False, type(error)


def check(results, include_confidence, requested_relations, classification_tasks):
    options = dict(
        include_confidence=include_confidence,
        requested_relations=requested_relations,
        classification_tasks=classification_tasks,
    )
    ours, theirs = outcome(results, **options), reference_outcome(results, **options)
    event("formatted" if theirs[0] else f"raised {theirs[1].__name__}")
    assert ours[0] == theirs[0], (ours, theirs)
    if theirs[0]:
        assert_identical(ours[1], theirs[1])
    else:
        assert ours[1] is theirs[1]


format_options = st.fixed_dictionaries(
    {
        "include_confidence": st.booleans(),
        "requested_relations": name_lists,
        "classification_tasks": name_lists,
    }
)


@fuzz
@given(results=raw_results(), options=format_options)
def test_format_results_matches_gliner2(results, options):
    check(results, **options)


@fuzz
@given(results=raw_results(bad=True), options=format_options)
def test_format_results_fails_like_gliner2(results, options):
    # Malformed spans too (short tuples, non-string texts): the same exception types.
    check(results, **options)


# Documented behaviours, each checked against gliner2 as well.
def both(results, **options):
    ours = format_results(copy.deepcopy(results), **options)
    assert_identical(ours, runtime.format_results(copy.deepcopy(results), **options))
    return ours


def test_entities_are_deduplicated_case_insensitively_by_text_and_offsets():
    spans = [("Apple", 0.9, 0, 5), ("APPLE", 0.8, 0, 5), ("Apple", 0.7, 9, 14), ("", 0.9, 1, 2)]
    raw = {"entities": [{"company": spans}]}
    assert both(raw) == {"entities": {"company": ["Apple", "Apple"]}}
    with_confidence = both(raw, include_confidence=True)["entities"]["company"]
    assert with_confidence[1] == {"text": "Apple", "confidence": 0.7}


def test_relations_are_gathered_by_name_and_by_shape():
    works_for, lives_in = [("Tim", "Apple")], [{"head": "Tim", "tail": "Cupertino"}]
    raw = {"works_for": works_for, "lives_in": lives_in, "misc": 1}
    assert list(both(raw, requested_relations=["founded"]).items()) == [
        ("misc", 1),
        ("relation_extraction", {"works_for": works_for, "lives_in": lives_in, "founded": []}),
    ]


def test_classification_shapes():
    tasks = ["single", "multi", "json", "labels", "flag"]
    raw = {
        "single": ("positive", 0.9),
        "multi": [("a", 0.8), ("b", 0.6)],
        "json": ["positive", 0.9],
        "labels": ["yes", "no"],
        "flag": ["yes", True],
    }
    assert both(raw, classification_tasks=tasks) == {
        "single": "positive",
        "multi": ["a", "b"],
        "json": "positive",
        "labels": ["yes", "no"],
        "flag": ["yes", True],
    }
    with_confidence = both(raw, include_confidence=True, classification_tasks=tasks)
    assert with_confidence["json"] == {"label": "positive", "confidence": 0.9}


def test_unrequested_pairs_count_as_relations():
    # A list of (label, score) pairs outside classification_tasks looks like a relation: a gliner2
    # quirk reproduced on purpose.
    assert both({"topics": [("a", 0.8)]}) == {"relation_extraction": {"topics": [("a", 0.8)]}}


def test_structure_fields():
    choice = {"text": "outdoor", "confidence": 0.7}
    raw = {"product": [{"name": ("", 0.5, 0, 0), "price": None, "kind": choice}]}
    # An empty span text stays bare even with confidences; a choice dict passes unchanged.
    expected = {"product": [{"name": "", "price": None, "kind": choice}]}
    assert both(raw, include_confidence=True) == expected


def test_malformed_span_raises_like_gliner2():
    with pytest.raises(ValueError):
        runtime.format_results({"entities": [{"company": [("Apple", 0.9)]}]})
    with pytest.raises(ValueError):
        format_results({"entities": [{"company": [("Apple", 0.9)]}]})
    with pytest.raises(AttributeError):
        format_results({"entities": [{"company": [{"text": None}]}]})
