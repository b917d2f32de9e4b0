"""The exported folder ("bundle"): its layout, and how it is read, checked and written.

A bundle is a folder with the ONNX graphs, tokenizer.json, config.json and `gliner2_onnx.json`, the
metadata. This module is the one owner of that format; the exporter, the runtime and the variant
tools all go through it. It imports neither torch nor onnxruntime.

Crash safety rests on one rule: the metadata is written last and atomically, and it vouches for the
size of every file it names. A folder without metadata is an interrupted or failed export; a file
replaced or truncated after the fact no longer matches its recorded size. Loading trusts nothing
in the folder: file names must stay inside it, sizes must match, and the metadata must be complete.
No pickle and no remote code are involved anywhere.

Metadata (format 2), as JSON:

    format_version, architecture ("span" or "boundary")
    graphs                  graph_names(architecture, has_record_head): ARCHITECTURE_GRAPHS[architecture],
                            plus record_head for a GLiNER2.5 checkpoint with a record head
    variants                {precision: {graph: file}}; "fp32" is the export itself
    default_precision       (optional) the variant loaded by default, where it is not "fp32": a folder that
                            `optimum-cli onnxruntime optimize/quantize` wrote holds only its own graphs
    graph_optimization      (optional) the ORTOptimizer settings of `optimum-cli export onnx --optimize`
    variant_recipes         {precision: how the variant was made} (not for "fp32")
    files                   {file: {"size": bytes, "external_data": {file: bytes}}}
    tokenizer_file
    hidden_size, token_pooling, encoder_model_type
    span models:            max_width, max_count, counting_layer
    boundary models:        boundary_head {BOUNDARY_HEAD_KEYS: the head settings decoding reads}
    pad_token_id, special_token_ids {marker token: id}
    opset, exporter_versions, validation (the export's comparison with PyTorch)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence

from optimum_gliner2.errors import GLiNER2LoadError

METADATA_FILE = "gliner2_onnx.json"
#: 2: count_embed takes max_instances and returns only the steps needed.
FORMAT_VERSION = 2
#: The graphs of each architecture. Span models (gliner2-*-v1) score every span up to max_width per
#: field query; boundary models (GLiNER2.5) score a shared pool of candidate spans, built in-graph.
ARCHITECTURE_GRAPHS = {
    "span": ("encoder", "count_embed", "classifier", "span_scorer"),
    "boundary": ("encoder", "boundary_head", "classifier", "relation_scorer", "explicit_spans"),
}
#: Graphs an export has only where the checkpoint has the module: GLiNER2.5's record head.
OPTIONAL_GRAPHS = {"boundary": ("record_head",)}
SPAN, BOUNDARY = "span", "boundary"


def graph_names(architecture: str, has_record_head: bool = False) -> tuple:
    """The graphs of an export of `architecture`, in load order: ARCHITECTURE_GRAPHS, plus record_head
    for a boundary checkpoint with a record head."""
    optional = OPTIONAL_GRAPHS.get(architecture, ()) if has_record_head else ()
    return (*ARCHITECTURE_GRAPHS.get(architecture, ()), *optional)

#: Boundary-head settings that decoding on the host reads (gliner2's BoundaryHeadSettings names).
#: min_words: texts shorter than this are padded on the host (exact; see the exporter's patches).
BOUNDARY_HEAD_KEYS = (
    "pair_temperature",
    "classification_temperature",
    "abstention_threshold",
    "overlap_policy",
    "adaptive_threshold",
    "pool_size",
    "min_words",
    "relation_temperature",
    "relation_heads_per_type",
    "relation_tails_per_type",
    "relation_pair_cap",
    "relation_argument_proposal_threshold",
    "enable_records",
    "record_temperature",
)
#: Keys a bundle exported before record decoding lacks (record decoding then refuses to run).
OPTIONAL_BOUNDARY_HEAD_KEYS = ("record_temperature",)
DEFAULT_PRECISION = "fp32"
TOKENIZER_FILE = "tokenizer.json"
#: Files of an export besides its graphs and the metadata, where present: what saving or downloading a model
#: carries along (gliner2's config and the tokenizer in Hugging Face's file names).
SIDE_FILES = (
    "config.json",
    TOKENIZER_FILE,
    "tokenizer_config.json",
    "special_tokens_map.json",
    "spm.model",
    "added_tokens.json",
)
#: gliner2's prompt marker tokens, in the order of its SchemaTransformer.SPECIAL_TOKENS. An export
#: records the id of each, and the runtime's prompts are built from these names.
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
#: How a word's embedding pools its subword states (gliner2's `token_pooling`).
TOKEN_POOLINGS = ("first", "mean", "max")
_RECIPES = "variant_recipes"


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def resolve_inside(folder: Path, relative_name: str) -> Path:
    """`folder / relative_name`, refusing names that leave the folder (absolute, `..`, links out).

    Raises:
        GLiNER2LoadError: If the name is not a relative path inside `folder`.
    """
    if not isinstance(relative_name, str) or not relative_name or os.path.isabs(relative_name):
        raise GLiNER2LoadError(
            f"{METADATA_FILE} names the file {relative_name!r}, which is not a relative path inside {folder}."
        )
    candidate = (folder / relative_name).resolve()
    root = folder.resolve()
    if candidate != root and root not in candidate.parents:
        raise GLiNER2LoadError(f"{METADATA_FILE} names the file {relative_name!r}, which lies outside {folder}.")
    return candidate


def external_data_files(folder: Path, graph_file: str) -> list:
    """The external-data files an ONNX graph of `folder` keeps its large tensors in."""
    stem = Path(graph_file).name
    return sorted({*folder.glob(f"{stem}_data*"), *folder.glob(f"{stem}.data")})


def file_record(folder: Path, name: str) -> Dict[str, Any]:
    """The record the metadata keeps for a file: its size, and those of a graph's external data."""
    record: Dict[str, Any] = {"size": (folder / name).stat().st_size}
    external = external_data_files(folder, name)
    if external:
        record["external_data"] = {path.name: path.stat().st_size for path in external}
    return record


def remove_graph_files(folder: Path, names: Iterable[str]) -> None:
    """Delete graphs with their external data (a failed or replaced export must not load)."""
    for name in names:
        for path in [folder / name, *external_data_files(folder, name)]:
            path.unlink(missing_ok=True)


def write_json_atomically(path: Path, content: Mapping[str, Any]) -> None:
    """Write `content` to `path` so that readers see the old file or the whole new one, never a part."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(descriptor, 0o644)  # mkstemp's 0600 would hide the metadata from other users
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(content, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------
# Metadata: building, editing, reading
# ---------------------------------------------------------------------------------------------


def new_metadata(
    folder: Path,
    graph_files: Mapping[str, str],
    *,
    architecture: str = SPAN,
    hidden_size: int,
    token_pooling: str,
    encoder_model_type: str,
    pad_token_id: int,
    special_token_ids: Mapping[str, int],
    opset: int,
    exporter_versions: Mapping[str, str],
    validation: Sequence[Mapping[str, Any]],
    max_width: Optional[int] = None,
    max_count: Optional[int] = None,
    counting_layer: Optional[str] = None,
    boundary_head: Optional[Mapping[str, Any]] = None,
    graph_optimization: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """The metadata of a finished export in `folder`, whose graphs and tokenizer are written.

    Span models give `max_width`, `max_count` and `counting_layer`; boundary models give
    `boundary_head` with every key of BOUNDARY_HEAD_KEYS. `graph_optimization` records the ORTOptimizer
    settings of an export made with `--optimize`.

    Raises:
        GLiNER2LoadError: If a value breaks the format (checked as a reader would check it).
    """
    graphs = graph_names(architecture, "record_head" in graph_files)
    metadata: Dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "architecture": architecture,
        "graphs": list(graphs),
        "variants": {DEFAULT_PRECISION: {graph: graph_files[graph] for graph in graphs}},
        "files": {name: file_record(folder, name) for name in [*graph_files.values(), TOKENIZER_FILE]},
        "tokenizer_file": TOKENIZER_FILE,
        "hidden_size": int(hidden_size),
        "token_pooling": token_pooling,
        "encoder_model_type": encoder_model_type,
        "pad_token_id": int(pad_token_id),
        "special_token_ids": {token: int(special_token_ids[token]) for token in MARKER_TOKENS},
        "opset": int(opset),
        "exporter_versions": dict(exporter_versions),
        "validation": list(validation),
    }
    if architecture == SPAN:
        metadata.update(max_width=max_width, max_count=max_count, counting_layer=counting_layer)
    elif boundary_head is not None:
        metadata["boundary_head"] = {key: boundary_head[key] for key in BOUNDARY_HEAD_KEYS if key in boundary_head}
    if graph_optimization:
        metadata["graph_optimization"] = dict(graph_optimization)
    _check_metadata(metadata, folder / METADATA_FILE)
    return metadata


def read_metadata(folder: os.PathLike | str) -> Dict[str, Any]:
    """The checked metadata of an exported folder.

    Raises:
        GLiNER2LoadError: If the folder is no complete export, or its metadata breaks the format.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise GLiNER2LoadError(f"{folder} is not a directory.")
    path = folder / METADATA_FILE
    if not path.is_file():
        raise GLiNER2LoadError(
            f"{folder} has no {METADATA_FILE}: it is not a complete optimum-gliner2 export "
            "(an export that was interrupted or failed validation never writes it). Export again with "
            "`optimum-cli export onnx --model <checkpoint> <folder>`."
        )
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise GLiNER2LoadError(f"{path} is not valid JSON: {error}") from error
    _check_metadata(metadata, path)
    return metadata


def write_metadata(folder: Path, metadata: Mapping[str, Any]) -> None:
    """Write the metadata of `folder` atomically, dropping records of files no variant names."""
    referenced = {metadata.get("tokenizer_file", TOKENIZER_FILE)}
    for graphs in metadata["variants"].values():
        referenced.update(graphs.values())
    metadata = {**metadata, "files": {name: record for name, record in metadata["files"].items() if name in referenced}}
    _check_metadata(metadata, folder / METADATA_FILE)
    write_json_atomically(folder / METADATA_FILE, metadata)


def exported_graph_files(metadata: Mapping[str, Any]) -> Mapping[str, str]:
    """{graph: file} of the export itself (the "fp32" variant), which every derived variant starts from.

    Raises:
        GLiNER2LoadError: If the folder holds no FP32 graphs (the output of `optimum-cli onnxruntime
            optimize/quantize`, which holds only the graphs that command made).
    """
    graphs = metadata["variants"].get(DEFAULT_PRECISION)
    if graphs is None:
        raise GLiNER2LoadError(
            f"This folder holds only the {sorted(metadata['variants'])} graphs that an Optimum command made from "
            f"an export, not the exported FP32 graphs: make variants from the original export folder instead."
        )
    return graphs


def default_precision(metadata: Mapping[str, Any]) -> str:
    """The variant a load without `precision` runs."""
    return metadata.get("default_precision", DEFAULT_PRECISION)


def with_variant(
    metadata: Mapping[str, Any], folder: Path, precision: str, new_graphs: Mapping[str, str], recipe: Mapping[str, Any]
) -> Dict[str, Any]:
    """`metadata` with the variant `precision` registered: `new_graphs` ({graph: file}, already in
    `folder`) and the FP32 files for the other graphs, with `recipe` saying how it was made."""
    if precision == DEFAULT_PRECISION:
        raise ValueError(f"{DEFAULT_PRECISION!r} is the exported model itself; choose another variant name.")
    unknown = set(new_graphs) - set(metadata["graphs"])
    if unknown:
        raise ValueError(f"Unknown graph names {sorted(unknown)}; this export has {metadata['graphs']}.")
    graph_files = {**exported_graph_files(metadata), **new_graphs}
    files = {**metadata["files"], **{name: file_record(folder, name) for name in new_graphs.values()}}
    return {
        **metadata,
        "variants": {**metadata["variants"], precision: graph_files},
        _RECIPES: {**metadata.get(_RECIPES, {}), precision: dict(recipe)},
        "files": files,
    }


def without_variant(metadata: Mapping[str, Any], precision: str) -> Dict[str, Any]:
    """`metadata` with the variant `precision` unregistered (its files are no longer vouched for)."""
    variants = {name: graphs for name, graphs in metadata["variants"].items() if name != precision}
    recipes = {name: recipe for name, recipe in metadata.get(_RECIPES, {}).items() if name != precision}
    return {**metadata, "variants": variants, _RECIPES: recipes}


def _check_metadata(metadata: Any, path: Path) -> None:
    if not isinstance(metadata, dict):
        raise GLiNER2LoadError(f"{path} does not hold a JSON object.")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise GLiNER2LoadError(
            f"{path} has format_version {metadata.get('format_version')!r}; this optimum-gliner2 reads "
            f"{FORMAT_VERSION}. Export the checkpoint again with `optimum-cli export onnx`."
        )
    architecture = metadata.get("architecture")
    if architecture not in ARCHITECTURE_GRAPHS:
        raise GLiNER2LoadError(
            f"{path} describes a {architecture!r} model; this optimum-gliner2 reads {sorted(ARCHITECTURE_GRAPHS)}."
        )
    allowed = [list(graph_names(architecture, has_record_head)) for has_record_head in (False, True)]
    if metadata.get("graphs") not in allowed:
        raise GLiNER2LoadError(
            f"{path}: a {architecture!r} export has the graphs {allowed[0]}"
            + (f" or {allowed[1]}" if allowed[1] != allowed[0] else "")
            + f", not {metadata.get('graphs')!r}. Export the checkpoint again with `optimum-cli export onnx`."
        )
    for key in ("max_width", "max_count", "hidden_size") if architecture == SPAN else ("hidden_size",):
        _check_positive_int(metadata.get(key), f"{path}: {key}")
    if architecture == BOUNDARY:
        _check_boundary_head(metadata.get("boundary_head"), path)
    if metadata.get("token_pooling") not in TOKEN_POOLINGS:
        raise GLiNER2LoadError(
            f"{path}: token_pooling must be one of {TOKEN_POOLINGS}, got {metadata.get('token_pooling')!r}."
        )
    special = metadata.get("special_token_ids")
    if not isinstance(special, dict) or set(special) != set(MARKER_TOKENS):
        raise GLiNER2LoadError(f"{path}: special_token_ids must map exactly gliner2's marker tokens {MARKER_TOKENS}.")
    variants, files = metadata.get("variants"), metadata.get("files")
    if not isinstance(variants, dict) or not isinstance(files, dict):
        raise GLiNER2LoadError(f"{path}: 'variants' and 'files' must be JSON objects.")
    if not all(isinstance(graphs, dict) for graphs in variants.values()):
        raise GLiNER2LoadError(f"{path}: every variant must map graph names to files.")
    if default_precision(metadata) not in variants:
        raise GLiNER2LoadError(f"{path}: default_precision {default_precision(metadata)!r} is not one of its variants.")


def _check_positive_int(value: Any, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise GLiNER2LoadError(f"{what} must be a positive integer, got {value!r}.")


def _check_boundary_head(head: Any, path: Path) -> None:
    if not isinstance(head, dict) or not set(BOUNDARY_HEAD_KEYS) - set(OPTIONAL_BOUNDARY_HEAD_KEYS) <= set(head) <= set(BOUNDARY_HEAD_KEYS):
        raise GLiNER2LoadError(f"{path}: boundary_head must hold exactly {BOUNDARY_HEAD_KEYS}, got {head!r}.")
    for key in ("pair_temperature", "classification_temperature", "abstention_threshold", "relation_temperature",
                "relation_argument_proposal_threshold"):  # fmt: skip
        value = head[key]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value == value:
            raise GLiNER2LoadError(f"{path}: boundary_head.{key} must be a number, got {value!r}.")
    if "record_temperature" in head:
        value = head["record_temperature"]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
            raise GLiNER2LoadError(f"{path}: boundary_head.record_temperature must be a positive number, got {value!r}.")
    for key in ("pair_temperature", "classification_temperature", "relation_temperature"):
        if head[key] <= 0:
            raise GLiNER2LoadError(f"{path}: boundary_head.{key} must be positive, got {head[key]!r}.")
    for key in ("adaptive_threshold", "enable_records"):
        if not isinstance(head[key], bool):
            raise GLiNER2LoadError(f"{path}: boundary_head.{key} must be true or false.")
    if not isinstance(head["overlap_policy"], str):
        raise GLiNER2LoadError(f"{path}: boundary_head.overlap_policy must be a string.")
    for key in ("pool_size", "min_words", "relation_heads_per_type", "relation_tails_per_type", "relation_pair_cap"):
        _check_positive_int(head[key], f"{path}: boundary_head.{key}")


# ---------------------------------------------------------------------------------------------
# A loadable bundle
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GLiNER2OnnxBundle:
    """A checked exported folder and the variant chosen from it.

    Attributes:
        folder: The folder.
        metadata: The parsed and checked `gliner2_onnx.json`.
        precision: The variant in use (`"fp32"`, `"int8"`, `"fp16"`, ...).
        graph_files: Absolute path of each graph of that variant, checked against its recorded size.
        tokenizer_file: Absolute path of tokenizer.json, checked against its recorded size.
    """

    folder: Path
    metadata: Mapping[str, Any]
    precision: str
    graph_files: Mapping[str, Path]
    tokenizer_file: Path

    @property
    def architecture(self) -> str:
        """"span" (gliner2-*-v1) or "boundary" (GLiNER2.5)."""
        return str(self.metadata["architecture"])

    @property
    def graph_names(self) -> tuple:
        """The graphs of this bundle, in the order the runtime loads them."""
        return tuple(self.metadata["graphs"])

    @property
    def max_width(self) -> Optional[int]:
        """Longest span, in words, the span scorer scores (span models only)."""
        value = self.metadata.get("max_width")
        return None if value is None else int(value)

    @property
    def max_count(self) -> Optional[int]:
        """Number of count classes (instances 0..max_count-1) of the count head (span models only)."""
        value = self.metadata.get("max_count")
        return None if value is None else int(value)

    @property
    def boundary_head(self) -> Mapping[str, Any]:
        """The boundary head's decoding settings (boundary models only; empty for span models)."""
        return self.metadata.get("boundary_head", {})

    @property
    def hidden_size(self) -> int:
        """Width of the encoder's hidden states."""
        return int(self.metadata["hidden_size"])

    @property
    def token_pooling(self) -> str:
        """How word embeddings pool their subwords ("first", "mean" or "max")."""
        return str(self.metadata["token_pooling"])

    @property
    def special_token_ids(self) -> Mapping[str, int]:
        """The id of each marker token at export time."""
        return self.metadata["special_token_ids"]

    @property
    def precisions(self) -> tuple:
        """Every variant the folder holds."""
        return tuple(self.metadata["variants"])

    @property
    def recipe(self) -> Mapping[str, Any]:
        """How the variant in use was made, as the variant tool recorded it (empty for the export itself)."""
        return self.metadata.get(_RECIPES, {}).get(self.precision, {})

    @classmethod
    def load(
        cls, folder: os.PathLike | str, precision: Optional[str] = None, file_name: Optional[str] = None
    ) -> "GLiNER2OnnxBundle":
        """Read and check an exported folder.

        Args:
            folder: The exported folder.
            precision: Which variant to use; defaults to the folder's `default_precision` (`"fp32"` for an
                export).
            file_name: A graph file to run, as Optimum's `file_name=`: a file of a registered variant
                selects that variant; a file that Optimum's ORTQuantizer or ORTOptimizer wrote into the
                folder (`<graph>_<suffix>.onnx`) is run in place of that graph, with every other graph
                that has a file of the same suffix (see `optimum_tool_graphs`).

        Raises:
            GLiNER2LoadError: If the folder is incomplete, inconsistent or tampered with, or `file_name`
                is neither a registered graph file nor a graph written by Optimum's tools.
        """
        folder = Path(folder)
        metadata = read_metadata(folder)
        if file_name is not None:
            registered = [name for name, graphs in metadata["variants"].items() if file_name in graphs.values()]
            if registered and precision in (None, *registered):
                precision = precision or registered[0]
            elif precision is not None:
                raise GLiNER2LoadError(
                    f"file_name={file_name!r} is not a graph of the {precision!r} variant in {folder}; pass one "
                    "of file_name or precision."
                )
            else:
                return cls._with_optimum_tool_graphs(folder, metadata, file_name)
        precision = precision or default_precision(metadata)
        variants = metadata["variants"]
        if precision not in variants:
            raise GLiNER2LoadError(f"{folder} has no {precision!r} variant; it has {sorted(variants)}.")
        graph_files = {}
        for graph in metadata["graphs"]:
            name = variants[precision].get(graph)
            if name is None:
                raise GLiNER2LoadError(f"The {precision!r} variant in {folder / METADATA_FILE} lists no {graph!r} graph.")
            graph_files[graph] = _checked_file(folder, name, metadata)
        tokenizer_file = _checked_file(folder, metadata.get("tokenizer_file", TOKENIZER_FILE), metadata)
        return cls(folder, metadata, precision, graph_files, tokenizer_file)

    @classmethod
    def _with_optimum_tool_graphs(cls, folder: Path, metadata: Mapping[str, Any], file_name: str) -> "GLiNER2OnnxBundle":
        suffix, graph_files = optimum_tool_graphs(folder, metadata, file_name)
        tokenizer_file = _checked_file(folder, metadata.get("tokenizer_file", TOKENIZER_FILE), metadata)
        recipe = {"tool": "Optimum (ORTQuantizer / ORTOptimizer output)", "files": {g: p.name for g, p in graph_files.items()}}
        described = {**metadata, _RECIPES: {**metadata.get(_RECIPES, {}), suffix: recipe}}
        return cls(folder, described, suffix, graph_files, tokenizer_file)


def variant_file_names(metadata: Mapping[str, Any], precision: str) -> list:
    """The files a variant's graphs are stored in (external data included), as the metadata records them.

    Raises:
        GLiNER2LoadError: If the metadata has no such variant.
    """
    graphs = metadata["variants"].get(precision)
    if graphs is None:
        raise GLiNER2LoadError(f"This export has no {precision!r} variant; it has {sorted(metadata['variants'])}.")
    names = []
    for name in graphs.values():
        names += [name, *metadata["files"].get(name, {}).get("external_data", {})]
    return names


def register_command_output(
    source: Path, output: Path, precision: str, suffix: str, recipe: Mapping[str, Any]
) -> Dict[str, Any]:
    """Make `output` loadable: the folder where an Optimum command wrote `<graph>_<suffix>.onnx` for each graph of
    the export `source` (`optimum-cli onnxruntime optimize` or `quantize`, which write no GLiNER2 metadata).

    `output` gets the export's metadata with one variant, `precision`, which it loads by default, and the
    export's own tokenizer.json (the command re-serialises the tokenizer, which need not match byte for byte).

    Raises:
        GLiNER2LoadError: If the command did not write a graph of every kind the export has.
    """
    metadata = read_metadata(source)
    graphs = {graph: f"{Path(name).stem}_{suffix}.onnx" for graph, name in exported_graph_files(metadata).items()}
    missing = sorted(name for name in graphs.values() if not (output / name).is_file())
    if missing:
        raise GLiNER2LoadError(f"{output} lacks {missing}: the command did not write every graph of {source}.")
    tokenizer_file = metadata.get("tokenizer_file", TOKENIZER_FILE)
    shutil.copyfile(source / tokenizer_file, output / tokenizer_file)
    described = {
        **metadata,
        "variants": {precision: graphs},
        "default_precision": precision,
        _RECIPES: {precision: dict(recipe)},
        "files": {name: file_record(output, name) for name in [*graphs.values(), tokenizer_file]},
    }
    write_metadata(output, described)
    return described


def optimum_tool_suffix(fp32_files: Mapping[str, str], file_name: str) -> Optional[str]:
    """The suffix Optimum's tools gave `file_name` (`encoder_quantized.onnx` -> "quantized"), or None when it
    is not `<FP32 graph stem>_<suffix>.onnx`."""
    stem = Path(file_name).stem
    graph_stems = [Path(name).stem for name in fp32_files.values() if stem.startswith(Path(name).stem + "_")]
    if not graph_stems:
        return None
    return stem[len(max(graph_stems, key=len)) + 1 :]  # the longest: "count_embed_x" is not graph "count"'s


def optimum_tool_graphs(folder: Path, metadata: Mapping[str, Any], file_name: str):
    """(suffix, {graph: path}) for a graph file that Optimum's ORTQuantizer or ORTOptimizer wrote.

    Those tools name their output `<input stem>_<suffix>.onnx` ("quantized", "optimized" by default). The
    graph is the one whose FP32 file has that stem; each other graph runs its own `_<suffix>` file where
    the tool made one (e.g. `optimum-cli onnxruntime quantize` does every graph), and its FP32 file
    otherwise. Such files carry no recorded size: the user named them.

    Raises:
        GLiNER2LoadError: If `file_name` does not exist in `folder` or is not named after an FP32 graph.
    """
    fp32_files = exported_graph_files(metadata)
    path = resolve_inside(folder, file_name)
    suffix = optimum_tool_suffix(fp32_files, file_name)
    if not path.is_file() or suffix is None:
        made_by_tools = sorted(p.name for p in folder.glob("*_*.onnx") if p.name not in metadata["files"])
        raise GLiNER2LoadError(
            f"file_name={file_name!r} is neither a graph of a variant in {folder} ({sorted(metadata['variants'])}) nor "
            f"an existing <graph>_<suffix>.onnx written by Optimum's ORTQuantizer/ORTOptimizer (graphs: "
            f"{sorted(fp32_files)}; unregistered graph files there: {made_by_tools or 'none'})."
        )
    graph_files = {}
    for name, fp32_name in fp32_files.items():
        tool_output = path.parent / f"{Path(fp32_name).stem}_{suffix}.onnx"
        graph_files[name] = tool_output if tool_output.is_file() else _checked_file(folder, fp32_name, metadata)
    return suffix, graph_files


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


# ---------------------------------------------------------------------------------------------
# Publishing a finished folder
# ---------------------------------------------------------------------------------------------


def publish(staging: Path, output_dir: Path) -> None:
    """Move a finished export from `staging` into `output_dir`, replacing a previous export there.

    The previous metadata goes first and the new metadata comes last, so at every instant the folder
    loads as the old export, as the new one, or not at all. Other files in `output_dir` are kept.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    previous = output_dir / METADATA_FILE
    if previous.is_file():
        try:
            old_files = json.loads(previous.read_text(encoding="utf-8")).get("files", {})
        except (OSError, ValueError):
            old_files = {}
        previous.unlink()
        remove_graph_files(output_dir, [name for name in old_files if name.endswith(".onnx")])
    for path in sorted(staging.iterdir()):
        if path.name != METADATA_FILE:
            os.replace(path, output_dir / path.name)
    os.replace(staging / METADATA_FILE, output_dir / METADATA_FILE)
    staging.rmdir()
