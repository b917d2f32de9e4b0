"""INT8, FP16 and O2 variants of a GLiNER2.5 (boundary) export, made with the same variant tool.

The figures asserted are those measured on the tiny random `boundary` fixture, whose near-one-hot
attention makes INT8 its worst case (the span fixtures behave alike; see docs/precision.md): O2 is
exact, FP16 keeps most decoded texts, and INT8 keeps most confident items with bounded drift.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from optimum_gliner2.bundle.format import GLiNER2OnnxBundle
from optimum_gliner2.runtime import GLiNER2ONNXRuntime
from optimum_gliner2.variants.cli import main as variants_command
from tests.support.agreement import corpus_agreement, run_corpus
from tests.support.parity_corpus import BOUNDARY_CASES


@pytest.fixture(scope="module")
def boundary_variants(boundary_exported_dirs, tmp_path_factory):
    """The `boundary` export with int8, fp16 and o2, and its FP32 answers on the boundary corpus."""
    folder = Path(shutil.copytree(boundary_exported_dirs["boundary"], tmp_path_factory.mktemp("boundary_variants") / "export"))
    variants_command([str(folder), "--int8", "--fp16", "--optimize", "O2"])
    return folder, run_corpus(GLiNER2ONNXRuntime.from_pretrained(folder), BOUNDARY_CASES)


def test_variants_are_registered_with_the_boundary_graphs(boundary_variants):
    folder, _ = boundary_variants
    bundle = GLiNER2OnnxBundle.load(folder)
    assert bundle.architecture == "boundary"
    assert set(bundle.precisions) == {"fp32", "int8", "fp16", "o2"}
    for precision in bundle.precisions:
        graphs = GLiNER2OnnxBundle.load(folder, precision).graph_files
        assert set(graphs) == {"encoder", "boundary_head", "classifier", "relation_scorer", "explicit_spans", "record_head"}
        # Only the encoder changes: the heads and the classifier stay the FP32 graphs.
        assert graphs["boundary_head"].name == "boundary_head.onnx"
        assert graphs["relation_scorer"].name == "relation_scorer.onnx"
        assert graphs["record_head"].name == "record_head.onnx"


def test_o2_is_exact(boundary_variants):
    folder, reference = boundary_variants
    agreement = corpus_agreement(reference, GLiNER2ONNXRuntime.from_pretrained(folder, precision="o2"), BOUNDARY_CASES)
    assert agreement["texts_same"] == agreement["texts_total"]  # measured 113/113
    assert agreement["max_drift"] < 1e-4


def test_fp16_keeps_most_answers(boundary_variants):
    folder, reference = boundary_variants
    fp16 = GLiNER2ONNXRuntime.from_pretrained(folder, precision="fp16")
    agreement = corpus_agreement(reference, fp16, BOUNDARY_CASES)
    assert agreement["texts_same"] / agreement["texts_total"] >= 0.8  # measured 197/223 (88.3%)
    assert agreement["confident_kept"] / agreement["confident_total"] >= 0.95  # measured 250/257
    # Attribute confidences (a softmax over each group's labels, scored in a pool of their own)
    # move most: up to 0.25 on the random fixtures; everything else stays within 0.03.
    assert agreement["max_drift"] < 0.35  # measured 0.254
    without_attributes = [case for case in BOUNDARY_CASES if "attribute" not in case.name]
    assert corpus_agreement(reference, fp16, without_attributes)["max_drift"] < 0.03  # measured 0.021


def test_int8_keeps_confident_items(boundary_variants):
    folder, reference = boundary_variants
    agreement = corpus_agreement(reference, GLiNER2ONNXRuntime.from_pretrained(folder, precision="int8"), BOUNDARY_CASES)
    assert agreement["confident_kept"] / agreement["confident_total"] >= 0.75  # measured 142/170 (83.5%)
    assert agreement["mean_drift"] < 0.08  # measured 0.047 on identically decoded texts
