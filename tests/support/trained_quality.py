"""What a precision variant loses on the trained fixture's held-out set, against FP32 and against the truth.

Used by tests/test_trained_precision.py (which asserts the figures), by `python -m benchmarks.precision`
(which publishes them in the README's precision table) and by the demo, so one definition of "identical",
"confident item" and "entity F1" serves all three.

Each held-out sentence is run through the task its template was written for (every sentence also goes
through entity extraction), as a `batch_*` call with confidences.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Sequence, Set, Tuple

from tests.support.agreement import confident_kept_counts, same_decoded
from tests.support.trained_fixture import (
    ENTITY_LABELS,
    PRODUCT_SCHEMA,
    RELATION_LABELS,
    SENTIMENT_LABELS,
    SENTIMENT_TASK,
    Example,
    generate_examples,
)

HELD_OUT_SEED = 2026
HELD_OUT_SIZE = 400
QUALITY_BATCH_SIZE = 16

TaskCall = Callable[[Any, List[str], int], List[Any]]

#: task -> how a model answers it for a list of texts at a batch size (gliner2's and our batch methods).
TASK_CALLS: Dict[str, TaskCall] = {
    "entities": lambda model, texts, batch_size: model.batch_extract_entities(
        texts, list(ENTITY_LABELS), batch_size=batch_size, include_confidence=True
    ),
    "classification": lambda model, texts, batch_size: model.batch_classify_text(
        texts, {SENTIMENT_TASK: list(SENTIMENT_LABELS)}, batch_size=batch_size, include_confidence=True
    ),
    "relations": lambda model, texts, batch_size: model.batch_extract_relations(
        texts, list(RELATION_LABELS), batch_size=batch_size, include_confidence=True
    ),
    "json": lambda model, texts, batch_size: model.batch_extract_json(
        texts, PRODUCT_SCHEMA, batch_size=batch_size, include_confidence=True
    ),
}


def held_out_set(size: int = HELD_OUT_SIZE) -> List[Example]:
    """The held-out sentences: other templates and other names than the training data."""
    return generate_examples(size, HELD_OUT_SEED, held_out=True)


def task_texts(examples: Sequence[Example]) -> Dict[str, List[str]]:
    """{task: texts} for the held-out `examples`: entities on every text, each other task on its own kind."""
    return {
        "entities": [example.text for example in examples],
        "classification": [example.text for example in examples if example.sentiment is not None],
        "relations": [example.text for example in examples if example.relations],
        "json": [example.text for example in examples if example.product is not None],
    }


def answer_all(model, texts: Dict[str, List[str]], batch_size: int = QUALITY_BATCH_SIZE) -> Dict[str, List[Any]]:
    """{task: one result per text}, every task run as batches of `batch_size` (1 = each text alone)."""
    return {task: TASK_CALLS[task](model, task_texts, batch_size) for task, task_texts in texts.items()}


def _entity_set(result: Dict[str, Any]) -> Set[Tuple[str, str]]:
    return {
        (label, item["text"] if isinstance(item, dict) else item)
        for label, items in result["entities"].items()
        for item in items
    }


def entity_f1(results: Sequence[Dict[str, Any]], examples: Sequence[Example]) -> float:
    """Micro F1 of extracted (label, text) pairs against what the generator put into each sentence."""
    true_positives = predicted = gold = 0
    for result, example in zip(results, examples):
        found = _entity_set(result)
        expected = {(label, value) for label, values in example.entities.items() for value in values}
        true_positives += len(found & expected)
        predicted += len(found)
        gold += len(expected)
    if predicted == 0 or gold == 0:
        return 0.0
    precision, recall = true_positives / predicted, true_positives / gold
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


@dataclass
class Agreement:
    """How a candidate's answers compare with a reference's, per task and in all."""

    identical: Dict[str, int]
    totals: Dict[str, int]
    confident_kept: int
    confident_total: int

    @property
    def identical_share(self) -> float:
        return sum(self.identical.values()) / sum(self.totals.values())

    @property
    def confident_kept_share(self) -> float:
        return self.confident_kept / self.confident_total if self.confident_total else 1.0

    def describe(self) -> str:
        per_task = ", ".join(f"{task} {self.identical[task]}/{self.totals[task]}" for task in self.totals)
        return (
            f"{100 * self.identical_share:.1f}% identical ({per_task}); confident items kept "
            f"{self.confident_kept}/{self.confident_total}"
        )


def agreement(reference: Dict[str, List[Any]], candidate: Dict[str, List[Any]]) -> Agreement:
    """Decoded-output agreement of `candidate` with `reference` (both from `answer_all` on the same texts).

    A result counts as identical when everything but the confidences matches. A confident item is one that
    either side returns at confidence >= CONFIDENT; it is kept when both sides return it.
    """
    identical, totals = {}, {}
    kept = total = 0
    for task, expected_results in reference.items():
        actual_results = candidate[task]
        identical[task] = sum(same_decoded(e, a) for e, a in zip(expected_results, actual_results))
        totals[task] = len(expected_results)
        for expected, actual in zip(expected_results, actual_results):
            kept_here, total_here = confident_kept_counts(expected, actual)
            kept += kept_here
            total += total_here
    return Agreement(identical, totals, kept, total)
