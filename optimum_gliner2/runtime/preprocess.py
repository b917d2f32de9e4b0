"""Texts and schema plans to model inputs, as gliner2's collation builds them, without torch.

Model input of one text:

    ( [P] prompt ( [E] f1 [E] f2 ... ) ) [SEP_STRUCT] ( [P] ... ) [SEP_TEXT] prefix words  text words

Every token (prompt, field name, word) is tokenized on its own, without [CLS]/[SEP] or truncation;
a word is represented by its first subword (or the mean/max of its subwords). The part before the
text words depends on the schema alone, so it is encoded once and cached for later texts and calls.

Texts are data: a word that holds one of gliner2's marker strings (possible only with a custom
word splitter that keeps case, since the built-in ones lower-case words) is tokenized as ordinary
characters, never as the marker, so a text cannot add or move a query in the prompt.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
from tokenizers import Tokenizer

from optimum_gliner2.bundle.format import MARKER_TOKENS, TOKEN_POOLINGS
from optimum_gliner2.errors import GLiNER2InputError, GLiNER2LoadError
from optimum_gliner2.runtime.plan import SEP_STRUCT, SEP_TEXT, SchemaPlan
from optimum_gliner2.runtime.words import WordSplitter, WordSplitterSpec, resolve_word_splitter

_TOKENIZE_CACHE_SIZE = 50_000
_PROMPT_CACHE_SIZE = 1_024

logger = logging.getLogger(__name__)


def normalize_text(text: str) -> str:
    """Append "." unless the text ends with sentence punctuation, as gliner2's collation does."""
    return text if text.endswith((".", "!", "?")) else text + "."


@dataclass(frozen=True)
class EncodedPrompt:
    """The schema part of the model input, shared by every text of a plan.

    Attributes:
        input_ids: Ids of the task prompts, [SEP_TEXT] and the choice-prefix words.
        marker_positions: Per task, the positions of [P] and of each field or label marker.
        prefix_subwords: `[start, end)` subword range of each choice-prefix word.
    """

    input_ids: Tuple[int, ...]
    marker_positions: Tuple[Tuple[int, ...], ...]
    prefix_subwords: Tuple[Tuple[int, int], ...]


@dataclass(frozen=True)
class EncodedText:
    """One (text, plan) pair, tokenized and ready for the numeric stages.

    Attributes:
        text: The normalized text; character offsets in results index it.
        plan: The schema plan the text is extracted with.
        start_map: Character start of each text word.
        end_map: Character end (exclusive) of each text word.
        input_ids: Token ids of the whole model input.
        word_subwords: `[start, end)` subword range of each choice-prefix word, then of each text
            word; empty for a word the tokenizer drops.
        marker_positions: Per task, the positions of [P] and of each field or label marker.
    """

    text: str
    plan: SchemaPlan
    start_map: Tuple[int, ...]
    end_map: Tuple[int, ...]
    input_ids: Tuple[int, ...]
    word_subwords: Tuple[Tuple[int, int], ...]
    marker_positions: Tuple[Tuple[int, ...], ...]

    @property
    def text_len(self) -> int:
        """Number of text words (the choice prefix excluded)."""
        return len(self.start_map)


def _is_marker_slot(index: int, task_length: int) -> bool:
    """Whether token `index` of a task prompt is [P] or a field/label marker.

    Only these slots are gathered: a prompt that happens to tokenize to a marker id must not add a
    query (gliner2 routes by slot, not by id).
    """
    return (index == 1 and task_length > 1) or (4 <= index < task_length - 2 and index % 2 == 0)


class Preprocessor:
    """Turns texts and schema plans into `EncodedText`, as gliner2's collation does.

    Args:
        tokenizer: The checkpoint's `tokenizers.Tokenizer` (tokenizer.json), including gliner2's
            marker tokens. Its truncation and padding are switched off, as Hugging Face's
            `tokenize` does on every call.
        word_splitter: gliner2 word splitter: None or "whitespace" (default), "char", or a
            callable yielding `(word, start, end)`.

    Raises:
        GLiNER2LoadError: The tokenizer lacks gliner2's marker tokens.
    """

    def __init__(self, tokenizer: Tokenizer, word_splitter: Optional[WordSplitterSpec] = None):
        missing = [token for token in MARKER_TOKENS if tokenizer.token_to_id(token) is None]
        if missing:
            raise GLiNER2LoadError(
                f"the tokenizer lacks gliner2's marker tokens {missing}; use the tokenizer.json "
                "saved with the GLiNER2 checkpoint"
            )
        if tokenizer.truncation is not None:
            tokenizer.no_truncation()
        if tokenizer.padding is not None:
            tokenizer.no_padding()
        self.tokenizer = tokenizer
        self.word_splitter: WordSplitter = resolve_word_splitter(word_splitter)
        # Words, labels and whole schemas repeat across texts and calls; encoding is deterministic
        # per string, and lru_cache is thread-safe.
        self._subword_ids = functools.lru_cache(maxsize=_TOKENIZE_CACHE_SIZE)(self._encode_token)
        self._marker_free_tokenizer = _without_marker_tokens(tokenizer)
        self._encoded_prompts = functools.lru_cache(maxsize=_PROMPT_CACHE_SIZE)(self._encode_prompt)

    def _encode_token(self, token: str) -> Tuple[int, ...]:
        return tuple(self.tokenizer.encode(token, add_special_tokens=False).ids)

    def _encode_word(self, word: str) -> Tuple[int, ...]:
        """Subword ids of one choice-prefix or text word, marker strings read as plain characters."""
        if any(marker in word for marker in MARKER_TOKENS):
            return tuple(self._marker_free_tokenizer.encode(word, add_special_tokens=False).ids)
        return self._subword_ids(word)

    def encode_prompt(self, plan: SchemaPlan) -> EncodedPrompt:
        """The schema part of the model input of `plan`."""
        return self._encoded_prompts(tuple(task.prompt for task in plan.tasks), plan.choice_prefix)

    def _encode_prompt(self, prompts: Tuple[Tuple[str, ...], ...], choice_prefix: Tuple[str, ...]) -> EncodedPrompt:
        input_ids: List[int] = []
        marker_positions = []
        for task_index, prompt in enumerate(prompts):
            if task_index:
                input_ids += self._subword_ids(SEP_STRUCT)
            positions = []
            for token_index, token in enumerate(prompt):
                if _is_marker_slot(token_index, len(prompt)):
                    positions.append(len(input_ids))
                input_ids += self._subword_ids(token)
            marker_positions.append(tuple(positions))
        input_ids += self._subword_ids(SEP_TEXT)
        prefix_subwords = self._append_words(input_ids, choice_prefix)
        return EncodedPrompt(tuple(input_ids), tuple(marker_positions), tuple(prefix_subwords))

    def encode(self, text: str, plan: SchemaPlan, max_len: Optional[int] = None) -> EncodedText:
        """Encode one text (validated by the caller) with its plan.

        Args:
            text: The input text.
            plan: Its schema plan.
            max_len: Keep at most this many text words; None keeps all.
        """
        prompt = self.encode_prompt(plan)
        text = normalize_text(text)
        words, start_map, end_map = [], [], []
        for word, start, end in self.word_splitter(text, lower=True):
            if max_len is not None and len(words) == max_len:
                break
            words.append(word)
            start_map.append(start)
            end_map.append(end)
        input_ids = list(prompt.input_ids)
        text_subwords = self._append_words(input_ids, words)
        return EncodedText(
            text=text,
            plan=plan,
            start_map=tuple(start_map),
            end_map=tuple(end_map),
            input_ids=tuple(input_ids),
            word_subwords=prompt.prefix_subwords + tuple(text_subwords),
            marker_positions=prompt.marker_positions,
        )

    def encode_batch(
        self, texts: Sequence[str], plans: Sequence[SchemaPlan], max_len: Optional[int] = None
    ) -> List[EncodedText]:
        """`encode` for every (text, plan) pair."""
        return [self.encode(text, plan, max_len) for text, plan in zip(texts, plans)]

    def _append_words(self, input_ids: List[int], words: Sequence[str]) -> List[Tuple[int, int]]:
        """Append each word's subword ids to `input_ids`; return each word's `[start, end)` range."""
        ranges = []
        for index, word in enumerate(words):
            start = len(input_ids)
            input_ids += self._encode_word(word)
            ranges.append((start, len(input_ids)))
            if start == len(input_ids):
                logger.warning(
                    "word %r (index %d) produced no subwords; its embedding is the next word's, as in gliner2",
                    word,
                    index,
                )
        return ranges


def _without_marker_tokens(tokenizer: Tokenizer) -> Tokenizer:
    """A copy of `tokenizer` whose added-token matcher no longer knows gliner2's markers.

    The markers are added tokens outside the subword vocabulary, so without them a marker string
    falls through to the normalizer, pre-tokenizer and subword model like any other text.
    """
    serialized = json.loads(tokenizer.to_str())
    serialized["added_tokens"] = [token for token in serialized["added_tokens"] if token["content"] not in MARKER_TOKENS]
    return Tokenizer.from_str(json.dumps(serialized))


def check_token_pooling(token_pooling: str) -> None:
    """Refuse a pooling gliner2 does not have."""
    if token_pooling not in TOKEN_POOLINGS:
        raise GLiNER2InputError(f"token_pooling must be one of {TOKEN_POOLINGS}, got {token_pooling!r}")


def pad_batch(records: Sequence[EncodedText]) -> Tuple[np.ndarray, np.ndarray]:
    """Right-pad input ids with 0 into `[B, S]` int64 `(input_ids, attention_mask)`."""
    width = max(len(record.input_ids) for record in records)
    input_ids = np.zeros((len(records), width), dtype=np.int64)
    attention_mask = np.zeros((len(records), width), dtype=np.int64)
    for row, record in enumerate(records):
        input_ids[row, : len(record.input_ids)] = record.input_ids
        attention_mask[row, : len(record.input_ids)] = 1
    return input_ids, attention_mask


def pool_words(hidden: np.ndarray, record: EncodedText, token_pooling: str) -> np.ndarray:
    """Word embeddings `[L, H]` (prefix and text words) from one row of encoder output `[S, H]`.

    "first" takes each word's first subword; a word the tokenizer drops keeps a row at the next
    word's position, so rows stay aligned with words (gliner2's fast path). "mean" and "max"
    aggregate the subwords and skip dropped words, as gliner2's loop path does.
    """
    if token_pooling == "first":
        return hidden[[start for start, _ in record.word_subwords]]
    aggregate = np.mean if token_pooling == "mean" else np.max
    rows = [aggregate(hidden[start:end], axis=0) for start, end in record.word_subwords if end > start]
    if not rows:
        return np.zeros((0, hidden.shape[-1]), dtype=hidden.dtype)
    return np.stack(rows).astype(hidden.dtype, copy=False)
