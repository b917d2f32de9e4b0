"""The batch engine: encoded texts through a backend's numeric stages, then decoding.

Texts are sorted by token length so that similar lengths share an encoder batch, and per batch the
backend is called at most: once `encode`, once `count_and_queries` per distinct number of fields
(count_lstm_v2 attends across fields, so the field count is never padded), once `classify` and once
`score_spans`. Data-dependent steps stay here: count argmax and slicing, gathers, padding.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from tokenizers import Tokenizer

from optimum_gliner2.errors import GLiNER2InputError
from optimum_gliner2.runtime.backend import GLiNER2Backend
from optimum_gliner2.runtime.decode import TaskOutput, decode_text, mask_spans_past_end
from optimum_gliner2.runtime.plan import SchemaPlan
from optimum_gliner2.runtime.preprocess import EncodedText, Preprocessor, check_token_pooling, pad_batch, pool_words
from optimum_gliner2.runtime.words import WordSplitterSpec

#: Longest model input (schema prompt + text tokens) one encoder pass accepts. DeBERTa's attention
#: at 8,192 tokens needs several GB per layer; the *_long methods chunk at 384 words.
DEFAULT_MAX_SEQUENCE_TOKENS = 8192


class ExtractionEngine:
    """Runs planned extractions on a `GLiNER2Backend`, batch by batch.

    Args:
        backend: Runs the numeric stages (encoder, count head, classifier, span scorer).
        tokenizer: The checkpoint's tokenizer, including gliner2's marker tokens.
        token_pooling: How word embeddings pool their subwords ("first", "mean" or "max").
        word_splitter: gliner2 word splitter name or callable.
        max_sequence_tokens: Longest model input one encoder pass accepts.
    """

    def __init__(
        self,
        backend: GLiNER2Backend,
        tokenizer: Tokenizer,
        *,
        token_pooling: str = "first",
        word_splitter: Optional[WordSplitterSpec] = None,
        max_sequence_tokens: int = DEFAULT_MAX_SEQUENCE_TOKENS,
    ):
        check_token_pooling(token_pooling)
        self.backend = backend
        self.token_pooling = token_pooling
        self.max_sequence_tokens = max_sequence_tokens
        self.preprocessor = Preprocessor(tokenizer, word_splitter)

    def extract(
        self, texts: Sequence[str], plans: Sequence[SchemaPlan], batch_size: int, max_len: Optional[int] = None
    ) -> List[Dict[str, Any]]:
        """gliner2's raw results, one per text, in input order (equal to one-at-a-time calls).

        Raises:
            GLiNER2InputError: A text longer than `max_sequence_tokens` with its schema.
        """
        records = self.preprocessor.encode_batch(texts, plans, max_len)
        self._check_sequence_lengths(records)
        # Longest first: similar lengths share a batch, and the largest batch runs first.
        order = sorted(range(len(records)), key=lambda i: len(records[i].input_ids), reverse=True)
        results: List[Dict[str, Any]] = [{} for _ in records]
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            for index, result in zip(chunk, self._extract_batch([records[i] for i in chunk])):
                results[index] = result
        return results

    def _check_sequence_lengths(self, records: Sequence[EncodedText]) -> None:
        # The encoder's attention grows with the square of the sequence: a 100k-word text would be
        # killed for memory (as it is in gliner2) instead of answering. Refuse it, naming the fix.
        for index, record in enumerate(records):
            if len(record.input_ids) > self.max_sequence_tokens:
                raise GLiNER2InputError(
                    f"text {index} is {len(record.input_ids)} tokens long with its schema, more than "
                    f"max_sequence_tokens={self.max_sequence_tokens} that one encoder pass allows. Use the "
                    "*_long methods (e.g. extract_entities_long, batch_extract_long), which split long "
                    "documents into overlapping chunks, or pass max_len=<words> to truncate, or raise "
                    "the model's max_sequence_tokens if your memory allows."
                )

    def _extract_batch(self, records: List[EncodedText]) -> List[Dict[str, Any]]:
        input_ids, attention_mask = pad_batch(records)
        hidden = self.backend.encode(input_ids, attention_mask)
        words = [pool_words(hidden[row], record, self.token_pooling) for row, record in enumerate(records)]
        # Per task: the [P] embedding, then one embedding per field or label marker.
        markers = [[hidden[row, list(positions)] for positions in record.marker_positions] for row, record in enumerate(records)]
        outputs = [[TaskOutput() for _ in record.plan.tasks] for record in records]
        self._count_and_score_spans(records, words, markers, outputs)
        self._classify(records, markers, outputs)
        return [decode_text(record, task_outputs) for record, task_outputs in zip(records, outputs)]

    def _count_and_score_spans(
        self,
        records: List[EncodedText],
        words: List[np.ndarray],
        markers: List[List[np.ndarray]],
        outputs: List[List[TaskOutput]],
    ) -> None:
        """Predict instance counts, build count-aware queries and score spans for span tasks."""
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

    def _classify(self, records: List[EncodedText], markers: List[List[np.ndarray]], outputs: List[List[TaskOutput]]) -> None:
        """Classifier logits for every label marker of the batch, in one backend call."""
        tasks = [
            (row, task_index)
            for row, record in enumerate(records)
            for task_index, task in enumerate(record.plan.tasks)
            if task.is_classification
        ]
        if not tasks:
            return
        label_markers = [markers[row][task_index][1:] for row, task_index in tasks]
        logits = self.backend.classify(np.concatenate(label_markers))
        offset = 0
        for (row, task_index), labels in zip(tasks, label_markers):
            outputs[row][task_index].class_logits = logits[offset : offset + len(labels)]
            offset += len(labels)
