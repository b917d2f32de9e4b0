"""Long documents: overlapping word windows, and one answer merged from the windows' answers.

Behaves as gliner2.inference.chunking: `split_into_chunks` cuts a document into windows of at
most `chunk_size` words, consecutive windows sharing `chunk_overlap` words; each window is
extracted on its own, with confidences and spans; `merge_chunk_results` moves every span back to
document offsets, merges the windows' answers (a prediction seen in two windows counts once) and
finally drops the confidences and spans the caller did not ask for.

A "span dict" is a dict with "text", "start" and "end" whose start and end are ints (bools
included, as in gliner2): an extracted entity or field value. It may carry "confidence" and, for
entities with attribute groups, further keys.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from .overlap import normalize_overlap_policy, resolve_overlaps
from .words import WordSplitterSpec, resolve_word_splitter

_SPAN_KEYS = frozenset({"text", "confidence", "start", "end"})
_REQUIRED_SPAN_KEYS = frozenset({"text", "start", "end"})


@dataclass(frozen=True)
class TextChunk:
    """A window of a document: its text and where it lies, in characters and in words."""

    text: str
    start_char: int
    end_char: int
    start_word: int
    end_word: int


def split_into_chunks(
    text: str,
    chunk_size: int = 384,
    chunk_overlap: int = 64,
    word_splitter: Optional[WordSplitterSpec] = None,
) -> List[TextChunk]:
    """Cuts a document into overlapping windows of words.

    Each window runs from the start of its first word to the end of its last, so it never begins
    or ends inside a word. The last window ends at the last word; a text without words is one
    window spanning the whole text.

    Args:
        text (`str`):
            The document.
        chunk_size (`int`, *optional*, defaults to 384):
            The most words in a window.
        chunk_overlap (`int`, *optional*, defaults to 64):
            How many words consecutive windows share.
        word_splitter (`WordSplitterSpec`, *optional*):
            How words are counted (see `words.resolve_word_splitter`); the default splitter if
            `None`.

    Returns:
        `List[TextChunk]`: the windows, in document order.

    Raises:
        ValueError: `chunk_size` is not positive, or `chunk_overlap` is negative or not smaller
            than `chunk_size`; or `word_splitter` names no built-in splitter.
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    if chunk_overlap < 0:
        raise ValueError(f"chunk_overlap must not be negative, got {chunk_overlap}")
    if chunk_overlap >= chunk_size:
        raise ValueError(
            f"chunk_overlap ({chunk_overlap}) must be smaller than chunk_size ({chunk_size})"
        )
    words = list(resolve_word_splitter(word_splitter)(text, lower=False))
    if not words:
        return [TextChunk(text, 0, len(text), 0, 0)]

    chunks: List[TextChunk] = []
    first_word = 0
    while first_word < len(words):
        # The argument order of min() matters for non-int sizes (it keeps the first of equals),
        # and gliner2 puts the window end first.
        end_word = min(first_word + chunk_size, len(words))
        start_char, end_char = words[first_word][1], words[end_word - 1][2]
        window = TextChunk(text[start_char:end_char], start_char, end_char, first_word, end_word)
        chunks.append(window)
        if end_word == len(words):
            break
        first_word += chunk_size - chunk_overlap
    return chunks


class DocumentMerger:
    """Collects one document's window results as they arrive, and merges them into the result
    `merge_chunk_results` gives for all of them at once.

    Each window's result is moved to document offsets when it is added, so the caller can drop it
    (and its window's tokens) right away: a long document is then held as its predictions only,
    never as every window's tokens and raw results at once. The overlap resolution runs in
    `merged`, on all of them: it picks a document-wide optimum, which no window-by-window merge
    would give exactly.

    Args:
        original_text (`str`):
            The whole document.
        include_confidence, include_spans, scalar_entity_labels, overlap_policy:
            As in `merge_chunk_results`.

    Raises:
        ValueError: `overlap_policy` is unknown.
        TypeError: `overlap_policy` is not a string.
    """

    def __init__(
        self,
        original_text: str,
        include_confidence: bool = False,
        include_spans: bool = False,
        scalar_entity_labels: Optional[Iterable[str]] = None,
        overlap_policy: Optional[str] = None,
    ):
        self.original_text = original_text
        self.include_confidence = include_confidence
        self.include_spans = include_spans
        self.scalar_labels = set(scalar_entity_labels or ())
        self.policy = normalize_overlap_policy(overlap_policy, default="disallow")
        # {key: [its value in each window that has it]}, keys in order of first appearance.
        self._window_values: Dict[Any, List[Any]] = {}

    def add(self, chunk: TextChunk, chunk_result: Mapping[str, Any]) -> None:
        """Adds the next window's result (windows must come in document order), extracted with
        confidences and spans."""
        shifted = _to_document_offsets(chunk_result, self.original_text, chunk.start_char)
        for key in shifted:
            self._window_values.setdefault(key, []).append(shifted[key])

    def merged(self) -> Dict[str, Any]:
        """The document's result from the windows added so far, shaped like one window's result."""
        merged: Dict[str, Any] = {}
        for key, values in self._window_values.items():
            if key == "entities":
                merged[key] = _merge_label_maps(values, self.policy, self.scalar_labels)
            elif key == "relation_extraction":
                # Relations are merged without the caller's policy: gliner2 passes none, so any span
                # dicts among them fall back to "allow". Deliberate, to give the same answers.
                merged[key] = _merge_label_maps(values, None, set())
            else:
                merged[key] = _merge_values(values, self.policy)
        return _drop_unrequested(merged, self.include_confidence, self.include_spans)


def merge_chunk_results(
    original_text: str,
    chunks: Sequence[TextChunk],
    chunk_results: Sequence[Mapping[str, Any]],
    include_confidence: bool = False,
    include_spans: bool = False,
    scalar_entity_labels: Optional[Iterable[str]] = None,
    overlap_policy: Optional[str] = None,
) -> Dict[str, Any]:
    """Merges the extraction results of a document's windows into the document's result.

    Args:
        original_text (`str`):
            The whole document.
        chunks (`Sequence[TextChunk]`):
            Its windows, from `split_into_chunks`.
        chunk_results (`Sequence[Mapping[str, Any]]`):
            One formatted result per window, extracted with confidences and spans.
        include_confidence (`bool`, *optional*, defaults to `False`):
            Keep confidences in the merged result.
        include_spans (`bool`, *optional*, defaults to `False`):
            Keep character offsets (into `original_text`) in the merged result.
        scalar_entity_labels (`Iterable[str]`, *optional*):
            Entity labels declared with a non-list dtype: each merges to its best span or `None`.
        overlap_policy (`str`, *optional*):
            How overlapping entity spans (and span lists of other tasks) from different windows
            are resolved; "disallow" if `None`.

    Returns:
        `Dict[str, Any]`: the merged result, shaped like a single window's result.

    Raises:
        ValueError: `chunks` and `chunk_results` differ in length, or `overlap_policy` is unknown.
        TypeError: `overlap_policy` is not a string.
    """
    if len(chunks) != len(chunk_results):
        raise ValueError(
            f"got {len(chunk_results)} chunk results for {len(chunks)} chunks; they must pair up"
        )
    merger = DocumentMerger(
        original_text, include_confidence, include_spans, scalar_entity_labels, overlap_policy
    )
    for chunk, result in zip(chunks, chunk_results):
        merger.add(chunk, result)
    return merger.merged()


def _is_span(value: Any) -> bool:
    if not isinstance(value, dict) or not _REQUIRED_SPAN_KEYS <= value.keys():
        return False
    return isinstance(value["start"], int) and isinstance(value["end"], int)


def _is_classification(value: Any) -> bool:
    return isinstance(value, dict) and "label" in value and "confidence" in value


def _to_document_offsets(value: Any, original_text: str, offset: int) -> Any:
    """A copy of a window's result with every span dict moved by `offset` characters.

    A moved span's text is re-read from the document when its offsets fit in it.
    """
    if isinstance(value, list):
        return [_to_document_offsets(item, original_text, offset) for item in value]
    if not isinstance(value, dict):
        return value
    moved = {key: _to_document_offsets(item, original_text, offset) for key, item in value.items()}
    if _is_span(moved):
        start, end = int(moved["start"]) + offset, int(moved["end"]) + offset
        moved["start"], moved["end"] = start, end
        if 0 <= start <= end <= len(original_text):
            moved["text"] = original_text[start:end]
    return moved


def _values_by_key(mappings: Iterable[Any]) -> Dict[Any, List[Any]]:
    """`{key: [its value in each mapping that has it]}`, keys in order of first appearance."""
    collected: Dict[Any, List[Any]] = {}
    for mapping in mappings:
        for key in mapping:
            collected.setdefault(key, []).append(mapping[key])
    return collected


def _merge_label_maps(
    values: List[Any], policy: Optional[str], scalar_labels: set
) -> Dict[str, Any]:
    """Merges `{label: spans}` maps (values that are not dicts are ignored)."""
    per_label = _values_by_key(value for value in values if isinstance(value, dict))
    merged: Dict[str, Any] = {}
    for label, label_values in per_label.items():
        items: List[Any] = []
        for value in label_values:
            if isinstance(value, list):
                items.extend(value)
            elif value is not None:
                items.append(value)
        deduplicated = _deduplicate(items, policy)
        if label in scalar_labels:
            # The first span in document order, not the most confident one: deliberate, as in
            # gliner2 (under "disallow" the overlap resolution already kept the best of a clash).
            merged[label] = deduplicated[0] if deduplicated else None
        else:
            merged[label] = deduplicated
    return merged


def _merge_values(values: List[Any], policy: str) -> Any:
    """Merges the values one key has in several windows, by what kind of values they are."""
    present = [value for value in values if value not in (None, {}, [])]
    if not present:
        return values[0] if values else None
    if all(_is_classification(value) for value in present):
        # The first of the most confident wins.
        return max(present, key=lambda value: value.get("confidence", 0.0))
    if all(isinstance(value, str) for value in present):
        # A majority vote; ties go to the value seen first.
        return Counter(present).most_common(1)[0][0]
    if all(isinstance(value, list) for value in present):
        return _deduplicate([item for value in present for item in value], policy)
    if all(isinstance(value, dict) for value in present):
        return {key: _merge_values(group, policy) for key, group in _values_by_key(present).items()}
    return present[0]


def _deduplicate(items: List[Any], policy: Optional[str]) -> List[Any]:
    """Collapses predictions repeated across windows.

    Span dicts go through the overlap policy ("allow" if none is given: exact duplicates only),
    then are ordered by position. Other items (relations, structure instances, choices...) are
    duplicates when equal apart from confidences, and the more confident copy is kept in place of
    the first.
    """
    spans = [item for item in items if _is_span(item)]
    others = [item for item in items if not _is_span(item)]
    kept: List[Any] = []
    if spans:
        resolved = resolve_overlaps(
            spans,
            policy,
            default="allow",
            score=lambda span: float(span.get("confidence", 0.0)),
            start=lambda span: int(span["start"]),
            end=lambda span: int(span["end"]),
        )
        kept.extend(sorted(resolved, key=_document_order))

    slot_by_key: Dict[str, int] = {}
    unique: List[Any] = []
    for item in others:
        key = _confidence_blind_key(item)
        slot = slot_by_key.get(key)
        if slot is None:
            slot_by_key[key] = len(unique)
            unique.append(item)
        elif _best_confidence(item) > _best_confidence(unique[slot]):
            unique[slot] = item
    return kept + unique


def _document_order(span: Dict[str, Any]) -> tuple:
    # gliner2 adds the text as a last key, but it never decides: every span has been moved to
    # int offsets, and the overlap resolution leaves one span per (start, end).
    return span["start"], span["end"]


def _confidence_blind_key(value: Any) -> str:
    """A string equal for two predictions that differ at most in their "confidence" entries.

    Built from `repr`s, as gliner2 does, so the same values count as equal (1 and 1.0 do not).
    """
    if isinstance(value, list):
        return repr([_confidence_blind_key(item) for item in value])
    if isinstance(value, dict):
        entries = sorted(
            (key, _confidence_blind_key(item)) for key, item in value.items() if key != "confidence"
        )
        return repr(entries)
    return repr(value)


def _best_confidence(value: Any) -> float:
    """A prediction's own confidence, else the best one found inside it, else 0."""
    if isinstance(value, dict):
        own = value.get("confidence")
        if isinstance(own, (int, float)):
            return float(own)
        found = [_best_confidence(item) for item in value.values()]
    elif isinstance(value, list):
        found = [_best_confidence(item) for item in value]
    else:
        return 0.0
    return max(found) if found else 0.0


def _scored_name(value: Dict[str, Any], name_key: str, include_confidence: bool) -> Any:
    """`value[name_key]`, or `{name_key: ..., "confidence": ...}` when confidences are kept."""
    if include_confidence:
        return {name_key: value[name_key], "confidence": value["confidence"]}
    return value[name_key]


def _drop_unrequested(value: Any, include_confidence: bool, include_spans: bool) -> Any:
    """Reduces span, classification and choice dicts to what the caller asked for."""
    if isinstance(value, list):
        return [_drop_unrequested(item, include_confidence, include_spans) for item in value]
    if not isinstance(value, dict):
        return value
    if _is_span(value):
        # Attribute payloads riding on an entity span are kept as they are (not reduced), as
        # gliner2 does, to match the non-chunked attribute API.
        extras = {key: item for key, item in value.items() if key not in _SPAN_KEYS}
        if not (include_confidence or include_spans or extras):
            return value.get("text", "")
        reduced: Dict[str, Any] = {"text": value.get("text", "")}
        if include_confidence and "confidence" in value:
            reduced["confidence"] = value["confidence"]
        if include_spans:
            reduced["start"], reduced["end"] = value["start"], value["end"]
        reduced.update(extras)
        return reduced
    if _is_classification(value):
        return _scored_name(value, "label", include_confidence)
    if "text" in value and "confidence" in value and not ("start" in value or "end" in value):
        # A choice field's value, {"text": choice, "confidence": score}: no offsets at all.
        return _scored_name(value, "text", include_confidence)
    return {
        key: _drop_unrequested(item, include_confidence, include_spans)
        for key, item in value.items()
    }


__all__ = ["DocumentMerger", "TextChunk", "merge_chunk_results", "split_into_chunks"]
