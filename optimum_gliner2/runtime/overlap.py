"""Choosing among overlapping scored spans, with gliner2's exact selection and order.

Spans are half-open `[start, end)`. Four policies (gliner2.inference.overlap), each applied after
spans with identical boundaries are collapsed to their best-ranked one:

- "allow": keep every distinct span;
- "nested": keep a span unless it crosses (overlaps without containing or being contained by) a
  better-ranked span already kept;
- "disallow": the non-overlapping set with the highest total score;
- "longest": drop every span strictly inside another span.

"Rank" is always: higher score first, then smaller start, smaller end, earlier input position.
`select_spans` adds the span model's own default (no policy given): a greedy pass that keeps the
most confident spans that do not overlap an already kept one.
"""

from __future__ import annotations

import bisect
from operator import itemgetter
from typing import (
    Callable,
    List,
    NamedTuple,
    Optional,
    Sequence,
    SupportsFloat,
    SupportsInt,
    Tuple,
    TypeVar,
)

T = TypeVar("T")

#: (text, confidence, char_start, char_end), a decoded span.
ScoredSpan = Tuple[str, float, int, int]

_CANONICAL_BY_ALIAS = {
    alias: canonical
    for canonical, aliases in {
        "allow": ("allow", "all", "none"),
        "nested": ("nested", "allow_nested"),
        "disallow": ("disallow", "flat", "no_overlap", "non_overlapping"),
        "longest": ("longest", "keep_longest"),
    }.items()
    for alias in aliases
}


def normalize_overlap_policy(policy: Optional[str], *, default: Optional[str] = None) -> str:
    """Maps an overlap policy or one of its aliases to its canonical name.

    Matching ignores case and surrounding spaces, and treats "-" as "_".

    Args:
        policy (`str`, *optional*):
            The policy asked for; `None` stands for `default`.
        default (`str`, *optional*):
            The caller's own default. There is deliberately no global one: without it, `None` is
            an error.

    Returns:
        `str`: "allow", "nested", "disallow" or "longest".

    Raises:
        ValueError: the policy is `None` with no default, or is not a known name.
        TypeError: the policy is neither a string nor `None`.
    """
    chosen = default if policy is None else policy
    if chosen is None:
        raise ValueError("overlap_policy is None and no default policy was given")
    if not isinstance(chosen, str):
        raise TypeError(f"overlap_policy must be a string or None, not {type(chosen).__name__}")
    canonical = _CANONICAL_BY_ALIAS.get(chosen.strip().lower().replace("-", "_"))
    if canonical is None:
        raise ValueError(
            f"unknown overlap_policy {chosen!r}; use allow, nested, disallow (or flat) or longest"
        )
    return canonical


class _Candidate(NamedTuple):
    position: int  # in the caller's sequence: the last tie-breaker
    score: float
    start: int
    end: int
    item: object

    def rank(self) -> tuple:
        # Built afresh on each call rather than stored: with NaN scores, comparing the same tuple
        # object or two fresh copies can differ, and gliner2 always compares fresh copies.
        return (-self.score, self.start, self.end, self.position)


def _overlap(a: _Candidate, b: _Candidate) -> bool:
    return a.start < b.end and b.start < a.end


def _one_holds_the_other(a: _Candidate, b: _Candidate) -> bool:
    return (a.start <= b.start and b.end <= a.end) or (b.start <= a.start and a.end <= b.end)


def _strictly_inside(inner: _Candidate, outer: _Candidate) -> bool:
    return (
        outer.start <= inner.start
        and inner.end <= outer.end
        and (outer.start < inner.start or inner.end < outer.end)
    )


def _keep_nested(ranked: List[_Candidate]) -> List[_Candidate]:
    kept: List[_Candidate] = []
    for candidate in ranked:
        if not any(_overlap(candidate, k) and not _one_holds_the_other(candidate, k) for k in kept):
            kept.append(candidate)
    return kept


def _keep_longest(ranked: List[_Candidate]) -> List[_Candidate]:
    return [c for c in ranked if not any(_strictly_inside(c, other) for other in ranked)]


class _Chosen(NamedTuple):
    """A subset of `by_end` indices as a persistent linked list: its last index, the subset before
    it, and its size. Extending a subset shares the rest instead of copying it, so the dynamic
    program below holds O(n) nodes rather than O(n^2) indices (a 100k-word document merges tens of
    thousands of spans: copied tuples took gigabytes and quadratic time)."""

    last: int
    rest: Optional["_Chosen"]
    size: int


def _chosen_indices(chosen: Optional[_Chosen]) -> List[int]:
    """The subset's indices in ascending order, the order they were chosen in: sorting by rank
    must see them in that order, since with NaN scores the outcome of a sort depends on it."""
    indices: List[int] = []
    while chosen is not None:
        indices.append(chosen.last)
        chosen = chosen.rest
    indices.reverse()
    return indices


def _best_disjoint_set(ranked: List[_Candidate]) -> List[_Candidate]:
    """Weighted interval scheduling: the non-overlapping subset with the highest total score.

    Ties between equal totals go to the larger subset (chunk merging scores spans without a
    confidence as 0, and those should still be kept), then to the subset whose members, in rank
    order, rank better.
    """
    by_end = sorted(ranked, key=lambda c: (c.end, c.start, -c.score, c.position))
    ends = [c.end for c in by_end]

    def rank_signature(chosen: Optional[_Chosen]) -> tuple:
        return tuple(sorted(by_end[i].rank() for i in _chosen_indices(chosen)))

    def size(chosen: Optional[_Chosen]) -> int:
        return 0 if chosen is None else chosen.size

    # totals[k] / subsets[k]: the best answer using only the first k spans of `by_end`. The totals
    # are accumulated in this exact order so that float sums round as gliner2's do.
    totals: List[float] = [0.0]
    subsets: List[Optional[_Chosen]] = [None]
    for index, candidate in enumerate(by_end):
        # Spans before this one that end at or before its start can all precede it.
        compatible = bisect.bisect_right(ends, candidate.start, 0, index)
        taken_total = totals[compatible] + candidate.score
        taken = _Chosen(index, subsets[compatible], size(subsets[compatible]) + 1)
        skipped_total, skipped = totals[index], subsets[index]
        if taken_total > skipped_total:
            take = True
        elif taken_total < skipped_total:
            take = False
        elif taken.size != size(skipped):
            take = taken.size > size(skipped)
        else:
            take = rank_signature(taken) < rank_signature(skipped)
        totals.append(taken_total if take else skipped_total)
        subsets.append(taken if take else skipped)
    return sorted((by_end[i] for i in _chosen_indices(subsets[-1])), key=_Candidate.rank)


def resolve_overlaps(
    items: Sequence[T],
    policy: Optional[str],
    *,
    score: Callable[[T], SupportsFloat],
    start: Callable[[T], SupportsInt],
    end: Callable[[T], SupportsInt],
    default: Optional[str] = None,
) -> List[T]:
    """Applies an overlap policy to scored half-open spans.

    Args:
        items (`Sequence`):
            The spans, of any type: `score`, `start` and `end` read them.
        policy (`str`, *optional*):
            An overlap policy or alias (see `normalize_overlap_policy`); `None` means `default`.
        score, start, end (`Callable`):
            Read an item's score and its boundaries; `float()` and `int()` are applied to what
            they return.
        default (`str`, *optional*):
            The policy used when `policy` is `None`.

    Returns:
        `List`: the kept items, best rank first (score descending, then start, end and input
        position ascending).

    Raises:
        ValueError, TypeError: as `normalize_overlap_policy`, even when `items` is empty.
    """
    canonical = normalize_overlap_policy(policy, default=default)
    candidates = [
        _Candidate(position, float(score(item)), int(start(item)), int(end(item)), item)
        for position, item in enumerate(items)
    ]
    ranked: List[_Candidate] = []
    seen_boundaries = set()
    for candidate in sorted(candidates, key=_Candidate.rank):
        if (candidate.start, candidate.end) not in seen_boundaries:
            seen_boundaries.add((candidate.start, candidate.end))
            ranked.append(candidate)

    if canonical == "nested":
        ranked = _keep_nested(ranked)
    elif canonical == "longest":
        ranked = _keep_longest(ranked)
    elif canonical == "disallow":
        ranked = _best_disjoint_set(ranked)
    return [candidate.item for candidate in ranked]


def select_spans(
    spans: Sequence[ScoredSpan], *, dtype: str = "list", overlap_policy: Optional[str] = None
) -> List[ScoredSpan]:
    """The spans a span-model entity or field keeps, as gliner2's `finalize_spans` chooses them.

    Args:
        spans (`Sequence[ScoredSpan]`):
            `(text, confidence, char_start, char_end)` spans above the threshold.
        dtype (`str`, *optional*, defaults to `"list"`):
            `"list"` keeps every selected span; anything else keeps only the first.
        overlap_policy (`str`, *optional*):
            `None` keeps gliner2's span-model default: the most confident span first, then each
            next one that overlaps none kept so far (ties in order of `spans`). Otherwise an
            overlap policy for `resolve_overlaps`.

    Returns:
        `List[ScoredSpan]`: the selected spans, best first.

    Raises:
        ValueError, TypeError: for an invalid `overlap_policy`.
    """
    if overlap_policy is None:
        kept: List[ScoredSpan] = []
        for span in sorted(spans, key=lambda span: span[1], reverse=True):
            if not any(span[2] < other[3] and other[2] < span[3] for other in kept):
                kept.append(span)
    else:
        kept = resolve_overlaps(
            spans, overlap_policy, score=itemgetter(1), start=itemgetter(2), end=itemgetter(3)
        )
    return kept if dtype == "list" else kept[:1]


__all__ = ["ScoredSpan", "normalize_overlap_policy", "resolve_overlaps", "select_spans"]
