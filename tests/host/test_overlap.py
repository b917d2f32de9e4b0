"""optimum_gliner2.runtime.overlap selects and orders spans exactly as gliner2 does.

References: gliner2.inference.overlap (normalize_overlap_policy, resolve_overlaps) and
gliner2.inference.candidate_decoder.finalize_spans.
"""

from __future__ import annotations

import math
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optimum_gliner2.runtime.overlap import normalize_overlap_policy, resolve_overlaps, select_spans

reference = pytest.importorskip("gliner2.inference.overlap")
finalize_spans = pytest.importorskip("gliner2.inference.candidate_decoder").finalize_spans

EXAMPLES = int(os.environ.get("HOST_FUZZ_EXAMPLES", "300"))
fuzz = settings(max_examples=EXAMPLES, derandomize=True, deadline=None)

ALIASES = sorted(reference._ALIASES)
POLICY_SPELLINGS = ALIASES + [
    "Keep-Longest", " FLAT ", "No-Overlap", "ALLOW_NESTED\t", "Non_Overlapping"
]
POLICIES = st.sampled_from([None] + POLICY_SPELLINGS)

# Few distinct scores and boundaries, so that ties, duplicates, nesting and crossings are common;
# zero-length and reversed spans are accepted by gliner2 and compared too.
scores = st.one_of(
    st.sampled_from([0.0, 0.25, 0.5, 0.5, 0.75, 1.0]),
    st.floats(0, 1),
    st.integers(0, 2),
    st.just(0.1 + 0.2),
)
positions = st.integers(0, 9)


@st.composite
def raw_spans(draw, max_size=10, allow_reversed=True):
    spans = []
    for _ in range(draw(st.integers(0, max_size))):
        start = draw(positions)
        other_end = positions if allow_reversed else st.just(start)
        end = draw(st.one_of(st.integers(start, start + 5), other_end))
        spans.append((draw(st.sampled_from(["a", "b", "A"])), draw(scores), start, end))
    return spans


def outcome(function, *args, **kwargs):
    """(True, result) or (False, exception type)."""
    try:
        return True, function(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - the type is what is compared
        return False, type(error)


def identities(selected, items):
    """Input positions of the selected objects (items are distinct objects)."""
    position = {id(item): index for index, item in enumerate(items)}
    return [position[id(item)] for item in selected]


def resolve_both(items, policy, default=None):
    accessors = dict(score=lambda s: s[1], start=lambda s: s[2], end=lambda s: s[3])
    ours = outcome(resolve_overlaps, items, policy, default=default, **accessors)
    theirs = outcome(reference.resolve_overlaps, items, policy, default=default, **accessors)
    return ours, theirs


DEFAULTS = st.sampled_from([None, "allow", "disallow", "bogus"])


@fuzz
@given(spans=raw_spans(), policy=POLICIES, default=DEFAULTS)
def test_resolve_overlaps_matches_gliner2(spans, policy, default):
    items = [list(span) for span in spans]  # distinct objects, to compare by identity
    (ours_ok, ours), (theirs_ok, theirs) = resolve_both(items, policy, default)
    assert ours_ok == theirs_ok
    if theirs_ok:
        assert identities(ours, items) == identities(theirs, items)
    else:
        assert ours is theirs


@fuzz
@given(spans=raw_spans(max_size=14, allow_reversed=False), policy=st.sampled_from(ALIASES))
def test_resolve_overlaps_matches_gliner2_on_many_ties(spans, policy):
    # Scores 0/1 only: totals in the "disallow" program tie all the time.
    items = [[text, float(score >= 0.5), start, end] for text, score, start, end in spans]
    (_, ours), (_, theirs) = resolve_both(items, policy)
    assert identities(ours, items) == identities(theirs, items)


@fuzz
@given(
    spans=raw_spans(max_size=8),
    policy=st.sampled_from(ALIASES),
    odd_scores=st.lists(
        st.sampled_from([math.nan, math.inf, -math.inf, -0.5]), min_size=1, max_size=3
    ),
)
def test_resolve_overlaps_matches_gliner2_on_non_finite_scores(spans, policy, odd_scores):
    items = [list(span) for span in spans]
    for index, value in zip(range(0, len(items), 2), odd_scores):
        items[index][1] = value
    (_, ours), (_, theirs) = resolve_both(items, policy)
    assert identities(ours, items) == identities(theirs, items)


@fuzz
@given(spans=raw_spans(), policy=POLICIES, dtype=st.sampled_from(["list", "str", "LIST"]))
def test_select_spans_matches_finalize_spans(spans, policy, dtype):
    items = [tuple(span) for span in spans]
    ours = select_spans(items, dtype=dtype, overlap_policy=policy)
    theirs = finalize_spans(items, dtype=dtype, overlap_policy=policy)
    assert identities(ours, items) == identities(theirs, items)
    assert ours == theirs


@fuzz
@given(
    policy=st.one_of(
        st.sampled_from(POLICY_SPELLINGS),
        st.text(alphabet="allowNESTEDflat_- \tdisg", max_size=12),
        st.sampled_from([None, 0, 1.5, b"allow", ["allow"], True]),
    ),
    default=st.sampled_from([None, "flat", "nope", 3]),
)
def test_normalize_matches_gliner2(policy, default):
    ours = outcome(normalize_overlap_policy, policy, default=default)
    theirs = outcome(reference.normalize_overlap_policy, policy, default=default)
    assert ours == theirs


def test_unknown_policy_message():
    with pytest.raises(ValueError, match="unknown overlap_policy 'overlapping'"):
        normalize_overlap_policy("overlapping")
    with pytest.raises(ValueError):
        normalize_overlap_policy(None)
    with pytest.raises(TypeError):
        normalize_overlap_policy(1)


def test_invalid_policy_raises_even_without_items():
    with pytest.raises(ValueError):
        resolve_overlaps([], "bogus", score=float, start=int, end=int)
    assert resolve_overlaps([], "flat", score=float, start=int, end=int) == []


# Documented behaviours, each checked against gliner2 as well.
SPAN = dict(score=lambda s: s[1], start=lambda s: s[2], end=lambda s: s[3])


def both_resolve(items, policy):
    ours = resolve_overlaps(items, policy, **SPAN)
    assert ours == reference.resolve_overlaps(items, policy, **SPAN)
    return ours


def test_exact_duplicates_keep_the_best_ranked():
    items = [("x", 0.5, 1, 3), ("y", 0.9, 1, 3), ("z", 0.9, 1, 3)]
    assert both_resolve(items, "allow") == [("y", 0.9, 1, 3)]


def test_rank_is_score_then_start_then_end():
    items = [("c", 0.5, 4, 6), ("b", 0.5, 2, 9), ("a", 0.5, 2, 5), ("d", 0.7, 8, 9)]
    assert [s[0] for s in both_resolve(items, "allow")] == ["d", "a", "b", "c"]


def test_nested_rejects_only_crossings():
    items = [
        ("outer", 0.9, 0, 10), ("inner", 0.8, 2, 4), ("cross", 0.95, 8, 12), ("touch", 0.1, 10, 12)
    ]
    # "cross" ranks first, so "outer" (crossing it) goes and "inner" stays.
    assert [s[0] for s in both_resolve(items, "nested")] == ["cross", "inner", "touch"]


def test_longest_drops_strictly_contained_even_if_better_scored():
    items = [
        ("short", 0.99, 2, 4), ("long", 0.1, 0, 10), ("tail", 0.5, 4, 10), ("apart", 0.3, 11, 12)
    ]
    assert [s[0] for s in both_resolve(items, "longest")] == ["apart", "long"]


def test_disallow_maximizes_the_total_score():
    items = [("big", 0.9, 0, 10), ("left", 0.6, 0, 5), ("right", 0.6, 5, 10)]
    assert [s[0] for s in both_resolve(items, "flat")] == ["left", "right"]


def test_disallow_prefers_more_spans_on_equal_totals():
    # Spans without confidence score 0 in chunk merging; they are still kept.
    items = [("a", 0.0, 0, 2), ("b", 0.0, 2, 4), ("c", 0.0, 1, 3)]
    assert [s[0] for s in both_resolve(items, "disallow")] == ["a", "b"]


def test_disallow_breaks_remaining_ties_by_rank():
    items = [("late", 0.5, 3, 6), ("early", 0.5, 1, 4)]
    assert [s[0] for s in both_resolve(items, "disallow")] == ["early"]


def test_select_spans_default_is_confidence_first_greedy():
    spans = [("a", 0.5, 0, 4), ("b", 0.9, 3, 6), ("c", 0.5, 6, 8), ("d", 0.5, 5, 7)]
    ours = select_spans(spans)
    assert ours == finalize_spans(spans) == [("b", 0.9, 3, 6), ("c", 0.5, 6, 8)]
    first_only = select_spans(spans, dtype="str")
    assert first_only == finalize_spans(spans, dtype="str") == [("b", 0.9, 3, 6)]
    assert select_spans([], dtype="str") == []
