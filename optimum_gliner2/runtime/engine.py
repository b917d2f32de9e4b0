"""The batch engine: encoded texts through a backend's numeric stages, then decoding.

Texts are sorted by token length so that similar lengths share an encoder batch. Per batch the
backend encodes once and classifies every label marker in one call; the architecture's extraction
head (runtime/span.py or runtime/boundary.py) runs its own stages and decodes. Data-dependent steps
stay on the host: gathers, padding, thresholds and overlap resolution.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
from tokenizers import Tokenizer

from optimum_gliner2.errors import GLiNER2InputError
from optimum_gliner2.runtime.backend import GLiNER2Backend
from optimum_gliner2.runtime.boundary import BoundaryHeads
from optimum_gliner2.runtime.decode import TaskOutput
from optimum_gliner2.runtime.plan import SchemaPlan
from optimum_gliner2.runtime.preprocess import EncodedText, Preprocessor, check_token_pooling, pad_batch, pool_words
from optimum_gliner2.runtime.span import SpanHeads
from optimum_gliner2.runtime.words import WordSplitterSpec

#: Longest model input (schema prompt + text tokens) one encoder pass accepts. DeBERTa's attention
#: at 8,192 tokens needs several GB per layer; the *_long methods chunk at 384 words.
DEFAULT_MAX_SEQUENCE_TOKENS = 8192


class ExtractionEngine:
    """Runs planned extractions on a `GLiNER2Backend`, batch by batch.

    Args:
        backend: Runs the numeric stages: encoder, classifier and the architecture's extraction head.
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
        self.heads: Union[SpanHeads, BoundaryHeads] = heads_for(backend)

    def extract(
        self,
        texts: Sequence[str],
        plans: Sequence[SchemaPlan],
        batch_size: int,
        max_len: Optional[int] = None,
        windows: Optional[Sequence[str]] = None,
    ) -> List[Dict[str, Any]]:
        """gliner2's raw results, one per text, in input order (equal to one-at-a-time calls).

        `windows`, when the texts are windows of longer documents (the *_long methods), names each one for
        errors: a user knows their documents, not the position of a window among the call's windows.

        Raises:
            GLiNER2InputError: A text longer than `max_sequence_tokens` with its schema.
        """
        self.heads.check(plans)
        records = self.preprocessor.encode_batch(texts, plans, max_len)
        self._check_sequence_lengths(records, windows)
        # Longest first: similar lengths share a batch, and the largest batch runs first.
        order = sorted(range(len(records)), key=lambda i: len(records[i].input_ids), reverse=True)
        widths = reference_widths(records, batch_size)
        results: List[Dict[str, Any]] = [{} for _ in records]
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch_results = self._extract_batch([records[i] for i in chunk], [widths[i] for i in chunk])
            for index, result in zip(chunk, batch_results):
                results[index] = result
        return results

    def _check_sequence_lengths(self, records: Sequence[EncodedText], windows: Optional[Sequence[str]]) -> None:
        # The encoder's attention grows with the square of the sequence: a 100k-word text would be
        # killed for memory (as it is in gliner2) instead of answering. Refuse it, naming the fix.
        for index, record in enumerate(records):
            if len(record.input_ids) <= self.max_sequence_tokens:
                continue
            too_long = (
                f"is {len(record.input_ids)} tokens long with its schema, more than "
                f"max_sequence_tokens={self.max_sequence_tokens} that one encoder pass allows."
            )
            if windows is not None:
                raise GLiNER2InputError(
                    f"{windows[index]} {too_long} Lower chunk_size (every window of chunk_size words must fit "
                    "in one encoder pass with its schema; words of many subword pieces, as in some scripts, "
                    "need fewer), or raise the model's max_sequence_tokens if your memory allows."
                )
            raise GLiNER2InputError(
                f"text {index} {too_long} Use the *_long methods (e.g. extract_entities_long, "
                "batch_extract_long), which split long documents into overlapping chunks, or pass "
                "max_len=<words> to truncate, or raise the model's max_sequence_tokens if your memory allows."
            )

    def _extract_batch(self, records: List[EncodedText], widths: List[int]) -> List[Dict[str, Any]]:
        input_ids, attention_mask = pad_batch(records)
        hidden = self.backend.encode(input_ids, attention_mask)
        words = [pool_words(hidden[row], record, self.token_pooling) for row, record in enumerate(records)]
        # Per task: the [P] embedding, then one embedding per field or label marker.
        markers = [[hidden[row, list(positions)] for positions in record.marker_positions] for row, record in enumerate(records)]
        outputs = [[TaskOutput() for _ in record.plan.tasks] for record in records]
        self.heads.score(records, words, markers, outputs, widths)
        self._classify(records, markers, outputs)
        return [self.heads.decode(record, task_outputs) for record, task_outputs in zip(records, outputs)]

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
        # gliner2 divides by the temperature in float32; dividing by span models' 1.0 is exact.
        temperature = np.float32(self.heads.classification_temperature)
        logits = self.backend.classify(np.concatenate(label_markers)) / temperature
        offset = 0
        for (row, task_index), labels in zip(tasks, label_markers):
            outputs[row][task_index].class_logits = logits[offset : offset + len(labels)]
            offset += len(labels)


def reference_widths(records: Sequence[EncodedText], batch_size: int) -> List[int]:
    """Per text, the word count (choice prefix included) of the widest text in the batch gliner2
    would put it in: gliner2 batches texts in input order, `batch_size` at a time.

    Only GLiNER2.5 relation scores read it (gliner2 normalises a head-tail distance by its padded
    word axis); everything else gives the same answer in any batch.
    """
    widths = []
    for start in range(0, len(records), batch_size):
        block = records[start : start + batch_size]
        widths += [max(len(record.word_subwords) for record in block)] * len(block)
    return widths


def heads_for(backend: GLiNER2Backend) -> Union[SpanHeads, BoundaryHeads]:
    """The extraction head of `backend`'s architecture."""
    if backend.architecture == SpanHeads.architecture:
        return SpanHeads(backend)  # type: ignore[arg-type]
    if backend.architecture == BoundaryHeads.architecture:
        return BoundaryHeads(backend)  # type: ignore[arg-type]
    raise ValueError(f"Unknown GLiNER2 architecture {backend.architecture!r}; expected 'span' or 'boundary'.")
