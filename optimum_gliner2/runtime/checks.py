"""Input checks: what gliner2 would answer with placeholders or a corrupt prompt is refused here.

gliner2 reads None, "" and whitespace as ".", a non-str as a dummy record, drops an empty label
list, merges duplicate labels and lets marker tokens such as "[E]" in labels into its prompt (in
texts they are data: see `runtime/preprocess.py`). The runtime raises `GLiNER2InputError` instead,
naming the offending input. It also refuses what gliner2
silently misreads: unknown schema dict keys, labels given as a str, thresholds outside [0, 1].

`check_model_location` is the one load-time check: whether `from_pretrained` got an existing
folder, a hub id, or neither (raising `GLiNER2LoadError` for that).
"""

from __future__ import annotations

import difflib
import numbers
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from optimum_gliner2.bundle.format import MARKER_TOKENS
from optimum_gliner2.errors import GLiNER2InputError, GLiNER2LoadError

#: The keys of a schema dict as gliner2's `Schema.build()` writes them; gliner2 reads no others.
SCHEMA_DICT_KEYS = (
    "json_structures",
    "classifications",
    "entities",
    "relations",
    "json_descriptions",
    "entity_descriptions",
    "relation_descriptions",
    "record_metadata",
)
#: Keys of `Schema.from_dict`'s input format, which is not the dict `extract` takes.
_FROM_DICT_ONLY_KEYS = ("structures", "entity_attributes")


def check_text(text: Any, index: Optional[int] = None) -> None:
    """Refuse a text that is not a non-blank str.

    Marker strings such as "[E]" are allowed: the preprocessor tokenizes text words as data.
    """
    where = "text" if index is None else f"texts[{index}]"
    if not isinstance(text, str):
        raise GLiNER2InputError(f"{where} must be a str, got {type(text).__name__}")
    if not text.strip():
        raise GLiNER2InputError(f"{where} is empty or whitespace only")


def check_texts(texts: Sequence[Any], single_text_method: str) -> None:
    """Refuse a str where a list of texts is expected, and every bad text of the list."""
    if isinstance(texts, str):
        raise GLiNER2InputError(f"texts must be a list of str; use {single_text_method}() for one text")
    for index, text in enumerate(texts):
        check_text(text, index)


def reject_markers(value: str, where: str) -> None:
    """gliner2's marker tokens inside a schema string would be read as prompt structure."""
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

    Stricter than gliner2, which ignores keys it does not know: a misspelt key (`"clasifications"`)
    would silently drop its tasks, so any key outside `SCHEMA_DICT_KEYS` is refused. A
    `cls_threshold` must be a number in [0, 1] (see `check_threshold`).

    Whether the schema defines any task at all is checked by the plan, which knows its tasks.
    """
    check_schema_keys(schema)
    strings = list(_strings(schema))
    # One search over all strings; "\0" cannot be part of a marker, so no match spans two strings.
    if any(marker in "\0".join(strings) for marker in MARKER_TOKENS):
        for value in strings:
            reject_markers(value, "schema")
    for item in schema.get("classifications", []):
        if not isinstance(item, Mapping) or not isinstance(item.get("task"), str):
            raise GLiNER2InputError(f"classification tasks need a 'task' name, got {item!r}")
        check_names(item.get("labels") or [], f"classification {item['task']!r}")
        if "cls_threshold" in item:
            check_threshold(item["cls_threshold"], f"cls_threshold of classification {item['task']!r}")
    for structure in schema.get("json_structures", []):
        for parent, fields in structure.items():
            for field_name, value in fields.items():
                if isinstance(value, Mapping) and "choices" in value:
                    check_names(value["choices"] or [], f"choices of {parent}.{field_name}")


def check_schema_keys(schema: Mapping[str, Any]) -> None:
    """Refuse keys of a schema dict that gliner2 would ignore, naming the known ones."""
    unknown = [key for key in schema if key not in SCHEMA_DICT_KEYS]
    if not unknown:
        return
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), SCHEMA_DICT_KEYS, n=1)
        if close:
            hints.append(f"did you mean {close[0]!r} for {key!r}?")
    if any(key in _FROM_DICT_ONLY_KEYS for key in unknown):
        hints.append("Schema.from_dict(...) reads the 'structures' / 'entity_attributes' format")
    hint = f" ({'; '.join(hints)})" if hints else ""
    raise GLiNER2InputError(
        f"the schema dict has unknown key(s) {unknown}{hint}; the known keys are {list(SCHEMA_DICT_KEYS)}"
    )


def check_threshold(value: Any, what: str) -> None:
    """Refuse a threshold that is not a real number in [0, 1].

    Stricter than gliner2, which compares whatever it is given: 1.5 keeps nothing, -1 keeps
    everything, "0.5" fails deep inside numpy, and True passes as 1. A bool is refused here
    although it is an int, since it is never meant as a threshold.
    """
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not is_number or not 0 <= value <= 1:  # NaN fails the comparison too
        raise GLiNER2InputError(f"{what} is {value!r}, but thresholds are numbers in [0, 1]")


def check_label_thresholds(label_types: Any, what: str) -> None:
    """The `threshold` of each label config in `{label: {"threshold": ...}}` (see `check_threshold`)."""
    if isinstance(label_types, Mapping):
        for name, config in label_types.items():
            if isinstance(config, Mapping) and "threshold" in config:
                check_threshold(config["threshold"], f"threshold of {what} {name!r}")


def check_classification_tasks(tasks: Any) -> None:
    """`classify_text`'s tasks: `{task: labels}` with labels a list or a dict, or `{task: {"labels": ...}}`.

    Stricter than gliner2, which splits a str of labels into characters and fails on a list of
    tasks with an AttributeError.
    """
    if not isinstance(tasks, Mapping):
        raise GLiNER2InputError(
            f"classification tasks must be a dict of task -> labels, e.g. {{'sentiment': ['positive', 'negative']}}; "
            f"got {type(tasks).__name__} {_shown(tasks)}"
        )
    for task, config in tasks.items():
        options = config if isinstance(config, Mapping) and "labels" in config else {"labels": config}
        labels = options["labels"]
        if not isinstance(labels, (list, tuple, Mapping)):
            raise GLiNER2InputError(
                f"labels of {task!r} must be a list or a dict (label -> description), got "
                f"{type(labels).__name__} {_shown(labels)}"
            )
        if "cls_threshold" in options:
            check_threshold(options["cls_threshold"], f"cls_threshold of classification {task!r}")


def check_model_location(model_id: Any) -> Optional[Path]:
    """Where `from_pretrained` finds an export: the local folder, or None for a hub id.

    Args:
        model_id (`str` or `os.PathLike`): A local folder or a hub repository id.

    Returns:
        `Path` of the folder when `model_id` is one, `None` when it is a valid hub id.

    Raises:
        GLiNER2LoadError: `model_id` is a file, or neither an existing folder nor a valid hub id
            (a path such as "my-onnx/" that does not exist).
    """
    path = Path(os.path.expanduser(os.fspath(model_id)))
    if path.is_dir():
        return path
    if path.exists():
        raise GLiNER2LoadError(f"{model_id} is a file, not an exported folder.")
    # huggingface_hub is the authority on repo ids; it is torch-free and comes with tokenizers.
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(os.fspath(model_id))
    except HFValidationError:
        raise GLiNER2LoadError(f"{model_id} does not exist (neither a local folder nor a hub id).") from None
    return None


def check_positive(value: Optional[int], name: str) -> None:
    """`batch_size`, `max_len` and the like: None (where allowed) or at least 1."""
    if value is not None and value < 1:
        raise GLiNER2InputError(f"{name} must be at least 1, got {value}")


def _shown(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


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
