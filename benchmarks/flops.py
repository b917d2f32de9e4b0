"""FLOPs of an ONNX graph's matrix products, counted from the shapes the graph has on concrete inputs.

DeBERTa's exported encoder computes most of its shapes at run time (Shape -> Gather -> Concat -> Reshape),
so static shape inference leaves the attention's MatMul operands with symbolic or unknown dimensions. The
shapes are therefore read rather than inferred: every non-constant operand of a counted node becomes an
extra output of a copy of the graph, which ONNX Runtime runs once on the workload's inputs. Constant
operands (weights) are read from the initializers or Constant nodes. (ONNX Runtime's symbolic shape inference,
`onnxruntime.tools.symbolic_shape_infer`, was tried first: on the exported encoder it resolves the Linear and
content-attention operands, but the relative-position operands keep a free dimension, the output of a Range over
the reachable table rows, whose length depends on values computed at run time.)

Counted ops: MatMul, Gemm, MatMulInteger, and ONNX Runtime's DynamicQuantizeMatMul, MatMulIntegerToFloat,
MatMulNBits and MultiHeadAttention (the last two only appear in variant graphs). One multiply-add is 2 FLOPs;
element-wise ops (bias, GELU, LayerNorm, Softmax) are not counted: they are a few percent of the work and not
what a GEMM roof measures.

Each counted node gets a kind, from which graph inputs its operands depend on:

- `linear`: one operand depends on the text, the other is a weight (the Linear layers).
- `attention`: both operands depend on the text (content attention: Q K^T and probabilities x V).
- `relative_position`: one operand depends on the text, the other on its length only: the rows of DeBERTa's
  projected relative-position table that a text of this length reaches (the content->position and
  position->content terms).
- `constant`: no operand depends on the text's values. In DeBERTa these are the query/key projections of the
  relative-position embeddings; when no operand depends on the inputs at all, ONNX Runtime's constant
  folding computes them once at session start (measured on the exported encoder: its optimized graph has
  those MatMuls folded away), so they are not part of a call's FLOPs (`per_call` is False).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import onnx
from onnx import helper, numpy_helper

#: Op types whose FLOPs are counted (domain-less names: the com.microsoft ones are unique by name).
COUNTED_OPS = frozenset(
    {"MatMul", "Gemm", "MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "MatMulNBits", "MultiHeadAttention"}
)
KINDS = ("linear", "attention", "relative_position", "constant")
#: Ops whose output carries only the shape of their input, not its values.
_SHAPE_OPS = frozenset({"Shape", "Size"})

# Dependence of a tensor on the graph's inputs, ordered so that a node's level is the max of its inputs'.
_CONSTANT, _SHAPE_ONLY, _DATA = 0, 1, 2


@dataclass
class CountedNode:
    """One counted node.

    Attributes:
        name: Node name in the graph.
        op_type: ONNX op type.
        kind: One of `KINDS` (see the module docstring).
        per_call: False when ONNX Runtime computes the node once at load (all operands constant).
        shapes: Shapes of the operands the FLOPs were computed from.
        flops: 2 x multiply-adds.
    """

    name: str
    op_type: str
    kind: str
    per_call: bool
    shapes: List[Tuple[int, ...]]
    flops: int


@dataclass
class FlopCount:
    """The counted nodes of one graph at one input shape."""

    nodes: List[CountedNode]
    uncounted: List[str] = field(default_factory=list)

    @property
    def per_call(self) -> int:
        """FLOPs that every call executes (constant-folded nodes excluded)."""
        return sum(node.flops for node in self.nodes if node.per_call)

    def by_kind(self, per_call_only: bool = True) -> Dict[str, int]:
        """FLOPs per kind, every kind present (0 when none)."""
        totals = {kind: 0 for kind in KINDS}
        for node in self.nodes:
            if node.per_call or not per_call_only:
                totals[node.kind] += node.flops
        return totals

    @property
    def folded_at_load(self) -> int:
        """FLOPs of the nodes ONNX Runtime computes once when the session starts."""
        return sum(node.flops for node in self.nodes if not node.per_call)


# ------------------------------------------------------------------------------------------------
# FLOPs of one node from its operand shapes
# ------------------------------------------------------------------------------------------------


def _batched_matmul_flops(a: Sequence[int], b: Sequence[int]) -> int:
    """2 x M x K x N x (broadcast batch size) of numpy-style matmul(a, b)."""
    a_dims, b_dims = list(a), list(b)
    if len(a_dims) == 1:
        a_dims = [1] + a_dims
    if len(b_dims) == 1:
        b_dims = b_dims + [1]
    rows, inner = a_dims[-2], a_dims[-1]
    if b_dims[-2] != inner:
        raise ValueError(f"matmul of {tuple(a)} by {tuple(b)}: inner dimensions differ")
    columns = b_dims[-1]
    batch = np.broadcast_shapes(tuple(a_dims[:-2]), tuple(b_dims[:-2]))
    return 2 * int(np.prod(batch, dtype=np.int64)) * rows * inner * columns


def node_flops(node: onnx.NodeProto, shapes: Sequence[Optional[Tuple[int, ...]]]) -> int:
    """FLOPs of one counted node, given the shapes of its inputs (None for an absent optional input)."""
    op = node.op_type
    if op in ("MatMul", "MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat"):
        return _batched_matmul_flops(shapes[0], shapes[1])
    if op == "Gemm":
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        a, b = shapes[0], shapes[1]
        rows, inner = (a[1], a[0]) if attributes.get("transA", 0) else (a[0], a[1])
        columns = b[0] if attributes.get("transB", 0) else b[1]
        return 2 * rows * inner * columns
    if op == "MatMulNBits":
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        rows = int(np.prod(shapes[0][:-1], dtype=np.int64))
        return 2 * rows * int(attributes["K"]) * int(attributes["N"])
    if op == "MultiHeadAttention":
        return _multi_head_attention_flops(node, shapes)
    raise ValueError(f"{op} is not a counted op")


def _multi_head_attention_flops(node: onnx.NodeProto, shapes: Sequence[Optional[Tuple[int, ...]]]) -> int:
    """Q K^T and probabilities x V of com.microsoft.MultiHeadAttention (the projections are separate nodes).

    Query [B, S, D]; key and value [B, L, D] or [B, heads, L, head size]. Packed layouts (key absent) are
    not produced by our variants and are refused rather than guessed.
    """
    query, key, value = (list(shapes) + [None, None, None])[:3]
    if key is None or value is None or len(query) != 3:
        raise ValueError(f"MultiHeadAttention {node.name!r}: packed query/key/value layouts are not counted")
    batch, query_length, width = query
    key_length = key[1] if len(key) == 3 else key[2]
    value_width = value[2] if len(value) == 3 else value[1] * value[3]
    return 2 * batch * query_length * key_length * (width + value_width)


# ------------------------------------------------------------------------------------------------
# Which operands depend on the inputs
# ------------------------------------------------------------------------------------------------


def _outer_references(graph: onnx.GraphProto) -> List[str]:
    """Tensor names a subgraph (If/Loop body) reads, including those its own nodes produce: a superset of
    the outer-scope names it captures, which is what dependence needs (an extra name only adds a lookup)."""
    names: List[str] = []
    for node in graph.node:
        names += [name for name in node.input if name]
        for attribute in node.attribute:
            for subgraph in _subgraphs(attribute):
                names += _outer_references(subgraph)
    return names


def _subgraphs(attribute: onnx.AttributeProto) -> List[onnx.GraphProto]:
    if attribute.type == onnx.AttributeProto.GRAPH:
        return [attribute.g]
    if attribute.type == onnx.AttributeProto.GRAPHS:
        return list(attribute.graphs)
    return []


def _dependence(graph: onnx.GraphProto) -> Dict[str, int]:
    """The level of every tensor of the top-level graph: `_CONSTANT` (no graph input reaches it), `_SHAPE_ONLY`
    (only the inputs' shapes reach it, through Shape/Size) or `_DATA` (the inputs' values reach it)."""
    level: Dict[str, int] = {graph_input.name: _DATA for graph_input in graph.input}
    for initializer in graph.initializer:
        level[initializer.name] = _CONSTANT
    for node in graph.node:  # ONNX graphs are topologically sorted
        read = [name for name in node.input if name]
        for attribute in node.attribute:
            for subgraph in _subgraphs(attribute):
                read += [name for name in _outer_references(subgraph) if name in level]
        node_level = max((level.get(name, _CONSTANT) for name in read), default=_CONSTANT)
        if node.op_type in _SHAPE_OPS:
            node_level = min(node_level, _SHAPE_ONLY)
        for output in node.output:
            level[output] = node_level
    return level


def _kind(operands: Sequence[str], level: Mapping[str, int]) -> Tuple[str, bool]:
    """(kind, per_call) of a counted node from its first two operands (see the module docstring).

    The second operand of a Linear layer is a weight: constant. DeBERTa's position rows are constant too, except
    that which rows a call reaches depends on its length: they depend on the input's shape only. This holds
    whether the position table's projections are computed in the graph or were folded into an initializer.
    """
    first, second = operands[0], operands[1] if len(operands) > 1 and operands[1] else operands[0]
    levels = (level.get(first, _CONSTANT), level.get(second, _CONSTANT))
    if max(levels) < _DATA:
        return "constant", max(levels) > _CONSTANT
    if min(levels) == _DATA:
        return "attention", True
    return ("linear" if min(levels) == _CONSTANT else "relative_position"), True


# ------------------------------------------------------------------------------------------------
# Counting
# ------------------------------------------------------------------------------------------------


def _constant_shapes(graph: onnx.GraphProto) -> Dict[str, Tuple[int, ...]]:
    """Shapes of initializers and Constant-node outputs, without reading external data."""
    shapes = {initializer.name: tuple(initializer.dims) for initializer in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    shapes[node.output[0]] = tuple(attribute.t.dims)
    return shapes


def _counted_operands(node: onnx.NodeProto) -> List[str]:
    """The inputs whose shapes determine a counted node's FLOPs."""
    if node.op_type == "MultiHeadAttention":
        return list(node.input[:3])
    return list(node.input[:2])


def count_flops(model_path: Path | str, feed: Mapping[str, np.ndarray], threads: int = 1) -> FlopCount:
    """Count the FLOPs of every matrix product of `model_path` when it runs on `feed`.

    Args:
        model_path: An ONNX graph (external data next to it is read as ONNX Runtime would).
        feed: Graph input name -> array, of the shapes to count at (values matter only where the graph's
            shapes depend on them, which for an encoder they do not).
        threads: ONNX Runtime intra-op threads for the one probing run.

    Returns:
        The counted nodes; nodes inside subgraphs (If/Loop bodies) cannot be probed from the outer graph
        and are listed in `uncounted` instead (none in the exported encoders).
    """
    import onnxruntime as ort

    model_path = Path(model_path)
    model = onnx.load(str(model_path), load_external_data=False)
    graph = model.graph
    level = _dependence(graph)
    constant_shapes = _constant_shapes(graph)
    counted = [node for node in graph.node if node.op_type in COUNTED_OPS]
    uncounted = [
        f"{inner.op_type} {inner.name!r} inside {node.name!r}"
        for node in graph.node
        for attribute in node.attribute
        for subgraph in _subgraphs(attribute)
        for inner in _walk(subgraph)
        if inner.op_type in COUNTED_OPS
    ]
    probed = list(dict.fromkeys(
        name for node in counted for name in _counted_operands(node)
        if name and name not in constant_shapes and name not in feed
    ))  # fmt: skip
    del graph.output[:]
    graph.output.extend(helper.make_empty_tensor_value_info(name) for name in probed)
    options = ort.SessionOptions()
    # No optimization: fusions would not change these tensors' shapes, but the probing graph is run once
    # and constant folding a full-size encoder costs more than that run.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = threads
    # Written into the original's folder so that its external-data references (relative paths) stay valid
    # without copying the weights; removed as soon as the session has read it.
    probe_path = model_path.parent / f".flop-probe-{uuid.uuid4().hex}.onnx"
    try:
        onnx.save_model(model, str(probe_path))
        session = ort.InferenceSession(str(probe_path), options, providers=["CPUExecutionProvider"])
    finally:
        probe_path.unlink(missing_ok=True)
    values = dict(zip(probed, session.run(probed, dict(feed)))) if probed else {}
    del session
    shapes: Dict[str, Tuple[int, ...]] = {**constant_shapes, **{name: tuple(np.shape(value)) for name, value in feed.items()}}
    shapes.update({name: tuple(value.shape) for name, value in values.items()})

    nodes = []
    for node in counted:
        operand_shapes = [shapes[name] if name else None for name in _counted_operands(node)]
        kind, per_call = _kind(_counted_operands(node), level)
        operands = [shape for shape in operand_shapes if shape is not None]
        nodes.append(CountedNode(node.name, node.op_type, kind, per_call, operands, node_flops(node, operand_shapes)))
    return FlopCount(nodes, uncounted)


def _walk(graph: onnx.GraphProto) -> Iterable[onnx.NodeProto]:
    """Every node of `graph` and of its subgraphs."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            for subgraph in _subgraphs(attribute):
                yield from _walk(subgraph)
