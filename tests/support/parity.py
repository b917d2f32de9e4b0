"""Compare extraction results: structure, types and text exactly; floats within a tolerance."""

from __future__ import annotations

from typing import Any, List, Mapping, Optional


def first_difference(
    expected: Any, actual: Any, atol: float = 1e-4, path: str = "$"
) -> Optional[str]:
    """Where `actual` first differs from `expected`, or None when they match.

    Mappings must have the same keys in the same order, sequences the same type and length,
    floats must be within `atol` (and both be Python floats, so numpy scalars do not leak into
    results); everything else must be equal and of the same type. gliner2 ranks spans by
    confidence, so a list may order two items differently only when their confidences are
    within `atol` of each other (a tie that float rounding breaks either way).

    Returns:
        "path: description" of the first difference, e.g. `$[0].entities.person[1].text: ...`.
    """
    if isinstance(expected, Mapping) or isinstance(actual, Mapping):
        if not (isinstance(expected, Mapping) and isinstance(actual, Mapping)):
            return f"{path}: expected {type(expected).__name__}, got {type(actual).__name__}"
        if list(expected) != list(actual):
            return f"{path}: keys {list(expected)} != {list(actual)}"
        for key in expected:
            difference = first_difference(expected[key], actual[key], atol, f"{path}.{key}")
            if difference:
                return difference
        return None
    if type(expected) is not type(actual):
        return (
            f"{path}: expected {type(expected).__name__} {expected!r}, "
            f"got {type(actual).__name__} {actual!r}"
        )
    if isinstance(expected, (list, tuple)):
        if len(expected) != len(actual):
            return f"{path}: length {len(expected)} != {len(actual)}: {expected!r} vs {actual!r}"
        for index, (left, right) in enumerate(zip(expected, actual)):
            difference = first_difference(left, right, atol, f"{path}[{index}]")
            if difference:
                return None if _reordered_within_ties(expected, actual, atol) else difference
        return None
    if isinstance(expected, float):
        if abs(expected - actual) > atol:
            return f"{path}: {expected!r} != {actual!r} (atol {atol})"
        return None
    if expected != actual:
        return f"{path}: {expected!r} != {actual!r}"
    return None


def _confidence(item: Any) -> Optional[float]:
    """The ranking confidence of a result item: `{"confidence": c, ...}` or `(label, c)`."""
    if isinstance(item, Mapping):
        confidence = item.get("confidence")
    elif isinstance(item, (list, tuple)) and len(item) == 2:
        confidence = item[1]
    else:
        return None
    return confidence if isinstance(confidence, float) else None


def _reordered_within_ties(expected: List[Any], actual: List[Any], atol: float) -> bool:
    """Whether `actual` holds `expected`'s items, moved only past items of near-equal confidence."""
    unmatched = list(range(len(actual)))
    for item in expected:
        confidence = _confidence(item)
        if confidence is None:
            return False
        match = next(
            (n for n, j in enumerate(unmatched) if first_difference(item, actual[j], atol) is None),
            None,
        )
        if match is None:
            return False
        for passed in unmatched[:match]:
            other = _confidence(actual[passed])
            if other is None or abs(other - confidence) > atol:
                return False
        del unmatched[match]
    return True


def assert_same_results(expected: Any, actual: Any, atol: float = 1e-4, context: str = "") -> None:
    """Fail with the path of the first difference (see `first_difference`)."""
    difference = first_difference(expected, actual, atol)
    assert difference is None, f"{context}: {difference}" if context else difference


def assert_identical(ours: Any, theirs: Any, path: str = "result") -> None:
    """Equal values of equal types, mapping keys in the same order, recursively (no tolerance).

    For host logic that must reproduce gliner2 exactly, where `first_difference`'s float tolerance
    and tie reordering would hide a real difference.
    """
    assert type(ours) is type(theirs), f"{path}: {type(ours).__name__} != {type(theirs).__name__}"
    if isinstance(theirs, Mapping):
        assert list(ours) == list(theirs), f"{path}: keys {list(ours)} != {list(theirs)}"
        for key in theirs:
            assert_identical(ours[key], theirs[key], f"{path}[{key!r}]")
    elif isinstance(theirs, (list, tuple)):
        assert len(ours) == len(theirs), f"{path}: length {len(ours)} != {len(theirs)}"
        for index, (mine, other) in enumerate(zip(ours, theirs)):
            assert_identical(mine, other, f"{path}[{index}]")
    else:
        assert ours == theirs, f"{path}: {ours!r} != {theirs!r}"


def strings_in(result: Any) -> List[str]:
    """Every non-empty string of a result, depth first: what a non-triviality check counts (gliner2
    marks a missing str entity with "", which is no answer)."""
    if isinstance(result, Mapping):
        return [text for value in result.values() for text in strings_in(value)]
    if isinstance(result, (list, tuple)):
        return [text for value in result for text in strings_in(value)]
    return [result] if isinstance(result, str) and result else []
