"""The FP16 variant (for GPUs): onnxconverter-common's float16 converter with a block list.

Only the Linear layers and the embedding lookup go FP16; everything else keeps FP32, so long inputs
produce no NaN or inf.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Set

import onnx
from onnx import TensorProto

from optimum_gliner2.variants.graphs import (
    cast_target,
    load_without_identities,
    save_graph,
    tensor_readers,
    weight_matmul_nodes,
    word_embedding_gather,
)
from optimum_gliner2.variants.registry import VariantStaging, fp32_graph_paths, prepare_folder


def fp16_node_names(model: onnx.ModelProto) -> Set[str]:
    """The nodes an FP16 encoder runs in FP16: the Linear layers and the embedding lookup, nothing else.

    FP16 goes where the weights and the FLOPs are: weight MatMuls, their bias Adds, the embedding
    Gather, and the constants only they read. Everything DeBERTa is known to
    overflow or lose precision in stays FP32: attention scores with their disentangled c2p/p2c terms
    and scaling, masks filled with float32's minimum (-inf in FP16, then NaN after Softmax), Softmax,
    LayerNorm, the log-bucketed relative positions (a rounding shift picks another bucket), residual
    sums and GELU.

    Raises:
        ValueError: If a node has no name (the converter's block list is by node name).
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
    readers = tensor_readers(graph)
    for node in graph.node:
        # A constant goes FP16 only when every reader is FP16 (an FP32 reader needs its float32 range).
        if node.op_type == "Constant" and all(reader.name in in_fp16 for reader in readers.get(node.output[0], ())):
            in_fp16.add(node.name)
    return in_fp16


def _unshare_initializers(model: onnx.ModelProto, fp16_nodes: Set[str]) -> None:
    """Give FP32 readers their own copy of any initializer that FP16 readers also read, in place.

    onnxconverter-common keeps such an initializer FP32 and then feeds it, uncast, to the FP16
    readers: ONNX Runtime refuses the graph. The exporter shares identical tensors (DeBERTa's zero
    biases, LayerNorm's unit weights), so this happens in ordinary exports; the copies are small.
    """
    graph = model.graph
    readers = tensor_readers(graph)
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
        if node.op_type == "Cast" and "_output_cast" in node.name and cast_target(node) == TensorProto.FLOAT16
    }
    for node in graph.node:
        twin = producers.get(node.input[0]) if node.op_type == "Cast" else None
        if twin is not None and twin.name in inserted_fp16_casts and cast_target(node) == TensorProto.FLOAT:
            node.input[0] = twin.input[0]
    still_read = {name for node in graph.node for name in node.input} | {output.name for output in graph.output}
    unread = [node for node in graph.node if node.name in inserted_fp16_casts and node.output[0] not in still_read]
    for node in unread:
        graph.node.remove(node)


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

    folder = prepare_folder(folder, output_dir)
    with VariantStaging(folder, variant) as staging:
        model = load_without_identities(fp32_graph_paths(folder)["encoder"])
        fp16_nodes = fp16_node_names(model)
        _unshare_initializers(model, fp16_nodes)
        fp32_nodes = [node.name for node in model.graph.node if node.name not in fp16_nodes]
        model = convert_float_to_float16(
            model, keep_io_types=True, op_block_list=DEFAULT_OP_BLOCK_LIST, node_block_list=fp32_nodes
        )
        _drop_fp16_round_trips(model)
        save_graph(model, staging.path / staging.file_name("encoder"))
        del model
        recipe = {
            "tool": "onnxconverter_common.float16 (keep_io_types)",
            "weights": "Linear weights and embedding table fp16",
            "fp32_ops": "attention scores/scaling, masks, Softmax, LayerNorm, relative positions, residuals, GELU",
            "heads": "fp32",
        }
        staging.install(["encoder"], recipe)
    return folder
