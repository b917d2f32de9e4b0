"""The `fused` encoder variant: DeBERTa's attention core in ONNX Runtime's `com.microsoft.MultiHeadAttention`.

ONNX Runtime's transformer optimizer (the `o2` variant) fuses BERT's attention but not DeBERTa's: the
disentangled attention adds two relative-position terms to the scores, a pattern it does not know. This
graph pass rewrites each DeBERTa self-attention of an exported encoder so that

    softmax(Q K^T / sqrt(d * s) + c2p + p2c, masked) V

runs in one `MultiHeadAttention` kernel, with the disentangled terms `c2p + p2c` (already divided by
`sqrt(d * s)` in the graph) and the padding mask handed over as its additive `attention_bias`
`[batch, heads, q_len, k_len]`. Here `d` is the head size and `s` DeBERTa's scale factor, 1 + the number
of position-attention types (3 for `["p2c", "c2p"]`): the kernel's `scale` attribute is set to
`1 / sqrt(d * s)`, read from the exported graph itself (see `_probe`), never assumed.

Exactness, padded rows included: the exported graph fills masked scores with float32's minimum before
its Softmax, and a query row of a padding token is masked entirely, so its Softmax is uniform over all
keys. The pass keeps that fill inside the bias (`c2p + p2c + mask_term`, the mask term 0 where a score
counts and float32's minimum where the plain graph fills; x + min rounds to min): the kernel adds
`Q K^T * scale` to it, and float32's minimum plus any score of normal size rounds back to the minimum, so
every masked score is again exactly the minimum and every row's Softmax equals the plain graph's. No
`key_padding_mask` is passed (it would mask keys only, and padded query rows would then differ).

What stays outside the kernel is the bias itself, [batch x heads, len, len] per layer. The export already
scores only the reachable relative positions (exporters/model_patcher.py, `relative_positions_within_reach`:
the score products are [batch x heads, len, reachable] and broadcast over the batch). This pass removes the
full passes over the bias that change no value or can move to small tensors:
- the graph's `+ 0` on the c2p term;
- the two divisions of the gathered terms by sqrt(d * s): the position rows are divided instead
  ([heads, head size, reachable], before the products; float32 rounding only);
- the relative-position index, expanded to [batch x heads, len, len] for GatherElements, is int32 instead
  of int64 (half the bytes written and read); ONNX Runtime then shares one expansion between all layers,
  kept alive throughout, unless `expand_per_layer` (what the INT8 variants use) makes each layer's its own;
- the mask is added as a [batch, 1, len, len] term made once (an Add broadcast over the heads measured twice
  as fast as the plain graph's Where over [batch, heads, len, len]).
What is left per layer: two gathers, the p2c transpose, two sums, and the kernel.

Which graphs it applies to: DeBERTa-v2/v3 encoders as exported by optimum-gliner2 (the span models'
and GLiNER2.5's). BERT-family encoders have no disentangled attention; ONNX Runtime's own "bert"
attention fusion already matches them (use the `o2` variant), so the pass refuses them with a
`NoDebertaAttentionError` (a ValueError) that says so rather than registering a variant identical to FP32.

Execution providers. What was checked, by reading ONNX Runtime's sources and generated docs as stored by the
search index (its main branch, not the 1.32 tag itself), and not run (no GPU was available to this work):
- docs/ContribOperators.md: `MultiHeadAttention` input 5 `attention_bias`, "bias added to QxK' with shape
  (batch_size or 1, num_heads or 1, sequence_length, total_sequence_length)", types float/float16/bfloat16.
- onnxruntime/contrib_ops/cuda/bert/multihead_attention.cc: the CUDA kernel is registered for float and float16
  and passes `attention_bias` to its attention implementations. With a bias it does not take the flash-attention,
  TensorRT fused or fused cross-attention paths (each requires `attention_bias == nullptr`); the cutlass
  memory-efficient path takes a bias only when the query length is a multiple of 4 x sizeof(T) (16 tokens for
  float32), and otherwise the unfused kernel runs. So the variant has a CUDA kernel with the bias; whether the
  float32-minimum fill behaves there as on CPU was not checked. Run the parity tests on a GPU before serving it
  there.
On CPU (onnxruntime 1.32, checked by the tests) the kernel runs with the bias and matches the plain graph.
An execution provider without the op runs that node on the CPU provider (ONNX Runtime's own fallback).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from optimum_gliner2.variants.graphs import remove_unused_nodes, save_graph, tensor_readers
from optimum_gliner2.variants.registry import VariantStaging, fp32_graph_paths, prepare_folder
from optimum_gliner2.variants.shape_folding import fold_static_shapes_in_model

#: Name under which the variant is registered by default (`precision="fused"`).
DEFAULT_VARIANT = "fused"
#: The contrib domain of ONNX Runtime's fused attention operators.
MICROSOFT_DOMAIN = "com.microsoft"
#: A masked score in the exported graph is float32's minimum (transformers' `torch.finfo(dtype).min`).
_FLOAT32_MIN = float(np.finfo(np.float32).min)


class NoDebertaAttentionError(ValueError):
    """The encoder has no attention this pass can fuse (e.g. a BERT-family encoder)."""


@dataclass
class _AttentionMatch:
    """One DeBERTa self-attention of the exported graph, by the tensors the fused op reads and replaces."""

    softmax: str  # node name, for messages
    query: str  # [batch, len, hidden] projections (query_proj / key_proj / value_proj outputs)
    key: str
    value: str
    query_heads: str  # [batch x heads, len, head size]: the tensor the probe reads the head count from
    scale: str  # the scalar sqrt(d * s) the exported graph divides K^T by
    position_bias: str  # [batch x heads, len, len]: c2p + p2c, already divided by sqrt(d * s)
    mask_condition: str  # [batch, 1, len, len] bool, true where the score is masked
    mask_fill: str  # the fill value (float32's minimum)
    context: str  # [batch, len, hidden]: the attention's output before the output projection


def _constant_values(model: onnx.ModelProto, max_elements: int = 16) -> Dict[str, np.ndarray]:
    """{tensor name: value} of the graph's small initializers and Constant nodes (the pass reads scalars
    only; converting the weights would copy the whole model each time)."""

    def small(tensor: onnx.TensorProto) -> bool:
        return int(np.prod(tensor.dims, dtype=np.int64)) <= max_elements

    values = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer if small(init)}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value" and small(node.attribute[0].t):
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


class _Graph:
    """Read-only navigation of a graph: who produces a tensor, who reads it."""

    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.producer = {output: node for node in model.graph.node for output in node.output}
        self.readers = tensor_readers(model.graph)
        self.constants = _constant_values(model)

    def node_of(self, tensor: str, op_type: str, why: str) -> onnx.NodeProto:
        node = self.producer.get(tensor)
        if node is None or node.op_type != op_type:
            found = "a graph input or initializer" if node is None else node.op_type
            raise _NoMatch(f"{why}: expected {op_type}, found {found}")
        return node

    def only_reader(self, tensor: str, op_type: str, why: str) -> onnx.NodeProto:
        """The single non-shape reader of `tensor` (Shape readers only size later reshapes)."""
        readers = [node for node in self.readers.get(tensor, []) if node.op_type != "Shape"]
        if len(readers) != 1 or readers[0].op_type != op_type:
            raise _NoMatch(f"{why}: expected one {op_type} reader, found {[node.op_type for node in readers]}")
        return readers[0]


class _NoMatch(Exception):
    """A Softmax is not the core of a DeBERTa self-attention (the reason is the message)."""


def _attribute(node: onnx.NodeProto, name: str, default=None):
    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def _heads_projection(graph: _Graph, heads_tensor: str, what: str) -> str:
    """The [batch, len, hidden] projection behind `transpose_for_scores`: Reshape(Transpose(Reshape(x)))."""
    flatten = graph.node_of(heads_tensor, "Reshape", f"{what} heads")
    transpose = graph.node_of(flatten.input[0], "Transpose", f"{what} heads")
    if list(_attribute(transpose, "perm", [])) != [0, 2, 1, 3]:
        raise _NoMatch(f"{what} heads: transpose perm {_attribute(transpose, 'perm')} is not [0, 2, 1, 3]")
    split = graph.node_of(transpose.input[0], "Reshape", f"{what} heads")
    return split.input[0]


def _match_attention(graph: _Graph, softmax: onnx.NodeProto) -> _AttentionMatch:
    """Walk from a Softmax to the tensors of the DeBERTa self-attention around it (transformers 4.5x's
    DisentangledSelfAttention.forward as TorchScript exports it); raises _NoMatch naming the first
    difference."""
    if _attribute(softmax, "axis", -1) not in (-1, 3):
        raise _NoMatch("softmax is not over the last axis")
    # scores4d.masked_fill(~mask, min): Where(~mask, min, Reshape(QK^T/scale + rel, [-1, heads, q, k]))
    masked = graph.node_of(softmax.input[0], "Where", "masked scores")
    fill = graph.constants.get(masked.input[1])
    if fill is None or fill.size != 1 or float(fill.reshape(())) > _FLOAT32_MIN / 2:
        raise _NoMatch("masked scores are not filled with float32's minimum")
    scores4d = graph.node_of(masked.input[2], "Reshape", "scores [batch, heads, q, k]")
    scores = graph.node_of(scores4d.input[0], "Add", "content scores + disentangled bias")
    # Which operand of the Add is Q K^T: the MatMul whose right side is K^T divided by the scale.
    for qk_index in (0, 1):
        qk = graph.producer.get(scores.input[qk_index])
        if qk is not None and qk.op_type == "MatMul":
            scaled_keys = graph.producer.get(qk.input[1])
            if scaled_keys is not None and scaled_keys.op_type == "Div":
                break
    else:
        raise _NoMatch("content scores: no MatMul(Q, K^T / scale) operand")
    position_bias = scores.input[1 - qk_index]
    keys_transposed = graph.node_of(scaled_keys.input[0], "Transpose", "K^T")
    if list(_attribute(keys_transposed, "perm", [])) != [0, 2, 1]:
        raise _NoMatch("K^T: transpose perm is not [0, 2, 1]")
    query_heads, key_heads = qk.input[0], keys_transposed.input[0]

    # probs @ V, then [batch x heads, q, d] -> [batch, q, hidden]
    probs3d = graph.only_reader(softmax.output[0], "Reshape", "attention probabilities")
    context_heads = graph.only_reader(probs3d.output[0], "MatMul", "probabilities x V")
    if context_heads.input[0] != probs3d.output[0]:
        raise _NoMatch("probabilities x V: probabilities are not the left operand")
    value_heads = context_heads.input[1]
    context4d = graph.only_reader(context_heads.output[0], "Reshape", "context [batch, heads, q, d]")
    context_transpose = graph.only_reader(context4d.output[0], "Transpose", "context transpose")
    if list(_attribute(context_transpose, "perm", [])) != [0, 2, 1, 3]:
        raise _NoMatch("context transpose perm is not [0, 2, 1, 3]")
    context = graph.only_reader(context_transpose.output[0], "Reshape", "context [batch, q, hidden]")

    return _AttentionMatch(
        softmax=softmax.name,
        query=_heads_projection(graph, query_heads, "query"),
        key=_heads_projection(graph, key_heads, "key"),
        value=_heads_projection(graph, value_heads, "value"),
        query_heads=query_heads,
        scale=scaled_keys.input[1],
        position_bias=position_bias,
        mask_condition=masked.input[0],
        mask_fill=masked.input[1],
        context=context.output[0],
    )


def find_deberta_attentions(model: onnx.ModelProto) -> List[_AttentionMatch]:
    """Every DeBERTa self-attention of an exported encoder, found by walking from its Softmax nodes.

    Args:
        model: An encoder graph as `optimum-cli export onnx` writes it for a GLiNER2 checkpoint.

    Returns:
        One match per Softmax, in graph order.

    Raises:
        NoDebertaAttentionError: If the graph has no Softmax, or a Softmax that is not the core of a
            DeBERTa self-attention (a BERT-family encoder, or an export this pass does not know).
    """
    graph = _Graph(model)
    softmaxes = [node for node in model.graph.node if node.op_type == "Softmax"]
    if not softmaxes:
        raise NoDebertaAttentionError("The encoder has no Softmax: there is no attention to fuse.")
    matches = []
    for softmax in softmaxes:
        try:
            matches.append(_match_attention(graph, softmax))
        except _NoMatch as reason:
            raise NoDebertaAttentionError(
                f"Softmax {softmax.name!r} is not a DeBERTa disentangled self-attention ({reason}). The fused "
                "variant rewrites DeBERTa-v2/v3 encoders only; for BERT-family encoders, ONNX Runtime's own "
                "attention fusion applies: add the 'o2' variant (--optimize O2) instead."
            ) from None
    return matches


def _probe(model: onnx.ModelProto, tensors: Iterable[str]) -> Dict[str, np.ndarray]:
    """The values of `tensors` when the graph runs once on a text of 5 tokens.

    The exported graph computes its score divisors sqrt(d * s) from tensor shapes at run time, so their
    values are read rather than re-derived: what the rewritten graph multiplies by is exactly what the
    plain graph divided by.
    """
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    wanted = list(dict.fromkeys(tensors))
    del probe.graph.output[:]
    probe.graph.output.extend(helper.make_empty_tensor_value_info(name) for name in wanted)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feeds = {}
    for graph_input in session.get_inputs():
        # input_ids / attention_mask (and token_type_ids where a graph has them): one text of 5 tokens.
        feeds[graph_input.name] = np.ones((1, 5), dtype=np.int64)
    return dict(zip(wanted, session.run(wanted, feeds)))


def _attention_shapes(matches: List[_AttentionMatch], values: Dict[str, np.ndarray]) -> List[tuple]:
    """(heads, head size, score divisor) of each attention, from the probed tensors."""
    shapes = []
    for match in matches:
        heads, _, head_size = values[match.query_heads].shape
        divisor = float(np.asarray(values[match.scale]).reshape(()))
        scale_factor = divisor**2 / head_size
        if abs(scale_factor - round(scale_factor)) > 1e-3 or not 1 <= round(scale_factor) <= 3:
            raise NoDebertaAttentionError(
                f"Softmax {match.softmax!r}: the scores are divided by {divisor}, which is not sqrt(head size "
                f"{head_size} x a DeBERTa scale factor 1..3)."
            )
        shapes.append((int(heads), int(head_size), divisor))
    return shapes


def _skip_zero_additions(model: onnx.ModelProto, tensors: Iterable[str]) -> None:
    """Bypass `x + 0` where it produces one of `tensors` or a tensor feeding them through Adds.

    The export writes DeBERTa's `score = 0; score += c2p / scale` literally: a full pass over the
    [batch x heads, len, len] scores per layer that changes nothing (x + 0.0 == x, -0.0 aside).
    """
    graph = _Graph(model)
    replacements: Dict[str, str] = {}
    pending = list(tensors)
    while pending:
        node = graph.producer.get(pending.pop())
        if node is None or node.op_type != "Add":
            continue
        for kept, other in ((0, 1), (1, 0)):
            zero = graph.constants.get(node.input[other])
            if zero is not None and zero.ndim == 0 and float(zero) == 0.0:  # a scalar broadcasts to no new axis
                replacements[node.output[0]] = node.input[kept]
                pending.append(node.input[kept])
                break
        else:
            pending.extend(node.input)
    for node in model.graph.node:
        for index, name in enumerate(node.input):
            while name in replacements:
                name = replacements[name]
            node.input[index] = name


@dataclass
class _PositionTerm:
    """One disentangled term of a bias, as exported: `[Transpose](GatherElements(Reshape(x @ rows), Expand(index))) / divisor`.

    c2p has no Transpose (x = Q, rows = the key-projected positions); p2c has one (x = K, rows = the
    query-projected positions), because its gathered [key, query] scores are transposed to [query, key].
    """

    division: onnx.NodeProto
    transpose: Optional[onnx.NodeProto]
    gather: onnx.NodeProto
    expand: onnx.NodeProto
    reshape: onnx.NodeProto
    matmul: onnx.NodeProto


def _position_terms(model: onnx.ModelProto, position_bias: str) -> List[_PositionTerm]:
    """The disentangled terms summed into `position_bias` (found through the Adds that sum them)."""
    graph = _Graph(model)
    found, pending = [], [position_bias]
    while pending:
        node = graph.producer.get(pending.pop())
        if node is not None and node.op_type == "Add":
            pending.extend(node.input)
            continue
        if node is None or node.op_type != "Div" or graph.constants.get(node.input[1]) is not None:
            found_op = node.op_type if node is not None else "a graph input"
            raise _NoMatch(f"disentangled bias: expected a sum of terms divided by the score divisor, found {found_op}")
        gathered = graph.producer.get(node.input[0])
        transpose = None
        if gathered is not None and gathered.op_type == "Transpose":
            if list(_attribute(gathered, "perm", [])) != [0, 2, 1]:
                raise _NoMatch("disentangled bias: a term's transpose is not [0, 2, 1]")
            transpose, gathered = gathered, graph.producer.get(gathered.input[0])
        if gathered is None or gathered.op_type != "GatherElements" or _attribute(gathered, "axis", 0) not in (-1, 2):
            raise _NoMatch("disentangled bias: a term is not gathered along the relative positions")
        expand = graph.node_of(gathered.input[1], "Expand", "disentangled bias index")
        reshape = graph.node_of(gathered.input[0], "Reshape", "disentangled bias scores")
        matmul = graph.node_of(reshape.input[0], "MatMul", "disentangled bias scores")
        found.append(_PositionTerm(node, transpose, gathered, expand, reshape, matmul))
    return found


def _insert_before(model: onnx.ModelProto, new_nodes: Dict[str, List[onnx.NodeProto]]) -> None:
    """Insert the nodes of `new_nodes[t]` just before the node whose first output is `t`."""
    rebuilt = []
    for node in model.graph.node:
        if node.output and node.output[0] in new_nodes:
            rebuilt.extend(new_nodes[node.output[0]])
        rebuilt.append(node)
    del model.graph.node[:]
    model.graph.node.extend(rebuilt)


def _set_input(model: onnx.ModelProto, producing: str, position: int, name: str) -> None:
    """Make the node whose first output is `producing` read `name` as its input `position`.

    By output name, because `_insert_before` rebuilds the node list (protobuf copies the nodes: node
    objects held from before are no longer the graph's).
    """
    node = next(node for node in model.graph.node if node.output and node.output[0] == producing)
    node.input[position] = name


def _rename_inputs(model: onnx.ModelProto, renamed: Dict[str, str]) -> None:
    for node in model.graph.node:
        for position, name in enumerate(node.input):
            if name in renamed:
                node.input[position] = renamed[name]


def _divide_position_rows_instead_of_terms(
    model: onnx.ModelProto, terms: List[_PositionTerm], values: Dict[str, np.ndarray]
) -> None:
    """Move each `Gather(x @ rows) / divisor` to `Gather(x @ (rows * (1 / divisor)))`.

    The division of a gathered [batch x heads, len, len] term is a full pass per term and layer; the
    position rows are [heads, head size, reachable positions], a few percent of it at long lengths. The
    values change by float32 rounding only (the product is scaled before its sum instead of after).
    """
    new_nodes: Dict[str, List[onnx.NodeProto]] = {}
    for index, term in enumerate(terms):
        prefix = f"/fused_attention/position_term.{index}"
        divisor = np.float32(np.asarray(values[term.division.input[1]]).reshape(()))
        model.graph.initializer.append(
            numpy_helper.from_array(np.array(np.float32(1.0) / divisor, dtype=np.float32), f"{prefix}/reciprocal_divisor"),
        )
        new_nodes[term.matmul.output[0]] = [
            helper.make_node(
                "Mul", [term.matmul.input[1], f"{prefix}/reciprocal_divisor"], [f"{prefix}/scaled_rows"],
                name=f"{prefix}/ScaleRows",
            )
        ]
        _set_input(model, term.matmul.output[0], 1, f"{prefix}/scaled_rows")
    _insert_before(model, new_nodes)
    _rename_inputs(model, {term.division.output[0]: term.division.input[0] for term in terms})


def _gather_indices_in_int32(model: onnx.ModelProto, terms: List[_PositionTerm], expand_per_layer: bool) -> None:
    """Cast each term's relative-position index to int32 before it is expanded, which changes no value.

    GatherElements has no broadcasting, so the graph expands the [1, len, len] index to [batch x heads, len,
    len] for it; in int32 that is half the bytes written and read (indices are below 2 x 256).

    With the static shapes folded, every layer's expansion is the same expression, and ONNX Runtime merges
    them into one tensor per term kind that stays alive through all the layers: 2 x 112 MB at 8 x 540 tokens.
    With `expand_per_layer`, each expansion takes its shape from its own layer's scores, so that nothing
    merges them and each is freed after its layer. Measured on the full-size replica at 8 x 540 tokens (peak
    over the loaded model, encoder alone): INT8 682 MB instead of 1,031 MB at the same speed (8 x 105 and
    8 x 554, interleaved); FP32 574 MB instead of 786 MB, but 3% / 12% slower at 8 x 105 / 8 x 554.

    Tried and dropped: gathering p2c along the positions axis of rows @ K^T to skip its transpose. With real
    (diagonal) index patterns that gather reads across rows and cost as much as the transpose it saved. And a
    `Gather` of the rows flattened with a [len, len] index (no expansion at all): least memory, but ONNX
    Runtime's Gather copies one element at a time there, 18-24% slower at 8 x 554.
    """
    new_nodes: Dict[str, List[onnx.NodeProto]] = {}
    for index, term in enumerate(terms):
        prefix = f"/fused_attention/position_term.{index}"
        new_nodes[term.expand.output[0]] = [
            helper.make_node(
                "Cast", [term.expand.input[0]], [f"{prefix}/index_int32"], name=f"{prefix}/IndexInt32", to=TensorProto.INT32
            )
        ]
        if expand_per_layer:
            scores = term.gather.input[0]  # [batch x heads, len, reachable], this layer's own
            new_nodes[term.expand.output[0]] += [
                helper.make_node("Shape", [scores], [f"{prefix}/scores_rows"], name=f"{prefix}/ScoresRows", start=0, end=2),
                helper.make_node(
                    "Shape", [term.expand.input[0]], [f"{prefix}/index_columns"], name=f"{prefix}/IndexColumns", start=2
                ),
                helper.make_node(
                    "Concat", [f"{prefix}/scores_rows", f"{prefix}/index_columns"], [f"{prefix}/expanded_shape"],
                    name=f"{prefix}/ExpandedShape", axis=0,
                ),
            ]
            _set_input(model, term.expand.output[0], 1, f"{prefix}/expanded_shape")
        _set_input(model, term.expand.output[0], 0, f"{prefix}/index_int32")
    _insert_before(model, new_nodes)


def fuse_deberta_attention(model: onnx.ModelProto, expand_per_layer: bool = False) -> int:
    """Rewrite every DeBERTa self-attention of an exported encoder into `com.microsoft.MultiHeadAttention`.

    The disentangled terms are made cheaper first (`_divide_position_rows_instead_of_terms`,
    `_gather_indices_in_int32`, and `x + 0` removed). Each attention's core (Q K^T scaled, + disentangled
    bias, + padding mask, Softmax, x V, head merge) becomes one MultiHeadAttention node reading the query/key/value projections, with
    `attention_bias = c2p + p2c` reshaped to [batch, heads, len, len] plus the mask term (0 or float32's
    minimum, [batch, 1, len, len]).
    The nodes only the old core used are removed.

    Args:
        model: The encoder graph (modified in place).
        expand_per_layer: Expand the relative-position indices layer by layer, freed after each, rather than
            once for all layers (less memory, slower in FP32; see `_gather_indices_in_int32`).

    Returns:
        The number of attentions fused.

    Raises:
        NoDebertaAttentionError: If the graph has no DeBERTa attention to fuse (see `find_deberta_attentions`).
    """
    matches = find_deberta_attentions(model)
    _skip_zero_additions(model, [match.position_bias for match in matches])
    try:
        terms = [term for match in matches for term in _position_terms(model, match.position_bias)]
    except _NoMatch as reason:
        raise NoDebertaAttentionError(f"The encoder's attention is not DeBERTa's as exported ({reason}).") from None
    term_tensors = [
        name for term in terms for name in (term.division.input[1], term.expand.input[0], *term.matmul.input[:2])
    ]
    values = _probe(model, [name for match in matches for name in (match.query_heads, match.scale)] + term_tensors)
    shapes = _attention_shapes(matches, values)
    for term in terms:
        # The rewrites below assume gliner2's self-attention shapes: one [1, len, len] index for every
        # batch row and head, x = [batch, heads, len, head size] and rows = [heads, head size, positions].
        index_shape, x_shape, rows_shape = (values[name].shape for name in (term.expand.input[0], *term.matmul.input[:2]))
        if index_shape != (1, 5, 5) or len(x_shape) != 4 or len(rows_shape) != 3 or x_shape[-1] != rows_shape[-2]:
            raise NoDebertaAttentionError(
                f"Unexpected disentangled-term shapes (index {index_shape}, scores {x_shape} x {rows_shape} on 5 tokens)."
            )
    _divide_position_rows_instead_of_terms(model, terms, values)
    _gather_indices_in_int32(model, terms, expand_per_layer)
    graph = model.graph
    # Readers of each attention's output move to the fused node's output; the fused nodes go right
    # after the node producing the context (all their inputs exist by then: the projections and the
    # bias come before the Softmax the context depends on).
    new_nodes_after: Dict[str, List[onnx.NodeProto]] = {}
    renamed: Dict[str, str] = {}
    mask_terms: Dict[str, str] = {}  # mask condition -> its additive term
    graph.initializer.append(numpy_helper.from_array(np.array(0.0, dtype=np.float32), "/fused_attention/zero"))
    for index, (match, (heads, head_size, divisor)) in enumerate(zip(matches, shapes)):
        prefix = f"/fused_attention/layer.{index}"
        fused_output = f"{prefix}/context"
        bias_nodes = []
        if match.mask_condition not in mask_terms:
            # The mask as an additive term, [batch, 1, q, k], made once per mask tensor (not per head):
            # 0 where a score counts, float32's minimum where the plain graph fills it. x + min rounds to min
            # for any score of normal size, x + 0 is x, so the sum equals the plain graph's Where; an Add
            # broadcast over the heads measured twice as fast as that Where at [8, 12, 554, 554].
            mask_terms[match.mask_condition] = f"{prefix}/mask_term"
            bias_nodes.append(
                helper.make_node(
                    "Where", [match.mask_condition, match.mask_fill, "/fused_attention/zero"], [f"{prefix}/mask_term"],
                    name=f"{prefix}/MaskTerm",
                )
            )
        bias_nodes += [
            # [batch x heads, q, k] -> [batch, heads, q, k]; the trailing dims come from the bias itself.
            helper.make_node(
                "Shape", [match.position_bias], [f"{prefix}/bias_lengths"], name=f"{prefix}/BiasLengths", start=1
            ),
            helper.make_node(
                "Concat", [f"{prefix}/bias_leading_dims", f"{prefix}/bias_lengths"], [f"{prefix}/bias_shape"],
                name=f"{prefix}/BiasShape", axis=0,
            ),
            helper.make_node(
                "Reshape", [match.position_bias, f"{prefix}/bias_shape"], [f"{prefix}/bias_by_head"],
                name=f"{prefix}/BiasByHead",
            ),
            helper.make_node(
                "Add", [f"{prefix}/bias_by_head", mask_terms[match.mask_condition]], [f"{prefix}/attention_bias"],
                name=f"{prefix}/MaskedBias",
            ),
            helper.make_node(
                "MultiHeadAttention",
                [match.query, match.key, match.value, "", "", f"{prefix}/attention_bias"],
                [f"{prefix}/attention_output"],
                name=f"{prefix}/MultiHeadAttention",
                domain=MICROSOFT_DOMAIN,
                num_heads=heads,
                # The plain graph divides K^T by `divisor` = sqrt(d * s); the kernel multiplies Q K^T by this.
                scale=float(np.float32(1.0) / np.float32(divisor)),
            ),
            # A reshape to the query's own (run-time) shape: no copy, no value changed, but the output's
            # dimensions are no longer known when ONNX Runtime loads the graph, as in the plain export. With
            # them known, ONNX Runtime fuses each residual Add + LayerNormalization into SkipLayerNormalization,
            # whose CPU kernel in onnxruntime 1.32 measured 2.5-13x slower than the pair here (0.8 ms against
            # 12 ms at [8, 105, 768]): the full-size encoder lost more to it (~220 ms at 8 x 105) than fusing gains.
            helper.make_node("Shape", [match.query], [f"{prefix}/query_shape"], name=f"{prefix}/QueryShape"),
            helper.make_node(
                "Reshape", [f"{prefix}/attention_output", f"{prefix}/query_shape"], [fused_output],
                name=f"{prefix}/AttentionOutput",
            ),
        ]
        graph.initializer.append(
            numpy_helper.from_array(np.array([-1, heads], dtype=np.int64), f"{prefix}/bias_leading_dims")
        )
        new_nodes_after[match.context] = bias_nodes
        renamed[match.context] = fused_output
    rebuilt = []
    for node in graph.node:
        for position, name in enumerate(node.input):
            if name in renamed:
                node.input[position] = renamed[name]
        rebuilt.append(node)
        for output in node.output:
            rebuilt.extend(new_nodes_after.get(output, []))
    del graph.node[:]
    graph.node.extend(rebuilt)
    for output in graph.output:
        if output.name in renamed:
            raise NoDebertaAttentionError("An attention's context is a graph output; nothing to fuse into.")
    if not any(opset.domain == MICROSOFT_DOMAIN for opset in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MICROSOFT_DOMAIN, 1))
    remove_unused_nodes(model)
    return len(matches)


def fuse_attention_gliner2(
    folder: os.PathLike | str,
    variant: str = DEFAULT_VARIANT,
    output_dir: Optional[os.PathLike | str] = None,
) -> Path:
    """Add an encoder variant whose DeBERTa attention runs in ONNX Runtime's fused MultiHeadAttention.

    The encoder's last_hidden_state stays the plain FP32 export's (within float32 rounding: the tests hold
    1e-4 and measure ~1e-6, padded positions included); the heads share the FP32 files. Load it with
    `ORTModelForGLiNER2.from_pretrained(folder, precision="fused")` or `GLiNER2ONNXRuntime` alike.

    Args:
        folder: A folder written by `optimum-cli export onnx`, with a DeBERTa-v2/v3 encoder.
        variant: Name under which the variant is registered (default `"fused"`).
        output_dir: Write into a copy of `folder` at this new path instead of modifying `folder`.

    Returns:
        The folder that now holds the variant.

    Raises:
        NoDebertaAttentionError: If the encoder has no DeBERTa attention (a BERT-family encoder: use the
            `o2` variant, whose ONNX Runtime fusions match BERT's attention). Nothing is written then.
    """
    folder = prepare_folder(folder, output_dir)
    with VariantStaging(folder, variant) as staging:
        recipe = write_fused_encoder(fp32_graph_paths(folder)["encoder"], staging.path / staging.file_name("encoder"))
        staging.install(["encoder"], recipe)
    return folder


def write_fused_encoder(source: Path, destination: Path, expand_per_layer: bool = False) -> Dict[str, object]:
    """Write the encoder at `source` with its static shapes folded and its DeBERTa attention fused to `destination`.

    Shared by the `fused` variant and the INT8 variants, which quantize this graph's Linear layers.

    Args:
        source: An exported (FP32) encoder graph.
        destination: Where to save the rewritten graph (nothing is written if the pass refuses the graph).
        expand_per_layer: See `fuse_deberta_attention`.

    Returns:
        The recipe of the rewrite, for the variant's metadata.

    Raises:
        NoDebertaAttentionError: If the encoder has no DeBERTa attention.
    """
    model = onnx.load(str(source))
    # Folded first: measured at full size, folding and fusing together take 0.88-0.92x the plain encoder's
    # time where either alone gains little or nothing (README, "Static shapes folded").
    folding = fold_static_shapes_in_model(model)
    fused = fuse_deberta_attention(model, expand_per_layer)
    save_graph(model, destination)
    return {"tool": "optimum_gliner2.variants.fused_attention", "op": f"{MICROSOFT_DOMAIN}.MultiHeadAttention",
            "fused": fused, "shapes_folded": folding.as_recipe(), "index_expanded_per_layer": expand_per_layer}  # fmt: skip
