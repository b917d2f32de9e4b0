"""Host-side preprocessing of GLiNER2 span models, without torch.

A port of the inference path of gliner2's `SchemaTransformer` (gliner2/processor.py): text
normalisation, word splitting, the schema -> task-prompt translation, per-token subword encoding
with a `tokenizers.Tokenizer`, padding, and the gather positions the numeric stages need.
The input ids and positions equal those of gliner2's `collate_fn_inference`
(tests/test_runtime_parity.py checks them on the parity corpus).

Model input of one text:

    ( [P] prompt ( [E] f1 [E] f2 ... ) ) [SEP_STRUCT] ( [P] ... ) [SEP_TEXT] w1 w2 ...

Tasks come in the order structures ([C]), entities ([E]), relations ([R]), classifications ([L]).
Every token (prompt, field name, word) is tokenized on its own, without [CLS]/[SEP] or truncation.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from tokenizers import Tokenizer

from ._vendor.word_splitter import WordSplitterSpec, resolve_word_splitter
from .errors import GLiNER2InputError, GLiNER2LoadError

SEP_STRUCT = "[SEP_STRUCT]"
SEP_TEXT = "[SEP_TEXT]"
P_TOKEN = "[P]"
C_TOKEN = "[C]"
E_TOKEN = "[E]"
R_TOKEN = "[R]"
L_TOKEN = "[L]"
EXAMPLE_TOKEN = "[EXAMPLE]"
OUTPUT_TOKEN = "[OUTPUT]"
DESC_TOKEN = "[DESCRIPTION]"
MARKER_TOKENS = (
    SEP_STRUCT,
    SEP_TEXT,
    P_TOKEN,
    C_TOKEN,
    E_TOKEN,
    R_TOKEN,
    L_TOKEN,
    EXAMPLE_TOKEN,
    OUTPUT_TOKEN,
    DESC_TOKEN,
)
#: Markers that introduce a span-task field (structure field, entity type, relation role).
FIELD_MARKERS = (E_TOKEN, C_TOKEN, R_TOKEN)
TOKEN_POOLINGS = ("first", "mean", "max")

_TOKENIZE_CACHE_SIZE = 50_000

logger = logging.getLogger(__name__)


def normalize_text(text: str) -> str:
    """Append "." unless the text ends with sentence punctuation, as gliner2's collation does."""
    if not text:
        return "."
    if not text.endswith((".", "!", "?")):
        return text + "."
    return text


@dataclass(frozen=True)
class Task:
    """One schema task as the model reads it: `( [P] prompt ( M f1 M f2 ... ) )`.

    Attributes:
        task_type: "json_structures", "entities", "relations" or "classifications".
        tokens: The prompt tokens, each tokenized on its own.
    """

    task_type: str
    tokens: Tuple[str, ...]

    @property
    def prompt(self) -> str:
        return self.tokens[2]

    @property
    def name(self) -> str:
        """The result key: the prompt without the descriptions appended to it."""
        return self.prompt.split(f" {DESC_TOKEN} ")[0]

    @property
    def field_names(self) -> List[str]:
        """Span-task fields in prompt order; empty for classifications ([L] labels)."""
        return [
            self.tokens[index + 1]
            for index in range(len(self.tokens) - 1)
            if self.tokens[index] in FIELD_MARKERS
        ]

    @property
    def is_classification(self) -> bool:
        return self.task_type == "classifications"


def _task_tokens(
    parent: str,
    fields: Sequence[str],
    child_marker: str,
    prompt: Optional[str] = None,
    examples: Optional[Sequence[Tuple[str, Any]]] = None,
    label_descriptions: Optional[Mapping[str, str]] = None,
) -> Tuple[str, ...]:
    """gliner2's `_transform_schema` in inference mode.

    Inference always renders the descriptions and examples it is given (gliner2 picks the
    "descriptions" or "both" example mode exactly when there are some).
    """
    prompt_str = f"{parent}: {prompt}" if prompt else parent
    for label, description in (label_descriptions or {}).items():
        if label in fields:
            prompt_str += f" {DESC_TOKEN} {label}: {description}"
    for example_input, example_output in examples or ():
        if example_output in fields:
            rendered = (
                example_output if isinstance(example_output, str) else ", ".join(example_output)
            )
            prompt_str += f" {EXAMPLE_TOKEN} {example_input} {OUTPUT_TOKEN} {rendered}"
    tokens = ["(", P_TOKEN, prompt_str, "("]
    for field_name in fields:
        tokens.extend([child_marker, field_name])
    tokens.extend([")", ")"])
    return tuple(tokens)


def _grouped_by_parent(items: Sequence[Mapping[str, Any]]) -> dict:
    groups: dict = {}
    for item in items:
        for parent, fields in item.items():
            groups.setdefault(parent, []).append(fields)
    return groups


def build_tasks(schema: Mapping[str, Any]) -> List[Task]:
    """Translate a gliner2 schema dict into its tasks, in gliner2's order (`_infer_from_json`)."""
    tasks: List[Task] = []

    json_descriptions = schema.get("json_descriptions", {})
    for parent, occurrences in _grouped_by_parent(schema.get("json_structures", [])).items():
        # Repeated structures merge their fields in declaration order.
        fields = list(dict.fromkeys(name for occurrence in occurrences for name in occurrence))
        if fields:
            tokens = _task_tokens(
                parent, fields, C_TOKEN, label_descriptions=json_descriptions.get(parent, {})
            )
            tasks.append(Task("json_structures", tokens))

    entity_fields = list(schema.get("entities", {}))
    if entity_fields:
        tokens = _task_tokens(
            "entities",
            entity_fields,
            E_TOKEN,
            label_descriptions=schema.get("entity_descriptions", {}),
        )
        tasks.append(Task("entities", tokens))

    relation_descriptions = schema.get("relation_descriptions", {})
    for parent, occurrences in _grouped_by_parent(schema.get("relations", [])).items():
        tokens = _task_tokens(
            parent, list(occurrences[0]), R_TOKEN, prompt=relation_descriptions.get(parent)
        )
        tasks.append(Task("relations", tokens))

    for item in schema.get("classifications", []):
        tokens = _task_tokens(
            item["task"],
            list(item["labels"]),
            L_TOKEN,
            prompt=item.get("prompt"),
            examples=item.get("examples"),
            label_descriptions=item.get("label_descriptions") or {},
        )
        tasks.append(Task("classifications", tokens))
    return tasks


def build_choice_prefix(schema: Mapping[str, Any]) -> List[str]:
    """Words put before the text for JSON choice fields: `( parent: field ( a | b ) , ... )`.

    Choice fields are decoded from the width-0 span score of the choice's word in this prefix.
    """
    prefix: List[str] = []
    for structure in schema.get("json_structures", []):
        for parent, fields in structure.items():
            inner: List[str] = []
            for field_name, value in fields.items():
                if isinstance(value, dict) and "value" in value and "choices" in value:
                    choice_words: List[str] = []
                    for index, choice in enumerate(value["choices"]):
                        if index > 0:
                            choice_words.append("|")
                        choice_words.append(choice)
                    inner.extend([field_name, "(", *choice_words, ")", ","])
            if inner:
                prefix.extend(["(", f"{parent}:", *inner[:-1], ")"])
    return prefix


def _is_marker_slot(index: int, task_length: int) -> bool:
    """Whether token `index` of a task is [P] or a field/label marker.

    Only these structural slots are gathered; a prompt that happens to tokenize to a marker id
    must not add a query (gliner2 routes by slot, not by id).
    """
    return (index == 1 and task_length > 1) or (4 <= index < task_length - 2 and index % 2 == 0)


@dataclass
class EncodedText:
    """One (text, schema) pair, tokenized and ready for the numeric stages.

    Attributes:
        text: The normalised text; character offsets in results index it.
        schema: The schema dict, read again when decoding choices and classifications.
        tasks: The schema's tasks in model order.
        words: Choice-prefix words, then the lower-cased text words.
        start_map: Character start of each text word (prefix words excluded).
        end_map: Character end (exclusive) of each text word.
        input_ids: Token ids of the whole model input.
        word_subwords: `[start, end)` subword range of each entry of `words`; empty for a word the
            tokenizer drops.
        marker_positions: Per task, the positions of [P] and of each field or label marker.
    """

    text: str
    schema: Mapping[str, Any]
    tasks: List[Task]
    words: List[str]
    start_map: List[int]
    end_map: List[int]
    input_ids: List[int]
    word_subwords: List[Tuple[int, int]]
    marker_positions: List[List[int]]

    @property
    def text_len(self) -> int:
        """Number of text words, the choice prefix excluded."""
        return len(self.start_map)


class Preprocessor:
    """Turns texts and schema dicts into `EncodedText`, as gliner2's collation does.

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
        self.word_splitter = resolve_word_splitter(word_splitter)
        # Words and labels repeat across texts; encoding is deterministic per string, and
        # lru_cache is thread-safe.
        self._subword_ids = functools.lru_cache(maxsize=_TOKENIZE_CACHE_SIZE)(self._encode_token)

    def _encode_token(self, token: str) -> Tuple[int, ...]:
        return tuple(self.tokenizer.encode(token, add_special_tokens=False).ids)

    def encode(
        self, text: str, schema: Mapping[str, Any], max_len: Optional[int] = None
    ) -> EncodedText:
        """Encode one text with its schema dict.

        Args:
            text: The input text (validated by the caller).
            schema: A gliner2 schema dict (`Schema.build()` or the dict form).
            max_len: Keep at most this many text words; None keeps all.

        Returns:
            The encoded text.
        """
        text = normalize_text(text)
        words: List[str] = []
        start_map: List[int] = []
        end_map: List[int] = []
        for word, start, end in self.word_splitter(text, lower=True):
            words.append(word)
            start_map.append(start)
            end_map.append(end)
        if max_len is not None:
            del words[max_len:], start_map[max_len:], end_map[max_len:]
        words = build_choice_prefix(schema) + words

        tasks = build_tasks(schema)
        input_ids: List[int] = []
        marker_positions: List[List[int]] = [[] for _ in tasks]
        for task_index, task in enumerate(tasks):
            if task_index:
                input_ids.extend(self._subword_ids(SEP_STRUCT))
            for token_index, token in enumerate(task.tokens):
                if _is_marker_slot(token_index, len(task.tokens)):
                    marker_positions[task_index].append(len(input_ids))
                input_ids.extend(self._subword_ids(token))
        input_ids.extend(self._subword_ids(SEP_TEXT))
        word_subwords: List[Tuple[int, int]] = []
        for index, word in enumerate(words):
            start = len(input_ids)
            input_ids.extend(self._subword_ids(word))
            word_subwords.append((start, len(input_ids)))
            if start == len(input_ids):
                logger.warning(
                    "text word %r (index %d) produced no subwords; its embedding is the next "
                    "word's, as in gliner2",
                    word,
                    index,
                )

        return EncodedText(
            text=text,
            schema=schema,
            tasks=tasks,
            words=words,
            start_map=start_map,
            end_map=end_map,
            input_ids=input_ids,
            word_subwords=word_subwords,
            marker_positions=marker_positions,
        )


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
    """Word embeddings `[L, H]` from one row of encoder output `[S, H]`.

    "first" takes each word's first subword; a word the tokenizer drops keeps a row at the next
    word's position, so rows stay aligned with words (gliner2's fast path). "mean" and "max"
    aggregate the subwords and skip dropped words, as gliner2's loop path does.
    """
    if token_pooling == "first":
        return hidden[[start for start, _ in record.word_subwords]]
    aggregate = np.mean if token_pooling == "mean" else np.max
    rows = [
        aggregate(hidden[start:end], axis=0) for start, end in record.word_subwords if end > start
    ]
    if not rows:
        return np.zeros((0, hidden.shape[-1]), dtype=hidden.dtype)
    return np.stack(rows).astype(hidden.dtype, copy=False)


# ---------------------------------------------------------------------------------------------
# Input validation. gliner2 turns most of these inputs into placeholder records or empty
# results; the runtime raises GLiNER2InputError instead.
# ---------------------------------------------------------------------------------------------


def check_text(text: Any, index: Optional[int] = None) -> None:
    """Reject a text gliner2 would answer with placeholder results.

    gliner2 replaces None, "" and whitespace by ".", and a non-str by a dummy record; it also
    accepts marker tokens, which its default splitter breaks apart but a custom splitter may not.
    """
    where = "text" if index is None else f"texts[{index}]"
    if not isinstance(text, str):
        raise GLiNER2InputError(f"{where} must be a str, got {type(text).__name__}")
    if not text.strip():
        raise GLiNER2InputError(f"{where} is empty or whitespace only")
    _reject_markers(text, where)


def _reject_markers(value: str, where: str) -> None:
    found = [marker for marker in MARKER_TOKENS if marker in value]
    if found:
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise GLiNER2InputError(
            f"{where} contains gliner2's reserved marker token(s) {found}, which would corrupt "
            f"the model prompt: {shown!r}"
        )


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def check_names(names: Iterable[Any], what: str) -> None:
    """Labels must be non-empty, unique, non-blank strings.

    gliner2 accepts an empty list (the task silently disappears), collapses duplicate entity
    and relation names, and keeps duplicate classification labels and choices as separate
    outputs of the same name.
    """
    names = list(names)
    if not names:
        raise GLiNER2InputError(f"{what}: the label list is empty")
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise GLiNER2InputError(f"{what}: labels must be non-empty strings, got {name!r}")
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        raise GLiNER2InputError(f"{what}: duplicate labels {duplicates}")


def check_schema(schema: Mapping[str, Any]) -> None:
    """Reject a schema dict that gliner2 would turn into a dummy record or a corrupt prompt."""
    for value in _strings(schema):
        _reject_markers(value, "schema")
    for item in schema.get("classifications", []):
        if not isinstance(item, Mapping) or not isinstance(item.get("task"), str):
            raise GLiNER2InputError(f"classification tasks need a 'task' name, got {item!r}")
        check_names(item.get("labels") or [], f"classification {item['task']!r}")
    for structure in schema.get("json_structures", []):
        for parent, fields in structure.items():
            for field_name, value in fields.items():
                if isinstance(value, Mapping) and "choices" in value:
                    check_names(value["choices"] or [], f"choices of {parent}.{field_name}")
    if not build_tasks(schema):
        raise GLiNER2InputError(
            "the schema defines no task: give entities, relations, structure fields or "
            "classifications"
        )
