"""The extraction head of GLiNER2.5 models (architecture "boundary"): candidate pool, scoring, decoding.

The graph builds each text's shared pool of candidate spans and scores every candidate against every
field query; the host keeps what gliner2's BoundaryExtractor keeps:

    probability = sigmoid(pair_logit / pair_temperature)
    a query abstains when sigmoid(null_logit) > abstention_threshold
    kept = pool candidates with probability >= the field's threshold (in pool order), plus, with
           the adaptive threshold on, the best-ranked ones up to the predicted count
    overlaps resolved on word boundaries (the call's policy, else the head's default, "flat")
    then spans leaving the text, blank spans and spans failing a validator are dropped

Relation tasks put their head and tail roles into the pool as two more queries; the host proposes
typed pairs from their scores and the relation_scorer graph scores them (runtime/relations.py).

Entity attributes score each kept entity span against the attribute labels' queries through gliner2's
explicit-span path: the spans are injected into a pool built for those queries (the explicit_spans graph).

Structures without a record mode decode as gliner2's single instance per structure; JSON choice
fields score their choice words through the explicit-span path. Structures with a record mode
(gliner2's extract_json declares "natural" records, anchored on the first field, on checkpoints with
a record head) go through the record head (the record_head graph) and runtime/records.py, then are
formatted here as gliner2 formats them: a field's value must lie in the text (or, for a choice
field, be one of its choice words), choice fields prefer the choices written near the record's
anchor, and confidences are the lower of the candidate's and the assignment's probability.

One deliberate difference: gliner2 2.1.0 raises `ValueError: token boundaries [..) out of range`
when a record anchored on a choice-prefix word (not a text word) gets a choice value; we answer,
placing that value at characters (0, 0) as gliner2 does for a record without an anchor.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from optimum_gliner2.errors import GLiNER2InputError
from optimum_gliner2.runtime.backend import BoundaryBackend, CandidateScores
from optimum_gliner2.runtime.decode import (
    Span,
    TaskOutput,
    attribute_groups_of,
    classification_result,
    sigmoid,
    span_payload,
)
from optimum_gliner2.runtime.overlap import normalize_overlap_policy, resolve_overlaps
from optimum_gliner2.runtime.plan import (
    ENTITIES,
    RELATIONS,
    STRUCTURES,
    FieldPlan,
    RecordFieldPlan,
    SchemaPlan,
    TaskPlan,
    position_in_prefix,
)
from optimum_gliner2.runtime.preprocess import EncodedText
from optimum_gliner2.runtime.records import RecordGroup, decode_record_group, local_choice_mentions
from optimum_gliner2.runtime.relations import Edge, Mention, ProposedPair, RelationSettings, clean_edges, propose_pairs


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
        self.pool_size = int(settings["pool_size"])
        #: The policy a call without `overlap_policy` gets (gliner2 reads it from the head settings).
        self.default_overlap_policy: str = normalize_overlap_policy(None, default=settings["overlap_policy"])
        self.relation_settings = RelationSettings.from_head(settings)
        #: gliner2's extract_json declares natural records (anchored on the first field) when the
        #: checkpoint has a record head.
        self.enable_records = bool(settings["enable_records"])
        self.json_record_mode: Optional[str] = "natural" if self.enable_records else None
        # Bundles exported before records were decoded lack the setting; gliner2's default is 1.
        self.record_temperature = float(settings.get("record_temperature", 1.0))

    def check(self, plans: Sequence[SchemaPlan]) -> None:
        """Refuse, before any work, schemas this model cannot answer.

        Raises:
            GLiNER2InputError: A structure with a record mode, on a model whose export has no
                record_head graph (made before records were decoded) although it has a record head.
        """
        if not self.enable_records or getattr(self.backend, "has_record_head", True):
            return
        for plan in plans:
            for task in plan.tasks:
                if task.record is not None:
                    raise GLiNER2InputError(
                        f"structure {task.name!r} has a record mode, but this export has no record_head graph "
                        "(it predates record decoding): export the checkpoint again with `optimum-cli export onnx`."
                    )

    def score(
        self,
        records: List[EncodedText],
        words: List[np.ndarray],
        markers: List[List[np.ndarray]],
        outputs: List[List[TaskOutput]],
        reference_widths: Optional[Sequence[int]] = None,
    ) -> None:
        """Score the batch's candidate pools against every field query, in one backend call, then
        the relation pairs proposed from them.

        Args:
            reference_widths: Per text, the padded word axis of the batch gliner2 puts it in (its
                relation scores depend on it); None takes this batch's widest text.
        """
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
                    # gliner2 lets only entity queries abstain.
                    if (abstains[row, query] and task.kind == ENTITIES) or field is None:
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
                if task.attribute_groups or any(field.builder_choices for field in task.fields):
                    # Attributes are scored on the entities decoding keeps (`_attribute_values`),
                    # choice fields on their choice words (`_choice_value`).
                    outputs[row][task_index].explicit_inputs = (words[row], states)
        self._score_records(records, queries_by_row, text_states, text_mask, query_states, query_mask, probabilities, scores, outputs)
        if reference_widths is None:
            reference_widths = [max(len(row_words) for row_words in words)] * len(records)
        self._score_relations(records, words, queries_by_row, query_states, scores, reference_widths, outputs)

    def _score_records(
        self,
        records: List[EncodedText],
        queries_by_row: List[List[Tuple[int, np.ndarray]]],
        text_states: np.ndarray,
        text_mask: np.ndarray,
        query_states: np.ndarray,
        query_mask: np.ndarray,
        probabilities: np.ndarray,
        scores: CandidateScores,
        outputs: List[List[TaskOutput]],
    ) -> None:
        """Score every structure with a record mode in the batch with one record head call.

        gliner2 routes each such structure as a record group: its field queries in prompt order,
        its mode, and for natural records the anchor field.
        """
        if not self.enable_records:
            return  # gliner2 then answers nothing for such structures
        groups: List[List[Tuple[int, int]]] = []  # per row: (task index, first query of the task)
        for row, row_queries in enumerate(queries_by_row):
            query, row_groups = 0, []
            for task_index, states in row_queries:
                if records[row].plan.tasks[task_index].record is not None:
                    row_groups.append((task_index, query))
                query += len(states)
            groups.append(row_groups)
        group_count = max(len(row_groups) for row_groups in groups)
        if group_count == 0:
            return
        field_count = max(len(records[row].plan.tasks[task].record.fields) for row in range(len(records)) for task, _ in groups[row])
        field_queries = np.zeros((len(records), group_count, field_count), dtype=np.int64)
        field_mask = np.zeros_like(field_queries)
        modes = np.full((len(records), group_count), -1, dtype=np.int64)
        anchor_fields = np.full_like(modes, -1)
        group_mask = np.zeros_like(modes)
        for row, row_groups in enumerate(groups):
            for group, (task_index, first_query) in enumerate(row_groups):
                plan = records[row].plan.tasks[task_index].record
                for position, field in enumerate(plan.fields):
                    field_queries[row, group, position] = first_query + field.query
                    field_mask[row, group, position] = 1
                modes[row, group] = _RECORD_MODE_IDS[plan.mode]
                anchor_fields[row, group] = -1 if plan.anchor is None else plan.anchor
                group_mask[row, group] = 1
        scored = self.backend.score_records(
            text_states, text_mask, query_states, query_mask, field_queries, field_mask, modes, anchor_fields, group_mask
        )
        for row, row_groups in enumerate(groups):
            for group, (task_index, first_query) in enumerate(row_groups):
                fields = len(records[row].plan.tasks[task_index].record.fields)
                output = outputs[row][task_index]
                output.record_group = RecordGroup(
                    scored.object_logits[row, group],
                    scored.assign_logits[row, group, :, :fields],
                    scored.instance_mask[row, group].astype(bool),
                    scored.field_membership[row, group, :fields].astype(bool),
                    scores.candidates[row],
                )
                queries = [first_query + field.query for field in records[row].plan.tasks[task_index].record.fields]
                # A padding slot of the pool matches no span: probability 0, as gliner2's lookup finds none.
                output.pool_probabilities = np.where(scores.candidate_mask[row][None].astype(bool), probabilities[row, queries], 0)

    def _score_relations(
        self,
        records: List[EncodedText],
        words: List[np.ndarray],
        queries_by_row: List[List[Tuple[int, np.ndarray]]],
        query_states: np.ndarray,
        scores: CandidateScores,
        reference_widths: Sequence[int],
        outputs: List[List[TaskOutput]],
    ) -> None:
        """Propose each relation task's pairs and score them with the relation scorer, one backend
        call per distinct reference width in the batch."""
        # (row, task, proposed pairs, head and tail role states) of every relation task with pairs.
        jobs: List[Tuple[int, int, List[ProposedPair], np.ndarray]] = []
        for row, row_queries in enumerate(queries_by_row):
            query = 0
            for task_index, states in row_queries:
                # gliner2 relates the first two roles of a relation task and skips one with fewer.
                if records[row].plan.tasks[task_index].kind == RELATIONS and len(states) >= 2:
                    pairs = propose_pairs(
                        scores.candidates[row],
                        scores.candidate_mask[row],
                        scores.pair_logits[row, query],
                        scores.pair_logits[row, query + 1],
                        self.relation_settings,
                        sigmoid,
                    )
                    outputs[row][task_index].relations = []
                    if pairs:
                        jobs.append((row, task_index, pairs, query_states[row, query : query + 2]))
                query += len(states)
        by_width: Dict[int, List[Tuple[int, int, List[ProposedPair], np.ndarray]]] = defaultdict(list)
        for job in jobs:
            by_width[reference_widths[job[0]]].append(job)
        for width, width_jobs in by_width.items():
            self._score_relation_jobs(words, width, width_jobs, outputs)

    def _score_relation_jobs(self, words: List[np.ndarray], width: int, jobs, outputs: List[List[TaskOutput]]) -> None:
        """One relation_scorer call for the relation tasks of texts whose reference width is `width`."""
        rows = sorted({row for row, _, _, _ in jobs})
        local_row = {row: index for index, row in enumerate(rows)}
        relations_of_row: Dict[int, int] = defaultdict(int)
        pair_rows, pair_relations, pair_spans, relation_index = [], [], [], []
        for row, _, pairs, _ in jobs:
            relation_index.append(relations_of_row[row])
            relations_of_row[row] += 1
            pair_rows += [local_row[row]] * len(pairs)
            pair_relations += [relation_index[-1]] * len(pairs)
            pair_spans += [(*pair.head, *pair.tail) for pair in pairs]
        hidden_size = words[rows[0]].shape[-1]
        text_states = np.zeros((len(rows), width, hidden_size), dtype=np.float32)
        for row in rows:
            text_states[local_row[row], : len(words[row])] = words[row]
        relation_roles = np.zeros((len(rows), max(relations_of_row.values()), 2, hidden_size), dtype=np.float32)
        for (row, _, _, roles), relation in zip(jobs, relation_index):
            relation_roles[local_row[row], relation] = roles
        logits = self.backend.score_relations(
            text_states,
            relation_roles,
            np.asarray(pair_rows, dtype=np.int64),
            np.asarray(pair_relations, dtype=np.int64),
            np.asarray(pair_spans, dtype=np.int64).reshape(-1, 4),
        )
        probabilities = sigmoid(logits / np.float32(self.relation_settings.temperature))
        offset = 0
        for row, task_index, pairs, _ in jobs:
            scored = probabilities[offset : offset + len(pairs)]
            outputs[row][task_index].relations = [(float(p), pair) for p, pair in zip(scored, pairs)]
            offset += len(pairs)

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
        """gliner2's raw results of one text: structures, relations, entities, then classifications."""
        results: Dict[str, Any] = self._structures(record, outputs)
        results.update(self._relations(record, outputs))
        entities: Dict[str, Any] = {}
        for task, output in zip(record.plan.tasks, outputs):
            if task.kind == ENTITIES and task.field_names:
                entities.update(self._entities(record, task, output))
        if entities:
            results["entities"] = [entities]
        for task, output in zip(record.plan.tasks, outputs):
            if task.classification is not None:
                results[task.classification.result_key] = classification_result(task.classification, output.class_logits)
        return results

    def _entities(self, record: EncodedText, task: TaskPlan, output: TaskOutput) -> Dict[str, Any]:
        options = record.plan.options
        policy = options.overlap_policy or self.default_overlap_policy
        shows_details = options.include_spans or options.include_confidence
        kept = output.candidates
        located: Dict[str, List[Tuple[Span, Tuple[int, int]]]] = {}
        for field in task.fields:
            candidates = (kept[field.index] if kept is not None else None) or []
            resolved = resolve_overlaps(candidates, policy, score=_probability, start=_start, end=_end)
            located[field.name] = _spans_in_text(record, resolved, field)
        with_attributes = task.decoder == "entities_with_attributes"
        attributes = self._attribute_values(task, output.explicit_inputs, located) if with_attributes else {}
        found: Dict[str, Any] = {}
        for field in task.fields:
            shown = [
                _attributed_entity(span, attributes.get((field.name, coordinates), {}), options)
                if with_attributes
                else span_payload(span, options)
                for span, coordinates in located[field.name]
            ]
            if field.dtype == "list":
                found[field.name] = shown
            elif shown:
                found[field.name] = shown[0]
            else:
                # gliner2 marks a missing bare str entity with "" rather than None.
                found[field.name] = None if shows_details else ""
        return found

    def _attribute_values(
        self,
        task: TaskPlan,
        explicit_inputs: Optional[Tuple[np.ndarray, np.ndarray]],
        located: Mapping[str, List[Tuple[Span, Tuple[int, int]]]],
    ) -> Dict[Tuple[str, Tuple[int, int]], Dict[str, Any]]:
        """Each kept entity's attribute groups, keyed by (entity type, word boundaries).

        As gliner2 does, every attribute label's query scores every kept entity span in one
        explicit-span call: the spans are injected into a pool built for those queries.
        """
        label_rows = list(dict.fromkeys((label, index) for group in task.attribute_groups for label, index in zip(group.labels, group.indices)))
        coordinates = list(dict.fromkeys(coordinate for spans in located.values() for _, coordinate in spans))
        if not label_rows or not coordinates or explicit_inputs is None:
            return {}
        words, field_states = explicit_inputs
        queries = field_states[[index for _, index in label_rows]][None]
        spans = np.broadcast_to(np.asarray(coordinates, dtype=np.int64), (1, len(label_rows), len(coordinates), 2))
        logits, outside = self.backend.score_explicit_spans(
            words[None],
            np.ones((1, len(words)), dtype=np.int64),
            queries,
            np.ones((1, len(label_rows)), dtype=np.int64),
            np.ascontiguousarray(spans),
            np.ones(spans.shape[:-1], dtype=np.int64),
        )
        if outside.any():
            raise ValueError(f"explicit spans exceed the shared candidate pool (pool_size={self.pool_size})")
        logits = logits[0] / self.pair_temperature
        row_of_label = {label: row for row, (label, _) in enumerate(label_rows)}
        column_of = {coordinate: column for column, coordinate in enumerate(coordinates)}
        values: Dict[Tuple[str, Tuple[int, int]], Dict[str, Any]] = {}
        for entity_type, spans_found in located.items():
            for _, coordinate in spans_found:
                column = column_of[coordinate]
                values[(entity_type, coordinate)] = attribute_groups_of(
                    task, entity_type, lambda group: logits[[row_of_label[label] for label in group.labels], column]
                )
        return values

    def _structures(self, record: EncodedText, outputs: Sequence[TaskOutput]) -> Dict[str, Any]:
        """Structures without a record mode, as gliner2 decodes them for this architecture: one
        instance holding every kept span of a list field and the best of a "str" field; choice
        fields score their choice words. An instance with every field empty is left out."""
        options = record.plan.options
        policy = options.overlap_policy or self.default_overlap_policy
        # gliner2 puts records first, then the structures without a record mode.
        results: Dict[str, Any] = {}
        for task, output in zip(record.plan.tasks, outputs):
            if task.record is not None and output.record_group is not None:
                instances = self._records(record, task, output, policy)
                if instances:
                    results[task.name] = instances
        for task, output in zip(record.plan.tasks, outputs):
            if task.kind != STRUCTURES or not task.fields or task.record is not None:
                continue
            instance: Dict[str, Any] = {}
            for field in task.fields:
                if field.builder_choices:
                    instance[field.name] = self._choice_value(record, field, output.explicit_inputs)
                    continue
                candidates = (output.candidates[field.index] if output.candidates is not None else None) or []
                resolved = resolve_overlaps(candidates, policy, score=_probability, start=_start, end=_end)
                shown = [span_payload(span, options) for span, _ in _spans_in_text(record, resolved, field)]
                instance[field.name] = (shown[0] if shown else None) if field.dtype == "str" else shown
            if any(value is not None and value != [] for value in instance.values()):
                results[task.name] = [instance]
        return results

    def _records(self, record: EncodedText, task: TaskPlan, output: TaskOutput, policy: str) -> List[Dict[str, Any]]:
        """The records of one structure, each with every field in prompt order (None or [] when
        empty) and, with include_confidence, its own score; records with every field empty are left out."""
        options = record.plan.options
        decoded = decode_record_group(output.record_group, task.record, options.threshold, self.record_temperature)
        offset = len(record.word_subwords) - record.text_len
        anchors = [None if found.anchor is None else _char_span(record, found.anchor, offset) for found in decoded]
        instances = []
        for index, found in enumerate(decoded):
            instance: Dict[str, Any] = {}
            for position, field in enumerate(task.record.fields):
                instance[field.name] = self._record_field(
                    record, output, field, position, found.fields.get(position, []), index, anchors, policy
                )
            if any(value is not None and value != [] for value in instance.values()):
                if options.include_confidence:
                    instance["confidence"] = found.score
                instances.append(instance)
        return instances

    def _record_field(
        self,
        record: EncodedText,
        output: TaskOutput,
        field: RecordFieldPlan,
        position: int,
        assigned: List[Tuple[Tuple[int, int], float]],
        record_index: int,
        anchors: List[Optional[Tuple[int, int]]],
        policy: str,
    ) -> Any:
        """One field of one record, as gliner2 formats it."""
        options = record.plan.options
        threshold = options.threshold
        is_scalar = field.is_scalar or field.dtype == "str"
        offset = len(record.word_subwords) - record.text_len
        prefix_choices: Dict[int, str] = {}
        for choice in field.choices or ():
            found_at = position_in_prefix(choice, record.plan.choice_prefix)
            if found_at >= 0:
                prefix_choices[found_at] = choice
        pool = output.record_group.candidates
        spans: List[Span] = []
        for (start, end), assigned_probability in assigned:
            # The candidate's own probability for this field, capped by the assignment's.
            exact = (pool[:, 0] == start) & (pool[:, 1] == end)
            candidate_probability = float(output.pool_probabilities[position][exact].max()) if exact.any() else 0.0
            probability = min(candidate_probability, float(assigned_probability))
            passes = field.threshold is None or probability >= field.threshold
            if field.choices and end <= offset:
                # A choice word of the prefix: the value is the choice, placed at the record's anchor.
                surface = prefix_choices.get(start, "")
                if surface and passes and all(validator.validate(surface) for validator in field.validators):
                    anchor = anchors[record_index]
                    spans.append((surface, probability, *(anchor if anchor is not None else (0, 0))))
                continue
            char_span = _char_span(record, (start, end), offset)
            if char_span is None:
                continue
            surface = record.text[char_span[0] : char_span[1]].strip()
            if (
                surface
                and (not field.allows_absent or candidate_probability >= threshold)
                and passes
                and all(validator.validate(surface) for validator in field.validators)
            ):
                spans.append((surface, probability, *char_span))
        spans = resolve_overlaps(spans, policy, score=_span_score, start=_span_start, end=_span_end)
        if is_scalar:
            spans = spans[:1]
        if field.choices:
            return self._record_choice(record, output, field, is_scalar, spans, record_index, anchors)
        shown = [span_payload(span, options) for span in spans]
        return (shown[0] if shown else None) if is_scalar else shown

    def _record_choice(
        self,
        record: EncodedText,
        output: TaskOutput,
        field: RecordFieldPlan,
        is_scalar: bool,
        spans: List[Span],
        record_index: int,
        anchors: List[Optional[Tuple[int, int]]],
    ) -> Any:
        """A choice field of a record: the choices written near the record's anchor when the text
        has any (the nearest one for a scalar), else the kept spans that are choices, else the
        field-level scoring of the choice words."""
        options = record.plan.options
        anchor = anchors[record_index]
        if anchor is not None:
            has_literal, owned = local_choice_mentions(record.text, field.choices, anchors)
            preferred = owned.get(record_index, [])
            if is_scalar and preferred:
                preferred = [min(preferred, key=lambda mention: max(anchor[0] - mention[2], mention[1] - anchor[1], 0))]
            if preferred:
                return self._choice_value(record, field, output.explicit_inputs, preferred, "str" if is_scalar else "list")
            if has_literal:
                return None if is_scalar else []
        canonical = {choice.casefold(): choice for choice in field.choices}
        matched = [(canonical[text.casefold()], probability, start, end) for text, probability, start, end in spans if text.casefold() in canonical]
        if matched:
            shown = [span_payload(span, options) for span in matched]
            return shown[0] if is_scalar else shown
        return self._choice_value(record, field, output.explicit_inputs, None, "str" if is_scalar else "list")

    def _choice_value(
        self,
        record: EncodedText,
        field: Any,
        explicit_inputs,
        preferred: Optional[List[Tuple[str, int, int]]] = None,
        dtype: Optional[str] = None,
    ) -> Any:
        """A choice field: each choice word of the prefix scored as a one-word span for the field's
        query (gliner2's explicit-span path), kept at or above the field's threshold.

        Args:
            field: A FieldPlan, or a RecordFieldPlan (whose threshold falls back to the call's).
            preferred: (choice, char start, char end) mentions of the choices in the text: these are
                the value, scored, in place of the thresholded choice words.
            dtype: "list" or "str"; the field's own by default.
        """
        dtype = dtype or field.dtype
        if isinstance(field, RecordFieldPlan):
            choice_words = field.choices or ()
            present = list(dict.fromkeys((choice, position_in_prefix(choice, record.plan.choice_prefix)) for choice in choice_words))
            present = [(choice, position) for choice, position in present if position >= 0]
            threshold = record.plan.options.threshold if field.threshold is None else field.threshold
            query = field.query
        else:
            present = list(dict.fromkeys(field.choices or ()))  # a choice listed twice is scored once
            threshold, query = field.threshold, field.index
        if not present:
            return [] if dtype == "list" else None
        words, field_states = explicit_inputs
        spans = np.asarray([[(position, position + 1) for _, position in present]], dtype=np.int64)[None]
        logits, outside = self.backend.score_explicit_spans(
            words[None],
            np.ones((1, len(words)), dtype=np.int64),
            field_states[query][None, None],
            np.ones((1, 1), dtype=np.int64),
            spans,
            np.ones(spans.shape[:-1], dtype=np.int64),
        )
        if outside.any():
            raise ValueError(f"explicit spans exceed the shared candidate pool (pool_size={self.pool_size})")
        probabilities = sigmoid(logits[0, 0] / self.pair_temperature)
        options = record.plan.options
        if preferred is not None:
            probability_of = {choice: float(probabilities[index]) for index, (choice, _) in enumerate(present)}
            kept = [(choice, probability_of[choice], start, end) for choice, start, end in preferred if choice in probability_of]
            if kept:
                shown_preferred = [span_payload(mention, options) for mention in kept]
                return shown_preferred if dtype == "list" else shown_preferred[0]

        def shown(index: int) -> Any:
            choice = present[index][0]
            return {"text": choice, "confidence": float(probabilities[index])} if options.include_confidence else choice

        if dtype == "list":
            return [shown(index) for index in range(len(present)) if float(probabilities[index]) >= threshold]
        best = int(np.argmax(probabilities))
        return shown(best) if float(probabilities[best]) >= threshold else None

    def _relations(self, record: EncodedText, outputs: Sequence[TaskOutput]) -> Dict[str, Any]:
        """Each relation type's cleaned-up edges, types in the order their first edge was kept."""
        edges: Dict[str, List[Edge]] = {}
        for task, output in zip(record.plan.tasks, outputs):
            if task.kind != RELATIONS or not output.relations:
                continue
            for probability, pair in output.relations:
                if probability < task.relation.threshold:
                    continue
                head = _mention(record, pair.head, pair.head_probability)
                tail = _mention(record, pair.tail, pair.tail_probability)
                if head is not None and tail is not None:
                    edges.setdefault(task.relation.relation_type, []).append(Edge(probability, head, tail))
        options = record.plan.options
        return {
            relation_type: [_relation_payload(edge, options.include_confidence, options.include_spans) for edge in clean_edges(found)]
            for relation_type, found in edges.items()
        }


def _mention(record: EncodedText, span: Tuple[int, int], probability: float) -> Optional[Mention]:
    """A relation argument in the text: (text, char start, char end, probability); None when it
    leaves the text or is blank."""
    offset = len(record.word_subwords) - record.text_len
    start, end = span[0] - offset, span[1] - offset
    if not 0 <= start < end <= record.text_len:
        return None
    char_start, char_end = record.start_map[start], record.end_map[end - 1]
    text = record.text[char_start:char_end].strip()
    return (text, char_start, char_end, probability) if text else None


def _relation_payload(edge: Edge, include_confidence: bool, include_spans: bool) -> Any:
    """One edge as gliner2's boundary models show it."""
    if not (include_confidence or include_spans):
        return edge.head[0], edge.tail[0]
    shown: Dict[str, Any] = {}
    for role, (text, start, end, probability) in (("head", edge.head), ("tail", edge.tail)):
        shown[role] = {"text": text, "start": start, "end": end} if include_spans else {"text": text}
        if include_confidence:
            shown[role]["confidence"] = probability
    if include_confidence:
        shown["confidence"] = edge.score
    return shown


def _has_queries(task: TaskPlan) -> bool:
    return not task.is_classification and bool(task.field_names)


def _field_at(task: TaskPlan, index: int) -> Optional[FieldPlan]:
    for field in task.fields:
        if field.index == index:
            return field
    return None


#: gliner2's record mode ids in the record head's routing.
_RECORD_MODE_IDS = {"natural": 0, "latent": 1, "anchorless": 2}


def _char_span(record: EncodedText, span: Tuple[int, int], offset: int) -> Optional[Tuple[int, int]]:
    """Character span of word boundaries `span` (choice prefix counted), None outside the text."""
    start, end = span[0] - offset, span[1] - offset
    if not 0 <= start < end <= record.text_len:
        return None
    return record.start_map[start], record.end_map[end - 1]


def _span_score(span: Span) -> float:
    return span[1]


def _span_start(span: Span) -> int:
    return span[2]


def _span_end(span: Span) -> int:
    return span[3]


def _probability(candidate: ScoredCandidate) -> float:
    return candidate.probability


def _start(candidate: ScoredCandidate) -> int:
    return candidate.start


def _end(candidate: ScoredCandidate) -> int:
    return candidate.end


def _attributed_entity(span: Span, attributes: Mapping[str, Any], options) -> Dict[str, Any]:
    """An entity with its attribute groups, as gliner2 shows it: text, confidence and offsets as
    asked, then each group (always a dict, even with text alone)."""
    shown = span_payload(span, options)
    entity = dict(shown) if isinstance(shown, dict) else {"text": shown}
    entity.update((name, value) for name, value in attributes.items() if name not in ("text", "confidence", "start", "end"))
    return entity


def _spans_in_text(
    record: EncodedText, resolved: List[ScoredCandidate], field: FieldPlan
) -> List[Tuple[Span, Tuple[int, int]]]:
    """(text, confidence, char_start, char_end) of the resolved candidates that lie in the text,
    are not blank and pass the field's validators, best first; each with its word boundaries."""
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
            spans.append(((surface, candidate.probability, char_start, char_end), (candidate.start, candidate.end)))
    return spans
