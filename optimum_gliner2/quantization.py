"""INT8, FP16 and graph-optimized variants of an exported GLiNER2 folder, side by side with FP32.

Each function adds one variant to a folder written by `optimum-cli export onnx` and registers it in
`gliner2_onnx.json`, so `ORTModelForGLiNER2.from_pretrained(folder, precision="int8")` (or
`GLiNER2ONNXRuntime`) can pick it. Only the encoder changes by default: the span, count and
classifier heads are small and the variants share the FP32 head files.

Crash safety: a variant's graphs are written to a staging folder inside the export and moved into
place before the metadata names them, and the metadata is replaced atomically. A run that is
interrupted leaves the folder loadable, without the new variant. Re-making an existing variant first
unregisters it, so the metadata never vouches for a file being rewritten.

| variant | made by | what changes |
|---|---|---|
| `int8` | Optimum `ORTQuantizer`, dynamic | encoder Linear weights INT8 per channel, embedding table per `embeddings` |
| `fp16` | onnxconverter-common, `keep_io_types=True` | encoder Linear weights and embedding table FP16, the rest FP32 |
| `o1` `o2` `o3` | Optimum `ORTOptimizer` | encoder graph fused at that level (deberta-v2 and BERT use ORT's "bert" fusions) |

Why not `optimum-cli onnxruntime quantize --avx2`: it quantizes all four graphs with one
configuration, including the embedding Gather with a single scale for the whole table (the
special-token rows drift), and activation x activation attention MatMuls; it writes
`*_quantized.onnx` without `gliner2_onnx.json`, so the output folder is not a loadable GLiNER2
export. See docs/precision.md for the measurements.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from optimum_gliner2.exporters.validation import write_json_atomically
from optimum_gliner2.runtime.bundle import DEFAULT_PRECISION, GRAPH_NAMES, METADATA_FILE, GLiNER2OnnxBundle, file_record

logger = logging.getLogger(__name__)

#: How the encoder's word-embedding table is stored in an INT8 variant.
#: - "fp32": untouched (largest; the table is ~69% of an mDeBERTa encoder).
#: - "fp16": FP16 table, Gather then Cast to FP32.
#: - "int8_per_row": INT8 with one scale per row (token), ORT's GatherBlockQuantized.
#: - "int8_per_table": INT8 with one scale for the whole table (ORT's default for Gather).
EMBEDDING_STORAGES = ("fp32", "fp16", "int8_per_row", "int8_per_table")
#: Chosen by measurement (docs/precision.md): the per-row table keeps special-token cosine >= 0.9999 and
#: the same decoded outputs as an FP32 table, at about a quarter of the table's FP32 size.
DEFAULT_EMBEDDINGS = "int8_per_row"
#: Optimum's AutoQuantizationConfig presets usable for dynamic quantization.
QUANTIZATION_TARGETS = ("avx2", "avx512", "avx512_vnni", "arm64")
OPTIMIZATION_LEVELS = ("O1", "O2", "O3")
RECIPES_KEY = "variant_recipes"  # metadata: how each non-FP32 variant was made


# --------------------------------------------------------------------------------------------
# The variant transaction: stage, move into place, register.
# --------------------------------------------------------------------------------------------


def _prepare_folder(folder: os.PathLike | str, output_dir: Optional[os.PathLike | str]) -> Path:
    """The folder to modify: `folder` itself, or a fresh copy at `output_dir`; checked loadable."""
    folder = Path(folder)
    GLiNER2OnnxBundle.load(folder)  # refuses incomplete or tampered exports before anything is written
    if output_dir is None:
        return folder
    output_dir = Path(output_dir)
    if output_dir.exists() and any(output_dir.iterdir()):
        raise FileExistsError(f"{output_dir} exists and is not empty; pass a new folder to copy the export into.")
    shutil.copytree(folder, output_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".staging-*"))
    return output_dir


def _read_metadata(folder: Path) -> Dict[str, Any]:
    return json.loads((folder / METADATA_FILE).read_text(encoding="utf-8"))


def _drop_unreferenced_file_records(metadata: Dict[str, Any]) -> None:
    referenced = {metadata.get("tokenizer_file", "tokenizer.json")}
    for graphs in metadata["variants"].values():
        referenced.update(graphs.values())
    metadata["files"] = {name: record for name, record in metadata["files"].items() if name in referenced}


class _VariantStaging:
    """A staging folder inside the export: tools write there, `install` moves the results into place.

    Staging inside the export keeps the final moves on one file system, where `os.replace` is atomic.
    """

    def __init__(self, folder: Path, variant: str):
        if variant == DEFAULT_PRECISION:
            raise ValueError(f"{DEFAULT_PRECISION!r} is the exported model itself; choose another variant name.")
        self.folder = folder
        self.variant = variant
        self.path = Path(tempfile.mkdtemp(prefix=f".staging-{variant}-", dir=folder))

    def __enter__(self) -> "_VariantStaging":
        return self

    def __exit__(self, *exc_info) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def file_name(self, graph: str) -> str:
        return f"{graph}_{self.variant}.onnx"

    def install(self, new_graphs: Iterable[str], recipe: Mapping[str, Any]) -> None:
        """Move the staged graphs of `new_graphs` into the folder and register the variant.

        Graphs not in `new_graphs` reuse the FP32 files.
        """
        metadata = _read_metadata(self.folder)
        if self.variant in metadata["variants"]:
            # Unregister first: the files about to be replaced must never be vouched for mid-rewrite.
            del metadata["variants"][self.variant]
            metadata.get(RECIPES_KEY, {}).pop(self.variant, None)
            _drop_unreferenced_file_records(metadata)
            write_json_atomically(self.folder / METADATA_FILE, metadata)

        graph_files = dict(metadata["variants"][DEFAULT_PRECISION])
        for graph in new_graphs:
            name = self.file_name(graph)
            for staged in [self.path / name, *self.path.glob(f"{name}_data*"), *self.path.glob(f"{name}.data")]:
                os.replace(staged, self.folder / staged.name)
            graph_files[graph] = name
            metadata["files"][name] = file_record(self.folder, name)
        metadata["variants"][self.variant] = graph_files
        metadata.setdefault(RECIPES_KEY, {})[self.variant] = dict(recipe)
        write_json_atomically(self.folder / METADATA_FILE, metadata)
        logger.info("Registered the %r variant in %s: %s", self.variant, self.folder, graph_files)


def _save_model(model: onnx.ModelProto, path: Path) -> None:
    """Save a graph, with external data next to it when it would exceed protobuf's 2 GB limit."""
    large = model.ByteSize() > 2_000_000_000
    onnx.save_model(model, str(path), save_as_external_data=large, location=f"{path.name}_data" if large else None)


def _encoder_path(folder: Path) -> Path:
    return folder / _read_metadata(folder)["variants"][DEFAULT_PRECISION]["encoder"]


def _head_paths(folder: Path) -> Dict[str, Path]:
    graphs = _read_metadata(folder)["variants"][DEFAULT_PRECISION]
    return {graph: folder / graphs[graph] for graph in GRAPH_NAMES if graph != "encoder"}


# --------------------------------------------------------------------------------------------
# Graph queries shared by the variants and the agreement report.
# --------------------------------------------------------------------------------------------


def load_without_identities(path: Path) -> onnx.ModelProto:
    """The graph at `path` with its Identity nodes removed (readers rewired to the Identity's input).

    The exporter reads a weight used by two Linear layers through an Identity: DeBERTa applies its
    query/key projections to the relative-position embeddings too. ORT's quantizer quantizes only
    MatMuls that read an initializer directly, and would keep an FP32 copy of each shared weight next to
    the INT8 one (57 MB on mDeBERTa-base); the FP16 converter would mistype the alias.
    """
    from onnxruntime.transformers.fusion_utils import FusionUtils
    from onnxruntime.transformers.onnx_model import OnnxModel

    wrapped = OnnxModel(onnx.load(str(path)))
    FusionUtils(wrapped).remove_identity_nodes()
    return wrapped.model


def weight_matmul_nodes(model: onnx.ModelProto) -> List[str]:
    """Names of the MatMul nodes that multiply activations by a stored weight matrix (the Linear layers).

    Attention's activation x activation MatMuls (scores, context) and products with a stored vector
    are not among them.
    """
    ranks = {initializer.name: len(initializer.dims) for initializer in model.graph.initializer}
    return [node.name for node in model.graph.node if node.op_type == "MatMul" and ranks.get(node.input[1]) == 2]


def word_embedding_gather(model: onnx.ModelProto) -> onnx.NodeProto:
    """The Gather that looks `input_ids` up in the word-embedding table."""
    initializers = {initializer.name for initializer in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Gather" and node.input[1] == "input_ids" and node.input[0] in initializers:
            return node
    raise ValueError("The encoder has no Gather of input_ids from a stored table; is this a GLiNER2 encoder?")


# --------------------------------------------------------------------------------------------
# INT8
# --------------------------------------------------------------------------------------------


def _store_embedding_table(model: onnx.ModelProto, storage: str) -> None:
    """Re-store the word-embedding table of `model` as `storage` ("fp16" or "int8_per_row"), in place.

    The lookup keeps its output name and FP32 type, so the rest of the graph is untouched. No library
    writes these two forms: ORT's weight-only quantizer makes GatherBlockQuantized only with 4 bits,
    and its dynamic quantizer only one scale per table.
    """
    gather = word_embedding_gather(model)
    graph = model.graph
    table_proto = next(init for init in graph.initializer if init.name == gather.input[0])
    table = numpy_helper.to_array(table_proto).astype(np.float32)
    graph.initializer.remove(table_proto)
    position = list(graph.node).index(gather)
    graph.node.remove(gather)
    output = gather.output[0]
    if storage == "fp16":
        table_name = f"{table_proto.name}_fp16"
        graph.initializer.append(numpy_helper.from_array(table.astype(np.float16), table_name))
        looked_up = f"{output}_fp16"
        nodes = [
            helper.make_node("Gather", [table_name, gather.input[1]], [looked_up], name=f"{gather.name}_fp16", axis=0),
            helper.make_node("Cast", [looked_up], [output], name=f"{gather.name}_to_fp32", to=TensorProto.FLOAT),
        ]
    elif storage == "int8_per_row":
        # Symmetric, one scale per row: uint8 with ORT's implicit zero point 128. A block at least as wide
        # as the row (block sizes are powers of two) makes a single block per row.
        vocab, hidden = table.shape
        block_size = max(16, 1 << (hidden - 1).bit_length())
        scales = np.abs(table).max(axis=1, keepdims=True) / 127.0
        scales[scales == 0] = 1.0
        quantized = (np.clip(np.round(table / scales), -127, 127) + 128).astype(np.uint8)
        data_name, scales_name = f"{table_proto.name}_int8_per_row", f"{table_proto.name}_row_scales"
        graph.initializer.extend(
            [numpy_helper.from_array(quantized, data_name), numpy_helper.from_array(scales.astype(np.float32), scales_name)]
        )
        nodes = [
            helper.make_node(
                "GatherBlockQuantized",
                [data_name, gather.input[1], scales_name],
                [output],
                name=f"{gather.name}_int8_per_row",
                domain="com.microsoft",
                bits=8,
                block_size=block_size,
                gather_axis=0,
                quantize_axis=1,
            )
        ]
        if not any(opset.domain == "com.microsoft" for opset in model.opset_import):
            model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    else:
        raise ValueError(f"_store_embedding_table handles 'fp16' and 'int8_per_row', not {storage!r}.")
    for offset, node in enumerate(nodes):
        graph.node.insert(position + offset, node)


def _quantization_config(target: str, per_channel: bool, nodes_to_quantize: List[str], operators: List[str]):
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    if target not in QUANTIZATION_TARGETS:
        raise ValueError(f"target must be one of {QUANTIZATION_TARGETS}, got {target!r}.")
    return getattr(AutoQuantizationConfig, target)(
        is_static=False, per_channel=per_channel, nodes_to_quantize=nodes_to_quantize, operators_to_quantize=operators
    )


def _quantize_graph(
    source: Path, staging: _VariantStaging, graph: str, *, target: str, per_channel: bool, with_table: bool
) -> None:
    """ORTQuantizer on one graph, restricted to its weight MatMuls (and, if asked, the embedding Gather).

    Optimum's dynamic configurations would otherwise also quantize activation x activation MatMuls
    (attention scores) and every Gather of a constant, which costs answers and buys no size.
    """
    from optimum.onnxruntime import ORTQuantizer

    model = load_without_identities(source)
    nodes, operators = weight_matmul_nodes(model), ["MatMul"]
    if with_table:
        nodes.append(word_embedding_gather(model).name)
        operators.append("Gather")
    prepared = staging.path / f"{graph}_fp32.onnx"
    _save_model(model, prepared)
    del model
    quantizer = ORTQuantizer.from_pretrained(staging.path, file_name=prepared.name)
    config = _quantization_config(target, per_channel, nodes, operators)
    # ORTQuantizer also writes ort_config.json (and config.json, tokenizer files where it finds them) into
    # the staging folder, where they are discarded.
    quantizer.quantize(quantization_config=config, save_dir=staging.path, file_suffix=staging.variant)
    os.replace(staging.path / f"{prepared.stem}_{staging.variant}.onnx", staging.path / staging.file_name(graph))
    prepared.unlink()


def quantize_gliner2(
    folder: os.PathLike | str,
    *,
    embeddings: str = DEFAULT_EMBEDDINGS,
    per_channel: bool = True,
    quantize_heads: bool = False,
    target: str = "avx2",
    variant: str = "int8",
    output_dir: Optional[os.PathLike | str] = None,
) -> Path:
    """Add an INT8 variant (dynamic quantization with Optimum's `ORTQuantizer`) to an exported folder.

    The encoder's Linear weights are quantized to INT8 (per output channel by default); activations
    are quantized on the fly. Attention's activation x activation MatMuls stay FP32.

    Args:
        folder: A folder written by `optimum-cli export onnx`.
        embeddings: How the word-embedding table is stored, one of `EMBEDDING_STORAGES`. The default,
            `"int8_per_row"`, keeps gliner2's marker-token rows ([P], [E], [R], ...) at cosine >= 0.9999;
            `"int8_per_table"` is ORT's default and is documented as lossy.
        per_channel: One weight scale per output channel instead of one per matrix.
        quantize_heads: Also quantize the span-scorer, count and classifier MatMuls. Off by default:
            the heads are ~8% of a full-size bundle and sit right before the thresholded scores.
        target: Optimum `AutoQuantizationConfig` preset: `"avx2"` (uint8 weights, right on every x86 CPU),
            `"avx512"`, `"avx512_vnni"` or `"arm64"` (int8 weights). Use the int8-weight presets only where the
            CPU has VNNI (or on ARM): on AVX2 without VNNI, ONNX Runtime's u8s8 kernel saturates (measured:
            14% relative error on the encoder output, against 2% with `"avx2"`).
        variant: Name under which the variant is registered (`precision=` at load time).
        output_dir: Write into a copy of `folder` at this new path instead of modifying `folder`.

    Returns:
        The folder that now holds the variant.

    Example:
        ```python
        >>> from optimum_gliner2 import ORTModelForGLiNER2
        >>> from optimum_gliner2.quantization import quantize_gliner2
        >>> quantize_gliner2("gliner2-onnx/")
        >>> model = ORTModelForGLiNER2.from_pretrained("gliner2-onnx/", precision="int8")
        ```
    """
    if embeddings not in EMBEDDING_STORAGES:
        raise ValueError(f"embeddings must be one of {EMBEDDING_STORAGES}, got {embeddings!r}.")
    folder = _prepare_folder(folder, output_dir)
    with _VariantStaging(folder, variant) as staging:
        _quantize_graph(
            _encoder_path(folder), staging, "encoder",
            target=target, per_channel=per_channel, with_table=embeddings == "int8_per_table",
        )  # fmt: skip
        if embeddings in ("fp16", "int8_per_row"):
            staged = staging.path / staging.file_name("encoder")
            model = onnx.load(str(staged))
            _store_embedding_table(model, embeddings)
            _save_model(model, staged)
        new_graphs = ["encoder"]
        if quantize_heads:
            for graph, path in _head_paths(folder).items():
                _quantize_graph(path, staging, graph, target=target, per_channel=per_channel, with_table=False)
                new_graphs.append(graph)
        recipe = {
            "tool": "optimum.onnxruntime.ORTQuantizer (dynamic)",
            "target": target,
            "weights": f"Linear MatMul weights int8, {'per channel' if per_channel else 'per tensor'}",
            "embeddings": embeddings,
            "heads": "int8" if quantize_heads else "fp32",
        }
        staging.install(new_graphs, recipe)
    return folder


# --------------------------------------------------------------------------------------------
# FP16
# --------------------------------------------------------------------------------------------


def fp16_node_names(model: onnx.ModelProto) -> set:
    """The nodes an FP16 encoder runs in FP16: the Linear layers and the embedding lookup, nothing else.

    FP16 goes where the weights and the FLOPs are: weight MatMuls, their bias Adds, the embedding
    Gather, and the constants only they read. Everything DeBERTa is known to
    overflow or lose precision in stays FP32: attention scores with their disentangled c2p/p2c terms
    and scaling, masks filled with float32's minimum (-inf in FP16, then NaN after Softmax), Softmax,
    LayerNorm, the log-bucketed relative positions (a rounding shift picks another bucket), residual
    sums and GELU.
    """
    graph = model.graph
    if any(not node.name for node in graph.node):
        raise ValueError("The encoder has unnamed nodes; the FP16 block list needs node names.")
    weights = {initializer.name for initializer in graph.initializer}
    in_fp16 = set(weight_matmul_nodes(model))
    linear_outputs = {node.output[0] for node in graph.node if node.name in in_fp16}
    for node in graph.node:
        if node.op_type == "Add" and len(node.input) == 2:
            left, right = node.input
            if (left in linear_outputs and right in weights) or (right in linear_outputs and left in weights):
                in_fp16.add(node.name)  # the Linear's bias
    in_fp16.add(word_embedding_gather(model).name)
    readers = _readers(graph)
    for node in graph.node:
        # A constant goes FP16 only when every reader is FP16 (an FP32 reader needs its float32 range).
        if node.op_type == "Constant" and all(reader.name in in_fp16 for reader in readers.get(node.output[0], ())):
            in_fp16.add(node.name)
    return in_fp16


def _readers(graph: onnx.GraphProto) -> Dict[str, List[onnx.NodeProto]]:
    readers: Dict[str, List[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    return readers


def _unshare_initializers(model: onnx.ModelProto, fp16_nodes: set) -> None:
    """Give FP32 readers their own copy of any initializer that FP16 readers also read, in place.

    onnxconverter-common keeps such an initializer FP32 and then feeds it, uncast, to the FP16
    readers: ONNX Runtime refuses the graph. The exporter shares identical tensors (DeBERTa's zero
    biases, LayerNorm's unit weights), so this happens in ordinary exports; the copies are small.
    """
    graph = model.graph
    readers = _readers(graph)
    for initializer in list(graph.initializer):
        nodes = readers.get(initializer.name, [])
        fp32_readers = [node for node in nodes if node.name not in fp16_nodes]
        if not fp32_readers or len(fp32_readers) == len(nodes):
            continue
        copy = onnx.TensorProto()
        copy.CopyFrom(initializer)
        copy.name = f"{initializer.name}_fp32"
        graph.initializer.append(copy)
        for node in fp32_readers:
            node.input[:] = [copy.name if name == initializer.name else name for name in node.input]


def _drop_fp16_round_trips(model: onnx.ModelProto) -> None:
    """Let FP32 nodes hand their outputs to FP32 nodes directly, in place.

    The converter casts every output of a blocked (FP32) node to FP16 and back before the next FP32
    node, so values still pass through FP16 between two FP32 ops: float32's minimum in the attention
    masks becomes -inf, and rows of -inf become NaN after Softmax. Pointing each FP16->FP32 Cast at
    the FP32 tensor its FP16 twin read turns it into a no-op (ONNX Runtime drops those); the twin,
    left unread, is removed.
    """
    graph = model.graph
    producers = {output: node for node in graph.node for output in node.output}
    inserted_fp16_casts = {
        node.name
        for node in graph.node
        if node.op_type == "Cast" and "_output_cast" in node.name and _cast_target(node) == TensorProto.FLOAT16
    }
    for node in graph.node:
        twin = producers.get(node.input[0]) if node.op_type == "Cast" else None
        if twin is not None and twin.name in inserted_fp16_casts and _cast_target(node) == TensorProto.FLOAT:
            node.input[0] = twin.input[0]
    still_read = {name for node in graph.node for name in node.input} | {output.name for output in graph.output}
    unread = [node for node in graph.node if node.name in inserted_fp16_casts and node.output[0] not in still_read]
    for node in unread:
        graph.node.remove(node)


def _cast_target(node: onnx.NodeProto) -> int:
    return next(attribute.i for attribute in node.attribute if attribute.name == "to")


def convert_gliner2_to_fp16(
    folder: os.PathLike | str,
    *,
    variant: str = "fp16",
    output_dir: Optional[os.PathLike | str] = None,
) -> Path:
    """Add an FP16 variant (for GPUs) made with onnxconverter-common's float16 converter.

    The encoder's Linear weights, their outputs and the embedding table become FP16; the graph keeps
    FP32 inputs and outputs (`keep_io_types=True`) and every op outside `fp16_node_names` in FP32,
    so long inputs produce no NaN or inf. The heads keep their FP32 files.

    Args:
        folder: A folder written by `optimum-cli export onnx`.
        variant: Name under which the variant is registered.
        output_dir: Write into a copy of `folder` at this new path instead of modifying `folder`.

    Returns:
        The folder that now holds the variant.
    """
    from onnxconverter_common.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    folder = _prepare_folder(folder, output_dir)
    with _VariantStaging(folder, variant) as staging:
        model = load_without_identities(_encoder_path(folder))
        fp16_nodes = fp16_node_names(model)
        _unshare_initializers(model, fp16_nodes)
        fp32_nodes = [node.name for node in model.graph.node if node.name not in fp16_nodes]
        model = convert_float_to_float16(
            model, keep_io_types=True, op_block_list=DEFAULT_OP_BLOCK_LIST, node_block_list=fp32_nodes
        )
        _drop_fp16_round_trips(model)
        _save_model(model, staging.path / staging.file_name("encoder"))
        del model
        recipe = {
            "tool": "onnxconverter_common.float16 (keep_io_types)",
            "weights": "Linear weights and embedding table fp16",
            "fp32_ops": "attention scores/scaling, masks, Softmax, LayerNorm, relative positions, residuals, GELU",
            "heads": "fp32",
        }
        staging.install(["encoder"], recipe)
    return folder


# --------------------------------------------------------------------------------------------
# Graph optimization
# --------------------------------------------------------------------------------------------


def _encoder_config(folder: Path):
    """A transformers config of the encoder family, enough for ORTOptimizer.

    The folder's config.json is gliner2's ExtractorConfig, which has neither num_attention_heads nor
    hidden_size. ORT's "bert" fusions read both from the graph when given 0, so only the family is needed.
    """
    from transformers import AutoConfig

    metadata = _read_metadata(folder)
    return AutoConfig.for_model(metadata["encoder_model_type"], hidden_size=0, num_attention_heads=0)


def optimize_gliner2(
    folder: os.PathLike | str,
    level: str = "O2",
    *,
    variant: Optional[str] = None,
    output_dir: Optional[os.PathLike | str] = None,
) -> Path:
    """Add a graph-optimized encoder variant made with Optimum's `ORTOptimizer`.

    Levels (Optimum's): `"O1"` basic ONNX Runtime rewrites; `"O2"` adds the transformer fusions
    (SkipLayerNorm, BiasGelu, attention where the pattern matches: BERT yes, DeBERTa's disentangled
    attention no); `"O3"` adds the GELU approximation, which changes numbers slightly.

    Args:
        folder: A folder written by `optimum-cli export onnx`.
        level: `"O1"`, `"O2"` or `"O3"`.
        variant: Name under which the variant is registered; defaults to the level in lower case (`"o2"`).
        output_dir: Write into a copy of `folder` at this new path instead of modifying `folder`.

    Returns:
        The folder that now holds the variant.
    """
    from optimum.onnxruntime import ORTOptimizer
    from optimum.onnxruntime.configuration import AutoOptimizationConfig

    if level not in OPTIMIZATION_LEVELS:
        raise ValueError(f"level must be one of {OPTIMIZATION_LEVELS}, got {level!r}.")
    folder = _prepare_folder(folder, output_dir)
    variant = variant or level.lower()
    with _VariantStaging(folder, variant) as staging:
        encoder = _encoder_path(folder)
        optimizer = ORTOptimizer([encoder], config=_encoder_config(folder))
        # Without ORT's symbolic shape inference: on a full-size encoder it peaks above 16 GB (4 GB without),
        # and the "bert" fusions GLiNER2 encoders get are the same (checked on DeBERTa-v2 and BERT).
        config = getattr(AutoOptimizationConfig, level)(disable_shape_inference=True)
        optimizer.optimize(config, save_dir=staging.path, file_suffix=staging.variant)
        produced = staging.path / f"{encoder.stem}_{variant}.onnx"
        if produced.name != staging.file_name("encoder"):
            os.replace(produced, staging.path / staging.file_name("encoder"))
        fused = ORTOptimizer.get_fused_operators(staging.path / staging.file_name("encoder"))
        staging.install(["encoder"], {"tool": "optimum.onnxruntime.ORTOptimizer", "level": level, "fused": fused})
    return folder


# --------------------------------------------------------------------------------------------
# Graphs made elsewhere
# --------------------------------------------------------------------------------------------

#: What `optimum-cli onnxruntime quantize --onnx_model OUT -o OUT_Q ...` names each graph in OUT_Q.
OPTIMUM_CLI_QUANTIZED_NAMES = {graph: f"{graph}_quantized.onnx" for graph in GRAPH_NAMES}


def import_variant(
    folder: os.PathLike | str,
    variant: str,
    graph_files: Mapping[str, os.PathLike | str],
    recipe: Optional[Mapping[str, Any]] = None,
) -> Path:
    """Register ONNX graphs made by another tool as a variant of an export, in place.

    Makes e.g. the output of `optimum-cli onnxruntime quantize --onnx_model OUT -o OUT_Q --avx2`
    loadable with `precision=variant` (that command writes no `gliner2_onnx.json`, so OUT_Q alone is
    not a GLiNER2 export). Graphs not in `graph_files` reuse the FP32 files.

    Args:
        folder: A folder written by `optimum-cli export onnx`.
        variant: Name under which the variant is registered.
        graph_files: Graph name (`"encoder"`, `"count_embed"`, `"classifier"`, `"span_scorer"`) -> ONNX file
            (without external data).
        recipe: How the graphs were made, stored in the metadata for the record.

    Returns:
        The folder.
    """
    folder = _prepare_folder(folder, None)
    unknown = set(graph_files) - set(GRAPH_NAMES)
    if unknown:
        raise ValueError(f"Unknown graph names {sorted(unknown)}; GLiNER2 exports have {GRAPH_NAMES}.")
    with _VariantStaging(folder, variant) as staging:
        for graph, path in graph_files.items():
            shutil.copyfile(path, staging.path / staging.file_name(graph))
        sources = {graph: str(path) for graph, path in graph_files.items()}
        staging.install(list(graph_files), {"tool": "imported", "sources": sources, **(recipe or {})})
    return folder


# --------------------------------------------------------------------------------------------
# Everything in one go
# --------------------------------------------------------------------------------------------


def add_variants(
    folder: os.PathLike | str,
    *,
    int8: bool = True,
    fp16: bool = True,
    optimize: Optional[str] = None,
    embeddings: str = DEFAULT_EMBEDDINGS,
) -> Path:
    """Add the INT8, FP16 and/or optimized variants to an exported folder, in place.

    Args:
        folder: A folder written by `optimum-cli export onnx`.
        int8: Add the `"int8"` variant (`quantize_gliner2`).
        fp16: Add the `"fp16"` variant (`convert_gliner2_to_fp16`).
        optimize: Also add an optimized variant at this level (`"O1"`, `"O2"`, `"O3"`; `optimize_gliner2`).
        embeddings: Embedding-table storage of the INT8 variant.

    Returns:
        The folder.
    """
    folder = Path(folder)
    if int8:
        quantize_gliner2(folder, embeddings=embeddings)
    if fp16:
        convert_gliner2_to_fp16(folder)
    if optimize:
        optimize_gliner2(folder, optimize)
    return folder


def export_all_variants(model_name_or_path: os.PathLike | str, output: os.PathLike | str, **variants: Any) -> Path:
    """Export a GLiNER2 checkpoint to ONNX (as `optimum-cli export onnx` does), then add variants.

    Args:
        model_name_or_path: A GLiNER2 checkpoint folder or hub id.
        output: The export folder to write.
        variants: Keyword arguments of `add_variants` (by default INT8 and FP16).

    Returns:
        The export folder, holding `"fp32"` and the requested variants.
    """
    from optimum.exporters.onnx import main_export

    from optimum_gliner2.optimum_glue import register_gliner2_with_optimum

    register_gliner2_with_optimum()
    main_export(model_name_or_path=str(model_name_or_path), output=str(output))
    return add_variants(output, **variants)


# --------------------------------------------------------------------------------------------
# Inspection helper (tests and benchmarks/agreement_report.py)
# --------------------------------------------------------------------------------------------


def embedding_rows(folder: os.PathLike | str, precision: str, token_ids: Sequence[int]) -> Optional[np.ndarray]:
    """The word-embedding rows of `token_ids` as the `precision` variant's encoder sees them (dequantized).

    Runs only the lookup part of the encoder (the Gather and its dequantizing Cast/DequantizeLinear),
    so every storage form is read the way ONNX Runtime reads it.

    Returns:
        A float32 array [len(token_ids), hidden], or None when the lookup was fused into another op.
    """
    import onnxruntime as ort

    bundle = GLiNER2OnnxBundle.load(folder, precision=precision)
    model = onnx.load(str(bundle.graph_files["encoder"]))
    graph = model.graph
    lookup = next(
        (n for n in graph.node if n.op_type in ("Gather", "GatherBlockQuantized") and n.input[1] == "input_ids"), None
    )
    if lookup is None:
        return None
    readers, nodes = _readers(graph), [lookup]
    while True:  # follow the dequantizing Cast / DequantizeLinear, if any
        following = readers.get(nodes[-1].output[0], [])
        if len(following) != 1 or following[0].op_type not in ("Cast", "DequantizeLinear"):
            break
        nodes.append(following[0])
    output = nodes[-1].output[0]
    needed = {name for node in nodes for name in node.input}
    sub_graph = helper.make_graph(
        nodes,
        "embedding_lookup",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [None, None])],
        [helper.make_tensor_value_info(output, _lookup_output_type(nodes[-1], graph), None)],
        initializer=[init for init in graph.initializer if init.name in needed],
    )
    sub_model = helper.make_model(sub_graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    session = ort.InferenceSession(sub_model.SerializeToString(), providers=["CPUExecutionProvider"])
    (rows,) = session.run(None, {"input_ids": np.asarray([list(token_ids)], dtype=np.int64)})
    return rows[0].astype(np.float32)


def _lookup_output_type(node: onnx.NodeProto, graph: onnx.GraphProto) -> int:
    if node.op_type == "Cast":
        return next(attr.i for attr in node.attribute if attr.name == "to")
    if node.op_type == "Gather":
        return next(init.data_type for init in graph.initializer if init.name == node.input[0])
    return TensorProto.FLOAT  # DequantizeLinear and GatherBlockQuantized of our FP32 scales


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def main(argv: Optional[Sequence[str]] = None) -> None:
    """`python -m optimum_gliner2.quantization OUT [--model CKPT] --int8 --fp16 --optimize O2`."""
    parser = argparse.ArgumentParser(
        prog="python -m optimum_gliner2.quantization",
        description="Add INT8 / FP16 / optimized variants to a GLiNER2 ONNX export (in place).",
    )
    parser.add_argument("folder", type=Path, help="The export folder (written by optimum-cli export onnx).")
    parser.add_argument("--model", help="Export this GLiNER2 checkpoint into FOLDER first.")
    parser.add_argument("--int8", action="store_true", help="Add the 'int8' variant.")
    parser.add_argument("--fp16", action="store_true", help="Add the 'fp16' variant.")
    parser.add_argument("--optimize", choices=OPTIMIZATION_LEVELS, help="Add an optimized variant ('o1', 'o2', 'o3').")
    parser.add_argument("--embeddings", choices=EMBEDDING_STORAGES, default=DEFAULT_EMBEDDINGS,
                        help=f"Embedding-table storage of the INT8 variant (default {DEFAULT_EMBEDDINGS}).")
    parser.add_argument("--import-optimum-cli", type=Path, metavar="OUT_Q",
                        help="Register the *_quantized.onnx graphs `optimum-cli onnxruntime quantize` wrote to OUT_Q "
                             "as the variant 'int8_optimum_cli'.")  # fmt: skip
    args = parser.parse_args(argv)
    if not (args.int8 or args.fp16 or args.optimize or args.model or args.import_optimum_cli):
        parser.error("nothing to do: pass --int8, --fp16, --optimize, --import-optimum-cli and/or --model.")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    variants = dict(int8=args.int8, fp16=args.fp16, optimize=args.optimize, embeddings=args.embeddings)
    if args.model:
        export_all_variants(args.model, args.folder, **variants)
    else:
        add_variants(args.folder, **variants)
    if args.import_optimum_cli:
        files = {graph: args.import_optimum_cli / name for graph, name in OPTIMUM_CLI_QUANTIZED_NAMES.items()}
        import_variant(args.folder, "int8_optimum_cli", {g: p for g, p in files.items() if p.is_file()})
    precisions = GLiNER2OnnxBundle.load(args.folder).precisions
    print(f"{args.folder}: variants {', '.join(precisions)}")


if __name__ == "__main__":
    main()
