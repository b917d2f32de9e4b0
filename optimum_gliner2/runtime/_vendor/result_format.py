# Vendored from gliner2 2.1.0 (Apache-2.0), gliner2/inference/runtime.py.
# Why: these module-level functions build gliner2's public result payload; runtime.py imports torch.
# Changes: only the torch-free formatting functions (_is_score, _format_classification,
# format_results, format_entity_dict, format_struct), copied in order; the extractor mixin is not.
# tests/test_vendored_gliner2.py pins this copy to the installed original.

"""gliner2's public result formatting."""

from __future__ import annotations

from typing import Any, Dict, List, Optional


def _is_score(value: object) -> bool:
    """True for a confidence scalar, excluding bools."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _format_classification(value: object, include_confidence: bool) -> object:
    """Format a single- or multi-label classification, including JSON lists.

    Args:
        value: ``(label, score)``, JSON ``[label, score]``, or a list of pairs.
        include_confidence: When True, keep scores on the public payload.

    Returns:
        A label, a ``{label, confidence}`` dict, or a list of those.
    """
    if isinstance(value, (list, tuple)) and value:
        first = value[0]
        if isinstance(first, (list, tuple)):
            if include_confidence:
                return [{"label": item[0], "confidence": item[1]} for item in value]
            return [item[0] for item in value]
        # A pair is only a (label, score) if the score is numeric; a
        # two-label list stays a list.
        if len(value) == 2 and isinstance(first, str) and _is_score(value[1]):
            label, conf = value
            return {"label": label, "confidence": conf} if include_confidence else label
    return value


def format_results(
    results: Dict,
    include_confidence: bool = False,
    requested_relations: Optional[List[str]] = None,
    classification_tasks: Optional[List[str]] = None,
) -> Dict[str, Any]:
    """Format extraction results into the public AutoExtractor payload."""
    formatted = {}
    relations = {}
    requested_relations = requested_relations or []
    classification_tasks = classification_tasks or []

    for key, value in results.items():
        is_classification = key in classification_tasks
        is_relation = False

        if not is_classification:
            if key in requested_relations:
                is_relation = True
            elif isinstance(value, list) and len(value) > 0:
                if isinstance(value[0], tuple) and len(value[0]) == 2:
                    is_relation = True
                elif isinstance(value[0], dict) and "head" in value[0] and "tail" in value[0]:
                    is_relation = True

        if is_classification:
            formatted[key] = _format_classification(value, include_confidence)
        elif is_relation:
            relations[key] = value if isinstance(value, list) else []
        elif isinstance(value, list):
            if len(value) == 0:
                formatted[key] = {} if key == "entities" else value
            elif isinstance(value[0], dict):
                if key == "entities":
                    formatted[key] = format_entity_dict(value[0], include_confidence)
                else:
                    formatted[key] = [format_struct(v, include_confidence) for v in value]
            elif isinstance(value[0], tuple):
                if include_confidence:
                    formatted[key] = [{"label": l, "confidence": c} for l, c in value]
                else:
                    formatted[key] = [l for l, _ in value]
            else:
                formatted[key] = value
        elif isinstance(value, tuple):
            label, conf = value
            formatted[key] = {"label": label, "confidence": conf} if include_confidence else label
        elif isinstance(value, dict):
            formatted[key] = format_struct(value, include_confidence)
        else:
            formatted[key] = value

    for rel in requested_relations:
        if rel not in relations:
            relations[rel] = []

    if relations:
        formatted["relation_extraction"] = relations

    return formatted


def format_entity_dict(entities: Dict, include_confidence: bool) -> Dict:
    """Deduplicate and optionally keep confidence on an entity-type map."""
    formatted = {}
    for name, spans in entities.items():
        if isinstance(spans, list):
            unique = []
            seen = set()
            for span in spans:
                if isinstance(span, tuple):
                    text, conf, start, end = span
                    if text and (text.lower(), start, end) not in seen:
                        seen.add((text.lower(), start, end))
                        unique.append(
                            {"text": text, "confidence": conf} if include_confidence else text
                        )
                elif isinstance(span, dict):
                    text = span.get("text", "")
                    if "start" in span and "end" in span:
                        key = (text.lower(), span["start"], span["end"])
                    else:
                        key = (text.lower(), None, None)
                    if text and key not in seen:
                        seen.add(key)
                        unique.append(span)
                else:
                    if span and span.lower() not in seen:
                        seen.add(span.lower())
                        unique.append(span)
            formatted[name] = unique
        elif isinstance(spans, tuple):
            text, conf, _, _ = spans
            formatted[name] = (
                {"text": text, "confidence": conf} if include_confidence and text else text
            )
        else:
            formatted[name] = spans or None
    return formatted


def format_struct(struct: Dict, include_confidence: bool) -> Dict:
    """Deduplicate and optionally keep confidence on a structure instance."""
    formatted = {}
    for field, value in struct.items():
        if isinstance(value, list):
            unique = []
            seen = set()
            for v in value:
                if isinstance(v, tuple):
                    text, conf, start, end = v
                    if text and (text.lower(), start, end) not in seen:
                        seen.add((text.lower(), start, end))
                        unique.append(
                            {"text": text, "confidence": conf} if include_confidence else text
                        )
                elif isinstance(v, dict):
                    text = v.get("text", "")
                    if "start" in v and "end" in v:
                        key = (text.lower(), v["start"], v["end"])
                    else:
                        key = (text.lower(), None, None)
                    if text and key not in seen:
                        seen.add(key)
                        unique.append(v)
                else:
                    if v and v.lower() not in seen:
                        seen.add(v.lower())
                        unique.append(v)
            formatted[field] = unique
        elif isinstance(value, tuple):
            text, conf, _, _ = value
            formatted[field] = (
                {"text": text, "confidence": conf} if include_confidence and text else text
            )
        elif value:
            formatted[field] = value
        else:
            formatted[field] = None
    return formatted
