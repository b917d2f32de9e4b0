"""Record decoding for GLiNER2.5 (boundary) models: which instances form records, and which pool
candidate fills each field of each record.

The record head (a graph) scores, for one structure with a record mode, every instance hypothesis
(`object_logits`) and every (instance, field, candidate) assignment with an explicit "no value"
column (`assign_logits`). Decoding, as gliner2's `decode_group` does it:

    selected  = instances with sigmoid(object / temperature) >= threshold, best first
    anchor    = (natural mode) the instance's own pool span fills the anchor field
    exclusive scalar field: one joint minimum-cost assignment of the selected instances to the
              candidates, cost -log softmax, each instance with a private "no value" column
              (prohibitively dear for a required field)
    exclusive list field: each candidate goes to the instance that wants it most, if enough
    other fields: each instance on its own (softmax best for scalars, sigmoid >= threshold for lists)
    records with no field filled are dropped; natural records are ordered by anchor position,
    latent and anchorless ones de-duplicated on their field values (the best-scored copy kept)

The assignment: gliner2 solves it with scipy's `linear_sum_assignment` when scipy is importable and
with its own pure-Python shortest-augmenting-path solver otherwise. Both return a minimum-cost
assignment; they can differ only where two assignments cost the same to the last bit. scipy is no
dependency of this runtime (a serving image has numpy, tokenizers and onnxruntime), so
`min_cost_assignment` below is our own exact solver: a Hungarian method with row and column
potentials that, like gliner2's fallback, adds rows in order and breaks ties towards the lower column.
tests/test_boundary_records.py checks our answers against gliner2 on both of its paths.
"""

from __future__ import annotations

import math
import re
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from optimum_gliner2.runtime.decode import sigmoid as _sigmoid
from optimum_gliner2.runtime.decode import softmax as _softmax
from optimum_gliner2.runtime.plan import RecordPlan

Span = Tuple[int, int]


class RecordGroup(NamedTuple):
    """The record head's scores for one structure of one text.

    Attributes:
        object_logits: `[I]` raw object logits of the instance hypotheses.
        assign_logits: `[I, F, 1 + C]` raw assignment logits (column 0: no value).
        instance_mask: `[I]` bool, the hypotheses that exist.
        membership: `[F, C]` bool, the pool candidates each field may take.
        candidates: `[C, 2]` the pool's half-open word boundaries (choice prefix included).
    """

    object_logits: np.ndarray
    assign_logits: np.ndarray
    instance_mask: np.ndarray
    membership: np.ndarray
    candidates: np.ndarray


class DecodedRecord(NamedTuple):
    """One record: per field position, its spans (word boundaries) and their probabilities."""

    score: float
    anchor: Optional[Span]
    fields: Dict[int, List[Tuple[Span, float]]]


def decode_record_group(group: RecordGroup, plan: RecordPlan, threshold: float, temperature: float) -> List[DecodedRecord]:
    """The records of one structure, as gliner2's decode_group forms them (see the module docstring).

    Args:
        group: The record head's scores.
        plan: The structure's record fields and mode.
        threshold: The call's threshold: for instances, assignments and list fields alike.
        temperature: The head's record temperature.
    """
    temperature32 = np.float32(temperature)
    object_probabilities = _sigmoid(group.object_logits / temperature32)
    # gliner2 first keeps what passes in float32, then compares the survivors as Python floats.
    passing = np.flatnonzero(group.instance_mask & (object_probabilities >= np.float32(threshold)))
    score_of = {int(index): float(object_probabilities[index]) for index in passing}
    selected = sorted((index for index in score_of if score_of[index] >= threshold), key=lambda index: (-score_of[index], index))
    if not selected:
        return []
    columns = [np.flatnonzero(group.membership[position]) for position in range(len(plan.fields))]

    def logits_of(instance: int, position: int) -> np.ndarray:
        wanted = np.concatenate(([0], columns[position] + 1))
        return group.assign_logits[instance, position, wanted] / temperature32

    scalar_choices: Dict[Tuple[int, int], Optional[Tuple[int, float]]] = {}
    list_owners: Dict[Tuple[int, int], Tuple[int, float]] = {}
    for position, field in enumerate(plan.fields):
        if not field.exclusive:
            continue
        logits = np.stack([logits_of(instance, position) for instance in selected])
        if field.is_scalar:
            scalar_choices.update(_assign_scalar_field(logits, field.allows_absent, threshold, selected, position))
        else:
            probabilities = _sigmoid(logits[:, 1:])
            for candidate in range(probabilities.shape[1]):
                row = int(np.argmax(probabilities[:, candidate]))
                probability = float(probabilities[row, candidate])
                if probability >= threshold:
                    list_owners[(position, candidate)] = (selected[row], probability)

    records = []
    for instance in selected:
        score = score_of[instance]
        anchor = None
        if plan.mode == "natural":
            anchor = (int(group.candidates[instance, 0]), int(group.candidates[instance, 1]))
        fields: Dict[int, List[Tuple[Span, float]]] = {}
        for position, field in enumerate(plan.fields):
            spans = group.candidates[columns[position]]
            if position == plan.anchor and plan.mode == "natural":
                fields[position] = [(anchor, score)]
                continue
            found: List[Tuple[Span, float]] = []
            if field.is_scalar and field.exclusive:
                choice = scalar_choices.get((instance, position))
                if choice is not None:
                    found.append((_span(spans, choice[0]), choice[1]))
            elif field.is_scalar:
                probabilities = _softmax(logits_of(instance, position))
                chosen = _best_column(probabilities, field.allows_absent)
                if chosen and not (float(probabilities[chosen]) < threshold and field.allows_absent):
                    found.append((_span(spans, chosen - 1), float(probabilities[chosen])))
            else:
                probabilities = _sigmoid(logits_of(instance, position)[1:])
                for candidate in range(len(probabilities)):
                    if field.exclusive:
                        owner = list_owners.get((position, candidate))
                        if owner is None or owner[0] != instance:
                            continue
                        probability = owner[1]
                    else:
                        probability = float(probabilities[candidate])
                        if probability < threshold:
                            continue
                    found.append((_span(spans, candidate), probability))
            if found:
                fields[position] = found
        if fields:
            records.append(DecodedRecord(score, anchor, fields))

    if plan.mode == "natural":
        return sorted(records, key=lambda record: (record.anchor is None, record.anchor or (0, 0)))
    # Learned seeds can form the same record twice: keep the best-scored copy where the first stood.
    best: Dict[Tuple, DecodedRecord] = {}
    for record in records:
        key = tuple((position, tuple(sorted(span for span, _ in found))) for position, found in sorted(record.fields.items()))
        if key not in best or record.score > best[key].score:
            best[key] = record
    return list(best.values())


def _assign_scalar_field(
    logits: np.ndarray, allows_absent: bool, threshold: float, selected: Sequence[int], position: int
) -> Dict[Tuple[int, int], Optional[Tuple[int, float]]]:
    """An exclusive scalar field: the selected instances [n] jointly assigned to its candidates.

    Costs are -log softmax over (no value, candidates); each instance has its own "no value" column,
    which a required field prices above every candidate (never preferred while one is free) and
    every other instance's costs more again, so that it is never taken.
    """
    rows, candidate_count = logits.shape[0], logits.shape[1] - 1
    if candidate_count == 0:
        return {(instance, position): None for instance in selected}
    probabilities = _softmax(logits)
    floor = np.finfo(np.float32).eps
    candidate_probabilities = probabilities[:, 1:]
    candidate_cost = -np.log(np.maximum(candidate_probabilities, floor))
    if allows_absent:
        absent_cost = -np.log(np.maximum(probabilities[:, 0], floor))
    else:
        absent_cost = np.full(rows, candidate_cost.max() + np.float32(50.0), dtype=np.float32)
    unusable = np.float32(max(float(candidate_cost.max()), float(absent_cost.max())) + 1000.0)
    absent_block = np.full((rows, rows), unusable, dtype=np.float32)
    absent_block[np.arange(rows), np.arange(rows)] = absent_cost
    assigned_rows, assigned_columns = min_cost_assignment(np.concatenate((candidate_cost, absent_block), axis=1))
    column_of = dict(zip(assigned_rows.tolist(), assigned_columns.tolist()))
    choices: Dict[Tuple[int, int], Optional[Tuple[int, float]]] = {}
    for row, instance in enumerate(selected):
        column = column_of.get(row, candidate_count + row)
        probability = float(candidate_probabilities[row, column]) if column < candidate_count else 0.0
        if column >= candidate_count or (probability < threshold and allows_absent):
            choices[(instance, position)] = None
        else:
            choices[(instance, position)] = (column, probability)
    return choices


def min_cost_assignment(cost: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """A minimum-cost assignment of the rows of `cost` to distinct columns (or of its columns to
    rows, when it has more rows than columns).

    The Hungarian method with potentials: each row in turn enters along a shortest augmenting path
    in the reduced costs. Exact in float64; ties go to the lower column.

    Args:
        cost: `[R, C]` finite costs.

    Returns:
        (rows, columns): int64 arrays of the min(R, C) matched pairs, rows ascending.

    Raises:
        ValueError: `cost` is not 2-D or holds a non-finite value.
    """
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2:
        raise ValueError(f"the assignment cost must be a 2-D matrix, got shape {cost.shape}")
    if not np.isfinite(cost).all():
        raise ValueError("the assignment cost holds NaN or infinite values")
    if cost.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    transposed = cost.shape[0] > cost.shape[1]
    if transposed:
        cost = cost.T
    rows, columns = cost.shape
    # Column 0 is a virtual start column; rows and columns are 1-based in the potentials.
    row_potential = np.zeros(rows + 1)
    column_potential = np.zeros(columns + 1)
    row_of_column = np.zeros(columns + 1, dtype=np.int64)  # 0: free
    previous_column = np.zeros(columns + 1, dtype=np.int64)
    for row in range(1, rows + 1):
        row_of_column[0] = row
        column = 0
        slack = np.full(columns + 1, math.inf)
        in_tree = np.zeros(columns + 1, dtype=bool)
        while True:
            in_tree[column] = True
            tree_row = row_of_column[column]
            reduced = cost[tree_row - 1] - row_potential[tree_row] - column_potential[1:]
            outside = ~in_tree[1:]
            better = outside & (reduced < slack[1:])
            slack[1:][better] = reduced[better]
            previous_column[1:][better] = column
            open_slack = np.where(outside, slack[1:], math.inf)
            nearest = int(np.argmin(open_slack)) + 1
            step = open_slack[nearest - 1]
            tree = np.flatnonzero(in_tree)
            row_potential[row_of_column[tree]] += step
            column_potential[tree] -= step
            slack[1:][outside] -= step
            column = nearest
            if row_of_column[column] == 0:
                break
        while column:
            source = previous_column[column]
            row_of_column[column] = row_of_column[source]
            column = source
    matched = np.flatnonzero(row_of_column[1:])
    row_index, column_index = row_of_column[1:][matched] - 1, matched
    if transposed:
        row_index, column_index = column_index, row_index
    order = np.argsort(row_index, kind="stable")
    return row_index[order].astype(np.int64), column_index[order].astype(np.int64)


def local_choice_mentions(
    text: str, choices: Sequence[str], anchors: Sequence[Optional[Tuple[int, int]]]
) -> Tuple[bool, Dict[int, List[Tuple[str, int, int]]]]:
    """Literal mentions of a choice field's choices in the text, each given to a record.

    A mention belongs to the last record whose anchor starts at or before it (the first record for
    mentions before every anchor); per record each choice keeps its first mention, in text order.

    Args:
        text: The text.
        choices: The field's choices (matched whole-word, ignoring case).
        anchors: Character span of each record's anchor, None where it has none in the text.

    Returns:
        (whether any choice occurs in the text, {record index: [(choice, char start, char end)]}).
    """
    mentions = [
        (choice, match.start(), match.end())
        for choice in choices
        for match in re.finditer(rf"(?<!\w){re.escape(choice)}(?!\w)", text, flags=re.IGNORECASE)
    ]
    if not mentions:
        return False, {}
    anchored = sorted(((index, span) for index, span in enumerate(anchors) if span is not None), key=lambda item: (item[1][0], item[0]))
    if not anchored:
        return True, {}
    owned: Dict[int, List[Tuple[str, int, int]]] = {}
    for mention in sorted(mentions, key=lambda item: item[1]):
        before = [item for item in anchored if item[1][0] <= mention[1]]
        owner = before[-1][0] if before else anchored[0][0]
        owned.setdefault(owner, []).append(mention)
    for owner, found in owned.items():
        first_of_choice: Dict[str, Tuple[str, int, int]] = {}
        for mention in found:
            first_of_choice.setdefault(mention[0], mention)
        owned[owner] = sorted(first_of_choice.values(), key=lambda item: item[1])
    return True, owned


def _best_column(probabilities: np.ndarray, allows_absent: bool) -> int:
    """The most probable column, skipping "no value" (0) when the field may not stay empty."""
    if allows_absent:
        return int(np.argmax(probabilities))
    return int(np.argmax(probabilities[1:])) + 1 if len(probabilities) > 1 else 0


def _span(spans: np.ndarray, index: int) -> Span:
    return int(spans[index, 0]), int(spans[index, 1])
