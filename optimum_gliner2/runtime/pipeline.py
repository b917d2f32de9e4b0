"""gliner2's public extraction API on top of any `GLiNER2Backend`, without torch.

`GLiNER2Pipeline` has every public inference method of gliner2's `GLiNER2` (span architecture)
with the same signatures, defaults and results: gliner2's host code (preprocessing, batching,
decoding, formatting, long-text chunking) is ported to numpy here and in `processing.py` and
`decoding.py`; the backend runs the four numeric stages (encoder, count head, classifier, span
scorer). Data-dependent steps stay on the host: count argmax and slicing, gathers, padding.

Per batch of texts the backend is called at most: once `encode`, once `count_and_queries` per
distinct number of fields M (count_lstm_v2 attends across fields, so M is never padded), once
`classify` and once `score_spans`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple, Union

import numpy as np
from tokenizers import Tokenizer

from ._vendor import result_format
from ._vendor.chunking import merge_chunk_results, split_text_into_chunks
from ._vendor.overlap import normalize_overlap_policy
from ._vendor.schema import Schema
from ._vendor.word_splitter import WordSplitter, WordSplitterSpec
from .backend import GLiNER2Backend
from .decoding import DecodeOptions, SampleDecoder, TaskOutput, mask_spans_past_end
from .errors import GLiNER2InputError
from .processing import (
    TOKEN_POOLINGS,
    EncodedText,
    Preprocessor,
    check_names,
    check_schema,
    check_text,
    pad_batch,
    pool_words,
)

#: A gliner2 `Schema` (the vendored one or gliner2's own, duck-typed) or a schema dict.
SchemaLike = Union[Schema, Mapping[str, Any]]
Schemas = Union[SchemaLike, List[SchemaLike]]
#: Label names, or a dict of name -> description or config, as `Schema.entities` takes them.
LabelTypes = Union[str, List[str], Dict[str, Any]]


def schema_dict_and_metadata(schema: SchemaLike) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """gliner2's `_build_schema_dicts_and_metadata` for one schema.

    Builder objects (anything with `build()`) carry per-label metadata; dicts get empty metadata
    and a list of entity names becomes a dict.
    """
    if hasattr(schema, "build"):
        schema_dict = schema.build()
        metadata = {
            "field_metadata": schema._field_metadata,
            "entity_metadata": schema._entity_metadata,
            "relation_metadata": getattr(schema, "_relation_metadata", {}),
            "relation_descriptions": schema_dict.get("relation_descriptions", {}),
            "field_orders": schema._field_orders,
            "entity_order": schema._entity_order,
            "relation_order": getattr(schema, "_relation_order", []),
            "entity_attribute_groups": getattr(schema, "_entity_attribute_groups", {}),
            "entity_attribute_prompt_labels": getattr(
                schema, "_entity_attribute_prompt_labels", {}
            ),
            "entity_attribute_labels": getattr(schema, "_entity_attribute_labels", set()),
        }
    elif isinstance(schema, Mapping):
        schema_dict = dict(schema)
        entities = schema_dict.get("entities")
        if isinstance(entities, list):
            check_names(entities, "schema entities")
            schema_dict["entities"] = {name: "" for name in entities}
        entity_order = (
            list(schema_dict["entities"]) if isinstance(schema_dict.get("entities"), dict) else []
        )
        metadata = {
            "field_metadata": {},
            "entity_metadata": {},
            "relation_metadata": {},
            "relation_descriptions": schema_dict.get("relation_descriptions", {}),
            "field_orders": {},
            "entity_order": entity_order,
            "relation_order": [],
            "entity_attribute_groups": {},
            "entity_attribute_prompt_labels": {},
            "entity_attribute_labels": set(),
        }
    else:
        raise GLiNER2InputError(
            f"a schema must be a gliner2 Schema or a dict, got {type(schema).__name__}"
        )
    metadata["classification_tasks"] = [c["task"] for c in schema_dict.get("classifications", [])]
    return schema_dict, metadata


def _label_names(label_types: Any) -> List[Any]:
    """Names in the forms gliner2's `entities()`/`relations()` accept: str, list or dict."""
    if isinstance(label_types, str):
        return [label_types]
    if isinstance(label_types, (Mapping, list, tuple)):
        return list(label_types)
    raise GLiNER2InputError(
        f"labels must be a str, a list or a dict, got {type(label_types).__name__}"
    )


def _check_texts(texts: Sequence[str], single_text_method: str) -> None:
    if isinstance(texts, str):
        raise GLiNER2InputError(
            f"texts must be a list of str; use {single_text_method}() for one text"
        )
    for index, text in enumerate(texts):
        check_text(text, index)


def _schema_per_text(texts: Sequence[str], schemas: Schemas) -> List[SchemaLike]:
    if isinstance(schemas, list):
        if len(schemas) != len(texts):
            raise GLiNER2InputError(f"Schema count ({len(schemas)}) != text count ({len(texts)})")
        return schemas
    return [schemas] * len(texts)


def _reject_hidden_states(hidden_states: Any) -> None:
    if hidden_states is not None:
        raise TypeError(
            "hidden_states (precomputed PyTorch encoder states) is a torch-only option of "
            "gliner2's GLiNER2; this pipeline runs the encoder through its backend"
        )


#: Longest model input (schema prompt + text tokens) one encoder pass accepts. DeBERTa's attention
#: at 8,192 tokens needs several GB per layer; the *_long methods chunk at 384 words.
DEFAULT_MAX_SEQUENCE_TOKENS = 8192


class GLiNER2Pipeline:
    """gliner2's extraction API, run on a `GLiNER2Backend` without torch.

    Every method returns what the same method of gliner2's `GLiNER2` returns for the same
    checkpoint (texts, labels and character offsets equal; confidences equal up to float
    rounding of the backend), including gliner2's quirks (a relation with a description is
    keyed "name: description"; a structure predicted to have 0 instances formats as {}).

    Stricter than gliner2, which answers these with placeholder or empty results, the pipeline
    raises `GLiNER2InputError` for: non-str, empty or whitespace-only texts (gliner2 reads them
    as "."); empty or duplicate label, field or choice lists (gliner2 drops the task or merges
    the duplicates); texts, labels, descriptions or prompts containing gliner2's marker tokens
    such as "[E]" (they corrupt the prompt; gliner2's default splitter happens to break them
    apart in texts, a custom splitter may not); a schema with no task or that is neither a
    `Schema` nor a dict (gliner2 substitutes a dummy record); `max_len` < 1.

    Args:
        backend: Runs the numeric stages (encoder, count head, classifier, span scorer).
        tokenizer: The checkpoint's tokenizer (`tokenizers.Tokenizer.from_file("tokenizer.json")`),
            including gliner2's marker tokens.
        token_pooling: How word embeddings pool their subwords: "first" (all published
            checkpoints), "mean" or "max"; the checkpoint's config.json says which.
        word_splitter: gliner2 word splitter: None or "whitespace" (default), "char" for
            languages without spaces, or a callable yielding `(word, start, end)`.

    Example:
        >>> pipeline = GLiNER2Pipeline(backend, Tokenizer.from_file("model/tokenizer.json"))
        >>> pipeline.extract_entities("Tim Cook runs Apple.", ["person", "company"])
        {'entities': {'person': ['Tim Cook'], 'company': ['Apple']}}
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
        if token_pooling not in TOKEN_POOLINGS:
            raise GLiNER2InputError(
                f"token_pooling must be one of {TOKEN_POOLINGS}, got {token_pooling!r}"
            )
        self.backend = backend
        self.token_pooling = token_pooling
        self.max_sequence_tokens = max_sequence_tokens
        self.preprocessor = Preprocessor(tokenizer, word_splitter)

    @property
    def word_splitter(self) -> WordSplitter:
        """The active word splitter (also used to chunk long texts)."""
        return self.preprocessor.word_splitter

    def create_schema(self) -> Schema:
        """A new, empty schema builder (gliner2's `Schema`)."""
        return Schema()

    # =========================================================================================
    # Main batch extraction
    # =========================================================================================

    def batch_extract(
        self,
        texts: List[str],
        schemas: Schemas,
        batch_size: int = 8,
        threshold: float = 0.5,
        num_workers: int = 0,
        format_results: bool = True,
        include_confidence: bool = False,
        include_spans: bool = False,
        max_len: Optional[int] = None,
        overlap_policy: Optional[str] = None,
        hidden_states: Optional[Any] = None,
    ) -> List[Dict[str, Any]]:
        """Extract from several texts.

        Texts are sorted by token length and encoded `batch_size` at a time, which wastes less
        padding; results come back in input order and equal one-text-at-a-time calls.

        Args:
            texts: Input texts.
            schemas: One schema (`Schema` or dict) for every text, or a list with one per text.
            batch_size: Texts per encoder call.
            threshold: Default span threshold; per-label thresholds of the schema override it.
            num_workers: Accepted for compatibility with gliner2 and ignored.
            format_results: Return gliner2's public payload instead of its raw results.
            include_confidence: Keep confidence scores.
            include_spans: Keep character offsets (`start`, `end`) into the text.
            max_len: Keep at most this many words of each text.
            overlap_policy: Span overlap policy ("allow", "nested", "flat"/"disallow",
                "longest"); None keeps gliner2's confidence-first greedy default.
            hidden_states: Not supported (gliner2's PyTorch-only encoder-state input).

        Returns:
            One result dict per text.

        Raises:
            GLiNER2InputError: A bad text, schema, `batch_size` or `max_len`, or a schema list
                whose length differs from the number of texts.
            ValueError: An unknown `overlap_policy` (gliner2's own error).
            TypeError: `hidden_states` was given.
        """
        _reject_hidden_states(hidden_states)
        _check_texts(texts, "extract")
        if not texts:
            return []
        if batch_size <= 0:
            raise GLiNER2InputError("batch_size must be greater than 0")
        if max_len is not None and max_len < 1:
            raise GLiNER2InputError(f"max_len must be at least 1, got {max_len}")

        schema_dicts, metadata_list = [], []
        checked: Set[int] = set()
        for schema in _schema_per_text(texts, schemas):
            schema_dict, metadata = schema_dict_and_metadata(schema)
            if id(schema) not in checked:
                check_schema(schema_dict)
                checked.add(id(schema))
            schema_dicts.append(schema_dict)
            metadata_list.append(metadata)
        if overlap_policy is not None:
            overlap_policy = normalize_overlap_policy(overlap_policy)
            for metadata in metadata_list:
                metadata["_overlap_policy"] = overlap_policy

        records = [
            self.preprocessor.encode(text, schema_dict, max_len)
            for text, schema_dict in zip(texts, schema_dicts)
        ]
        self._check_sequence_lengths(records)
        options = DecodeOptions(threshold, include_confidence, include_spans)
        # Longest first: similar lengths share a batch, and the largest batch runs first.
        order = sorted(range(len(records)), key=lambda i: len(records[i].input_ids), reverse=True)
        results: List[Dict[str, Any]] = [{} for _ in records]
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            decoded = self._extract_batch(
                [records[i] for i in chunk], [metadata_list[i] for i in chunk], options
            )
            for index, result in zip(chunk, decoded):
                results[index] = result

        if format_results:
            results = [
                self.format_results(
                    result,
                    include_confidence,
                    metadata.get("relation_order", []),
                    metadata.get("classification_tasks", []),
                )
                for result, metadata in zip(results, metadata_list)
            ]
        return results

    def _check_sequence_lengths(self, records: List[EncodedText]) -> None:
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

    def _extract_batch(
        self,
        records: List[EncodedText],
        metadata_list: List[Dict[str, Any]],
        options: DecodeOptions,
    ) -> List[Dict[str, Any]]:
        """Run the numeric stages on one encoder batch and decode every text's raw results."""
        input_ids, attention_mask = pad_batch(records)
        hidden = self.backend.encode(input_ids, attention_mask)
        words = [
            pool_words(hidden[row], record, self.token_pooling)
            for row, record in enumerate(records)
        ]
        # Per task: the [P] embedding, then one embedding per field or label marker.
        markers = [
            [hidden[row, positions] for positions in record.marker_positions]
            for row, record in enumerate(records)
        ]
        outputs = [[TaskOutput() for _ in record.tasks] for record in records]
        self._count_and_score_spans(records, words, markers, outputs)
        self._classify(records, markers, outputs)
        return [
            SampleDecoder(record, metadata, options).decode(task_outputs)
            for record, metadata, task_outputs in zip(records, metadata_list, outputs)
        ]

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
            for task_index, task in enumerate(record.tasks):
                if not task.is_classification and task.field_names:
                    field_count = len(markers[row][task_index]) - 1
                    tasks_by_field_count[field_count].append((row, task_index))

        queries: Dict[int, List[Tuple[int, np.ndarray]]] = defaultdict(list)
        for tasks in tasks_by_field_count.values():
            prompts = np.stack([markers[row][task_index][0] for row, task_index in tasks])
            fields = np.stack([markers[row][task_index][1:] for row, task_index in tasks])
            # Entities read instance 0 only; instance t depends on steps < t alone.
            max_instances = np.array(
                [1 if records[row].tasks[task_index].task_type == "entities" else self.backend.max_count for row, task_index in tasks],
                dtype=np.int64,
            )
            count_logits, count_queries = self.backend.count_and_queries(prompts, fields, max_instances)
            for (row, task_index), logits, task_queries, readable in zip(tasks, count_logits, count_queries, max_instances):
                count = int(np.argmax(logits))
                outputs[row][task_index].count = count
                if count > 0:
                    queries[row].append((task_index, task_queries[: min(count, int(readable))]))
        if not queries:
            return

        rows = sorted(queries)
        hidden_size = words[rows[0]].shape[-1]
        flat_queries = [
            np.concatenate([q.reshape(-1, hidden_size) for _, q in queries[row]]) for row in rows
        ]
        max_words = max(len(words[row]) for row in rows)
        max_queries = max(len(q) for q in flat_queries)
        padded_words = np.zeros((len(rows), max_words, hidden_size), dtype=np.float32)
        padded_queries = np.zeros((len(rows), max_queries, hidden_size), dtype=np.float32)
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

    def _classify(
        self,
        records: List[EncodedText],
        markers: List[List[np.ndarray]],
        outputs: List[List[TaskOutput]],
    ) -> None:
        """Classifier logits for every label marker of the batch, in one backend call."""
        tasks = [
            (row, task_index)
            for row, record in enumerate(records)
            for task_index, task in enumerate(record.tasks)
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

    def format_results(
        self,
        results: Dict,
        include_confidence: bool = False,
        requested_relations: Optional[List[str]] = None,
        classification_tasks: Optional[List[str]] = None,
    ) -> Dict[str, Any]:
        """gliner2's public payload from raw results (`format_results=False` output)."""
        return result_format.format_results(
            results,
            include_confidence=include_confidence,
            requested_relations=requested_relations,
            classification_tasks=classification_tasks,
        )

    # =========================================================================================
    # Long documents
    # =========================================================================================

    def batch_extract_long(
        self,
        texts: List[str],
        schemas: Schemas,
        batch_size: int = 8,
        threshold: float = 0.5,
        num_workers: int = 0,
        format_results: bool = True,
        include_confidence: bool = False,
        include_spans: bool = False,
        chunk_size: int = 384,
        chunk_overlap: int = 64,
        overlap_policy: Optional[str] = None,
    ) -> List[Dict[str, Any]]:
        """Extract from long documents by scanning overlapping word chunks.

        Each document is split into windows of `chunk_size` words overlapping by
        `chunk_overlap`; all windows of all documents are extracted as one batch, and each
        document's window results are merged (offsets remapped, duplicates collapsed).

        Args:
            texts: Input documents.
            schemas: One schema for every document, or one per document.
            chunk_size: Words per window.
            chunk_overlap: Words repeated between adjacent windows.
            batch_size, threshold, num_workers, include_confidence, include_spans,
                overlap_policy: As in `batch_extract`.
            format_results: Must be True (as in gliner2).

        Returns:
            One merged result dict per document.

        Raises:
            GLiNER2InputError: As `batch_extract`.
            ValueError: `format_results` is False, or the chunk sizes are inconsistent.
        """
        if not format_results:
            raise ValueError("batch_extract_long currently requires format_results=True")
        _check_texts(texts, "extract_long")
        if not texts:
            return []
        schema_list = _schema_per_text(texts, schemas)

        doc_chunks = [
            split_text_into_chunks(
                text,
                chunk_size=chunk_size,
                chunk_overlap=chunk_overlap,
                word_splitter=self.word_splitter,
            )
            for text in texts
        ]
        chunk_results = self.batch_extract(
            [chunk.text for chunks in doc_chunks for chunk in chunks],
            [schema for schema, chunks in zip(schema_list, doc_chunks) for _ in chunks],
            batch_size=batch_size,
            threshold=threshold,
            format_results=True,
            include_confidence=True,
            include_spans=True,
            max_len=chunk_size,
            overlap_policy=overlap_policy,
        )

        merged: List[Dict[str, Any]] = []
        offset = 0
        for text, schema, chunks in zip(texts, schema_list, doc_chunks):
            merged.append(
                merge_chunk_results(
                    text,
                    chunks,
                    chunk_results[offset : offset + len(chunks)],
                    include_confidence=include_confidence,
                    include_spans=include_spans,
                    scalar_entity_labels=_scalar_entity_labels(schema),
                    overlap_policy=(
                        None if overlap_policy is None else normalize_overlap_policy(overlap_policy)
                    ),
                )
            )
            offset += len(chunks)
        return merged

    def extract_long(
        self,
        text: str,
        schema: SchemaLike,
        threshold: float = 0.5,
        chunk_size: int = 384,
        chunk_overlap: int = 64,
        batch_size: int = 8,
        num_workers: int = 0,
        format_results: bool = True,
        include_confidence: bool = False,
        include_spans: bool = False,
        overlap_policy: Optional[str] = None,
    ) -> Dict:
        """`batch_extract_long` for one document."""
        return self.batch_extract_long(
            [text], schema, batch_size, threshold, num_workers, format_results,
            include_confidence, include_spans, chunk_size, chunk_overlap, overlap_policy,
        )[0]  # fmt: skip

    # =========================================================================================
    # Convenience methods: a schema built from labels, then batch_extract / batch_extract_long
    # (gliner2's positional parameter order, which is part of its public API)
    # =========================================================================================

    def extract(
        self,
        text: str,
        schema: SchemaLike,
        threshold: float = 0.5,
        format_results: bool = True,
        include_confidence: bool = False,
        include_spans: bool = False,
        max_len: Optional[int] = None,
        overlap_policy: Optional[str] = None,
    ) -> Dict:
        """Extract from one text with any schema; options as in `batch_extract`."""
        return self.batch_extract(
            [text], schema, 1, threshold, 0, format_results,
            include_confidence, include_spans, max_len, overlap_policy,
        )[0]  # fmt: skip

    def extract_entities(
        self,
        text: str,
        entity_types: LabelTypes,
        threshold: float = 0.5,
        format_results: bool = True,
        include_confidence: bool = False,
        include_spans: bool = False,
        max_len: Optional[int] = None,
        overlap_policy: Optional[str] = None,
    ) -> Dict:
        """Named entities of one text.

        Args:
            text: The input text.
            entity_types: Names, or a dict of name -> description or config
                (`description`, `dtype`, `threshold`, `validators`).
            threshold, format_results, include_confidence, include_spans, max_len,
                overlap_policy: As in `batch_extract`.

        Returns:
            `{"entities": {type: [mentions]}}`.
        """
        return self.batch_extract(
            [text], self._entity_schema(entity_types),
            1, threshold, 0, format_results,
            include_confidence, include_spans, max_len, overlap_policy,
        )[0]  # fmt: skip

    def batch_extract_entities(
        self,
        texts: List[str],
        entity_types: LabelTypes,
        batch_size: int = 8,
        threshold: float = 0.5,
        format_results: bool = True,
        include_confidence: bool = False,
        include_spans: bool = False,
        max_len: Optional[int] = None,
        overlap_policy: Optional[str] = None,
    ) -> List[Dict]:
        """`extract_entities` for several texts."""
        return self.batch_extract(
            texts, self._entity_schema(entity_types),
            batch_size, threshold, 0, format_results,
            include_confidence, include_spans, max_len, overlap_policy,
        )  # fmt: skip

    def extract_entities_long(
        self,
        text: str,
        entity_types: LabelTypes,
        threshold: float = 0.5,
        chunk_size: int = 384,
        chunk_overlap: int = 64,
        batch_size: int = 8,
        num_workers: int = 0,
        format_results: bool = True,
        include_confidence: bool = False,
        include_spans: bool = False,
        overlap_policy: Optional[str] = None,
    ) -> Dict:
        """`extract_entities` for a long document, in overlapping word chunks."""
        return self.batch_extract_long(
            [text], self._entity_schema(entity_types),
            batch_size, threshold, num_workers, format_results,
            include_confidence, include_spans, chunk_size, chunk_overlap, overlap_policy,
        )[0]  # fmt: skip

    def batch_extract_entities_long(
        self,
        texts: List[str],
        entity_types: LabelTypes,
        batch_size: int = 8,
        threshold: float = 0.5,
        num_workers: int = 0,
        format_results: bool = True,
        include_confidence: bool = False,
        include_spans: bool = False,
        chunk_size: int = 384,
        chunk_overlap: int = 64,
        overlap_policy: Optional[str] = None,
    ) -> List[Dict]:
        """`extract_entities_long` for several documents."""
        return self.batch_extract_long(
            texts, self._entity_schema(entity_types),
            batch_size, threshold, num_workers, format_results,
            include_confidence, include_spans, chunk_size, chunk_overlap, overlap_policy,
        )  # fmt: skip

    def classify_text(
        self,
        text: str,
        tasks: Dict,
        threshold: float = 0.5,
        format_results: bool = True,
        include_confidence: bool = False,
        include_spans: bool = False,
        max_len: Optional[int] = None,
        overlap_policy: Optional[str] = None,
    ) -> Dict:
        """Classify one text.

        Args:
            text: The input text.
            tasks: `{task: labels}` or `{task: {"labels": labels, "multi_label": ...,
                "cls_threshold": ..., "top_k": ..., "class_act": ..., "prompt": ...,
                "examples": ...}}`; labels may be a dict of label -> description.
            threshold, format_results, include_confidence, include_spans, max_len,
                overlap_policy: As in `batch_extract`.

        Returns:
            `{task: label}`, or a list of labels for multi-label tasks.
        """
        return self.batch_extract(
            [text], self._classification_schema(tasks),
            1, threshold, 0, format_results,
            include_confidence, include_spans, max_len, overlap_policy,
        )[0]  # fmt: skip

    def batch_classify_text(
        self,
        texts: List[str],
        tasks: Dict,
        batch_size: int = 8,
        threshold: float = 0.5,
        format_results: bool = True,
        include_confidence: bool = False,
        include_spans: bool = False,
        max_len: Optional[int] = None,
        overlap_policy: Optional[str] = None,
    ) -> List[Dict]:
        """`classify_text` for several texts."""
        return self.batch_extract(
            texts, self._classification_schema(tasks),
            batch_size, threshold, 0, format_results,
            include_confidence, include_spans, max_len, overlap_policy,
        )  # fmt: skip

    def classify_text_long(
        self,
        text: str,
        tasks: Dict,
        threshold: float = 0.5,
        chunk_size: int = 384,
        chunk_overlap: int = 64,
        batch_size: int = 8,
        num_workers: int = 0,
        format_results: bool = True,
        include_confidence: bool = False,
        include_spans: bool = False,
        overlap_policy: Optional[str] = None,
    ) -> Dict:
        """`classify_text` for a long document, in overlapping word chunks."""
        return self.batch_extract_long(
            [text], self._classification_schema(tasks),
            batch_size, threshold, num_workers, format_results,
            include_confidence, include_spans, chunk_size, chunk_overlap, overlap_policy,
        )[0]  # fmt: skip

    def batch_classify_text_long(
        self,
        texts: List[str],
        tasks: Dict,
        batch_size: int = 8,
        threshold: float = 0.5,
        num_workers: int = 0,
        format_results: bool = True,
        include_confidence: bool = False,
        include_spans: bool = False,
        chunk_size: int = 384,
        chunk_overlap: int = 64,
        overlap_policy: Optional[str] = None,
    ) -> List[Dict]:
        """`classify_text_long` for several documents."""
        return self.batch_extract_long(
            texts, self._classification_schema(tasks),
            batch_size, threshold, num_workers, format_results,
            include_confidence, include_spans, chunk_size, chunk_overlap, overlap_policy,
        )  # fmt: skip

    def extract_json(
        self,
        text: str,
        structures: Dict,
        threshold: float = 0.5,
        format_results: bool = True,
        include_confidence: bool = False,
        include_spans: bool = False,
        max_len: Optional[int] = None,
        overlap_policy: Optional[str] = None,
    ) -> Dict:
        """Structured records of one text.

        Args:
            text: The input text.
            structures: `{structure: [field specs]}`; a spec is "name", "name::str",
                "name::[a|b|c]" (choices), "name::description", those joined by "::", or a
                dict with `name`, `dtype`, `choices`, `description`.
            threshold, format_results, include_confidence, include_spans, max_len,
                overlap_policy: As in `batch_extract`.

        Returns:
            `{structure: [instance dicts]}`.
        """
        return self.batch_extract(
            [text], self._json_schema(structures),
            1, threshold, 0, format_results,
            include_confidence, include_spans, max_len, overlap_policy,
        )[0]  # fmt: skip

    def batch_extract_json(
        self,
        texts: List[str],
        structures: Dict,
        batch_size: int = 8,
        threshold: float = 0.5,
        format_results: bool = True,
        include_confidence: bool = False,
        include_spans: bool = False,
        max_len: Optional[int] = None,
        overlap_policy: Optional[str] = None,
    ) -> List[Dict]:
        """`extract_json` for several texts."""
        return self.batch_extract(
            texts, self._json_schema(structures),
            batch_size, threshold, 0, format_results,
            include_confidence, include_spans, max_len, overlap_policy,
        )  # fmt: skip

    def extract_json_long(
        self,
        text: str,
        structures: Dict,
        threshold: float = 0.5,
        chunk_size: int = 384,
        chunk_overlap: int = 64,
        batch_size: int = 8,
        num_workers: int = 0,
        format_results: bool = True,
        include_confidence: bool = False,
        include_spans: bool = False,
        overlap_policy: Optional[str] = None,
    ) -> Dict:
        """`extract_json` for a long document, in overlapping word chunks."""
        return self.batch_extract_long(
            [text], self._json_schema(structures),
            batch_size, threshold, num_workers, format_results,
            include_confidence, include_spans, chunk_size, chunk_overlap, overlap_policy,
        )[0]  # fmt: skip

    def batch_extract_json_long(
        self,
        texts: List[str],
        structures: Dict,
        batch_size: int = 8,
        threshold: float = 0.5,
        num_workers: int = 0,
        format_results: bool = True,
        include_confidence: bool = False,
        include_spans: bool = False,
        chunk_size: int = 384,
        chunk_overlap: int = 64,
        overlap_policy: Optional[str] = None,
    ) -> List[Dict]:
        """`extract_json_long` for several documents."""
        return self.batch_extract_long(
            texts, self._json_schema(structures),
            batch_size, threshold, num_workers, format_results,
            include_confidence, include_spans, chunk_size, chunk_overlap, overlap_policy,
        )  # fmt: skip

    def extract_relations(
        self,
        text: str,
        relation_types: LabelTypes,
        threshold: float = 0.5,
        format_results: bool = True,
        include_confidence: bool = False,
        include_spans: bool = False,
        max_len: Optional[int] = None,
        overlap_policy: Optional[str] = None,
    ) -> Dict:
        """(head, tail) relations of one text.

        Args:
            text: The input text.
            relation_types: Names, or a dict of name -> description or config
                (`description`, `threshold`).
            threshold, format_results, include_confidence, include_spans, max_len,
                overlap_policy: As in `batch_extract`.

        Returns:
            `{"relation_extraction": {relation: [(head, tail), ...]}}`.
        """
        return self.batch_extract(
            [text], self._relation_schema(relation_types),
            1, threshold, 0, format_results,
            include_confidence, include_spans, max_len, overlap_policy,
        )[0]  # fmt: skip

    def batch_extract_relations(
        self,
        texts: List[str],
        relation_types: LabelTypes,
        batch_size: int = 8,
        threshold: float = 0.5,
        format_results: bool = True,
        include_confidence: bool = False,
        include_spans: bool = False,
        max_len: Optional[int] = None,
        overlap_policy: Optional[str] = None,
    ) -> List[Dict]:
        """`extract_relations` for several texts."""
        return self.batch_extract(
            texts, self._relation_schema(relation_types),
            batch_size, threshold, 0, format_results,
            include_confidence, include_spans, max_len, overlap_policy,
        )  # fmt: skip

    def extract_relations_long(
        self,
        text: str,
        relation_types: LabelTypes,
        threshold: float = 0.5,
        chunk_size: int = 384,
        chunk_overlap: int = 64,
        batch_size: int = 8,
        num_workers: int = 0,
        format_results: bool = True,
        include_confidence: bool = False,
        include_spans: bool = False,
        overlap_policy: Optional[str] = None,
    ) -> Dict:
        """`extract_relations` for a long document, in overlapping word chunks."""
        return self.batch_extract_long(
            [text], self._relation_schema(relation_types),
            batch_size, threshold, num_workers, format_results,
            include_confidence, include_spans, chunk_size, chunk_overlap, overlap_policy,
        )[0]  # fmt: skip

    def batch_extract_relations_long(
        self,
        texts: List[str],
        relation_types: LabelTypes,
        batch_size: int = 8,
        threshold: float = 0.5,
        num_workers: int = 0,
        format_results: bool = True,
        include_confidence: bool = False,
        include_spans: bool = False,
        chunk_size: int = 384,
        chunk_overlap: int = 64,
        overlap_policy: Optional[str] = None,
    ) -> List[Dict]:
        """`extract_relations_long` for several documents."""
        return self.batch_extract_long(
            texts, self._relation_schema(relation_types),
            batch_size, threshold, num_workers, format_results,
            include_confidence, include_spans, chunk_size, chunk_overlap, overlap_policy,
        )  # fmt: skip

    # =========================================================================================
    # Schemas of the convenience methods (gliner2's _classification_schema, _json_schema, ...)
    # =========================================================================================

    def _entity_schema(self, entity_types: LabelTypes) -> Schema:
        check_names(_label_names(entity_types), "entity_types")
        return self.create_schema().entities(entity_types)

    def _relation_schema(self, relation_types: LabelTypes) -> Schema:
        check_names(_label_names(relation_types), "relation_types")
        return self.create_schema().relations(relation_types)

    def _classification_schema(self, tasks: Dict) -> Schema:
        schema = self.create_schema()
        for name, config in tasks.items():
            if isinstance(config, dict) and "labels" in config:
                options = config.copy()
                labels = options.pop("labels")
                schema.classification(name, labels, **options)
            else:
                schema.classification(name, config)
        return schema

    def _json_schema(self, structures: Dict) -> Schema:
        schema = self.create_schema()
        for parent, fields in structures.items():
            specs = [_parse_field_spec(spec) for spec in fields]
            check_names([name for name, _, _, _ in specs], f"fields of structure {parent!r}")
            builder = schema.structure(parent)
            for name, dtype, choices, description in specs:
                builder.field(name, dtype=dtype, choices=choices, description=description)
        return schema


def _parse_field_spec(
    spec: Union[str, Dict[str, Any]],
) -> Tuple[str, str, Optional[List[str]], Optional[str]]:
    """gliner2's `_parse_field_spec`: "name::str::[a|b]::description" or a dict."""
    if isinstance(spec, dict):
        return (
            spec.get("name", ""),
            spec.get("dtype", "list"),
            spec.get("choices"),
            spec.get("description"),
        )
    name, *parts = spec.split("::")
    dtype, choices, description = "list", None, None
    dtype_explicitly_set = False
    for part in parts:
        if part in ("str", "list"):
            dtype = part
            dtype_explicitly_set = True
        elif part.startswith("[") and part.endswith("]"):
            choices = [choice.strip() for choice in part[1:-1].split("|")]
            if not dtype_explicitly_set:
                dtype = "str"
        else:
            description = part
    return name, dtype, choices, description


def _scalar_entity_labels(schema: SchemaLike) -> set:
    """Entity types declared with a non-list dtype (merged to one value across chunks)."""
    entity_metadata = getattr(schema, "_entity_metadata", None)
    if not isinstance(entity_metadata, dict):
        return set()
    return {
        name
        for name, meta in entity_metadata.items()
        if isinstance(meta, dict) and meta.get("dtype", "list") != "list"
    }
