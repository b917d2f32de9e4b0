"""gliner2's public extraction methods, kept thin: plan the schema, run the engine, format.

`GLiNER2Methods` has every public inference method of gliner2's `GLiNER2` (span architecture),
with the same signatures, defaults and results, on top of an `ExtractionEngine`. Classes that
serve a model (`GLiNER2Pipeline` below, `GLiNER2ONNXRuntime`, `ORTModelForGLiNER2`) mix it in and
provide `engine`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any, Dict, List, Optional, Tuple, TypeVar, Union

from tokenizers import Tokenizer

from optimum_gliner2.errors import GLiNER2InputError
from optimum_gliner2.runtime.backend import GLiNER2Backend
from optimum_gliner2.runtime.checks import (
    check_classification_tasks,
    check_label_thresholds,
    check_names,
    check_positive,
    check_texts,
    label_names,
)
from optimum_gliner2.runtime.engine import DEFAULT_MAX_SEQUENCE_TOKENS, ExtractionEngine
from optimum_gliner2.runtime.formatting import format_results as format_payload
from optimum_gliner2.runtime.long_text import DocumentMerger, split_into_chunks
from optimum_gliner2.runtime.plan import DecodeOptions, SchemaPlan, plan_schemas
from optimum_gliner2.runtime.schema import Schema
from optimum_gliner2.runtime.words import WordSplitter, WordSplitterSpec, resolve_word_splitter

#: A schema builder (ours or gliner2's) or a schema dict.
SchemaLike = Union[Schema, Mapping[str, Any]]
Schemas = Union[SchemaLike, List[SchemaLike]]
#: Label names, or a dict of name -> description or config, as `Schema.entities` takes them.
LabelTypes = Union[str, List[str], Dict[str, Any]]
#: `{task: labels}` or `{task: {"labels": labels, **options}}`, as `classify_text` takes them.
ClassificationTasks = Mapping[str, Any]
#: `{structure: [field specs]}`, as `extract_json` takes them.
Structures = Mapping[str, Sequence[Union[str, Mapping[str, Any]]]]
#: One text's result: gliner2's public payload, or its raw results with `format_results=False`.
Result = Dict[str, Any]
T = TypeVar("T")

#: Encoder batches of windows the *_long methods tokenize and extract per step. Within a step
#: windows are sorted by length (less padding); more batches per step sort better but hold more
#: windows' tokens at once (a few MB per batch: the encoder's working memory is per batch anyway).
LONG_TEXT_BATCHES_PER_STEP = 4


class GLiNER2Methods:
    """gliner2's extraction API over `self.engine` (an `ExtractionEngine`).

    Every method returns what the same method of gliner2's `GLiNER2` returns for the same
    checkpoint (texts, labels and character offsets equal; confidences equal up to float
    rounding of the backend), including gliner2's quirks (a relation with a description is
    keyed "name: description"; a structure predicted to have 0 instances formats as {}).

    Stricter than gliner2, which answers these with placeholder or empty results, it raises
    `GLiNER2InputError` for: non-str, empty or whitespace-only texts (gliner2 reads them as ".");
    empty or duplicate label, field or choice lists (gliner2 drops the task or merges the
    duplicates); labels, descriptions or prompts containing gliner2's marker tokens such as
    "[E]" (they corrupt the prompt); a schema with no task or that is neither a `Schema` nor a
    dict (gliner2 substitutes a dummy record); `batch_size` or `max_len` < 1; a schema dict key
    gliner2 does not know, such as "clasifications" (gliner2 ignores it, and its tasks with it);
    classification labels given as a str (gliner2 splits it into characters) or tasks given as a
    list; a threshold (the call's, a label's, a field's, a relation's, an attribute group's or a
    `cls_threshold`) that is not a number in [0, 1], bools included (gliner2 compares whatever it
    gets: 1.5 keeps nothing, -1 everything).

    Texts are data: a marker string such as "[E]" inside a text is read as ordinary characters.
    With the built-in word splitters, which lower-case words, gliner2 reads it the same way; a
    custom splitter that keeps case would let gliner2 read it as a prompt marker, and there the
    runtime deliberately differs.
    """

    engine: ExtractionEngine

    @property
    def word_splitter(self) -> WordSplitter:
        """The active word splitter (also used to chunk long texts)."""
        return self.engine.preprocessor.word_splitter

    def set_word_splitter(self, word_splitter: Optional[WordSplitterSpec]):
        """Replace the word splitter, as gliner2's `set_word_splitter`; returns the model.

        Args:
            word_splitter: `"whitespace"` (gliner2's default, the one public checkpoints were trained
                with), `"char"` (for languages written without spaces, such as Chinese or Japanese), a
                splitter class, or a callable `(text, lower=True)` yielding `(word, start, end)` with
                `text[start:end]` the word. `None` restores the default.

        Raises:
            ValueError: An unknown splitter name.
            TypeError: A splitter class that needs arguments, or something that is not callable.
        """
        # One attribute swap: a call already running keeps the splitter it started with.
        self.engine.preprocessor.word_splitter = resolve_word_splitter(word_splitter)
        return self

    def create_schema(self) -> Schema:
        """A new, empty schema builder (gliner2's `Schema` API)."""
        return Schema()

    # =========================================================================================
    # Extraction with a schema
    # =========================================================================================

    def batch_extract(
        self,
        texts: Sequence[str],
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
    ) -> List[Result]:
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
        if hidden_states is not None:
            raise TypeError(
                "hidden_states (precomputed PyTorch encoder states) is a torch-only option of "
                "gliner2's GLiNER2; this runtime runs the encoder itself"
            )
        check_texts(texts, "extract")
        if not texts:
            return []
        check_positive(batch_size, "batch_size")
        check_positive(max_len, "max_len")
        options = DecodeOptions.create(threshold, include_confidence, include_spans, overlap_policy)
        plans = plan_schemas(_schema_per_text(texts, schemas), options)
        return self._extract_planned(texts, plans, batch_size, max_len, format_results)

    def _extract_planned(
        self,
        texts: Sequence[str],
        plans: Sequence[SchemaPlan],
        batch_size: int,
        max_len: Optional[int],
        format_results: bool,
        windows: Optional[Sequence[str]] = None,
    ) -> List[Result]:
        results = self.engine.extract(texts, plans, batch_size, max_len, windows)
        if not format_results:
            return results
        return [
            format_payload(result, plan.options.include_confidence, list(plan.requested_relations), list(plan.classification_tasks))
            for result, plan in zip(results, plans)
        ]

    def format_results(
        self,
        results: Dict,
        include_confidence: bool = False,
        requested_relations: Optional[List[str]] = None,
        classification_tasks: Optional[List[str]] = None,
    ) -> Dict[str, Any]:
        """gliner2's public payload from raw results (the `format_results=False` output)."""
        return format_payload(results, include_confidence, requested_relations, classification_tasks)

    def batch_extract_long(
        self,
        texts: Sequence[str],
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
    ) -> List[Result]:
        """Extract from long documents by scanning overlapping word chunks.

        Each document is split into windows of `chunk_size` words overlapping by
        `chunk_overlap`; the windows of all documents are extracted in order, a few batches at a
        time, each window's predictions are kept at document offsets as soon as it is extracted,
        and each document's predictions are merged at the end (duplicates collapsed). Memory does
        not grow with the documents' length beyond their texts and predictions.

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
        check_texts(texts, "extract_long")
        if not texts:
            return []
        check_positive(batch_size, "batch_size")
        # Chunks keep confidences and offsets: merging needs both; the payload drops them after.
        options = DecodeOptions.create(threshold, True, True, overlap_policy)
        plans = plan_schemas(_schema_per_text(texts, schemas), options)
        # Like gliner2, chunks merge with the architecture's default when the call gives none.
        merge_policy = options.overlap_policy or self.engine.heads.default_overlap_policy
        mergers = [
            DocumentMerger(text, include_confidence, include_spans, plan.scalar_entity_labels, merge_policy)
            for text, plan in zip(texts, plans)
        ]
        windows = (
            (document, chunk)
            for document, text in enumerate(texts)
            for chunk in split_into_chunks(text, chunk_size, chunk_overlap, self.word_splitter)
        )
        # The windows of all documents, in order, a few encoder batches at a time: each step's windows
        # are tokenized and extracted, and their predictions handed (at document offsets) to their
        # document's merger before the next step is tokenized. Memory then holds one step's tokens and
        # encoder state, the predictions, and the current document's window texts (about its size
        # again), whatever the documents' length. Steps are whole multiples of batch_size from the first
        # window on, so every window still shares its gliner2 batch (batch_size windows in input
        # order) with the same windows: relation scores of GLiNER2.5 models depend on that batch.
        for step in _batches(windows, batch_size * LONG_TEXT_BATCHES_PER_STEP):
            step_results = self._extract_planned(
                [chunk.text for _, chunk in step],
                [plans[document] for document, _ in step],
                batch_size,
                chunk_size,
                format_results=True,
                windows=[
                    f"the window of words {chunk.start_word}-{chunk.end_word} of document {document}"
                    for document, chunk in step
                ],
            )
            for (document, chunk), result in zip(step, step_results):
                mergers[document].add(chunk, result)
        return [merger.merged() for merger in mergers]

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
    ) -> Result:
        """Extract from one text with any schema; options as in `batch_extract`."""
        return self.batch_extract(
            [text], schema, 1, threshold, 0, format_results, include_confidence, include_spans, max_len, overlap_policy
        )[0]

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
    ) -> Result:
        """`batch_extract_long` for one document."""
        return self.batch_extract_long(
            [text], schema, batch_size, threshold, num_workers, format_results,
            include_confidence, include_spans, chunk_size, chunk_overlap, overlap_policy,
        )[0]  # fmt: skip

    # =========================================================================================
    # One task kind at a time: a schema built from labels, then the methods above
    # (gliner2's positional parameter order, which is part of its public API)
    # =========================================================================================

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
    ) -> Result:
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
        return self.extract(
            text, entity_schema(entity_types), threshold, format_results, include_confidence, include_spans, max_len, overlap_policy
        )

    def batch_extract_entities(
        self,
        texts: Sequence[str],
        entity_types: LabelTypes,
        batch_size: int = 8,
        threshold: float = 0.5,
        format_results: bool = True,
        include_confidence: bool = False,
        include_spans: bool = False,
        max_len: Optional[int] = None,
        overlap_policy: Optional[str] = None,
    ) -> List[Result]:
        """`extract_entities` for several texts."""
        return self.batch_extract(
            texts, entity_schema(entity_types), batch_size, threshold, 0, format_results,
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
    ) -> Result:
        """`extract_entities` for a long document, in overlapping word chunks."""
        return self.extract_long(
            text, entity_schema(entity_types), threshold, chunk_size, chunk_overlap, batch_size,
            num_workers, format_results, include_confidence, include_spans, overlap_policy,
        )  # fmt: skip

    def batch_extract_entities_long(
        self,
        texts: Sequence[str],
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
    ) -> List[Result]:
        """`extract_entities_long` for several documents."""
        return self.batch_extract_long(
            texts, entity_schema(entity_types), batch_size, threshold, num_workers, format_results,
            include_confidence, include_spans, chunk_size, chunk_overlap, overlap_policy,
        )  # fmt: skip

    def classify_text(
        self,
        text: str,
        tasks: ClassificationTasks,
        threshold: float = 0.5,
        format_results: bool = True,
        include_confidence: bool = False,
        include_spans: bool = False,
        max_len: Optional[int] = None,
        overlap_policy: Optional[str] = None,
    ) -> Result:
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
        return self.extract(
            text, classification_schema(tasks), threshold, format_results, include_confidence, include_spans, max_len, overlap_policy
        )

    def batch_classify_text(
        self,
        texts: Sequence[str],
        tasks: ClassificationTasks,
        batch_size: int = 8,
        threshold: float = 0.5,
        format_results: bool = True,
        include_confidence: bool = False,
        include_spans: bool = False,
        max_len: Optional[int] = None,
        overlap_policy: Optional[str] = None,
    ) -> List[Result]:
        """`classify_text` for several texts."""
        return self.batch_extract(
            texts, classification_schema(tasks), batch_size, threshold, 0, format_results,
            include_confidence, include_spans, max_len, overlap_policy,
        )  # fmt: skip

    def classify_text_long(
        self,
        text: str,
        tasks: ClassificationTasks,
        threshold: float = 0.5,
        chunk_size: int = 384,
        chunk_overlap: int = 64,
        batch_size: int = 8,
        num_workers: int = 0,
        format_results: bool = True,
        include_confidence: bool = False,
        include_spans: bool = False,
        overlap_policy: Optional[str] = None,
    ) -> Result:
        """`classify_text` for a long document, in overlapping word chunks."""
        return self.extract_long(
            text, classification_schema(tasks), threshold, chunk_size, chunk_overlap, batch_size,
            num_workers, format_results, include_confidence, include_spans, overlap_policy,
        )  # fmt: skip

    def batch_classify_text_long(
        self,
        texts: Sequence[str],
        tasks: ClassificationTasks,
        batch_size: int = 8,
        threshold: float = 0.5,
        num_workers: int = 0,
        format_results: bool = True,
        include_confidence: bool = False,
        include_spans: bool = False,
        chunk_size: int = 384,
        chunk_overlap: int = 64,
        overlap_policy: Optional[str] = None,
    ) -> List[Result]:
        """`classify_text_long` for several documents."""
        return self.batch_extract_long(
            texts, classification_schema(tasks), batch_size, threshold, num_workers, format_results,
            include_confidence, include_spans, chunk_size, chunk_overlap, overlap_policy,
        )  # fmt: skip

    def extract_json(
        self,
        text: str,
        structures: Structures,
        threshold: float = 0.5,
        format_results: bool = True,
        include_confidence: bool = False,
        include_spans: bool = False,
        max_len: Optional[int] = None,
        overlap_policy: Optional[str] = None,
    ) -> Result:
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
        return self.extract(
            text, json_schema(structures, self.engine.heads.json_record_mode), threshold, format_results, include_confidence, include_spans, max_len, overlap_policy
        )

    def batch_extract_json(
        self,
        texts: Sequence[str],
        structures: Structures,
        batch_size: int = 8,
        threshold: float = 0.5,
        format_results: bool = True,
        include_confidence: bool = False,
        include_spans: bool = False,
        max_len: Optional[int] = None,
        overlap_policy: Optional[str] = None,
    ) -> List[Result]:
        """`extract_json` for several texts."""
        return self.batch_extract(
            texts, json_schema(structures, self.engine.heads.json_record_mode), batch_size, threshold, 0, format_results,
            include_confidence, include_spans, max_len, overlap_policy,
        )  # fmt: skip

    def extract_json_long(
        self,
        text: str,
        structures: Structures,
        threshold: float = 0.5,
        chunk_size: int = 384,
        chunk_overlap: int = 64,
        batch_size: int = 8,
        num_workers: int = 0,
        format_results: bool = True,
        include_confidence: bool = False,
        include_spans: bool = False,
        overlap_policy: Optional[str] = None,
    ) -> Result:
        """`extract_json` for a long document, in overlapping word chunks."""
        return self.extract_long(
            text, json_schema(structures, self.engine.heads.json_record_mode), threshold, chunk_size, chunk_overlap, batch_size,
            num_workers, format_results, include_confidence, include_spans, overlap_policy,
        )  # fmt: skip

    def batch_extract_json_long(
        self,
        texts: Sequence[str],
        structures: Structures,
        batch_size: int = 8,
        threshold: float = 0.5,
        num_workers: int = 0,
        format_results: bool = True,
        include_confidence: bool = False,
        include_spans: bool = False,
        chunk_size: int = 384,
        chunk_overlap: int = 64,
        overlap_policy: Optional[str] = None,
    ) -> List[Result]:
        """`extract_json_long` for several documents."""
        return self.batch_extract_long(
            texts, json_schema(structures, self.engine.heads.json_record_mode), batch_size, threshold, num_workers, format_results,
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
    ) -> Result:
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
        return self.extract(
            text, relation_schema(relation_types), threshold, format_results, include_confidence, include_spans, max_len, overlap_policy
        )

    def batch_extract_relations(
        self,
        texts: Sequence[str],
        relation_types: LabelTypes,
        batch_size: int = 8,
        threshold: float = 0.5,
        format_results: bool = True,
        include_confidence: bool = False,
        include_spans: bool = False,
        max_len: Optional[int] = None,
        overlap_policy: Optional[str] = None,
    ) -> List[Result]:
        """`extract_relations` for several texts."""
        return self.batch_extract(
            texts, relation_schema(relation_types), batch_size, threshold, 0, format_results,
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
    ) -> Result:
        """`extract_relations` for a long document, in overlapping word chunks."""
        return self.extract_long(
            text, relation_schema(relation_types), threshold, chunk_size, chunk_overlap, batch_size,
            num_workers, format_results, include_confidence, include_spans, overlap_policy,
        )  # fmt: skip

    def batch_extract_relations_long(
        self,
        texts: Sequence[str],
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
    ) -> List[Result]:
        """`extract_relations_long` for several documents."""
        return self.batch_extract_long(
            texts, relation_schema(relation_types), batch_size, threshold, num_workers, format_results,
            include_confidence, include_spans, chunk_size, chunk_overlap, overlap_policy,
        )  # fmt: skip


class GLiNER2Pipeline(GLiNER2Methods):
    """gliner2's extraction API on any `GLiNER2Backend`, without torch.

    Args:
        backend: Runs the numeric stages (encoder, count head, classifier, span scorer).
        tokenizer: The checkpoint's tokenizer (`tokenizers.Tokenizer.from_file("tokenizer.json")`),
            including gliner2's marker tokens.
        token_pooling: How word embeddings pool their subwords: "first" (all published
            checkpoints), "mean" or "max"; the checkpoint's config.json says which.
        word_splitter: gliner2 word splitter: None or "whitespace" (default), "char" for
            languages without spaces, or a callable yielding `(word, start, end)`.
        max_sequence_tokens: Longest model input (prompt + text tokens) one encoder pass accepts;
            longer texts are refused with a pointer to the `*_long` methods.

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
        self.engine = ExtractionEngine(
            backend, tokenizer, token_pooling=token_pooling, word_splitter=word_splitter, max_sequence_tokens=max_sequence_tokens
        )

    @property
    def backend(self) -> GLiNER2Backend:
        """The backend running the numeric stages."""
        return self.engine.backend


# =============================================================================================
# Schemas of the one-task methods
# =============================================================================================


def _batches(items: Iterable[T], size: int) -> Iterator[List[T]]:
    """`items` in consecutive lists of `size` (the last one shorter), drawn lazily."""
    iterator = iter(items)
    while True:
        batch = list(islice(iterator, size))
        if not batch:
            return
        yield batch


def _schema_per_text(texts: Sequence[str], schemas: Schemas) -> List[SchemaLike]:
    if isinstance(schemas, list):
        if len(schemas) != len(texts):
            raise GLiNER2InputError(f"Schema count ({len(schemas)}) != text count ({len(texts)})")
        return schemas
    return [schemas] * len(texts)


def entity_schema(entity_types: LabelTypes) -> Schema:
    """The schema `extract_entities` builds from its labels."""
    check_names(label_names(entity_types), "entity_types")
    check_label_thresholds(entity_types, "entity type")
    return Schema().entities(entity_types)


def relation_schema(relation_types: LabelTypes) -> Schema:
    """The schema `extract_relations` builds from its labels."""
    check_names(label_names(relation_types), "relation_types")
    check_label_thresholds(relation_types, "relation")
    return Schema().relations(relation_types)


def classification_schema(tasks: ClassificationTasks) -> Schema:
    """The schema `classify_text` builds: `{task: labels}` or `{task: {"labels": ..., options}}`."""
    check_classification_tasks(tasks)
    schema = Schema()
    for name, config in tasks.items():
        if isinstance(config, dict) and "labels" in config:
            options = dict(config)
            labels = options.pop("labels")
            schema.classification(name, labels, **options)
        else:
            schema.classification(name, config)
    return schema


def json_schema(structures: Structures, record_mode: Optional[str] = None) -> Schema:
    """The schema `extract_json` builds from `{structure: [field specs]}`.

    With a `record_mode` (gliner2 uses "natural" on GLiNER2.5 checkpoints with a record head) each
    structure is a record anchored on its first field, "str" fields required and exclusive, list
    fields exclusive, as gliner2 declares them.
    """
    schema = Schema()
    for parent, fields in structures.items():
        specs = [parse_field_spec(spec) for spec in fields]
        check_names([name for name, _, _, _ in specs], f"fields of structure {parent!r}")
        builder = schema.structure(parent, mode=record_mode)
        for name, dtype, choices, description in specs:
            record_options: Dict[str, Any] = {}
            if record_mode is not None:
                record_options = {"cardinality": "required_one" if dtype == "str" else "zero_or_more", "exclusive": True}
            builder.field(name, dtype=dtype, choices=choices, description=description, **record_options)
    return schema


def parse_field_spec(spec: Union[str, Mapping[str, Any]]) -> Tuple[str, str, Optional[List[str]], Optional[str]]:
    """(name, dtype, choices, description) of "name::str::[a|b]::description" or of a dict.

    Parts after the name may come in any order; choices make the dtype "str" unless a dtype
    part says otherwise, before or after them.
    """
    if isinstance(spec, Mapping):
        return spec.get("name", ""), spec.get("dtype", "list"), spec.get("choices"), spec.get("description")
    name, *parts = spec.split("::")
    dtype, choices, description = None, None, None
    for part in parts:
        if part in ("str", "list"):
            dtype = part
        elif part.startswith("[") and part.endswith("]"):
            choices = [choice.strip() for choice in part[1:-1].split("|")]
        else:
            description = part
    if dtype is None:
        dtype = "str" if choices is not None else "list"
    return name, dtype, choices, description
