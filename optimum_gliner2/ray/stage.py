"""`GLiNER2Stage`: GLiNER2 extraction as a callable class for Ray Data's `Dataset.map_batches`.

The stage itself needs no Ray: it turns a batch (a `pyarrow.Table` or a dict of columns) into the
same batch with two more columns, so it can be checked and reused without a cluster. It runs the
torch-free `GLiNER2ONNXRuntime`, so the workers of a Ray cluster need no torch either.

A bad document never fails the batch: each one that the runtime refuses, or that fails inside it,
gets its message in `gliner2_error`, and the other documents of the batch get exactly the answers
a serial `batch_extract` gives them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from optimum_gliner2.errors import GLiNER2InputError
from optimum_gliner2.runtime.checks import check_positive, check_text
from optimum_gliner2.runtime.onnx import GLiNER2ONNXRuntime
from optimum_gliner2.runtime.onnx.sessions import ProviderSpec, provider_name
from optimum_gliner2.runtime.plan import DecodeOptions, plan_schemas
from optimum_gliner2.runtime.schema import Schema

#: The column holding each document's result: the JSON text of what `batch_extract` returns for it.
RESULT_COLUMN = "gliner2"
#: The column holding why a document has no result (None when it has one).
ERROR_COLUMN = "gliner2_error"
#: The columns the stage adds; an input that already has one of them is refused.
ADDED_COLUMNS = (RESULT_COLUMN, ERROR_COLUMN)

#: Providers that run on a GPU, for which an actor asks Ray for a GPU.
GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")

Providers = Union[ProviderSpec, Sequence[ProviderSpec]]
#: The outcome of one document: (result JSON, None) or (None, error message).
Outcome = Tuple[Optional[str], Optional[str]]


def uses_gpu(providers: Optional[Providers]) -> bool:
    """Whether `providers` (in any form `GLiNER2ONNXRuntime.from_pretrained` takes) include a GPU provider."""
    if providers is None:
        return False
    if isinstance(providers, str) or (isinstance(providers, tuple) and len(providers) == 2 and isinstance(providers[1], dict)):
        providers = [providers]
    return any(provider_name(provider) in GPU_PROVIDERS for provider in providers)


class GLiNER2Stage:
    """Runs GLiNER2 `batch_extract` on one text column of each batch, for `Dataset.map_batches`.

    Ray builds one instance per actor, so the exported model is loaded once per actor. Each call
    returns the batch with every input column unchanged, plus:

    - `gliner2`: the JSON text of what `batch_extract` (or `batch_extract_long`, for documents over
      `long_document_words` words) returns for the document; `json.loads` gives it back (tuples
      become lists). None when the document failed.
    - `gliner2_error`: None, or the message naming why the document has no result (not a str, blank,
      a gliner2 marker token such as `[E]`, too many tokens for one encoder pass, ...).

    Args:
        model (`str` or `os.PathLike`):
            An exported folder (`optimum-cli export onnx`) or the hub id of one, as each actor sees it.
        schema (`Schema` or `dict`):
            The schema of every document: the runtime's `Schema` builder or a dict as `batch_extract`
            takes it.
        text_column (`str`, defaults to `"text"`):
            The column holding the documents.
        precision (`str`, *optional*):
            The variant of the export to run (`"fp32"` by default, `"int8"`, `"fp16"`, ...).
        providers (*optional*):
            ONNX Runtime execution providers, e.g. `["CUDAExecutionProvider"]`; the CPU by default.
        intra_op_threads (`int`, *optional*):
            Threads of each ONNX Runtime session; set it to the CPUs Ray gives the actor, so that
            actors on one node do not compete for cores. ONNX Runtime's default when None.
        batch_size (`int`, defaults to 8):
            Texts per encoder call (`batch_extract`'s `batch_size`).
        threshold, include_confidence, include_spans, overlap_policy, max_len:
            As in `batch_extract`.
        long_document_words (`int`, *optional*):
            Documents with more words than this go through `batch_extract_long` (overlapping chunks
            of `chunk_size` words). None sends every document through `batch_extract`, which refuses
            one too long for a single encoder pass (its row gets the error).
        chunk_size, chunk_overlap (`int`, defaults to 384 and 64):
            As in `batch_extract_long`.
        word_splitter (`str`, *optional*):
            gliner2's word splitter: `"whitespace"` (default) or `"char"`.

    Raises:
        GLiNER2LoadError: The model cannot be loaded (when Ray starts the actor).
        GLiNER2InputError: A bad option (`batch_size`, `long_document_words`, ...).

    Example:
        ```python
        >>> import ray
        >>> from optimum_gliner2.ray import GLiNER2Stage
        >>> dataset = ray.data.read_parquet("docs/")
        >>> results = dataset.map_batches(
        ...     GLiNER2Stage,
        ...     fn_constructor_kwargs={"model": "gliner2-multi-onnx/", "schema": {"entities": {"person": ""}}},
        ...     batch_format="pyarrow", batch_size=64, compute=ray.data.ActorPoolStrategy(size=2), num_cpus=1,
        ... )
        ```
    """

    def __init__(
        self,
        model: Union[str, os.PathLike],
        schema: Union[Schema, Mapping[str, Any]],
        *,
        text_column: str = "text",
        precision: Optional[str] = None,
        providers: Optional[Providers] = None,
        intra_op_threads: Optional[int] = None,
        batch_size: int = 8,
        threshold: float = 0.5,
        include_confidence: bool = False,
        include_spans: bool = False,
        overlap_policy: Optional[str] = None,
        max_len: Optional[int] = None,
        long_document_words: Optional[int] = None,
        chunk_size: int = 384,
        chunk_overlap: int = 64,
        word_splitter: Optional[str] = None,
    ):
        check_positive(batch_size, "batch_size")
        check_positive(long_document_words, "long_document_words")
        check_positive(intra_op_threads, "intra_op_threads")
        self.text_column = text_column
        self.schema = schema
        self.long_document_words = long_document_words
        self.model = GLiNER2ONNXRuntime.from_pretrained(
            model,
            precision=precision,
            providers=providers,
            session_options=_session_options(intra_op_threads),
            word_splitter=word_splitter,
        )
        shared = {"batch_size": batch_size, "threshold": threshold, "include_confidence": include_confidence,
                  "include_spans": include_spans, "overlap_policy": overlap_policy}  # fmt: skip
        self._extract_short = _bound(self.model.batch_extract, schema, **shared, max_len=max_len)
        self._extract_long = _bound(self.model.batch_extract_long, schema, **shared, chunk_size=chunk_size, chunk_overlap=chunk_overlap)
        # A bad schema fails here, once, when Ray starts the actor, instead of once per document.
        check_schema(schema, threshold, include_confidence, include_spans, overlap_policy)

    def __call__(self, batch: Any) -> Any:
        """The batch with `gliner2` and `gliner2_error` added.

        Args:
            batch (`pyarrow.Table` or `dict` of column arrays):
                Ray Data's `"pyarrow"` or `"numpy"` batch format.

        Returns:
            A batch of the same format and rows, with every input column unchanged.

        Raises:
            KeyError: The batch has no `text_column`.
            ValueError: The batch already has a `gliner2` or `gliner2_error` column.
        """
        columns = list(batch.column_names) if hasattr(batch, "column_names") else list(batch)
        if self.text_column not in columns:
            raise KeyError(f"the batch has no text column {self.text_column!r}; its columns are {columns}")
        clashing = [name for name in ADDED_COLUMNS if name in columns]
        if clashing:
            raise ValueError(f"the input already has the column(s) {clashing} that the GLiNER2 stage adds; rename them first")
        texts = batch.column(self.text_column).to_pylist() if hasattr(batch, "column") else list(batch[self.text_column])
        results, errors = zip(*self.extract_texts(texts)) if texts else ((), ())
        if hasattr(batch, "append_column"):
            import pyarrow as pa

            return batch.append_column(RESULT_COLUMN, pa.array(results, pa.string())).append_column(
                ERROR_COLUMN, pa.array(errors, pa.string())
            )
        output = dict(batch)
        output[RESULT_COLUMN] = np.array(results, dtype=object)
        output[ERROR_COLUMN] = np.array(errors, dtype=object)
        return output

    def extract_texts(self, texts: Sequence[Any]) -> List[Outcome]:
        """(result JSON, None) or (None, error message) for each text, in order.

        Texts over `long_document_words` words go through `batch_extract_long`, the others through
        one `batch_extract` call; a refused text is set aside so that it changes nothing for the
        others.
        """
        outcomes: List[Outcome] = [(None, None)] * len(texts)
        short, long = [], []
        for index, text in enumerate(texts):
            try:
                check_text(text)
            except GLiNER2InputError as error:
                outcomes[index] = (None, _message(error))
                continue
            (long if self._is_long(text) else short).append(index)
        for indices, extract in ((short, self._extract_short), (long, self._extract_long)):
            for index, outcome in zip(indices, _isolating_failures(extract, [texts[i] for i in indices])):
                outcomes[index] = outcome
        return outcomes

    def _is_long(self, text: str) -> bool:
        if self.long_document_words is None:
            return False
        words = self.model.word_splitter(text, lower=False)
        return any(count > self.long_document_words for count, _ in enumerate(words, start=1))


def check_schema(
    schema: Union[Schema, Mapping[str, Any]],
    threshold: float = 0.5,
    include_confidence: bool = False,
    include_spans: bool = False,
    overlap_policy: Optional[str] = None,
) -> None:
    """Refuse a schema or decoding option that `batch_extract` would refuse, without loading a model.

    Raises:
        GLiNER2InputError: The schema is not a `Schema` or a schema dict, defines no task, or has a bad
            label list or threshold (see `batch_extract`).
        ValueError: An unknown `overlap_policy`.
    """
    plan_schemas([schema], DecodeOptions.create(threshold, include_confidence, include_spans, overlap_policy))


def _bound(method: Callable[..., List[Dict[str, Any]]], schema: Any, **options: Any) -> Callable[[List[str]], List[Dict[str, Any]]]:
    return lambda texts: method(texts, schema, **options)


def _isolating_failures(extract: Callable[[List[str]], List[Dict[str, Any]]], texts: List[str]) -> List[Outcome]:
    """`extract(texts)` as outcomes; when it fails, each half again, down to the failing texts.

    Results of a text do not depend on the other texts of its call (the runtime guarantees it),
    so splitting a failing call changes no answer. The runtime checks token lengths before it runs
    the encoder, so a call failing on an over-long text costs little.
    """
    if not texts:
        return []
    try:
        return [(json.dumps(result, ensure_ascii=False), None) for result in extract(texts)]
    except Exception as error:  # any failure of one document must stay that document's
        if len(texts) == 1:
            return [(None, _message(error))]
    middle = len(texts) // 2
    return _isolating_failures(extract, texts[:middle]) + _isolating_failures(extract, texts[middle:])


def _message(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


def _session_options(intra_op_threads: Optional[int]) -> Any:
    if intra_op_threads is None:
        return None
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    return options
