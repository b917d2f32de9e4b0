"""The extraction head of GLiNER2.5 models (architecture "boundary"): candidate pool, scoring, decoding.

The graph builds each text's shared pool of candidate spans and scores every candidate against every
field query; the host keeps what gliner2's BoundaryExtractor keeps:

    probability = sigmoid(pair_logit / pair_temperature)
    a query abstains when sigmoid(null_logit) > abstention_threshold
    kept = pool candidates with probability >= the field's threshold (in pool order), plus, with
           the adaptive threshold on, the best-ranked ones up to the predicted count
    overlaps resolved on word boundaries (the call's policy, else the head's default, "flat")
    then spans leaving the text, blank spans and spans failing a validator are dropped

Relations, structures (extract_json) and entity attributes are not decoded for this architecture yet:
they are refused with a one-line error rather than answered wrongly.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence

import numpy as np

from optimum_gliner2.errors import GLiNER2InputError
from optimum_gliner2.runtime.backend import BoundaryBackend
from optimum_gliner2.runtime.decode import Span, TaskOutput, classification_result, sigmoid, span_payload
from optimum_gliner2.runtime.overlap import normalize_overlap_policy, resolve_overlaps
from optimum_gliner2.runtime.plan import ENTITIES, RELATIONS, STRUCTURES, FieldPlan, SchemaPlan, TaskPlan
from optimum_gliner2.runtime.preprocess import EncodedText


class ScoredCandidate(NamedTuple):
    """A pool candidate kept for one query: probability and half-open word boundaries [start, end)."""

    probability: float
    start: int
    end: int


class BoundaryHeads:
    """Runs a GLiNER2.5 model's boundary head for the engine and decodes its output.

    Args:
        backend: The boundary model's numeric stages, with the head's settings in `boundary_head`.
    """

    architecture = "boundary"

    def __init__(self, backend: BoundaryBackend):
        self.backend = backend
        settings: Mapping[str, Any] = backend.boundary_head
        self.pair_temperature = np.float32(settings["pair_temperature"])
        self.classification_temperature = float(settings["classification_temperature"])
        self.abstention_threshold = float(settings["abstention_threshold"])
        self.adaptive_threshold = bool(settings["adaptive_threshold"])
        self.min_words = int(settings["min_words"])
        #: The policy a call without `overlap_policy` gets (gliner2 reads it from the head settings).
        self.default_overlap_policy: str = normalize_overlap_policy(None, default=settings["overlap_policy"])

    def check(self, plans: Sequence[SchemaPlan]) -> None:
        """Refuse, before any work, the tasks this architecture does not decode yet.

        Raises:
            GLiNER2InputError: A relation, structure or entity-attribute task.
        """
        for plan in plans:
            for task in plan.tasks:
                missing = _unsupported_feature(task)
                if missing:
                    raise GLiNER2InputError(
                        f"{missing} (task {task.name!r}) are not supported for GLiNER2.5 (boundary) models yet; "
                        "entities and classification are."
                    )

    def score(
        self,
        records: List[EncodedText],
        words: List[np.ndarray],
        markers: List[List[np.ndarray]],
        outputs: List[List[TaskOutput]],
    ) -> None:
        """Score the batch's candidate pools against every entity query, in one backend call."""
        # gliner2 turns every field marker of every span task into one query, in task order.
        queries_by_row = [
            [(task_index, markers[row][task_index][1:]) for task_index, task in enumerate(record.plan.tasks) if _has_queries(task)]
            for row, record in enumerate(records)
        ]
        query_counts = [sum(len(states) for _, states in row_queries) for row_queries in queries_by_row]
        if not any(query_counts):
            return
        hidden_size = words[0].shape[-1]
        width = max(self.min_words, max(len(row_words) for row_words in words))
        text_states = np.zeros((len(records), width, hidden_size), dtype=np.float32)
        text_mask = np.zeros((len(records), width), dtype=np.int64)
        query_states = np.zeros((len(records), max(query_counts), hidden_size), dtype=np.float32)
        query_mask = np.zeros((len(records), max(query_counts)), dtype=np.int64)
        for row, row_queries in enumerate(queries_by_row):
            text_states[row, : len(words[row])] = words[row]
            text_mask[row, : len(words[row])] = 1
            if query_counts[row]:
                query_states[row, : query_counts[row]] = np.concatenate([states for _, states in row_queries])
                query_mask[row, : query_counts[row]] = 1
        scores = self.backend.score_candidates(text_states, text_mask, query_states, query_mask)

        probabilities = sigmoid(scores.pair_logits / self.pair_temperature)
        # gliner2 compares each float32 probability with the threshold as Python floats.
        abstains = sigmoid(scores.null_logits).astype(np.float64) > self.abstention_threshold
        for row, row_queries in enumerate(queries_by_row):
            query = 0
            for task_index, states in row_queries:
                task = records[row].plan.tasks[task_index]
                kept: List[Optional[List[ScoredCandidate]]] = []
                for field_query in range(len(states)):
                    field = _field_at(task, field_query)
                    if abstains[row, query] or field is None:
                        kept.append(None if field is None else [])
                    else:
                        kept.append(
                            self._kept_candidates(
                                scores.candidates[row],
                                scores.candidate_mask[row],
                                probabilities[row, query],
                                field.threshold,
                                scores.count_log_rates[row, query],
                            )
                        )
                    query += 1
                outputs[row][task_index].candidates = kept

    def _kept_candidates(
        self,
        candidates: np.ndarray,
        candidate_mask: np.ndarray,
        probabilities: np.ndarray,
        threshold: float,
        count_log_rate: np.float32,
    ) -> List[ScoredCandidate]:
        """One query's candidates at or above `threshold`, topped up to the predicted count when
        the adaptive threshold is on; in pool order."""
        eligible = candidate_mask.astype(bool)
        keep = eligible & (probabilities >= np.float32(threshold))
        if self.adaptive_threshold:
            predicted = int(np.clip(np.round(np.exp(np.float32(count_log_rate))), 0, len(candidates)))
            ranked = np.where(eligible, probabilities, np.float32(-1.0e4))
            rank = np.empty(len(ranked), dtype=np.int64)
            rank[np.argsort(-ranked, kind="stable")] = np.arange(len(ranked))
            keep |= eligible & (rank < predicted)
        return [
            ScoredCandidate(float(probabilities[index]), int(candidates[index, 0]), int(candidates[index, 1]))
            for index in np.flatnonzero(keep)
        ]

    def decode(self, record: EncodedText, outputs: Sequence[TaskOutput]) -> Dict[str, Any]:
        """gliner2's raw results of one text: entities first, then classifications in task order."""
        results: Dict[str, Any] = {}
        entities: Dict[str, Any] = {}
        for task, output in zip(record.plan.tasks, outputs):
            if task.kind == ENTITIES and task.field_names:
                entities.update(self._entities(record, task, output.candidates))
        if entities:
            results["entities"] = [entities]
        for task, output in zip(record.plan.tasks, outputs):
            if task.classification is not None:
                results[task.classification.result_key] = classification_result(task.classification, output.class_logits)
        return results

    def _entities(
        self, record: EncodedText, task: TaskPlan, kept: Optional[List[Optional[List[ScoredCandidate]]]]
    ) -> Dict[str, Any]:
        options = record.plan.options
        policy = options.overlap_policy or self.default_overlap_policy
        shows_details = options.include_spans or options.include_confidence
        found: Dict[str, Any] = {}
        for field in task.fields:
            candidates = (kept[field.index] if kept is not None else None) or []
            resolved = resolve_overlaps(candidates, policy, score=_probability, start=_start, end=_end)
            spans = _spans_in_text(record, resolved, field)
            if field.dtype == "list":
                found[field.name] = [span_payload(span, options) for span in spans]
            elif spans:
                found[field.name] = span_payload(spans[0], options)
            else:
                # gliner2 marks a missing bare str entity with "" rather than None.
                found[field.name] = None if shows_details else ""
        return found


def _has_queries(task: TaskPlan) -> bool:
    return not task.is_classification and bool(task.field_names)


def _field_at(task: TaskPlan, index: int) -> Optional[FieldPlan]:
    for field in task.fields:
        if field.index == index:
            return field
    return None


def _unsupported_feature(task: TaskPlan) -> Optional[str]:
    if task.kind == RELATIONS:
        return "relations (extract_relations)"
    if task.kind == STRUCTURES:
        return "structures (extract_json)"
    if task.attribute_groups or task.decoder == "entities_with_attributes":
        return "entity attributes"
    return None


def _probability(candidate: ScoredCandidate) -> float:
    return candidate.probability


def _start(candidate: ScoredCandidate) -> int:
    return candidate.start


def _end(candidate: ScoredCandidate) -> int:
    return candidate.end


def _spans_in_text(record: EncodedText, resolved: List[ScoredCandidate], field: FieldPlan) -> List[Span]:
    """(text, confidence, char_start, char_end) of the resolved candidates that lie in the text,
    are not blank and pass the field's validators, best first."""
    text_len = record.text_len
    # Word boundaries count the choice-prefix words before the text.
    offset = len(record.word_subwords) - text_len
    spans = []
    for candidate in resolved:
        start, end = candidate.start - offset, candidate.end - offset
        if not 0 <= start < end <= text_len:
            continue
        char_start, char_end = record.start_map[start], record.end_map[end - 1]
        surface = record.text[char_start:char_end].strip()
        if surface and all(validator.validate(surface) for validator in field.validators):
            spans.append((surface, candidate.probability, char_start, char_end))
    return spans
