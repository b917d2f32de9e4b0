"""Graph queries shared by the variants and the agreement report, and saving a rewritten graph."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set

import numpy as np
import onnx
from onnx import TensorProto, helper

from optimum_gliner2.bundle.format import GLiNER2OnnxBundle

#: protobuf refuses to serialize a message above 2 GB; larger graphs keep their tensors in a side file.
_PROTOBUF_LIMIT_BYTES = 2_000_000_000
#: Initializers above this size stay out of the onnx version converter's copies.
_LARGE_TENSOR_BYTES = 1 << 16


def load_without_identities(path: Path) -> onnx.ModelProto:
    """The graph at `path` with its Identity nodes removed (readers rewired to the Identity's input).

    The exporter reads a weight used by two Linear layers through an Identity: DeBERTa applies its
    query/key projections to the relative-position embeddings too. ORT's quantizer quantizes only
    MatMuls that read an initializer directly, and would keep an FP32 copy of each shared weight next to
    the INT8 one (57 MB on mDeBERTa-base); the FP16 converter would mistype the alias.

    Args:
        path: An ONNX file.

    Returns:
        The loaded graph, without Identity nodes.
    """
    from onnxruntime.transformers.fusion_utils import FusionUtils
    from onnxruntime.transformers.onnx_model import OnnxModel

    wrapped = OnnxModel(onnx.load(str(path)))
    FusionUtils(wrapped).remove_identity_nodes()
    return wrapped.model


def load_with_constants_folded(path: Path, scratch: Path) -> onnx.ModelProto:
    """The graph at `path` after ONNX Runtime's basic (portable) offline optimization: every node whose
    inputs are all constant is computed once and stored as an initializer; Identity nodes are gone.

    Why before quantizing: DeBERTa projects its relative-position embeddings with the query and key
    Linear layers; those 24 products (12 layers) depend on weights only, and ONNX Runtime folds them
    when the session loads an FP32 graph. Once a quantizer turns them into integer MatMuls, ORT no longer
    folds them, and every call recomputes ~14 GFLOP (full size): more than the rest of a 24-token call.

    Args:
        path: An ONNX file.
        scratch: A folder for the optimized copy (deleted again here).

    Returns:
        The folded graph, loaded with its tensors.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    folded = Path(scratch) / f"{Path(path).stem}_folded.onnx"
    options.optimized_model_filepath = str(folded)
    # Above protobuf's limit the optimized copy keeps its tensors in a side file.
    if Path(path).stat().st_size > _PROTOBUF_LIMIT_BYTES // 2:
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_file_name", f"{folded.name}_data"
        )
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    model = onnx.load(str(folded))
    for written in [folded, *folded.parent.glob(f"{folded.name}_data")]:
        written.unlink()
    return model


def converted_to_opset(model: onnx.ModelProto, version: int) -> onnx.ModelProto:
    """`model` with its default ONNX domain at opset `version`, by onnx's version converter.

    The converter copies the model several times over; the large initializers are held aside meanwhile (as
    graph inputs of the same type and shape), so that a full-size encoder does not take 7.5 GB to convert.

    Args:
        model: An ONNX graph (modified: its large initializers move to the returned model).
        version: The opset to convert to.

    Returns:
        The converted graph, with every initializer.
    """
    from onnx import version_converter

    held = [init for init in model.graph.initializer if init.ByteSize() > _LARGE_TENSOR_BYTES]
    held_names = {init.name for init in held}
    kept = [init for init in model.graph.initializer if init.name not in held_names]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    model.graph.input.extend(helper.make_tensor_value_info(init.name, init.data_type, init.dims) for init in held)
    converted = version_converter.convert_version(model, version)
    inputs = [value for value in converted.graph.input if value.name not in held_names]
    del converted.graph.input[:]
    converted.graph.input.extend(inputs)
    converted.graph.initializer.extend(held)
    return converted


def weight_matmul_nodes(model: onnx.ModelProto) -> List[str]:
    """Names of the MatMul nodes that multiply activations by a stored weight matrix (the Linear layers).

    Attention's activation x activation MatMuls (scores, context) and products with a stored vector
    are not among them.

    Args:
        model: An ONNX graph, best loaded with `load_without_identities` (shared weights read directly).

    Returns:
        The node names, in graph order.
    """
    ranks = {initializer.name: len(initializer.dims) for initializer in model.graph.initializer}
    return [node.name for node in model.graph.node if node.op_type == "MatMul" and ranks.get(node.input[1]) == 2]


def word_embedding_gather(model: onnx.ModelProto) -> onnx.NodeProto:
    """The Gather that looks `input_ids` up in the word-embedding table.

    Raises:
        ValueError: If `model` has no such Gather (it is not a GLiNER2 encoder).
    """
    initializers = {initializer.name for initializer in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Gather" and node.input[1] == "input_ids" and node.input[0] in initializers:
            return node
    raise ValueError("The encoder has no Gather of input_ids from a stored table; is this a GLiNER2 encoder?")


def tensor_readers(graph: onnx.GraphProto) -> Dict[str, List[onnx.NodeProto]]:
    """{tensor name: the nodes that read it}, for every tensor some node reads."""
    readers: Dict[str, List[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    return readers


def cast_target(node: onnx.NodeProto) -> int:
    """The ONNX element type a Cast node converts to (its `to` attribute)."""
    return next(attribute.i for attribute in node.attribute if attribute.name == "to")


def save_graph(model: onnx.ModelProto, path: Path) -> None:
    """Save a graph, with external data next to it when it would exceed protobuf's 2 GB limit."""
    large = model.ByteSize() > _PROTOBUF_LIMIT_BYTES
    onnx.save_model(model, str(path), save_as_external_data=large, location=f"{path.name}_data" if large else None)


def embedding_rows(folder: os.PathLike | str, precision: str, token_ids: Sequence[int]) -> Optional[np.ndarray]:
    """The word-embedding rows of `token_ids` as the `precision` variant's encoder sees them (dequantized).

    Runs only the lookup part of the encoder (the Gather and its dequantizing Cast/DequantizeLinear),
    so every storage form is read the way ONNX Runtime reads it.

    Args:
        folder: An exported folder.
        precision: The variant whose encoder to read (`"fp32"`, `"int8"`, ...).
        token_ids: The rows to look up.

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
    readers, nodes = tensor_readers(graph), [lookup]
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
        return cast_target(node)
    if node.op_type == "Gather":
        return next(init.data_type for init in graph.initializer if init.name == node.input[0])
    return TensorProto.FLOAT  # DequantizeLinear and GatherBlockQuantized of our FP32 scales


def _referenced_names(graph: onnx.GraphProto) -> Set[str]:
    """Every tensor name the nodes of `graph` read, subgraphs (If/Loop bodies) included."""
    names = set()
    for node in graph.node:
        names.update(node.input)
        for attribute in node.attribute:
            for subgraph in [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else attribute.graphs:
                names |= _referenced_names(subgraph)
    return names


def remove_unused_nodes(model: onnx.ModelProto) -> int:
    """Drop the nodes no graph output depends on, and the initializers and value infos left unread.

    Args:
        model: An ONNX model, modified in place (its nodes must be in topological order, as ONNX requires).

    Returns:
        The number of nodes removed.
    """
    graph = model.graph
    needed = {output.name for output in graph.output}
    kept = []
    for node in reversed(graph.node):
        if any(output in needed for output in node.output):
            kept.append(node)
            needed.update(node.input)
            for attribute in node.attribute:  # a subgraph may read tensors of the outer graph
                for subgraph in [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else attribute.graphs:
                    needed |= _referenced_names(subgraph)
    removed = len(graph.node) - len(kept)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    initializers = [init for init in graph.initializer if init.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    produced = {output for node in graph.node for output in node.output}
    value_infos = [info for info in graph.value_info if info.name in produced]
    del graph.value_info[:]
    graph.value_info.extend(value_infos)
    return removed
