"""The extraction head of span models (gliner2-*-v1): count heads, span scorer, span decoding.

Per batch the backend is called once `count_and_queries` per distinct number of fields (count_lstm_v2
attends across fields, so the field count is never padded) and once `score_spans`. Count argmax,
slicing to the predicted count, gathers and padding stay on the host.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from optimum_gliner2.runtime.backend import SpanBackend
from optimum_gliner2.runtime.decode import TaskOutput, decode_text, mask_spans_past_end
from optimum_gliner2.runtime.plan import SchemaPlan
from optimum_gliner2.runtime.preprocess import EncodedText


class SpanHeads:
    """Runs a span model's extraction stages for the engine and decodes their output.

    Args:
        backend: The span model's numeric stages.
    """

    architecture = "span"
    #: None keeps gliner2's greedy, confidence-first overlap resolution of span models.
    default_overlap_policy: Optional[str] = None
    #: Span models apply the classifier's logits as they are.
    classification_temperature = 1.0
    #: extract_json declares plain structures (span models have no record head).
    json_record_mode: Optional[str] = None

    def __init__(self, backend: SpanBackend):
        self.backend = backend

    def check(self, plans: Sequence[SchemaPlan]) -> None:
        """Span models run every task gliner2 has."""

    def score(
        self,
        records: List[EncodedText],
        words: List[np.ndarray],
        markers: List[List[np.ndarray]],
        outputs: List[List[TaskOutput]],
        reference_widths: Optional[Sequence[int]] = None,
    ) -> None:
        """Predict instance counts, build count-aware queries and score spans for span tasks.

        `reference_widths` is for boundary models' relations; span scores depend on no batch."""
        tasks_by_field_count: Dict[int, List[Tuple[int, int]]] = defaultdict(list)
        for row, record in enumerate(records):
            if not len(words[row]):
                continue
            for task_index, task in enumerate(record.plan.tasks):
                if not task.is_classification and task.field_names:
                    tasks_by_field_count[len(markers[row][task_index]) - 1].append((row, task_index))

        queries: Dict[int, List[Tuple[int, np.ndarray]]] = defaultdict(list)
        for tasks in tasks_by_field_count.values():
            prompts = np.stack([markers[row][task_index][0] for row, task_index in tasks])
            fields = np.stack([markers[row][task_index][1:] for row, task_index in tasks])
            readable = np.array(
                [records[row].plan.tasks[task_index].reads_instances or self.backend.max_count for row, task_index in tasks],
                dtype=np.int64,
            )
            count_logits, count_queries = self.backend.count_and_queries(prompts, fields, readable)
            for (row, task_index), logits, task_queries, limit in zip(tasks, count_logits, count_queries, readable):
                count = int(np.argmax(logits))
                outputs[row][task_index].count = count
                if count > 0:
                    queries[row].append((task_index, task_queries[: min(count, int(limit))]))
        if not queries:
            return

        rows = sorted(queries)
        hidden_size = words[rows[0]].shape[-1]
        flat_queries = [np.concatenate([q.reshape(-1, hidden_size) for _, q in queries[row]]) for row in rows]
        padded_words = np.zeros((len(rows), max(len(words[row]) for row in rows), hidden_size), dtype=np.float32)
        padded_queries = np.zeros((len(rows), max(len(q) for q in flat_queries), hidden_size), dtype=np.float32)
        for i, row in enumerate(rows):
            padded_words[i, : len(words[row])] = words[row]
            padded_queries[i, : len(flat_queries[i])] = flat_queries[i]
        span_logits = self.backend.score_spans(padded_words, padded_queries)

        for i, row in enumerate(rows):
            word_count = len(words[row])
            offset = 0
            for task_index, task_queries in queries[row]:
                instances, field_count = task_queries.shape[:2]
                task_logits = span_logits[i, offset : offset + instances * field_count, :word_count]
                outputs[row][task_index].span_logits = mask_spans_past_end(task_logits).reshape(
                    instances, field_count, word_count, -1
                )
                offset += instances * field_count

    def decode(self, record: EncodedText, outputs: Sequence[TaskOutput]) -> Dict[str, Any]:
        """gliner2's raw results of one text."""
        return decode_text(record, outputs)
