"""Input checks: what gliner2 would answer with placeholders or a corrupt prompt is refused here.

gliner2 reads None, "" and whitespace as ".", a non-str as a dummy record, drops an empty label
list, merges duplicate labels and lets marker tokens such as "[E]" into its prompt. The runtime
raises `GLiNER2InputError` instead, naming the offending input.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Optional

from optimum_gliner2.bundle.format import MARKER_TOKENS
from optimum_gliner2.errors import GLiNER2InputError


def check_text(text: Any, index: Optional[int] = None) -> None:
    """Refuse a text that is not a non-blank str, or that holds a marker token."""
    where = "text" if index is None else f"texts[{index}]"
    if not isinstance(text, str):
        raise GLiNER2InputError(f"{where} must be a str, got {type(text).__name__}")
    if not text.strip():
        raise GLiNER2InputError(f"{where} is empty or whitespace only")
    reject_markers(text, where)


def check_texts(texts: Sequence[Any], single_text_method: str) -> None:
    """Refuse a str where a list of texts is expected, and every bad text of the list."""
    if isinstance(texts, str):
        raise GLiNER2InputError(f"texts must be a list of str; use {single_text_method}() for one text")
    for index, text in enumerate(texts):
        check_text(text, index)


def reject_markers(value: str, where: str) -> None:
    """gliner2's marker tokens inside user text would be read as prompt structure."""
    found = [marker for marker in MARKER_TOKENS if marker in value]
    if found:
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise GLiNER2InputError(
            f"{where} contains gliner2's reserved marker token(s) {found}, which would corrupt "
            f"the model prompt: {shown!r}"
        )


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


def label_names(label_types: Any) -> list:
    """Names in the forms gliner2's `entities()`/`relations()` accept: str, list or dict."""
    if isinstance(label_types, str):
        return [label_types]
    if isinstance(label_types, (Mapping, list, tuple)):
        return list(label_types)
    raise GLiNER2InputError(f"labels must be a str, a list or a dict, got {type(label_types).__name__}")


def check_schema_dict(schema: Mapping[str, Any]) -> None:
    """Refuse a schema dict that gliner2 would turn into a dummy record or a corrupt prompt.

    Whether the schema defines any task at all is checked by the plan, which knows its tasks.
    """
    strings = list(_strings(schema))
    # One search over all strings; "\0" cannot be part of a marker, so no match spans two strings.
    if any(marker in "\0".join(strings) for marker in MARKER_TOKENS):
        for value in strings:
            reject_markers(value, "schema")
    for item in schema.get("classifications", []):
        if not isinstance(item, Mapping) or not isinstance(item.get("task"), str):
            raise GLiNER2InputError(f"classification tasks need a 'task' name, got {item!r}")
        check_names(item.get("labels") or [], f"classification {item['task']!r}")
    for structure in schema.get("json_structures", []):
        for parent, fields in structure.items():
            for field_name, value in fields.items():
                if isinstance(value, Mapping) and "choices" in value:
                    check_names(value["choices"] or [], f"choices of {parent}.{field_name}")


def check_positive(value: Optional[int], name: str) -> None:
    """`batch_size`, `max_len` and the like: None (where allowed) or at least 1."""
    if value is not None and value < 1:
        raise GLiNER2InputError(f"{name} must be at least 1, got {value}")


def _strings(value: Any) -> Iterator[str]:
    """Every str in a nested structure of mappings (keys included), lists and tuples."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, Mapping):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
