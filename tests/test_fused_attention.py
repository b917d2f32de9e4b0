"""The `fused` variant: DeBERTa attention in ONNX Runtime's MultiHeadAttention, with the FP32 encoder's output.

Made with the variant command on the session's exports of the tiny fixtures (span `deberta_lstm`, GLiNER2.5
`boundary`); BERT-family encoders are refused (ONNX Runtime's own fusion, the `o2` variant, covers them).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from optimum_gliner2 import ORTModelForGLiNER2
from optimum_gliner2.bundle.format import GLiNER2OnnxBundle
from optimum_gliner2.runtime import GLiNER2ONNXRuntime
from optimum_gliner2.variants import NoDebertaAttentionError, fuse_attention_gliner2
from optimum_gliner2.variants.cli import main as variants_command
from tests.support.agreement import assert_same_answers_as_fp32, batch_sensitivity, staggered_padded_tokens
from tests.support.parity_corpus import BOUNDARY_CASES

#: (texts, tokens) checked against the plain export; every text after the first is padded to a shorter length.
SHAPES = ((1, 7), (3, 33), (4, 130), (2, 300))


@pytest.fixture(scope="module")
def fused_span(exported_dirs, tmp_path_factory) -> Path:
    folder = Path(shutil.copytree(exported_dirs["deberta_lstm"], tmp_path_factory.mktemp("fused_span") / "export"))
    variants_command([str(folder), "--fused-attention"])
    return folder


@pytest.fixture(scope="module")
def fused_boundary(boundary_exported_dirs, tmp_path_factory) -> Path:
    folder = Path(shutil.copytree(boundary_exported_dirs["boundary"], tmp_path_factory.mktemp("fused_boundary") / "export"))
    fuse_attention_gliner2(folder)
    return folder


def _encoder(folder: Path, precision: str) -> ort.InferenceSession:
    path = GLiNER2OnnxBundle.load(folder, precision=precision).graph_files["encoder"]
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_attention_runs_in_the_fused_op(fused_span, fused_boundary):
    for folder in (fused_span, fused_boundary):
        bundle = GLiNER2OnnxBundle.load(folder, precision="fused")
        assert bundle.graph_files["encoder"].name == "encoder_fused.onnx"
        graph = onnx.load(str(bundle.graph_files["encoder"])).graph
        ops = [node.op_type for node in graph.node]
        assert ops.count("MultiHeadAttention") == 2  # one per layer of the tiny fixtures
        assert "Softmax" not in ops  # the encoder's only Softmaxes were the attentions'
        fused = [node for node in graph.node if node.op_type == "MultiHeadAttention"]
        assert all(node.domain == "com.microsoft" and node.input[5] for node in fused)  # with attention_bias
        recipe = bundle.metadata["variant_recipes"]["fused"]
        assert recipe["fused"] == 2 and recipe["op"] == "com.microsoft.MultiHeadAttention"
        # The heads are the FP32 files.
        assert all(path.name == f"{graph_name}.onnx" for graph_name, path in bundle.graph_files.items() if graph_name != "encoder")


@pytest.mark.parametrize("texts,length", SHAPES)
def test_encoder_equals_the_plain_export(fused_span, texts, length):
    input_ids, attention_mask = staggered_padded_tokens(fused_span, texts, length)
    feed = {"input_ids": input_ids, "attention_mask": attention_mask}
    expected = _encoder(fused_span, "fp32").run(None, feed)[0]
    actual = _encoder(fused_span, "fused").run(None, feed)[0]
    # Padded positions included: the fused graph keeps the plain graph's uniform attention on them.
    assert np.abs(actual - expected).max() <= 1e-4  # measured 3e-6 .. 2e-5 (|hidden| up to ~3.8)


def test_encoder_equals_pytorch(fused_span, torch_models):
    import torch

    input_ids, attention_mask = staggered_padded_tokens(fused_span, 3, 57, seed=1)
    with torch.no_grad():
        expected = torch_models["deberta_lstm"].encoder(
            input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(attention_mask)
        ).last_hidden_state.numpy()
    actual = _encoder(fused_span, "fused").run(None, {"input_ids": input_ids, "attention_mask": attention_mask})[0]
    assert np.abs(actual - expected).max() <= 1e-4


def test_boundary_encoder_equals_the_plain_export(fused_boundary):
    input_ids, attention_mask = staggered_padded_tokens(fused_boundary, 3, 90, seed=2)
    feed = {"input_ids": input_ids, "attention_mask": attention_mask}
    expected = _encoder(fused_boundary, "fp32").run(None, feed)[0]
    assert np.abs(_encoder(fused_boundary, "fused").run(None, feed)[0] - expected).max() <= 1e-4


def test_span_answers_equal_fp32(fused_span):
    model = ORTModelForGLiNER2.from_pretrained(fused_span, precision="fused")
    assert model.precision == "fused"
    assert_same_answers_as_fp32(model, fused_span)
    assert batch_sensitivity(model) == 1.0


def test_boundary_answers_equal_fp32(fused_boundary):
    model = GLiNER2ONNXRuntime.from_pretrained(fused_boundary, precision="fused")
    assert_same_answers_as_fp32(model, fused_boundary, BOUNDARY_CASES)


def test_bert_encoders_are_refused_and_nothing_is_registered(exported_dirs, tmp_path):
    folder = Path(shutil.copytree(exported_dirs["bert"], tmp_path / "bert"))
    with pytest.raises(NoDebertaAttentionError, match="not a DeBERTa disentangled self-attention.*'o2' variant"):
        fuse_attention_gliner2(folder)
    assert GLiNER2OnnxBundle.load(folder).precisions == ("fp32",)
    assert not list(folder.glob(".staging-*")) and not list(folder.glob("encoder_fused*"))
    with pytest.raises(SystemExit) as exit_info:
        variants_command([str(folder), "--fused-attention"])
    assert exit_info.value.code == 1
