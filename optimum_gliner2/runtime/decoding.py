"""Numpy port of gliner2's span-model decoding (gliner2/inference/runtime.py).

Turns the numeric stages' outputs for one text (count, span logits, classification logits per
task) into gliner2's raw result dict: entities with per-label thresholds, dtypes, validators and
attribute groups, relations, JSON structures with choice fields, and single- or multi-label
classifications. Probabilities are float32, like gliner2's tensors, and confidences are returned
as Python floats. The public payload is then built by gliner2's own `format_results` (vendored).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ._vendor.candidate_decoder import finalize_spans
from ._vendor.overlap import normalize_overlap_policy
from .processing import EncodedText, Task

#: (text, confidence, char_start, char_end), gliner2's raw span.
Span = Tuple[str, float, int, int]

_ENTITY_RESULT_KEYS = frozenset({"text", "confidence", "start", "end"})


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
    """Set -inf where a span (start l, width w) ends at or past the last word (l + w >= L).

    The backends return raw logits; gliner2 masks the same spans in `SpanMarkerV0.score_queries`.
    """
    length, width = logits.shape[-2:]
    ends = np.arange(length)[:, None] + np.arange(width)[None, :]
    return np.where(ends < length, logits, np.float32(-np.inf)).astype(np.float32, copy=False)


def choice_fields(schema: Mapping[str, Any]) -> Dict[str, List[str]]:
    """`{"parent.field": choices}` of a schema's JSON choice fields."""
    fields: Dict[str, List[str]] = {}
    for structure in schema.get("json_structures", []):
        for parent, parent_fields in structure.items():
            for field_name, value in parent_fields.items():
                if isinstance(value, dict) and "choices" in value:
                    fields[f"{parent}.{field_name}"] = value["choices"]
    return fields


def resolve_classification_config(
    prompt: str, classifications: Sequence[Mapping[str, Any]]
) -> Optional[Mapping[str, Any]]:
    """The classification config whose task name starts `prompt` (longest match wins)."""
    best = None
    for config in classifications:
        task = config.get("task", "")
        if not task or not prompt.startswith(task):
            continue
        rest = prompt[len(task) :]
        if rest == "" or rest[0] in (":", " "):
            if best is None or len(task) > len(best.get("task", "")):
                best = config
    if best is None:
        best = next((c for c in classifications if prompt.startswith(c.get("task", ""))), None)
    return best


def _find_choice_index(choice: str, words: Sequence[str]) -> int:
    choice_lower = choice.lower()
    for index, word in enumerate(words):
        if word.lower() == choice_lower:
            return index
    return -1


@dataclass(frozen=True)
class DecodeOptions:
    """Per-call decoding options of `batch_extract`."""

    threshold: float
    include_confidence: bool
    include_spans: bool


@dataclass
class TaskOutput:
    """What the numeric stages produced for one task of one text.

    Attributes:
        count: Predicted number of instances (span tasks); 0 empties the task.
        span_logits: `[instances, fields, L, W]` masked span logits when `count > 0`; entities
            keep instance 0 only.
        class_logits: `[labels]` classifier logits (classification tasks).
    """

    count: int = 0
    span_logits: Optional[np.ndarray] = None
    class_logits: Optional[np.ndarray] = None


class SampleDecoder:
    """Decodes every task of one text into gliner2's raw result dict.

    Args:
        record: The encoded text.
        metadata: gliner2's per-schema metadata (field/entity/relation metadata and orders,
            attribute groups, and "_overlap_policy" when given).
        options: Threshold and payload options.
    """

    def __init__(self, record: EncodedText, metadata: Mapping[str, Any], options: DecodeOptions):
        self.record = record
        self.metadata = metadata
        self.options = options
        policy = metadata.get("_overlap_policy")
        # None keeps the span architecture's confidence-first greedy decoder.
        self.overlap_policy = None if policy is None else normalize_overlap_policy(policy)

    def decode(self, outputs: Sequence[TaskOutput]) -> Dict[str, Any]:
        """Raw results of every task, keyed by task name in task order."""
        results: Dict[str, Any] = {}
        cls_fields = choice_fields(self.record.schema)
        for task, output in zip(self.record.tasks, outputs):
            if task.is_classification:
                self._classification(results, task, output.class_logits)
            else:
                self._span_task(results, task, output, cls_fields)
        return results

    # -- classification ---------------------------------------------------------------------

    def _classification(self, results: Dict[str, Any], task: Task, logits: np.ndarray) -> None:
        config = resolve_classification_config(
            task.prompt, self.record.schema.get("classifications", [])
        )
        if config is None:
            return
        activation = config.get("class_act", "auto")
        is_multi = config.get("multi_label", False)
        if activation == "sigmoid" or (activation != "softmax" and is_multi):
            probabilities = sigmoid(logits)
        else:
            probabilities = softmax(logits)

        labels = config["labels"]
        if is_multi:
            cls_threshold = config.get("cls_threshold", 0.5)
            chosen = [
                (labels[index], float(probabilities[index]))
                for index in range(len(labels))
                if float(probabilities[index]) >= cls_threshold
            ]
            if not chosen:
                best = int(np.argmax(probabilities))
                chosen = [(labels[best], float(probabilities[best]))]
            top_k = config.get("top_k")
            if top_k is not None:
                chosen = sorted(chosen, key=lambda pair: pair[1], reverse=True)[:top_k]
            results[config["task"]] = chosen
        else:
            best = int(np.argmax(probabilities))
            results[config["task"]] = (labels[best], float(probabilities[best]))

    # -- span tasks ---------------------------------------------------------------------------

    def _span_task(
        self,
        results: Dict[str, Any],
        task: Task,
        output: TaskOutput,
        cls_fields: Mapping[str, List[str]],
    ) -> None:
        name = task.name
        field_names = task.field_names
        if not field_names:
            results[name] = [] if name == "entities" else {}
            return
        if output.count <= 0 or output.span_logits is None:
            results[name] = [] if name == "entities" or task.task_type == "relations" else {}
            return

        scores = sigmoid(output.span_logits)
        if name == "entities":
            if self.metadata.get("entity_attribute_groups"):
                results[name] = self._entities_with_attributes(
                    field_names, scores, output.span_logits
                )
            else:
                results[name] = self._entities(field_names, scores)
        elif task.task_type == "relations":
            results[name] = self._relations(name, field_names, scores, output.count)
        else:
            results[name] = self._structures(name, field_names, scores, output.count, cls_fields)

    def _candidate_spans(
        self, scores: np.ndarray, threshold: float
    ) -> Iterator[Tuple[int, int, Span]]:
        """(start word, width, span) of one field's spans `[L, W]` scoring at least `threshold`."""
        text_len = self.record.text_len
        starts, widths = np.nonzero(scores >= threshold)
        for start, width in zip(starts.tolist(), widths.tolist()):
            end = start + width + 1
            if 0 <= start < text_len and end <= text_len:
                char_start = self.record.start_map[start]
                char_end = self.record.end_map[end - 1]
                span_text = self.record.text[char_start:char_end].strip()
                if span_text:
                    confidence = float(scores[start, width])
                    yield start, width, (span_text, confidence, char_start, char_end)

    def _find_spans(self, scores: np.ndarray, threshold: float) -> List[Span]:
        return [span for _, _, span in self._candidate_spans(scores, threshold)]

    def _span_payload(self, span: Span) -> Any:
        """One span as gliner2 shows it for the include_confidence/include_spans options."""
        text, confidence, start, end = span
        if self.options.include_spans and self.options.include_confidence:
            return {"text": text, "confidence": confidence, "start": start, "end": end}
        if self.options.include_spans:
            return {"text": text, "start": start, "end": end}
        if self.options.include_confidence:
            return {"text": text, "confidence": confidence}
        return text

    def _typed_value(self, spans: List[Span], dtype: str) -> Any:
        """A field's value from finalized spans: all of them for "list", the best for "str"."""
        if dtype == "list":
            return [self._span_payload(span) for span in spans]
        return self._span_payload(spans[0]) if spans else None

    def _entities(self, entity_names: List[str], span_scores: np.ndarray) -> List[Dict]:
        scores = span_scores[0, :, -self.record.text_len :]
        entity_results: Dict[str, Any] = OrderedDict()
        for name in self.metadata.get("entity_order", entity_names):
            if name not in entity_names:
                continue
            meta = self.metadata.get("entity_metadata", {}).get(name, {})
            configured = meta.get("threshold")
            threshold = float(configured) if configured is not None else self.options.threshold
            dtype = meta.get("dtype", "list")
            validators = meta.get("validators", [])

            spans = self._find_spans(scores[entity_names.index(name)], threshold)
            if validators:
                spans = [span for span in spans if all(v.validate(span[0]) for v in validators)]
            spans = finalize_spans(spans, dtype=dtype, overlap_policy=self.overlap_policy)
            if dtype != "list" and not spans:
                # gliner2 marks a missing bare str entity with "" rather than None.
                plain = not self.options.include_spans and not self.options.include_confidence
                entity_results[name] = "" if plain else None
            else:
                entity_results[name] = self._typed_value(spans, dtype)
        return [entity_results] if entity_results else []

    def _entities_with_attributes(
        self, entity_names: List[str], span_scores: np.ndarray, raw_logits: np.ndarray
    ) -> List[Dict]:
        """Content entities with their attribute-group values (Schema.entity_attributes)."""
        text_len = self.record.text_len
        groups = self.metadata.get("entity_attribute_groups", {})
        prompt_labels = self.metadata.get("entity_attribute_prompt_labels", {})
        attribute_labels = self.metadata.get("entity_attribute_labels", set())
        group_indices: Dict[str, Any] = {}
        for group_name, group in groups.items():
            present = [
                (label, entity_names.index(prompt_labels.get(label, label)))
                for label in group.labels
                if prompt_labels.get(label, label) in entity_names
            ]
            if present:
                labels, indices = zip(*present)
                group_indices[group_name] = (list(labels), np.array(indices), group)

        content_names = [name for name in entity_names if name not in attribute_labels]
        scores = span_scores[0, :, -text_len:]
        logits = raw_logits[0, :, -text_len:]
        entity_results: Dict[str, Any] = OrderedDict()
        for name in self.metadata.get("entity_order", content_names):
            if name not in content_names:
                continue
            index = entity_names.index(name)
            meta = self.metadata.get("entity_metadata", {}).get(name, {})
            configured = meta.get("threshold")
            threshold = float(configured) if configured is not None else self.options.threshold
            validators = meta.get("validators", [])

            found: List[Dict[str, Any]] = []
            for start, width, span in self._candidate_spans(scores[index], threshold):
                text, confidence, char_start, char_end = span
                if validators and not all(v.validate(text) for v in validators):
                    continue
                found.append(
                    {
                        "text": text,
                        "confidence": confidence,
                        "start": char_start,
                        "end": char_end,
                        **_assign_entity_attributes(logits, start, width, group_indices, name),
                    }
                )

            dtype = meta.get("dtype", "list")
            surviving = finalize_spans(
                [(item["text"], item["confidence"], item["start"], item["end"]) for item in found],
                dtype=dtype,
                overlap_policy=self.overlap_policy,
            )
            found_by_span = {(item["start"], item["end"]): item for item in found}
            formatted = [
                self._attributed_entity(found_by_span[(start, end)])
                for _, _, start, end in surviving
            ]
            entity_results[name] = (
                formatted if dtype == "list" else (formatted[0] if formatted else None)
            )
        return [entity_results] if entity_results else []

    def _attributed_entity(self, entity: Dict[str, Any]) -> Dict[str, Any]:
        result: Dict[str, Any] = {"text": entity["text"]}
        if self.options.include_confidence:
            result["confidence"] = entity["confidence"]
        if self.options.include_spans:
            result["start"] = entity["start"]
            result["end"] = entity["end"]
        result.update((k, v) for k, v in entity.items() if k not in _ENTITY_RESULT_KEYS)
        return result

    def _relations(
        self, relation: str, field_names: List[str], span_scores: np.ndarray, count: int
    ) -> List[Any]:
        threshold = self.options.threshold
        relation_meta = self.metadata.get("relation_metadata", {})
        if relation in relation_meta:
            configured = relation_meta[relation].get("threshold")
            threshold = configured if configured is not None else threshold
        ordered_fields = self.metadata.get("field_orders", {}).get(relation, field_names)

        instances: List[Any] = []
        for instance in range(count):
            scores = span_scores[instance, :, -self.record.text_len :]
            best: List[Optional[Span]] = []
            for field_name in ordered_fields:
                if field_name not in field_names:
                    continue
                spans = self._find_spans(scores[field_names.index(field_name)], threshold)
                spans = finalize_spans(spans, overlap_policy=self.overlap_policy)
                best.append(spans[0] if spans else None)
            if len(best) == 2 and best[0] and best[1]:
                head, tail = best
                if self.options.include_spans or self.options.include_confidence:
                    instances.append(
                        {"head": self._span_payload(head), "tail": self._span_payload(tail)}
                    )
                else:
                    instances.append((head[0], tail[0]))
        return instances

    def _structures(
        self,
        structure: str,
        field_names: List[str],
        span_scores: np.ndarray,
        count: int,
        cls_fields: Mapping[str, List[str]],
    ) -> List[Dict]:
        text_len = self.record.text_len
        ordered_fields = self.metadata.get("field_orders", {}).get(structure, field_names)
        prefix_words = self.record.words[:-text_len]

        instances: List[Dict] = []
        for instance_index in range(count):
            scores = span_scores[instance_index, :, -text_len:]
            instance: Dict[str, Any] = OrderedDict()
            for field_name in ordered_fields:
                if field_name not in field_names:
                    continue
                field_index = field_names.index(field_name)
                field_key = f"{structure}.{field_name}"
                meta = self.metadata.get("field_metadata", {}).get(field_key, {})
                configured = meta.get("threshold")
                threshold = configured if configured is not None else self.options.threshold
                dtype = meta.get("dtype", "list")

                if field_key in cls_fields:
                    # Choice fields score the choice's word in the prefix, width 0.
                    prefix_scores = span_scores[instance_index, field_index, :-text_len]
                    instance[field_name] = self._choice_value(
                        cls_fields[field_key], prefix_words, prefix_scores, threshold, dtype
                    )
                    continue
                spans = self._find_spans(scores[field_index], threshold)
                validators = meta.get("validators", [])
                if validators:
                    spans = [s for s in spans if all(v.validate(s[0]) for v in validators)]
                spans = finalize_spans(spans, dtype=dtype, overlap_policy=self.overlap_policy)
                instance[field_name] = self._typed_value(spans, dtype)

            if any(value is not None and value != [] for value in instance.values()):
                instances.append(instance)
        return instances

    def _choice_value(
        self,
        choices: Sequence[str],
        prefix_words: Sequence[str],
        prefix_scores: np.ndarray,
        threshold: float,
        dtype: str,
    ) -> Any:
        scored = []
        for choice in choices:
            index = _find_choice_index(choice, prefix_words)
            if 0 <= index < prefix_scores.shape[0]:
                scored.append((choice, float(prefix_scores[index, 0])))

        def payload(choice: str, score: float) -> Any:
            if self.options.include_confidence:
                return {"text": choice, "confidence": score}
            return choice

        if dtype == "list":
            selected, seen = [], set()
            for choice, score in scored:
                if choice not in seen and score >= threshold:
                    selected.append(payload(choice, score))
                    seen.add(choice)
            return selected
        best, best_score = None, -1.0
        for choice, score in scored:
            if score > best_score:
                best, best_score = choice, score
        if best and best_score >= threshold:
            return payload(best, best_score)
        return None


def _assign_entity_attributes(
    logits: np.ndarray,
    start: int,
    width: int,
    group_indices: Mapping[str, Any],
    entity_name: str,
) -> Dict[str, Any]:
    assigned: Dict[str, Any] = {}
    for group_name, (labels, indices, group) in group_indices.items():
        if group.applies_to is not None and entity_name not in group.applies_to:
            continue
        values = logits[indices, start, width]
        if group.multi_label:
            probabilities = sigmoid(values)
            assigned[group_name] = [
                {"label": labels[i], "confidence": float(probabilities[i])}
                for i in range(len(labels))
                if float(probabilities[i]) >= group.threshold
            ]
        else:
            probabilities = softmax(values)
            best = int(np.argmax(probabilities))
            assigned[group_name] = {"label": labels[best], "confidence": float(probabilities[best])}
    return assigned
