"""Numeric outputs of one text to gliner2's raw result dict, reading only the schema plan.

For every task: a classification's label probabilities, or a span model's thresholded, validated and
overlap-resolved spans per field and instance. Classification results, activations and span payloads
serve both architectures (runtime/boundary.py decodes GLiNER2.5's candidate pools). Probabilities are float32 like gliner2's tensors;
confidences come out as Python floats. The public payload is built from these raw results by
runtime/formatting.py.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from optimum_gliner2.runtime.overlap import select_spans
from optimum_gliner2.runtime.plan import ClassificationPlan, DecodeOptions, FieldPlan, TaskPlan
from optimum_gliner2.runtime.preprocess import EncodedText

#: (text, confidence, char_start, char_end): gliner2's raw span.
Span = Tuple[str, float, int, int]

_SPAN_KEYS = ("text", "confidence", "start", "end")


@dataclass
class TaskOutput:
    """What the numeric stages produced for one task of one text.

    Attributes:
        count: Predicted number of instances (span tasks); 0 empties the task.
        span_logits: `[instances, fields, words, max_width]` span logits, masked past the last word,
            for prefix and text words, when `count > 0`; entities keep instance 0 only.
        class_logits: `[labels]` classifier logits (classification tasks).
        candidates: Boundary models: per field query, the pool candidates kept for it (empty when
            the query abstains), as runtime/boundary.py keeps them.
        relations: Boundary models' relation tasks: (relation probability, proposed pair) of every
            proposed pair, in proposal order.
        explicit_inputs: Boundary models' entity tasks with attribute groups: the text's word states
            and the task's field query states, for scoring attributes on the kept entities.
        record_group: Boundary models' structures with a record mode: the record head's scores
            (a runtime/records.py RecordGroup).
        pool_probabilities: With `record_group`: `[fields, C]` probability of each pool candidate
            for each field query.
    """

    count: int = 0
    span_logits: Optional[np.ndarray] = None
    class_logits: Optional[np.ndarray] = None
    candidates: Optional[List[Any]] = None
    relations: Optional[List[Tuple[float, Any]]] = None
    explicit_inputs: Optional[Tuple[np.ndarray, np.ndarray]] = None
    record_group: Optional[Any] = None
    pool_probabilities: Optional[np.ndarray] = None


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Float32 sigmoid; -inf (masked spans) gives 0."""
    logits = np.asarray(logits, dtype=np.float32)
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32, copy=False)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Float32 softmax over the last axis."""
    logits = np.asarray(logits, dtype=np.float32)
    exponentials = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


def mask_spans_past_end(logits: np.ndarray) -> np.ndarray:
    """-inf where a span (start l, width w) ends at or past the last word (l + w >= L).

    The graphs return raw logits; gliner2 masks the same spans when it scores them.
    """
    return np.where(_spans_inside(*logits.shape[-2:]), logits, np.float32(-np.inf)).astype(np.float32, copy=False)


@functools.lru_cache(maxsize=512)
def _spans_inside(length: int, width: int) -> np.ndarray:
    """`[length, width]` mask of the spans that end before the last word; texts repeat lengths."""
    mask = np.arange(length)[:, None] + np.arange(width)[None, :] < length
    mask.flags.writeable = False
    return mask


def decode_text(record: EncodedText, outputs: Sequence[TaskOutput]) -> Dict[str, Any]:
    """gliner2's raw results of one text: every task's result under its name, in task order."""
    decoder = _TextDecoder(record)
    results: Dict[str, Any] = {}
    for task, output in zip(record.plan.tasks, outputs):
        if task.classification is not None:
            results[task.classification.result_key] = classification_result(task.classification, output.class_logits)
        elif not task.is_classification:
            results[task.name] = decoder.span_task(task, output)
    return results


def classification_result(config: ClassificationPlan, logits: np.ndarray) -> Any:
    """gliner2's raw classification result: (label, probability), or a list of them if multi-label."""
    probabilities = sigmoid(logits) if config.sigmoid else softmax(logits)
    if not config.multi_label:
        best = int(np.argmax(probabilities))
        return config.labels[best], float(probabilities[best])
    chosen = [
        (label, float(probabilities[index]))
        for index, label in enumerate(config.labels)
        if float(probabilities[index]) >= config.cls_threshold
    ]
    if not chosen:
        best = int(np.argmax(probabilities))
        chosen = [(config.labels[best], float(probabilities[best]))]
    if config.top_k is not None:
        chosen = sorted(chosen, key=lambda pair: pair[1], reverse=True)[: config.top_k]
    return chosen


class _TextDecoder:
    """Span decoding of one text: its words' character offsets and the call's options."""

    def __init__(self, record: EncodedText):
        self.record = record
        self.options: DecodeOptions = record.plan.options

    def span_task(self, task: TaskPlan, output: TaskOutput) -> Any:
        if not task.field_names:
            return [] if task.name == "entities" else {}
        if output.count <= 0 or output.span_logits is None:
            return [] if task.decoder.startswith("entities") or task.kind == "relations" else {}
        text_len = self.record.text_len
        text_logits = output.span_logits[..., -text_len:, :]
        scores = sigmoid(text_logits)
        if task.decoder == "entities":
            return self._entities(task, scores[0])
        if task.decoder == "entities_with_attributes":
            return self._entities_with_attributes(task, scores[0], text_logits[0])
        if task.decoder == "relations":
            relations = (self._relation(task, scores[n]) for n in range(output.count))
            return [relation for relation in relations if relation is not None]
        # Choice fields read the width-0 scores of the choice words, which precede the text.
        prefix_scores = sigmoid(output.span_logits[..., :-text_len, 0])
        instances = (self._structure(task, scores[n], prefix_scores[n]) for n in range(output.count))
        return [instance for instance in instances if instance is not None]

    # -- spans ----------------------------------------------------------------------------------

    def _candidates(self, scores: np.ndarray, field: FieldPlan) -> List[Tuple[int, int, Span]]:
        """(start word, width, span) of the spans of one field `[L, W]` at or above its threshold
        that end inside the text and whose text passes the field's validators."""
        record = self.record
        text, start_map, end_map, validators = record.text, record.start_map, record.end_map, field.validators
        last_word = len(start_map) - 1
        starts, widths = np.nonzero(scores >= field.threshold)
        found = []
        # Few spans pass a threshold: plain Python per span beats more numpy calls on tiny arrays.
        for start, width in zip(starts.tolist(), widths.tolist()):
            if start + width > last_word:
                continue
            char_start, char_end = start_map[start], end_map[start + width]
            span_text = text[char_start:char_end].strip()
            if span_text and (not validators or all(validator.validate(span_text) for validator in validators)):
                found.append((start, width, (span_text, float(scores[start, width]), char_start, char_end)))
        return found

    def _selected(self, scores: np.ndarray, field: FieldPlan) -> List[Span]:
        spans = [span for _, _, span in self._candidates(scores, field)]
        return select_spans(spans, dtype=field.dtype, overlap_policy=self.options.overlap_policy)

    def _payload(self, span: Span) -> Any:
        return span_payload(span, self.options)

    def _value(self, spans: List[Span], dtype: str) -> Any:
        """A field's value: every span for "list", the best one (or None) otherwise."""
        if dtype == "list":
            return [self._payload(span) for span in spans]
        return self._payload(spans[0]) if spans else None

    # -- entities -------------------------------------------------------------------------------

    def _entities(self, task: TaskPlan, scores: np.ndarray) -> List[Dict[str, Any]]:
        found: Dict[str, Any] = {}
        for field in task.fields:
            spans = self._selected(scores[field.index], field)
            if field.dtype != "list" and not spans:
                # gliner2 marks a missing bare str entity with "" rather than None.
                plain = not (self.options.include_spans or self.options.include_confidence)
                found[field.name] = "" if plain else None
            else:
                found[field.name] = self._value(spans, field.dtype)
        return [found] if found else []

    def _entities_with_attributes(self, task: TaskPlan, scores: np.ndarray, logits: np.ndarray) -> List[Dict[str, Any]]:
        found: Dict[str, Any] = {}
        for field in task.fields:
            attributes_by_span = {}
            spans = []
            for start, width, span in self._candidates(scores[field.index], field):
                spans.append(span)
                attributes_by_span[span[2:]] = _attributes(task, field.name, logits[:, start, width])
            kept = select_spans(spans, dtype=field.dtype, overlap_policy=self.options.overlap_policy)
            entities = [self._attributed_entity(span, attributes_by_span[span[2:]]) for span in kept]
            found[field.name] = entities if field.dtype == "list" else (entities[0] if entities else None)
        return [found] if found else []

    def _attributed_entity(self, span: Span, attributes: Dict[str, Any]) -> Dict[str, Any]:
        entity = {key: value for key, value in zip(_SPAN_KEYS, span) if key == "text" or self._shows(key)}
        entity.update((key, value) for key, value in attributes.items() if key not in _SPAN_KEYS)
        return entity

    def _shows(self, key: str) -> bool:
        return self.options.include_confidence if key == "confidence" else self.options.include_spans

    # -- relations and structures ---------------------------------------------------------------

    def _relation(self, task: TaskPlan, scores: np.ndarray) -> Optional[Any]:
        """(head, tail) of one instance, when both roles have a span."""
        best = []
        for field in task.fields:
            spans = self._selected(scores[field.index], field)
            best.append(spans[0] if spans else None)
        if len(best) != 2 or not (best[0] and best[1]):
            return None
        head, tail = best
        if self.options.include_spans or self.options.include_confidence:
            return {"head": self._payload(head), "tail": self._payload(tail)}
        return head[0], tail[0]

    def _structure(self, task: TaskPlan, scores: np.ndarray, prefix_scores: np.ndarray) -> Optional[Dict[str, Any]]:
        """One instance's field values; None when every field is empty."""
        instance: Dict[str, Any] = {}
        for field in task.fields:
            if field.choices is not None:
                instance[field.name] = self._choice(field, prefix_scores[field.index])
            else:
                instance[field.name] = self._value(self._selected(scores[field.index], field), field.dtype)
        return instance if any(value is not None and value != [] for value in instance.values()) else None

    def _choice(self, field: FieldPlan, prefix_scores: np.ndarray) -> Any:
        """A choice field, read from the width-0 scores of the choice words in the prefix."""
        scored = [(choice, float(prefix_scores[position])) for choice, position in field.choices]

        def shown(choice: str, score: float) -> Any:
            return {"text": choice, "confidence": score} if self.options.include_confidence else choice

        if field.dtype == "list":
            selected, seen = [], set()
            for choice, score in scored:
                if choice not in seen and score >= field.threshold:
                    selected.append(shown(choice, score))
                    seen.add(choice)
            return selected
        best, best_score = None, -1.0
        for choice, score in scored:
            if score > best_score:
                best, best_score = choice, score
        return shown(best, best_score) if best and best_score >= field.threshold else None


def span_payload(span: Span, options: DecodeOptions) -> Any:
    """One span as gliner2 shows it under include_confidence / include_spans."""
    text, confidence, start, end = span
    shown: Dict[str, Any] = {"text": text}
    if options.include_confidence:
        shown["confidence"] = confidence
    if options.include_spans:
        shown.update(start=start, end=end)
    return shown if len(shown) > 1 else text


def _attributes(task: TaskPlan, entity: str, span_logits: np.ndarray) -> Dict[str, Any]:
    """The attribute-group values of one entity span, from its logits against every field query."""
    return attribute_groups_of(task, entity, lambda group: span_logits[list(group.indices)])


def attribute_groups_of(task: TaskPlan, entity: str, logits_of: Callable[[Any], np.ndarray]) -> Dict[str, Any]:
    """gliner2's attribute groups of one entity span of type `entity`: per group that applies to it,
    the labels whose sigmoid reaches the group's threshold (multi-label) or the softmax's best label.

    Args:
        logits_of: A group's label logits for this span, in the group's label order.
    """
    assigned: Dict[str, Any] = {}
    for group in task.attribute_groups:
        if group.applies_to is not None and entity not in group.applies_to:
            continue
        values = logits_of(group)
        if group.multi_label:
            probabilities = sigmoid(values)
            assigned[group.name] = [
                {"label": label, "confidence": float(probability)}
                for label, probability in zip(group.labels, probabilities)
                if float(probability) >= group.threshold
            ]
        else:
            probabilities = softmax(values)
            best = int(np.argmax(probabilities))
            assigned[group.name] = {"label": group.labels[best], "confidence": float(probabilities[best])}
    return assigned
