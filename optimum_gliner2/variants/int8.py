"""The INT8 variant: the Linear layers in 8 bits (our per-row integer graph pass, ONNX Runtime's MatMulNBits,
or Optimum's `ORTQuantizer`), and our embedding table.

Three ways to quantize the Linear layers, chosen with `method=`:
- "per_row_integer": a graph pass of ours. Activations are quantized per row (token) when the graph runs,
  to uint8 with a scale and zero point of that row's own (asymmetric: GELU outputs and many LayerNorm rows
  are lopsided, and a symmetric scale would leave half the 256 levels unused), and multiplied with int8
  weights (one scale per output column) by ONNX Runtime's `MatMulIntegerToFloat`, a u8 x s8 integer GEMM
  (VNNI where the CPU has it). A token's numbers depend on that token's row only, so a text gets the same
  answer alone and in any batch. The default where the integer GEMM is exact (x86 with VNNI, ARM).
- "per_row": ONNX Runtime's `MatMulNBits` with 8-bit weights in blocks along the input dimension and accuracy
  level 4, which quantizes activations per row and block at run time: batch-independent too, but its 8-bit
  kernel gains on FP32 only on large batches. The default on x86 CPUs without VNNI, where the u8 x s8 GEMM
  saturates (see `optimum_gliner2.bundle.cpu`).
- "dynamic": Optimum's `ORTQuantizer` dynamic quantization. Activations get one scale per call, computed
  over the whole padded batch, so a text's answer can change with its neighbours.
"per_row_integer" and "per_row" quantize the `fused` variant's encoder where the encoder has DeBERTa attention
(attention in ONNX Runtime's MultiHeadAttention, exact in FP32; `fused_attention=False` keeps the plain graph).
Every method first folds what depends on weights only (ONNX Runtime's basic offline optimization): DeBERTa's
relative-position projections, which ORT folds by itself in an FP32 graph but not once they are quantized.
The README's precision table has the measurements behind the default (`python -m benchmarks.precision`,
`python -m benchmarks.int8_encoder`).

Why not `optimum-cli onnxruntime quantize --avx2`: it quantizes all four graphs with one
configuration, including the embedding Gather with a single scale for the whole table (the
special-token rows drift), and activation x activation attention MatMuls; it writes
`*_quantized.onnx` without `gliner2_onnx.json`, so the output folder is not a loadable GLiNER2
export. See docs/precision.md for the measurements.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import ModuleType
from typing import Dict, List, Optional, Tuple

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from optimum_gliner2.bundle.cpu import full_range_integer_gemm_is_exact
from optimum_gliner2.variants.fused_attention import NoDebertaAttentionError, write_fused_encoder
from optimum_gliner2.variants.graphs import (
    converted_to_opset,
    load_with_constants_folded,
    load_without_identities,
    save_graph,
    weight_matmul_nodes,
    word_embedding_gather,
)
from optimum_gliner2.variants.registry import VariantStaging, fp32_graph_paths, prepare_folder

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
#: How the Linear layers are quantized (see the module docstring).
INT8_METHODS = ("per_row", "per_row_integer", "dynamic")
#: `method=None` picks by the CPU that makes the variant (`default_method`).
DEFAULT_METHOD = None
#: Weights per scale in the "per_row" method, along the input dimension (a power of two, >= 16).
DEFAULT_BLOCK_SIZE = 32


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
    source: Path, staging: VariantStaging, graph: str, *, target: str, per_channel: bool, with_table: bool
) -> None:
    """ORTQuantizer on one graph, restricted to its weight MatMuls (and, if asked, the embedding Gather).

    Optimum's dynamic configurations would otherwise also quantize activation x activation MatMuls
    (attention scores) and every Gather of a constant, which costs answers and buys no size.
    """
    from optimum.onnxruntime import ORTQuantizer

    model = load_with_constants_folded(source, staging.path)
    nodes, operators = weight_matmul_nodes(model), ["MatMul"]
    if with_table:
        nodes.append(word_embedding_gather(model).name)
        operators.append("Gather")
    prepared = staging.path / f"{graph}_fp32.onnx"
    save_graph(model, prepared)
    del model
    quantizer = ORTQuantizer.from_pretrained(staging.path, file_name=prepared.name)
    config = _quantization_config(target, per_channel, nodes, operators)
    # ORTQuantizer also writes ort_config.json (and config.json, tokenizer files where it finds them) into
    # the staging folder, where they are discarded.
    quantizer.quantize(quantization_config=config, save_dir=staging.path, file_suffix=staging.variant)
    os.replace(staging.path / f"{prepared.stem}_{staging.variant}.onnx", staging.path / staging.file_name(graph))
    prepared.unlink()


def matmul_nbits_quantizer_module() -> ModuleType:
    """ONNX Runtime's `matmul_nbits_quantizer` module, imported without its side effect on the caller's logging.

    The module calls `logging.basicConfig(level=INFO)` when it is imported, which would make every library's INFO
    records print in the user's process (one line per quantized node, and gliner2's and ours besides). The root
    logger's handlers and level are put back as they were.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        from onnxruntime.quantization import matmul_nbits_quantizer
    finally:
        for handler in [handler for handler in root.handlers if handler not in handlers]:
            root.removeHandler(handler)
        root.setLevel(level)
    return matmul_nbits_quantizer


def _quantize_graph_per_row(source: Path, staging: VariantStaging, graph: str, *, block_size: int) -> None:
    """ONNX Runtime's MatMulNBits quantizer on one graph's weight MatMuls: 8-bit symmetric weights per block,
    activations quantized per row and block when the graph runs (accuracy level 4)."""
    nbits = matmul_nbits_quantizer_module()
    model = load_with_constants_folded(source, staging.path)
    config = nbits.DefaultWeightOnlyQuantConfig(
        block_size=block_size, is_symmetric=True, accuracy_level=4, bits=8, op_types_to_quantize=("MatMul",)
    )
    quantizer = nbits.MatMulNBitsQuantizer(model, nodes_to_include=weight_matmul_nodes(model), algo_config=config)
    quantizer.process()
    save_graph(quantizer.model.model, staging.path / staging.file_name(graph))


def default_method() -> str:
    """The INT8 method `quantize_gliner2` uses when none is given: `"per_row_integer"` where ONNX Runtime's
    u8 x s8 GEMM is exact on this machine's CPU (x86 with VNNI, ARM), else `"per_row"`.

    The choice follows the CPU that makes the variant; a `"per_row_integer"` variant refuses to load on a
    CPU where its GEMM would saturate (`optimum_gliner2.bundle.cpu`), so a variant made for one fleet and
    served on another fails loudly, never with drifted answers.
    """
    return "per_row_integer" if full_range_integer_gemm_is_exact() else "per_row"


def _row_quantizer_nodes(activation: str, width: int) -> Tuple[List[onnx.NodeProto], str, str, str]:
    """Nodes that quantize `activation` [..., width] per row (its last axis) for `MatMulIntegerToFloat`.

    Asymmetric over the row's range widened to hold 0: scale = (max - min) / 255 and zero point
    z = round(-min / scale), so q = round(x / scale) + z lies in [0, 255] and 0 is exact. The GEMM runs
    u8 x s8 (the form ONNX Runtime's VNNI kernels take) with no zero point of its own: ONNX Runtime
    accepts one zero point per tensor only, so each row's z is taken out after the GEMM, as
    z * (column sums of the weights). Every number of a row depends on that row only: a token's result
    is the same alone and in any batch. One QuantizeLinear with a block as wide as the row (opset 21)
    does the division, rounding, shift and cast in one pass over the activation.

    Returns:
        (nodes, the uint8 tensor, the row scales [..., 1] by which the GEMM's output is multiplied, the
        row zero points [..., 1] as floats).
    """
    prefix = f"{activation}_row_q"
    highest, lowest, top, bottom, span = (f"{prefix}_{n}" for n in ("max", "min", "top", "bottom", "span"))
    scales, shifted, zero_points, zero_points_u8, quantized = (
        f"{prefix}_{n}" for n in ("scales", "min_over_scale", "zero_points", "zero_points_u8", "u8")
    )
    nodes = [
        helper.make_node("ReduceMax", [activation, _ROW_AXES], [highest], name=f"{prefix}_ReduceMax", keepdims=1),
        helper.make_node("ReduceMin", [activation, _ROW_AXES], [lowest], name=f"{prefix}_ReduceMin", keepdims=1),
        helper.make_node("Max", [highest, _ZERO], [top], name=f"{prefix}_Top"),
        helper.make_node("Min", [lowest, _ZERO], [bottom], name=f"{prefix}_Bottom"),
        helper.make_node("Sub", [top, bottom], [span], name=f"{prefix}_Span"),
        # An all-zero row would divide by zero; any positive floor gives it q = z = 0 and a zero result.
        helper.make_node("Max", [span, _SPAN_FLOOR], [f"{span}_floored"], name=f"{prefix}_SpanFloor"),
        helper.make_node("Div", [f"{span}_floored", _UINT8_LEVELS], [scales], name=f"{prefix}_Scales"),
        helper.make_node("Div", [bottom, scales], [shifted], name=f"{prefix}_MinOverScale"),
        helper.make_node("Neg", [shifted], [f"{shifted}_negated"], name=f"{prefix}_Neg"),
        helper.make_node("Round", [f"{shifted}_negated"], [zero_points], name=f"{prefix}_ZeroPoints"),
        helper.make_node("Cast", [zero_points], [zero_points_u8], name=f"{prefix}_ZeroPointsU8", to=TensorProto.UINT8),
        helper.make_node(
            "QuantizeLinear", [activation, scales, zero_points_u8], [quantized], name=f"{prefix}_Quantize",
            axis=-1, block_size=width,
        ),
    ]
    return nodes, quantized, scales, zero_points


# Shared constants of the per-row integer graph pass (names unlikely to clash with an exporter's).
_ROW_AXES, _SPAN_FLOOR, _UINT8_LEVELS = "int8_row_axes", "int8_row_span_floor", "int8_row_levels"
_ZERO, _UNIT_SCALE = "int8_row_zero", "int8_row_unit_scale"
#: The opset of blocked QuantizeLinear (a scale per block of `block_size` along an axis).
_ROW_QUANTIZER_OPSET = 21


def _per_column_int8_weights(weight: np.ndarray, reduce_range: bool) -> Tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 weights with one scale per output column: (int8 [K, N], float32 scales [N]).

    With `reduce_range`, 7 bits ([-63, 63]): on AVX2 CPUs without VNNI, ONNX Runtime's u8 x s8 kernel adds
    pairs of products in int16 (vpmaddubsw), which 255 * 127 * 2 overflows and 255 * 63 * 2 does not.
    """
    levels = 63.0 if reduce_range else 127.0
    scales = np.abs(weight).max(axis=0) / levels
    scales[scales == 0] = 1.0
    quantized = np.clip(np.round(weight / scales), -levels, levels).astype(np.int8)
    return quantized, scales.astype(np.float32)


def _quantize_graph_per_row_integer(source: Path, staging: VariantStaging, graph: str, *, reduce_range: bool) -> None:
    """Rewrite one graph's weight MatMuls into per-row u8 x s8 integer GEMMs (`method="per_row_integer"`).

    For each activation that feeds weight MatMuls (quantized once, however many MatMuls read it, e.g. the
    query, key and value projections): the row quantizer of `_row_quantizer_nodes`. Each MatMul becomes
    ONNX Runtime's `MatMulIntegerToFloat` (int32 accumulation, per-column weight scales applied in the
    GEMM's output stage), less the row's zero point times the weights' column sums, times the row's
    scale. ORT's own quantizers have no per-row activation mode outside MatMulNBits, whose 8-bit kernel
    does not use the integer GEMM.
    """
    model = load_with_constants_folded(source, staging.path)
    if next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) < _ROW_QUANTIZER_OPSET:
        model = converted_to_opset(model, _ROW_QUANTIZER_OPSET)
    graph_proto = model.graph
    targets = set(weight_matmul_nodes(model))
    weights = {init.name: init for init in graph_proto.initializer}
    graph_proto.initializer.extend(
        [
            numpy_helper.from_array(np.array([-1], dtype=np.int64), _ROW_AXES),
            numpy_helper.from_array(np.array(1e-30, dtype=np.float32), _SPAN_FLOOR),
            numpy_helper.from_array(np.array(255.0, dtype=np.float32), _UINT8_LEVELS),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), _ZERO),
            numpy_helper.from_array(np.array(1.0, dtype=np.float32), _UNIT_SCALE),
        ]
    )
    quantized_rows: Dict[str, Tuple[str, str, str]] = {}
    replaced_weights = set()
    rewritten: List[onnx.NodeProto] = []
    for node in graph_proto.node:
        if node.name not in targets:
            rewritten.append(node)
            continue
        activation, weight_name = node.input
        if activation not in quantized_rows:
            width = weights[weight_name].dims[0]
            nodes, quantized, row_scales, row_zero_points = _row_quantizer_nodes(activation, width)
            rewritten.extend(nodes)
            quantized_rows[activation] = (quantized, row_scales, row_zero_points)
        quantized, row_scales, row_zero_points = quantized_rows[activation]
        int8_name, scales_name = f"{weight_name}_int8_per_column", f"{weight_name}_column_scales"
        column_sums = f"{weight_name}_column_sums"
        if weight_name not in replaced_weights:
            weight = numpy_helper.to_array(weights[weight_name]).astype(np.float32)
            int8_weight, scales = _per_column_int8_weights(weight, reduce_range)
            sums = (int8_weight.astype(np.float64).sum(axis=0) * scales).astype(np.float32)
            graph_proto.initializer.extend([
                numpy_helper.from_array(int8_weight, int8_name), numpy_helper.from_array(scales, scales_name),
                numpy_helper.from_array(sums, column_sums),
            ])  # fmt: skip
            replaced_weights.add(weight_name)
        output = node.output[0]
        rewritten += [
            helper.make_node(
                "MatMulIntegerToFloat", [quantized, int8_name, _UNIT_SCALE, scales_name], [f"{output}_with_zero_points"],
                name=f"{node.name}_integer", domain="com.microsoft",
            ),
            helper.make_node("Mul", [row_zero_points, column_sums], [f"{output}_zero_point_share"], name=f"{node.name}_zero_point_share"),
            helper.make_node("Sub", [f"{output}_with_zero_points", f"{output}_zero_point_share"], [f"{output}_per_unit_row"],
                             name=f"{node.name}_zero_points_out"),
            # MatMulIntegerToFloat takes one activation scale per tensor: the rows' scales come after.
            helper.make_node("Mul", [f"{output}_per_unit_row", row_scales], [output], name=f"{node.name}_row_scale"),
        ]  # fmt: skip
    del graph_proto.node[:]
    graph_proto.node.extend(rewritten)
    still_read = {name for node in graph_proto.node for name in node.input}
    for name in replaced_weights - still_read:
        graph_proto.initializer.remove(weights[name])
    if not any(opset.domain == "com.microsoft" for opset in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    save_graph(model, staging.path / staging.file_name(graph))


def quantize_gliner2(
    folder: os.PathLike | str,
    *,
    method: Optional[str] = DEFAULT_METHOD,
    block_size: int = DEFAULT_BLOCK_SIZE,
    embeddings: str = DEFAULT_EMBEDDINGS,
    fused_attention: Optional[bool] = None,
    per_channel: bool = True,
    reduce_range: bool = False,
    quantize_heads: bool = False,
    target: str = "avx2",
    variant: str = "int8",
    output_dir: Optional[os.PathLike | str] = None,
) -> Path:
    """Add an INT8 variant to an exported folder.

    The encoder's Linear weights are quantized to 8 bits and activations are quantized on the fly;
    attention's activation x activation MatMuls stay FP32.

    Args:
        folder: A folder written by `optimum-cli export onnx`.
        method: One of `INT8_METHODS` (see the module docstring), or None for `default_method()`: the
            integer GEMM where this CPU runs it exactly, else MatMulNBits. `"per_row_integer"` (activations
            quantized per row for ONNX Runtime's u8 x s8 integer GEMM, weights per output column), `"per_row"`
            (ONNX Runtime's MatMulNBits, 8-bit weights per block of `block_size`, activations per row and
            block), both batch-independent, or `"dynamic"` (Optimum's `ORTQuantizer`, one activation scale
            per padded batch; `per_channel` and `target` apply to it only).
        block_size: Weights per scale in the `"per_row"` method (a power of two, at least 16).
        reduce_range: `"per_row_integer"` only (and with `method=None`, it picks that method): 7-bit weights
            ([-63, 63]), which AVX2 CPUs without VNNI
            multiply exactly; with 8-bit weights their u8 x s8 kernel saturates sums of two products in
            int16 (measured with `qemu-x86_64 -cpu Haswell`). Costs answers on VNNI CPUs (see the README).
        embeddings: How the word-embedding table is stored, one of `EMBEDDING_STORAGES`. The default,
            `"int8_per_row"`, keeps gliner2's marker-token rows ([P], [E], [R], ...) at cosine >= 0.9999;
            `"int8_per_table"` is ORT's default and is documented as lossy.
        fused_attention: Quantize the encoder of the `fused` variant (`fuse_attention_gliner2`: static shapes
            folded, DeBERTa's attention in ONNX Runtime's MultiHeadAttention, exact in FP32) instead of the plain
            export's. None (default): where the encoder has DeBERTa attention and `method` is not `"dynamic"`
            (ORTQuantizer cannot type the fused op's outputs), else the plain graph. True: require it
            (`NoDebertaAttentionError` on an encoder without DeBERTa attention). False: the plain graph. The Linear
            layers are quantized the same way either way; the fused attention measured 1.13x / 1.49x the plain
            INT8 encoder's speed at 8 x 105 / 8 x 554 tokens on the full-size replica (README).
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
        >>> from optimum_gliner2.variants import quantize_gliner2
        >>> quantize_gliner2("gliner2-onnx/")
        >>> model = ORTModelForGLiNER2.from_pretrained("gliner2-onnx/", precision="int8")
        ```
    """
    # 7-bit weights only exist for the integer GEMM: asking for them picks it.
    method = method or ("per_row_integer" if reduce_range else default_method())
    if embeddings not in EMBEDDING_STORAGES:
        raise ValueError(f"embeddings must be one of {EMBEDDING_STORAGES}, got {embeddings!r}.")
    if method not in INT8_METHODS:
        raise ValueError(f"method must be one of {INT8_METHODS}, got {method!r}.")
    if block_size < 16 or block_size & (block_size - 1):
        raise ValueError(f"block_size must be a power of two >= 16, got {block_size!r}.")
    if reduce_range and method != "per_row_integer":
        raise ValueError(f'reduce_range applies to method="per_row_integer" only, not {method!r}.')
    if fused_attention and method == "dynamic":
        # ORTQuantizer's shape inference cannot type the outputs of com.microsoft's MultiHeadAttention.
        raise ValueError('fused_attention=True goes with method="per_row_integer" or "per_row", not "dynamic".')
    if method != "dynamic" and embeddings == "int8_per_table":
        raise ValueError('embeddings="int8_per_table" goes with method="dynamic" (it is ORTQuantizer\'s Gather).')
    folder = prepare_folder(folder, output_dir)

    def quantize(graph: str, source: Path, with_table: bool) -> None:
        if method == "per_row":
            _quantize_graph_per_row(source, staging, graph, block_size=block_size)
        elif method == "per_row_integer":
            _quantize_graph_per_row_integer(source, staging, graph, reduce_range=reduce_range)
        else:
            _quantize_graph(source, staging, graph, target=target, per_channel=per_channel, with_table=with_table)

    with VariantStaging(folder, variant) as staging:
        sources = fp32_graph_paths(folder)
        encoder, attention = sources["encoder"], None
        if fused_attention or (fused_attention is None and method != "dynamic"):
            # A scratch file of the staging folder, which is removed with it; only the quantized graph is installed.
            fused_encoder = staging.path / "encoder_attention_fused.onnx"
            try:
                # Expanded per layer: in INT8 that measured the same speed and 350 MB less at 8 x 540 tokens.
                attention = write_fused_encoder(encoder, fused_encoder, expand_per_layer=True)
                encoder = fused_encoder
            except NoDebertaAttentionError:
                if fused_attention:
                    raise
                logger.info("The encoder has no DeBERTa attention to fuse; quantizing the plain graph.")
        quantize("encoder", encoder, embeddings == "int8_per_table")
        if embeddings in ("fp16", "int8_per_row"):
            staged = staging.path / staging.file_name("encoder")
            model = onnx.load(str(staged))
            _store_embedding_table(model, embeddings)
            save_graph(model, staged)
        new_graphs = ["encoder"]
        if quantize_heads:
            for graph, path in sources.items():
                if graph != "encoder":
                    quantize(graph, path, False)
                    new_graphs.append(graph)
        if method == "per_row":
            recipe = {
                "tool": "onnxruntime MatMulNBitsQuantizer (bits=8, accuracy_level=4)",
                "weights": f"Linear MatMul weights int8, symmetric, one scale per {block_size} inputs",
                "activations": "int8 per row and block, at run time",
            }
        elif method == "per_row_integer":
            recipe = {
                "tool": "optimum_gliner2 graph pass: onnxruntime MatMulIntegerToFloat (u8 x s8)",
                "weights": f"Linear MatMul weights int{7 if reduce_range else 8}, symmetric, one scale per output column",
                "activations": "uint8 per row (token), asymmetric: a scale and zero point per row, at run time",
                # Read by the runtime: 8-bit weights saturate ORT's u8 x s8 GEMM on x86 without VNNI.
                "integer_gemm_weight_bits": 7 if reduce_range else 8,
            }
        else:
            recipe = {
                "tool": "optimum.onnxruntime.ORTQuantizer (dynamic)",
                "target": target,
                "weights": f"Linear MatMul weights int8, {'per channel' if per_channel else 'per tensor'}",
                "activations": "int8, one scale per call",
            }
        recipe.update(method=method, embeddings=embeddings, heads="int8" if quantize_heads else "fp32", fused_attention=attention)
        staging.install(new_graphs, recipe)
    return folder
