"""The exported folder: what it holds, and the checks that make it safe to load.

An export is a folder with the ONNX graphs, tokenizer.json, config.json and `gliner2_onnx.json`,
the runtime metadata. The exporter writes the metadata last, so a folder without it is an
interrupted or failed export. Loading trusts nothing in the folder: file names must stay inside
it, sizes must match the metadata, and the metadata must agree with the tokenizer and the graphs.
No pickle and no remote code are involved anywhere.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from optimum_gliner2.runtime.errors import GLiNER2LoadError

METADATA_FILE = "gliner2_onnx.json"
#: 2: count_embed takes max_instances and returns only the steps needed.
FORMAT_VERSION = 2
GRAPH_NAMES = ("encoder", "count_embed", "classifier", "span_scorer")
DEFAULT_PRECISION = "fp32"
#: gliner2's marker tokens (SchemaTransformer.SPECIAL_TOKENS), in its order.
MARKER_TOKENS = (
    "[SEP_STRUCT]",
    "[SEP_TEXT]",
    "[P]",
    "[C]",
    "[E]",
    "[R]",
    "[L]",
    "[EXAMPLE]",
    "[OUTPUT]",
    "[DESCRIPTION]",
)
TOKEN_POOLINGS = ("first", "mean", "max")


def resolve_inside(folder: Path, relative_name: str) -> Path:
    """`folder / relative_name`, refusing names that leave the folder (absolute, `..`, links out)."""
    if not isinstance(relative_name, str) or not relative_name or os.path.isabs(relative_name):
        raise GLiNER2LoadError(f"{METADATA_FILE} names the file {relative_name!r}, which is not a relative path inside {folder}.")
    candidate = (folder / relative_name).resolve()
    root = folder.resolve()
    if candidate != root and root not in candidate.parents:
        raise GLiNER2LoadError(f"{METADATA_FILE} names the file {relative_name!r}, which lies outside {folder}.")
    return candidate


@dataclass(frozen=True)
class GLiNER2OnnxBundle:
    """A validated exported folder.

    Attributes:
        folder: The folder.
        metadata: The parsed `gliner2_onnx.json`.
        precision: The variant in use (`"fp32"`, `"int8"`, `"fp16"`, ...).
        graph_files: Absolute path of each graph of that variant.
        tokenizer_file: Absolute path of tokenizer.json.
    """

    folder: Path
    metadata: Mapping[str, Any]
    precision: str
    graph_files: Mapping[str, Path]
    tokenizer_file: Path
    warnings: tuple = field(default=())

    @property
    def max_width(self) -> int:
        return int(self.metadata["max_width"])

    @property
    def max_count(self) -> int:
        return int(self.metadata["max_count"])

    @property
    def hidden_size(self) -> int:
        return int(self.metadata["hidden_size"])

    @property
    def token_pooling(self) -> str:
        return str(self.metadata["token_pooling"])

    @property
    def special_token_ids(self) -> Mapping[str, int]:
        return self.metadata["special_token_ids"]

    @property
    def precisions(self) -> tuple:
        return tuple(self.metadata["variants"])

    @classmethod
    def load(cls, folder: os.PathLike | str, precision: Optional[str] = None) -> "GLiNER2OnnxBundle":
        """Read and check an exported folder.

        Args:
            folder: The exported folder.
            precision: Which variant to use; defaults to `"fp32"`.

        Raises:
            GLiNER2LoadError: If the folder is incomplete, inconsistent or tampered with.
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise GLiNER2LoadError(f"{folder} is not a directory.")
        metadata_path = folder / METADATA_FILE
        if not metadata_path.is_file():
            raise GLiNER2LoadError(
                f"{folder} has no {METADATA_FILE}: it is not a complete optimum-gliner2 export "
                "(an export that was interrupted or failed validation never writes it). Export again with "
                "`optimum-cli export onnx --model <checkpoint> <folder>`."
            )
        try:
            metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise GLiNER2LoadError(f"{metadata_path} is not valid JSON: {error}") from error
        _check_metadata_fields(metadata, metadata_path)

        precision = precision or DEFAULT_PRECISION
        variants = metadata["variants"]
        if precision not in variants:
            raise GLiNER2LoadError(f"{folder} has no {precision!r} variant; it has {sorted(variants)}.")
        graph_files = {}
        for graph in GRAPH_NAMES:
            name = variants[precision].get(graph)
            if name is None:
                raise GLiNER2LoadError(f"The {precision!r} variant in {metadata_path} lists no {graph!r} graph.")
            graph_files[graph] = _checked_file(folder, name, metadata)
        tokenizer_file = _checked_file(folder, metadata.get("tokenizer_file", "tokenizer.json"), metadata)
        return cls(folder, metadata, precision, graph_files, tokenizer_file)


def _check_metadata_fields(metadata: Any, path: Path) -> None:
    if not isinstance(metadata, dict):
        raise GLiNER2LoadError(f"{path} does not hold a JSON object.")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise GLiNER2LoadError(
            f"{path} has format_version {metadata.get('format_version')!r}; this optimum-gliner2 reads "
            f"{FORMAT_VERSION}. Export the checkpoint again with `optimum-cli export onnx`."
        )
    if metadata.get("architecture") != "span":
        raise GLiNER2LoadError(f"{path} describes a {metadata.get('architecture')!r} model; only 'span' is supported.")
    for key in ("max_width", "max_count", "hidden_size"):
        value = metadata.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise GLiNER2LoadError(f"{path}: {key} must be a positive integer, got {value!r}.")
    if metadata.get("token_pooling") not in TOKEN_POOLINGS:
        raise GLiNER2LoadError(f"{path}: token_pooling must be one of {TOKEN_POOLINGS}, got {metadata.get('token_pooling')!r}.")
    special = metadata.get("special_token_ids")
    if not isinstance(special, dict) or set(special) != set(MARKER_TOKENS):
        raise GLiNER2LoadError(f"{path}: special_token_ids must map exactly gliner2's marker tokens {MARKER_TOKENS}.")
    if not isinstance(metadata.get("variants"), dict) or not isinstance(metadata.get("files"), dict):
        raise GLiNER2LoadError(f"{path}: 'variants' and 'files' must be JSON objects.")


def _checked_file(folder: Path, name: str, metadata: Mapping[str, Any]) -> Path:
    path = resolve_inside(folder, name)
    if not path.is_file():
        raise GLiNER2LoadError(f"{folder} lacks {name}, which {METADATA_FILE} lists.")
    record = metadata["files"].get(name)
    if not isinstance(record, dict) or "size" not in record:
        raise GLiNER2LoadError(f"{METADATA_FILE} has no size record for {name}.")
    expected_sizes = {name: record["size"], **record.get("external_data", {})}
    for file_name, size in expected_sizes.items():
        actual_path = resolve_inside(folder, file_name)
        actual = actual_path.stat().st_size if actual_path.is_file() else None
        if actual != size:
            raise GLiNER2LoadError(
                f"{file_name} in {folder} is {actual if actual is not None else 'missing'} bytes; the export wrote {size}. "
                "The file is truncated, replaced or corrupt: export again."
            )
    return path


def file_record(folder: Path, name: str) -> Dict[str, Any]:
    """The size record the metadata keeps for a file (and the external-data files next to an ONNX graph)."""
    record: Dict[str, Any] = {"size": (folder / name).stat().st_size}
    external = sorted(p.name for p in folder.glob(f"{Path(name).name}_data*"))
    if external:
        record["external_data"] = {p: (folder / p).stat().st_size for p in external}
    return record
