"""Static shape values folded out of an encoder graph: the `shapes` pass (issue #17, shape-op overhead).

The TorchScript export computes every reshape target at run time: `Shape(x) -> Gather -> Unsqueeze -> Concat
-> Reshape` around each head split and merge, in every layer, even where the value is fixed by the model (the
hidden size, the head count, the head size). ONNX Runtime folds only what depends on constants, not on a
tensor's shape, so these small integer ops run on every call; on a short text their per-node cost is a
visible share of the call.

This pass reads the value of each integer tensor as a formula in the graph's dynamic dimensions (`batch_size`,
`sequence_length`), with ONNX Runtime's symbolic shape inference (`onnxruntime.tools.symbolic_shape_infer`,
part of the onnxruntime wheel), and then rewrites, without changing any float value:
- a tensor whose value is a number whatever the input shape (e.g. the head count 12) becomes a constant;
- tensors with the same value (e.g. `[batch_size, sequence_length, 12, 64]`, recomputed in each layer) are
  computed once: later readers read the first;
- a Reshape whose target repeats its input's leading dimensions (`[batch_size, sequence_length, 12, 64]` on a
  `[batch_size, sequence_length, 768]` input) gets ONNX's "copy this dimension" 0 there, so its target is a
  constant too.
Then the nodes nothing reads any more are removed. What stays is what truly depends on the batch and
sequence length. The graph keeps standard ONNX ops only (no contrib op, no execution-provider-specific
node): it is as portable as the plain export.

Exactness is checked, not assumed: `fold_static_shapes` runs the plain and the folded graph on several
batch shapes (padding included) and refuses the result unless last_hidden_state agrees (see
`check_same_outputs`).
"""

from __future__ import annotations

import collections
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from optimum_gliner2.variants.graphs import remove_unused_nodes, save_graph
from optimum_gliner2.variants.registry import VariantStaging, fp32_graph_paths, prepare_folder

logger = logging.getLogger(__name__)

#: Name under which the variant is registered by default (`precision="shapes"`).
DEFAULT_VARIANT = "shapes"
#: Op types that only move or compute tensor shapes: what the pass is meant to remove (counted in reports).
SHAPE_OP_TYPES = ("Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast", "Constant", "Reshape")
#: Integer element types whose values the pass folds (shape values, indices, and masks made from them).
_FOLDABLE_TYPES = {TensorProto.INT64: np.int64, TensorProto.INT32: np.int32, TensorProto.BOOL: np.bool_}
#: Initializers above this many elements are held aside during shape inference (only their shape matters).
_SHAPE_ONLY_ELEMENTS = 1 << 12
#: (texts, tokens) on which the folded graph is checked against the plain one; later texts are padded.
CHECK_SHAPES: Tuple[Tuple[int, int], ...] = ((1, 3), (1, 24), (3, 41), (2, 130))
#: The largest difference in last_hidden_state the check accepts (the parity suite's tolerance).
CHECK_TOLERANCE = 1e-4


class ShapeFoldingError(ValueError):
    """The folded graph does not reproduce the plain one, or its shapes could not be inferred."""


@dataclass
class ShapeFoldingReport:
    """What `fold_static_shapes_in_model` changed.

    Attributes:
        constants: Integer tensors replaced by a constant.
        deduplicated: Integer tensors whose readers now read an earlier tensor of the same value.
        reshape_targets: Reshape targets made constant with ONNX's copy-dimension 0.
        branches_inlined: If nodes replaced by the branch their (folded) condition always takes.
        nodes_before: Nodes of the graph before the pass.
        nodes_after: Nodes after it (unread nodes removed).
        shape_ops_before: {op type: count} of `SHAPE_OP_TYPES` before.
        shape_ops_after: The same, after.
    """

    constants: int = 0
    deduplicated: int = 0
    reshape_targets: int = 0
    branches_inlined: int = 0
    nodes_before: int = 0
    nodes_after: int = 0
    shape_ops_before: Dict[str, int] = field(default_factory=dict)
    shape_ops_after: Dict[str, int] = field(default_factory=dict)

    def as_recipe(self) -> Dict[str, Any]:
        """The report as the variant's recipe stores it."""
        return {
            "constants": self.constants,
            "deduplicated": self.deduplicated,
            "reshape_targets": self.reshape_targets,
            "branches_inlined": self.branches_inlined,
            "nodes": [self.nodes_before, self.nodes_after],
        }


def shape_op_counts(model: onnx.ModelProto) -> Dict[str, int]:
    """{op type: count} of the shape-handling op types (`SHAPE_OP_TYPES`) among the graph's top-level nodes."""
    counts = collections.Counter(node.op_type for node in model.graph.node)
    return {op_type: counts.get(op_type, 0) for op_type in SHAPE_OP_TYPES}


def _shape_only_copy(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` without its large initializers, which become graph inputs of the same type and shape.

    Symbolic shape inference copies the model several times and needs only the small initializers' values
    (indices, axes); a full-size encoder's 1.1 GB of weights would otherwise be copied with it.
    """
    copy = onnx.ModelProto()
    copy.ir_version = model.ir_version
    copy.opset_import.extend(model.opset_import)
    copy.graph.name = model.graph.name
    copy.graph.node.extend(model.graph.node)
    copy.graph.input.extend(model.graph.input)
    copy.graph.output.extend(model.graph.output)
    for initializer in model.graph.initializer:
        if int(np.prod(initializer.dims, dtype=np.int64)) > _SHAPE_ONLY_ELEMENTS:
            copy.graph.input.append(helper.make_tensor_value_info(initializer.name, initializer.data_type, initializer.dims))
        else:
            copy.graph.initializer.append(initializer)
    return copy


@dataclass
class _SymbolicValues:
    """What symbolic shape inference knows: integer tensor values and every tensor's shape, as formulas."""

    values: Dict[str, Any]  # tensor -> scalar or list of sympy expressions / ints
    shapes: Dict[str, Optional[List[Any]]]  # tensor -> list of dims (int, sympy symbol name, or None)
    element_types: Dict[str, int]
    symbols: Dict[str, Any]  # dim name -> sympy expression


def _infer_symbolic_values(model: onnx.ModelProto) -> _SymbolicValues:
    """Run ONNX Runtime's symbolic shape inference on a weightless copy of `model` and keep its findings.

    Called through the class rather than `SymbolicShapeInference.infer_shapes`, which raises (and saves a
    copy of the model into the working directory) when any shape stays unknown. Here an unknown shape is
    expected: inference stops at the first one (an If's output, see `_inline_decided_branches`), and what it
    found up to there is kept; the next round goes further. auto_merge stays off: it would equate two
    dimensions wherever they meet in a broadcast, a guess (one of them may be 1 at run time).
    """
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference, get_shape_from_value_info

    inference = SymbolicShapeInference(int_max=2**31 - 1, auto_merge=False, guess_output_rank=False, verbose=0)
    inference._preprocess(_shape_only_copy(model))
    # The module logs a warning per broadcast it cannot relate; they are expected (see above) and not the user's.
    symbolic_logger = logging.getLogger("onnxruntime.tools.symbolic_shape_infer")
    level = symbolic_logger.level
    symbolic_logger.setLevel(logging.ERROR)
    try:
        while inference.run_:
            inference._infer_impl()
    finally:
        symbolic_logger.setLevel(level)
    shapes, element_types = {}, {}
    for name, value_info in inference.known_vi_.items():
        if value_info.type.HasField("tensor_type"):
            shapes[name] = get_shape_from_value_info(value_info)
            element_types[name] = value_info.type.tensor_type.elem_type
    return _SymbolicValues(dict(inference.sympy_data_), shapes, element_types, dict(inference.symbolic_dims_))


def _as_formulas(value: Any) -> Optional[Tuple[bool, Tuple[Any, ...]]]:
    """(is a scalar, its elements as sympy expressions), or None when the value is not a 0-D/1-D formula."""
    import sympy

    is_scalar = not isinstance(value, (list, tuple, np.ndarray))
    if isinstance(value, np.ndarray):
        if value.ndim > 1:
            return None
        is_scalar, value = value.ndim == 0, value.reshape(-1).tolist()
    elements = [value] if is_scalar else list(value)
    formulas = []
    for element in elements:
        if isinstance(element, (bool, np.bool_)):
            formulas.append(sympy.true if element else sympy.false)
        elif isinstance(element, (int, np.integer)):
            formulas.append(sympy.Integer(int(element)))
        elif isinstance(element, sympy.Basic) and (element.is_integer or element.is_Boolean):
            formulas.append(element)
        else:
            return None  # floats, strings, or a formula of unknown kind: left alone
    return is_scalar, tuple(formulas)


def _numbers(formulas: Tuple[Any, ...]) -> Optional[List[Any]]:
    """The formulas as plain Python numbers when none depends on a dimension, else None."""
    import sympy

    numbers = []
    for formula in formulas:
        if formula is sympy.true or formula is sympy.false:
            numbers.append(bool(formula))
        elif formula.is_Integer:
            numbers.append(int(formula))
        else:
            return None
    return numbers


def _rename_readers(model: onnx.ModelProto, renamed: Dict[str, str]) -> None:
    """Point every reader of a key of `renamed` (subgraphs of If/Loop included) at its value."""

    def rename_in(graph: onnx.GraphProto) -> None:
        for node in graph.node:
            for position, name in enumerate(node.input):
                if name in renamed:
                    node.input[position] = renamed[name]
            for attribute in node.attribute:
                for subgraph in [attribute.g] if attribute.type == onnx.AttributeProto.GRAPH else attribute.graphs:
                    rename_in(subgraph)

    rename_in(model.graph)


def _copy_dimension_target(
    target: Tuple[Any, ...], input_shape: Optional[List[Any]], symbols: Dict[str, Any]
) -> Optional[List[int]]:
    """A constant Reshape target equal to `target` on this input, or None when none is known.

    Each dynamic entry must be the input's own dimension at the same position: ONNX's 0 copies it (the
    Reshape's `allowzero` must be 0, its default). Numbers stay as they are, so a -1 keeps its meaning.
    """
    if input_shape is None:
        return None
    constant = []
    for position, entry in enumerate(target):
        if entry.is_Integer:
            if int(entry) == 0:
                return None  # already a copy-dimension 0 or an empty axis: left as exported
            constant.append(int(entry))
            continue
        if position >= len(input_shape) or input_shape[position] is None:
            return None
        dimension = input_shape[position]
        dimension = symbols.get(dimension, dimension) if isinstance(dimension, str) else dimension
        if entry != dimension:
            return None
        constant.append(0)
    return constant


def _fold_constant_nodes(model: onnx.ModelProto) -> int:
    """Compute once the small nodes whose inputs are all constants (e.g. the Not and Cast between a folded
    length comparison and the If it decides), with onnx's reference evaluator.

    Symbolic shape inference follows integer values only; the If's condition is a boolean cast from them.
    Outputs above `_SHAPE_ONLY_ELEMENTS` elements are left to ONNX Runtime (which folds them at load) so the
    file does not grow.

    Returns:
        The number of nodes replaced by constants.
    """
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    constants = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = node.attribute[0].t
    folded, kept = 0, []
    for node in graph.node:
        small_inputs = all(
            name in constants and int(np.prod(constants[name].dims, dtype=np.int64)) <= _SHAPE_ONLY_ELEMENTS
            for name in node.input if name
        )
        has_subgraph = any(attribute.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for attribute in node.attribute)
        if node.op_type == "Constant" or not node.input or not small_inputs or has_subgraph or node.domain not in ("", "ai.onnx"):
            kept.append(node)
            continue
        inputs = [name for name in node.input if name]
        single = helper.make_model(
            helper.make_graph(
                [node], "constant_node", [], [helper.make_empty_tensor_value_info(name) for name in node.output],
                initializer=[constants[name] for name in inputs],
            ),
            opset_imports=model.opset_import, ir_version=model.ir_version,
        )
        try:
            results = ReferenceEvaluator(single).run(None, {})
        except Exception:  # an op the reference evaluator lacks: ONNX Runtime folds it at load instead
            kept.append(node)
            continue
        if any(np.asarray(result).size > _SHAPE_ONLY_ELEMENTS for result in results):
            kept.append(node)
            continue
        for name, result in zip(node.output, results):
            tensor = numpy_helper.from_array(np.asarray(result), name)
            graph.initializer.append(tensor)
            constants[name] = tensor
        folded += 1
    del graph.node[:]
    graph.node.extend(kept)
    return folded


def _inline_decided_branches(model: onnx.ModelProto) -> int:
    """Replace each If whose condition is now a constant by the nodes of the branch it always takes.

    DeBERTa's attention builds its relative positions anew when the query and key lengths differ; in a self-
    attention they never do, and once the lengths' equality is folded the If's condition is a constant. The If
    would otherwise stay, and symbolic shape inference stops at its output (a dimension it cannot relate to
    the sequence length), leaving every later layer unfolded. Branches holding subgraphs of their own are
    left alone.

    Returns:
        The number of If nodes replaced.
    """
    graph = model.graph
    constants = {init.name: init for init in graph.initializer}
    rebuilt: List[onnx.NodeProto] = []
    inlined = 0
    for node in graph.node:
        condition = constants.get(node.input[0]) if node.op_type == "If" else None
        if condition is None or int(np.prod(condition.dims, dtype=np.int64)) != 1:
            rebuilt.append(node)
            continue
        taken = "then_branch" if bool(numpy_helper.to_array(condition).reshape(())) else "else_branch"
        branch = next(attribute.g for attribute in node.attribute if attribute.name == taken)
        if any(attribute.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for inner in branch.node for attribute in inner.attribute):
            rebuilt.append(node)
            continue
        # The branch's own tensor names get the If's name as a prefix: unique in the outer graph.
        local = {init.name for init in branch.initializer} | {output for inner in branch.node for output in inner.output}
        prefix = f"{node.name or node.output[0]}/{taken}/"

        def outer(name: str) -> str:
            return prefix + name if name in local else name

        for init in branch.initializer:
            copied = onnx.TensorProto()
            copied.CopyFrom(init)
            copied.name = outer(init.name)
            graph.initializer.append(copied)
        for inner in branch.node:
            copied = onnx.NodeProto()
            copied.CopyFrom(inner)
            copied.name = prefix + inner.name if inner.name else ""
            copied.input[:] = [outer(name) for name in inner.input]
            copied.output[:] = [outer(name) for name in inner.output]
            rebuilt.append(copied)
        for branch_output, if_output in zip(branch.output, node.output):
            rebuilt.append(helper.make_node("Identity", [outer(branch_output.name)], [if_output], name=f"{prefix}output"))
        inlined += 1
    del graph.node[:]
    graph.node.extend(rebuilt)
    return inlined


def _fold_once(model: onnx.ModelProto, report: ShapeFoldingReport) -> None:
    """One round of the three rewrites, on the values symbolic shape inference finds now."""
    inferred = _infer_symbolic_values(model)
    graph = model.graph
    renamed: Dict[str, str] = {}
    first_with_value: Dict[Tuple[int, bool, Tuple[Any, ...]], str] = {}
    constants: List[onnx.TensorProto] = []
    graph_outputs = {output.name for output in graph.output}
    for node in graph.node:
        if node.op_type == "Constant":
            continue  # already a constant; ONNX Runtime folds what reads only constants
        for output in node.output:
            element_type = inferred.element_types.get(output)
            if output in graph_outputs or output not in inferred.values or element_type not in _FOLDABLE_TYPES:
                continue
            formulas = _as_formulas(inferred.values[output])
            if formulas is None:
                continue
            is_scalar, elements = formulas
            numbers = _numbers(elements)
            if numbers is not None:
                array = np.array(numbers[0] if is_scalar else numbers, dtype=_FOLDABLE_TYPES[element_type])
                constants.append(numpy_helper.from_array(array, f"{output}/folded"))
                renamed[output] = f"{output}/folded"
                report.constants += 1
                continue
            key = (element_type, is_scalar, elements)
            if key in first_with_value:
                renamed[output] = first_with_value[key]
                report.deduplicated += 1
            else:
                first_with_value[key] = output
    graph.initializer.extend(constants)
    _rename_readers(model, renamed)

    for node in graph.node:
        if node.op_type != "Reshape":
            continue
        if any(attribute.name == "allowzero" and attribute.i for attribute in node.attribute):
            continue
        # A target folded above is a constant already (not in `inferred.values` under its new name).
        formulas = _as_formulas(inferred.values[node.input[1]]) if node.input[1] in inferred.values else None
        if formulas is None or formulas[0]:
            continue
        target = _copy_dimension_target(formulas[1], inferred.shapes.get(node.input[0]), inferred.symbols)
        if target is None:
            continue
        name = f"{node.output[0]}/constant_target"
        graph.initializer.append(numpy_helper.from_array(np.array(target, dtype=np.int64), name))
        node.input[1] = name
        report.reshape_targets += 1
    remove_unused_nodes(model)


def fold_static_shapes_in_model(model: onnx.ModelProto, max_rounds: int = 64) -> ShapeFoldingReport:
    """Fold the static shape values of `model` into constants, compute repeated ones once, and drop the rest.

    See the module docstring for the three rewrites. Symbolic shape inference stops at the first If it cannot
    see through, so each round decides the next layer's relative-position If (`_inline_decided_branches`) and
    the next round reaches one layer further: rounds repeat until none decides an If (a 12-layer encoder takes
    13 rounds; `max_rounds` bounds it).
    Float tensors are never touched, so the outputs are the plain graph's; `fold_static_shapes` checks that on
    real runs.

    Args:
        model: An ONNX graph (modified in place), in topological order.
        max_rounds: The most rounds of inference and rewriting.

    Returns:
        What changed.
    """
    report = ShapeFoldingReport(nodes_before=len(model.graph.node), shape_ops_before=shape_op_counts(model))
    for _ in range(max_rounds):
        _fold_once(model, report)
        report.constants += _fold_constant_nodes(model)
        inlined = _inline_decided_branches(model)
        report.branches_inlined += inlined
        if not inlined:
            break
    report.nodes_after = len(model.graph.node)
    report.shape_ops_after = shape_op_counts(model)
    return report


def _check_feeds(model: onnx.ModelProto, shapes: Sequence[Tuple[int, int]]) -> List[Dict[str, np.ndarray]]:
    """Token batches of `shapes` for the graph's integer inputs; text i > 0 is padded to a shorter length."""
    feeds = []
    names = [graph_input.name for graph_input in model.graph.input]
    for seed, (texts, length) in enumerate(shapes):
        generator = np.random.default_rng(seed)
        input_ids = generator.integers(5, 100, size=(texts, length)).astype(np.int64)
        attention_mask = np.ones_like(input_ids)
        for row in range(1, texts):
            attention_mask[row, max(1, length * (texts - row) // texts) :] = 0
        input_ids[attention_mask == 0] = 0
        tensors = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": np.zeros_like(input_ids)}
        feeds.append({name: tensors[name] for name in names})
    return feeds


def check_same_outputs(
    plain: os.PathLike | str,
    folded: os.PathLike | str,
    shapes: Sequence[Tuple[int, int]] = CHECK_SHAPES,
    tolerance: float = CHECK_TOLERANCE,
) -> float:
    """Run both encoder files on token batches of `shapes` and return the largest output difference.

    Args:
        plain: The exported encoder.
        folded: Its folded copy.
        shapes: (texts, tokens) of the batches; texts after the first are padded.
        tolerance: The largest difference accepted.

    Returns:
        The largest absolute difference over every output and batch.

    Raises:
        ShapeFoldingError: If a difference exceeds `tolerance`, or the output shapes differ.
    """
    import onnxruntime as ort

    sessions = [ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]) for path in (plain, folded)]
    worst = 0.0
    for feed in _check_feeds(onnx.load(str(plain), load_external_data=False), shapes):
        expected, actual = (session.run(None, feed) for session in sessions)
        for want, got in zip(expected, actual):
            if want.shape != got.shape:
                raise ShapeFoldingError(f"Output shape {got.shape} instead of {want.shape} on input {feed['input_ids'].shape}.")
            worst = max(worst, float(np.abs(want.astype(np.float64) - got.astype(np.float64)).max(initial=0.0)))
    if worst > tolerance:
        raise ShapeFoldingError(f"The folded encoder differs from the plain one by {worst:.2e} (> {tolerance:.0e}).")
    return worst


def fold_static_shapes(
    folder: os.PathLike | str,
    variant: str = DEFAULT_VARIANT,
    output_dir: Optional[os.PathLike | str] = None,
) -> Path:
    """Add an FP32 encoder variant whose static shape values are folded (`fold_static_shapes_in_model`).

    The encoder's outputs are the plain export's (checked here on `CHECK_SHAPES` before the variant is
    registered); the heads share the FP32 files. Load it with `precision="shapes"`.

    Args:
        folder: A folder written by `optimum-cli export onnx`.
        variant: Name under which the variant is registered (default `"shapes"`).
        output_dir: Write into a copy of `folder` at this new path instead of modifying `folder`.

    Returns:
        The folder that now holds the variant.

    Raises:
        ShapeFoldingError: If the folded encoder does not reproduce the plain one; nothing is registered then.
    """
    folder = prepare_folder(folder, output_dir)
    with VariantStaging(folder, variant) as staging:
        encoder = fp32_graph_paths(folder)["encoder"]
        model = onnx.load(str(encoder))
        report = fold_static_shapes_in_model(model)
        staged = staging.path / staging.file_name("encoder")
        save_graph(model, staged)
        del model
        worst = check_same_outputs(encoder, staged)
        logger.info(
            "Folded %d shape values into constants, computed %d once, made %d reshape targets constant: %d -> %d nodes "
            "(max abs diff %.1e).", report.constants, report.deduplicated, report.reshape_targets, report.nodes_before,
            report.nodes_after, worst,
        )  # fmt: skip
        staging.install(
            ["encoder"],
            {"tool": "optimum_gliner2.variants.shape_folding", **report.as_recipe(), "max_abs_diff": worst},
        )
    return folder
