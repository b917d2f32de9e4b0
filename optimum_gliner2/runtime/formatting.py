"""gliner2's public result payload, built from its raw decoded results.

Behaves as gliner2.inference.runtime.format_results (with format_entity_dict, format_struct and
the classification formatting). Raw results map a task name to:

- "entities": `[{label: spans}]`, a span being `(text, confidence, start, end)`, a dict or a
  plain string; a scalar-dtype label holds one span tuple, or `None`/`""`;
- a relation: a list of `(head, tail)` pairs or `{"head", "tail"}` dicts;
- a structure: a list of instances `{field: spans, a span tuple, a choice or nothing}`;
- a classification: `(label, score)`, a list of such pairs, or the JSON forms `[label, score]`.

The payload keeps confidences only if asked, drops duplicate spans and gathers every relation
under "relation_extraction".
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

RELATION_KEY = "relation_extraction"


def _is_score(value: Any) -> bool:
    # bool is an int subclass, but never a score.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _label_payload(label: Any, confidence: Any, include_confidence: bool) -> Any:
    return {"label": label, "confidence": confidence} if include_confidence else label


def _format_classification(value: Any, include_confidence: bool) -> Any:
    """Formats a single-label `(label, score)` or multi-label `[(label, score), ...]` result.

    A two-item list counts as a `[label, score]` pair only when the second item is a number:
    `["yes", "no"]` is a list of labels and is returned as it is, like any other shape.
    """
    if not isinstance(value, (list, tuple)) or not value:
        return value
    if isinstance(value[0], (list, tuple)):
        # Without confidences only each pair's label is read, so a 1-item "pair" passes.
        if include_confidence:
            return [{"label": pair[0], "confidence": pair[1]} for pair in value]
        return [pair[0] for pair in value]
    if len(value) == 2 and isinstance(value[0], str) and _is_score(value[1]):
        label, confidence = value
        return _label_payload(label, confidence, include_confidence)
    return value


def _format_spans(spans: Dict[Any, Any], include_confidence: bool) -> Dict[Any, Any]:
    """Formats an entity map or a structure instance: `{name: spans}`.

    A list of spans is deduplicated case-insensitively on (text, start, end), in order, and loses
    its empty texts; a span tuple becomes its text (with its confidence if asked); a dict span
    is kept as it is. Any other value is kept if truthy, else becomes `None`.
    """
    formatted: Dict[Any, Any] = {}
    for name, value in spans.items():
        if isinstance(value, list):
            formatted[name] = _unique_spans(value, include_confidence)
        elif isinstance(value, tuple):
            text, confidence, _, _ = value
            # An empty text stays bare even with include_confidence: deliberate, as gliner2.
            keep_confidence = include_confidence and text
            formatted[name] = {"text": text, "confidence": confidence} if keep_confidence else text
        else:
            formatted[name] = value or None
    return formatted


def _unique_spans(spans: List[Any], include_confidence: bool) -> List[Any]:
    # The seen-set is shared by all span forms, so a dict without offsets and a tuple with
    # (None, None) offsets are duplicates of each other, as in gliner2. A plain string is keyed
    # by its lower-cased self, which no tuple key equals.
    unique: List[Any] = []
    seen = set()
    for span in spans:
        if isinstance(span, tuple):
            text, confidence, start, end = span
            if not text:
                continue
            key: Any = (text.lower(), start, end)
            payload = {"text": text, "confidence": confidence} if include_confidence else text
        elif isinstance(span, dict):
            text = span.get("text", "")
            has_offsets = "start" in span and "end" in span
            offsets = (span["start"], span["end"]) if has_offsets else (None, None)
            # The key is built before the emptiness check, so a non-string text fails even when
            # it is falsy (None): deliberate, gliner2 raises there too.
            key = (text.lower(), *offsets)
            if not text:
                continue
            payload = span
        else:
            if not span:
                continue
            key = span.lower()
            payload = span
        if key not in seen:
            seen.add(key)
            unique.append(payload)
    return unique


def _is_relation(value: Any) -> bool:
    """Whether an unrequested result looks like a relation: by its first item's shape."""
    if not isinstance(value, list) or not value:
        return False
    first = value[0]
    if isinstance(first, tuple):
        return len(first) == 2
    return isinstance(first, dict) and "head" in first and "tail" in first


def format_results(
    results: Dict[str, Any],
    include_confidence: bool = False,
    requested_relations: Optional[List[str]] = None,
    classification_tasks: Optional[List[str]] = None,
) -> Dict[str, Any]:
    """Builds gliner2's public payload for one text from its raw results.

    Args:
        results (`Dict[str, Any]`):
            Raw results by task name (see the module docstring).
        include_confidence (`bool`, *optional*, defaults to `False`):
            Keep confidences: spans become `{"text", "confidence"}` and labels
            `{"label", "confidence"}`.
        requested_relations (`List[str]`, *optional*):
            Relation names asked for: each appears under "relation_extraction", empty if absent.
            Other list results are recognised as relations by their shape.
        classification_tasks (`List[str]`, *optional*):
            Names of the classification tasks.

    Returns:
        `Dict[str, Any]`: the payload, in the order of `results`, with "relation_extraction"
        last when there are relations (a "relation_extraction" entry of `results` itself keeps
        its place and is overwritten then, as in gliner2).

    Raises:
        ValueError: a span tuple has not 4 items or a non-relation tuple has not 2.
        AttributeError: a span's text is not a string.
    """
    requested_relations = requested_relations or []
    classification_tasks = classification_tasks or []
    formatted: Dict[str, Any] = {}
    relations: Dict[str, Any] = {}

    for key, value in results.items():
        if key in classification_tasks:
            formatted[key] = _format_classification(value, include_confidence)
        elif key in requested_relations or _is_relation(value):
            relations[key] = value if isinstance(value, list) else []
        elif isinstance(value, list):
            formatted[key] = _format_list(key, value, include_confidence)
        elif isinstance(value, tuple):
            label, confidence = value
            formatted[key] = _label_payload(label, confidence, include_confidence)
        elif isinstance(value, dict):
            formatted[key] = _format_spans(value, include_confidence)
        else:
            formatted[key] = value

    for name in requested_relations:
        relations.setdefault(name, [])
    if relations:
        formatted[RELATION_KEY] = relations
    return formatted


def _format_list(key: str, value: List[Any], include_confidence: bool) -> Any:
    if not value:
        return {} if key == "entities" else value
    first = value[0]
    if isinstance(first, dict):
        if key == "entities":
            # Entities arrive as a one-item list holding the label map.
            return _format_spans(first, include_confidence)
        return [_format_spans(instance, include_confidence) for instance in value]
    if isinstance(first, tuple):
        # Multi-label classification pairs. A list of 2-tuples was taken for a relation already,
        # so in practice this unpacking fails (ValueError), as in gliner2.
        return [_label_payload(label, score, include_confidence) for label, score in value]
    return value


__all__ = ["format_results"]
