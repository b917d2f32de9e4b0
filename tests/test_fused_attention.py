"""The `fused` variant: DeBERTa attention in ONNX Runtime's MultiHeadAttention, with the FP32 encoder's output.

Made with the variant command on the session's exports of the tiny fixtures (span `deberta_lstm`, GLiNER2.5
`boundary`); BERT-family encoders are refused (ONNX Runtime's own fusion, the `o2` variant, covers them).
The INT8 variants quantize this encoder by default; the last tests check that they do, and where they do not.
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
from optimum_gliner2.variants import NoDebertaAttentionError, fuse_attention_gliner2, quantize_gliner2
from optimum_gliner2.variants.cli import main as variants_command
from tests.support.agreement import assert_same_answers_as_fp32, batch_sensitivity, staggered_padded_tokens
from tests.support.cpu import needs_exact_integer_gemm
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


# -- INT8 on the fused encoder -------------------------------------------------------------------


@pytest.mark.parametrize("method", ["per_row", pytest.param("per_row_integer", marks=needs_exact_integer_gemm)])
def test_int8_quantizes_the_fused_encoder_with_the_plain_int8s_numbers(exported_dirs, tmp_path, method):
    folder = Path(shutil.copytree(exported_dirs["deberta_lstm"], tmp_path / "export"))
    quantize_gliner2(folder, method=method)  # fused_attention=None: fused, the encoder being DeBERTa's
    quantize_gliner2(folder, method=method, fused_attention=False, variant="int8_plain_attention")
    recipes = GLiNER2OnnxBundle.load(folder).metadata["variant_recipes"]
    assert recipes["int8"]["fused_attention"]["fused"] == 2 and recipes["int8_plain_attention"]["fused_attention"] is None
    fused_ops = [node.op_type for node in onnx.load(str(folder / "encoder_int8.onnx")).graph.node]
    plain_ops = [node.op_type for node in onnx.load(str(folder / "encoder_int8_plain_attention.onnx")).graph.node]
    assert fused_ops.count("MultiHeadAttention") == 2 and "Softmax" not in fused_ops
    assert "MultiHeadAttention" not in plain_ops
    quantized_op = {"per_row": "MatMulNBits", "per_row_integer": "MatMulIntegerToFloat"}[method]
    assert fused_ops.count(quantized_op) == plain_ops.count(quantized_op) > 0  # the same Linear layers quantized
    assert not list(folder.glob(".staging-*")) and not list(folder.glob("*attention_fused*"))
    for texts, length in SHAPES:
        input_ids, attention_mask = staggered_padded_tokens(folder, texts, length)
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        fp32, fused, plain = (_encoder(folder, p).run(None, feed)[0] for p in ("fp32", "int8", "int8_plain_attention"))
        real = attention_mask.astype(bool)

        def relative(actual, reference):
            return float(np.linalg.norm((actual - reference)[real]) / np.linalg.norm(reference[real]))

        # The fused attention is exact in FP32 (1e-6), so the two INT8 encoders differ only where an activation
        # rounds to the other side of a quantization level: measured <= 0.3%, against INT8's own 8-11% from FP32.
        assert relative(fused, plain) <= min(0.01, relative(plain, fp32) / 10), (texts, length)


def test_int8_fuses_where_it_can_and_requires_it_only_when_asked(exported_dirs, tmp_path):
    bert = Path(shutil.copytree(exported_dirs["bert"], tmp_path / "bert"))
    with pytest.raises(NoDebertaAttentionError):
        quantize_gliner2(bert, method="per_row", fused_attention=True)
    assert GLiNER2OnnxBundle.load(bert).precisions == ("fp32",) and not list(bert.glob(".staging-*"))
    quantize_gliner2(bert, method="per_row")  # by default a BERT-family encoder is quantized as exported
    assert GLiNER2OnnxBundle.load(bert).metadata["variant_recipes"]["int8"]["fused_attention"] is None
    deberta = Path(shutil.copytree(exported_dirs["deberta_lstm"], tmp_path / "deberta"))
    with pytest.raises(ValueError, match='fused_attention=True goes with method="per_row_integer" or "per_row"'):
        quantize_gliner2(deberta, method="dynamic", fused_attention=True)
    quantize_gliner2(deberta, method="dynamic")  # ORTQuantizer cannot type MultiHeadAttention's outputs
    assert GLiNER2OnnxBundle.load(deberta).metadata["variant_recipes"]["int8"]["fused_attention"] is None
    variants_command([str(deberta), "--int8", "--int8-method", "per_row", "--int8-plain-attention"])
    recipe = GLiNER2OnnxBundle.load(deberta).metadata["variant_recipes"]["int8"]
    assert recipe["method"] == "per_row" and recipe["fused_attention"] is None
    assert "MultiHeadAttention" not in {node.op_type for node in onnx.load(str(deberta / "encoder_int8.onnx")).graph.node}


def test_the_int8_encoder_expands_its_position_indices_layer_by_layer(exported_dirs, tmp_path):
    """ONNX Runtime merges identical expressions: an index expansion shared by all layers would stay alive
    through the whole encoder (2 x 112 MB at 8 x 540 tokens on the full-size model). Each INT8 expansion takes
    its shape from its own layer's scores, so that none is merged, and the values are the shared ones'."""
    folder = Path(shutil.copytree(exported_dirs["deberta_lstm"], tmp_path / "export"))
    fuse_attention_gliner2(folder)
    quantize_gliner2(folder, method="per_row")
    recipes = GLiNER2OnnxBundle.load(folder).metadata["variant_recipes"]
    assert recipes["fused"]["index_expanded_per_layer"] is False
    assert recipes["int8"]["fused_attention"]["index_expanded_per_layer"] is True

    def expansions_after_onnx_runtimes_merging(file: Path) -> int:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # includes merging
        options.optimized_model_filepath = str(tmp_path / f"optimized_{file.name}")
        ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
        return [node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node].count("Expand")

    assert expansions_after_onnx_runtimes_merging(folder / "encoder_fused.onnx") == 2  # one per term kind, shared
    assert expansions_after_onnx_runtimes_merging(folder / "encoder_int8.onnx") == 4  # two per layer, two layers
