"""The `shapes` variant: the FP32 encoder with its static shape values folded, and the plain encoder's output.

Made with the variant command on the session's exports of the tiny fixtures (span `deberta_lstm`, BERT `bert`).
"""

from __future__ import annotations

import collections
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from optimum_gliner2 import ORTModelForGLiNER2
from optimum_gliner2.bundle.format import GLiNER2OnnxBundle
from optimum_gliner2.variants import fold_static_shapes
from optimum_gliner2.variants.cli import main as variants_command
from optimum_gliner2.variants.shape_folding import fold_static_shapes_in_model
from tests.support.agreement import assert_same_answers_as_fp32, batch_sensitivity, staggered_padded_tokens

#: (texts, tokens) checked against the plain export; every text after the first is padded to a shorter length.
#: 1 token and 600 tokens (beyond the 512 relative positions) are the edges of the relative-position code.
SHAPES = ((1, 1), (1, 7), (3, 33), (4, 130), (2, 600))
#: Ops that only compute shapes; the folded graph must run far fewer of them.
SHAPE_ONLY_OPS = ("Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice")


@pytest.fixture(scope="module")
def folded_span(exported_dirs, tmp_path_factory) -> Path:
    folder = Path(shutil.copytree(exported_dirs["deberta_lstm"], tmp_path_factory.mktemp("folded_span") / "export"))
    variants_command([str(folder), "--fold-shapes"])
    return folder


def _encoder_path(folder: Path, precision: str) -> Path:
    return GLiNER2OnnxBundle.load(folder, precision=precision).graph_files["encoder"]


def _encoder(folder: Path, precision: str, optimized: bool = True) -> ort.InferenceSession:
    options = ort.SessionOptions()
    if not optimized:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(_encoder_path(folder, precision)), options, providers=["CPUExecutionProvider"])


def _as_run_ops(path: Path, tmp_path: Path) -> collections.Counter:
    """Op counts of the graph ONNX Runtime executes (after its own load-time optimization)."""
    optimized = tmp_path / f"{path.stem}_as_run.onnx"
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(optimized)
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return collections.Counter(node.op_type for node in onnx.load(str(optimized)).graph.node)


def test_variant_is_registered_with_standard_ops_only(folded_span):
    bundle = GLiNER2OnnxBundle.load(folded_span, precision="shapes")
    assert bundle.graph_files["encoder"].name == "encoder_shapes.onnx"
    graph = onnx.load(str(bundle.graph_files["encoder"])).graph
    assert {node.domain for node in graph.node} <= {"", "ai.onnx"}  # as portable as the plain export
    recipe = bundle.metadata["variant_recipes"]["shapes"]
    assert recipe["tool"] == "optimum_gliner2.variants.shape_folding"
    assert recipe["max_abs_diff"] <= 1e-4 and recipe["branches_inlined"] == 2  # one relative-position If per layer
    # The heads are the FP32 files.
    assert all(path.name == f"{name}.onnx" for name, path in bundle.graph_files.items() if name != "encoder")


def test_shape_ops_are_removed(folded_span, tmp_path):
    plain, folded = (_encoder_path(folded_span, precision) for precision in ("fp32", "shapes"))
    stored = {path: collections.Counter(node.op_type for node in onnx.load(str(path)).graph.node) for path in (plain, folded)}
    as_run = {path: _as_run_ops(path, tmp_path) for path in (plain, folded)}
    for counts in (stored, as_run):
        shape_only = {path: sum(counts[path][op] for op in SHAPE_ONLY_OPS) for path in (plain, folded)}
        assert shape_only[folded] <= shape_only[plain] / 3, shape_only  # measured 295 -> 45 stored, 185 -> 33 as run
        assert counts[folded]["Shape"] <= 2 and counts[folded]["If"] == 0, counts[folded]
    assert sum(as_run[folded].values()) < 0.6 * sum(as_run[plain].values())  # measured 387 -> 171 nodes run


@pytest.mark.parametrize("texts,length", SHAPES)
def test_encoder_equals_the_plain_export(folded_span, texts, length):
    input_ids, attention_mask = staggered_padded_tokens(folded_span, texts, length)
    feed = {"input_ids": input_ids, "attention_mask": attention_mask}
    expected = _encoder(folded_span, "fp32").run(None, feed)[0]
    actual = _encoder(folded_span, "shapes").run(None, feed)[0]
    assert actual.shape == expected.shape
    # ONNX Runtime fuses a little more once shapes are known (a scale into a MatMul): float rounding only.
    assert np.abs(actual - expected).max() <= 1e-4  # measured ~2e-5 (|hidden| up to ~3.8)
    # Without ONNX Runtime's own rewrites, the two graphs compute the very same floats.
    unoptimized = [_encoder(folded_span, precision, optimized=False).run(None, feed)[0] for precision in ("fp32", "shapes")]
    assert np.array_equal(*unoptimized)


def test_span_answers_equal_fp32(folded_span):
    model = ORTModelForGLiNER2.from_pretrained(folded_span, precision="shapes")
    assert model.precision == "shapes"
    assert_same_answers_as_fp32(model, folded_span)
    assert batch_sensitivity(model) == 1.0


def test_bert_encoder_is_folded_too(exported_dirs, tmp_path):
    folder = fold_static_shapes(exported_dirs["bert"], output_dir=tmp_path / "bert")
    input_ids, attention_mask = staggered_padded_tokens(folder, 3, 45, seed=3)
    feed = {"input_ids": input_ids, "attention_mask": attention_mask}
    expected = _encoder(folder, "fp32").run(None, feed)[0]
    assert np.abs(_encoder(folder, "shapes").run(None, feed)[0] - expected).max() <= 1e-4
    report = fold_static_shapes_in_model(onnx.load(str(_encoder_path(folder, "fp32"))))
    assert report.shape_ops_after["Shape"] < report.shape_ops_before["Shape"]
