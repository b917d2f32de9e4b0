"""The FLOP counter of the roofline benchmark (`benchmarks/flops.py`) against FLOPs derived from the checkpoint's config.

On the tiny `deberta_lstm` export (DeBERTa-v2, 2 layers, hidden 64, 4 heads, feed-forward 128, 256 position
buckets, c2p + p2c with shared keys), for B texts of S tokens and T = B x S, per layer:

- Linear layers: query, key, value and output projections (4 h^2) and the feed-forward pair (2 h ffn), 2 T each;
- content attention: Q K^T and probabilities x V, 2 B S^2 h each;
- relative position: content->position and position->content, 2 B S R h each, where R is the number of rows of the
  relative-position table a text of S tokens reaches: 2S - 1 while S <= buckets / 2 + 1 (no log bucketing), fewer
  beyond;
- folded at load: the query and key projections of the 2 x buckets position rows, 2 (2 buckets) h^2 each.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Dict

import numpy as np
import pytest

from benchmarks.flops import count_flops

#: (texts, tokens): all within the un-bucketed range of 256 buckets (S <= 129).
SHAPES = ((1, 7), (3, 33), (2, 100), (4, 129))


@pytest.fixture(scope="module")
def encoder_config(checkpoint_dirs) -> dict:
    return json.loads((Path(checkpoint_dirs["deberta_lstm"]) / "encoder_config" / "config.json").read_text())


@pytest.fixture(scope="module")
def encoder_path(exported_dirs) -> Path:
    return Path(exported_dirs["deberta_lstm"]) / "encoder.onnx"


def _feed(texts: int, tokens: int) -> Dict[str, np.ndarray]:
    input_ids = np.random.default_rng(texts * 1000 + tokens).integers(5, 200, size=(texts, tokens)).astype(np.int64)
    return {"input_ids": input_ids, "attention_mask": np.ones_like(input_ids)}


def _expected(config: dict, texts: int, tokens: int) -> Dict[str, int]:
    """FLOPs per kind from the config, for S within the un-bucketed range (every relative position its own row)."""
    hidden, layers, ffn = config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"]
    assert set(config["pos_att_type"]) == {"c2p", "p2c"} and config["share_att_key"], "the formulas below assume these"
    assert tokens <= config["position_buckets"] // 2 + 1
    reached_rows = 2 * tokens - 1
    return {
        "linear": layers * 2 * texts * tokens * (4 * hidden * hidden + 2 * hidden * ffn),
        "attention": layers * 2 * (2 * texts * tokens * tokens * hidden),
        "relative_position": layers * 2 * (2 * texts * tokens * reached_rows * hidden),
        "constant": 0,
        "folded_at_load": layers * 2 * (2 * (2 * config["position_buckets"]) * hidden * hidden),
    }


@pytest.mark.parametrize("texts,tokens", SHAPES)
def test_counts_equal_the_config_formulas(encoder_path, encoder_config, texts, tokens):
    count = count_flops(encoder_path, _feed(texts, tokens))
    expected = _expected(encoder_config, texts, tokens)
    assert count.uncounted == []
    assert count.by_kind() == {kind: expected[kind] for kind in ("linear", "attention", "relative_position", "constant")}
    assert count.folded_at_load == expected["folded_at_load"]
    assert count.per_call == expected["linear"] + expected["attention"] + expected["relative_position"]


def test_linear_gemm_shapes_are_the_config_layers(encoder_path, encoder_config):
    """The roofline's own-shape roof times one-node MatMuls of exactly the encoder's Linear layers: per layer four
    h x h projections and the feed-forward pair, each on B x S rows, adding up to the counted Linear FLOPs."""
    from benchmarks.roofline import linear_gemm_shapes

    texts, tokens = 3, 33
    count = count_flops(encoder_path, _feed(texts, tokens))
    hidden, layers, ffn = encoder_config["hidden_size"], encoder_config["num_hidden_layers"], encoder_config["intermediate_size"]
    rows = texts * tokens
    assert linear_gemm_shapes(count) == {(rows, hidden, hidden): 4 * layers, (rows, hidden, ffn): layers, (rows, ffn, hidden): layers}
    total = sum(2 * r * k * n * times for (r, k, n), times in linear_gemm_shapes(count).items())
    assert total == count.by_kind()["linear"]


def test_counts_scale_with_texts_and_length(encoder_path):
    base = count_flops(encoder_path, _feed(2, 50)).by_kind()
    twice_the_texts = count_flops(encoder_path, _feed(4, 50)).by_kind()
    twice_the_length = count_flops(encoder_path, _feed(2, 100)).by_kind()
    assert twice_the_texts == {kind: 2 * flops for kind, flops in base.items()}
    assert twice_the_length["linear"] == 2 * base["linear"]
    assert twice_the_length["attention"] == 4 * base["attention"]
    # 2 x the tokens, each reaching 2 x 100 - 1 rows instead of 2 x 50 - 1.
    assert twice_the_length["relative_position"] * 99 == base["relative_position"] * 2 * 199

    # Past buckets / 2 + 1 tokens the far positions share log-spaced rows: fewer rows than 2S - 1, still more
    # than at any shorter length; the Linear layers and content attention do not care.
    long = count_flops(encoder_path, _feed(1, 300)).by_kind()
    at_129 = count_flops(encoder_path, _feed(1, 129)).by_kind()
    per_row = at_129["relative_position"] // (129 * (2 * 129 - 1))
    reached_rows, remainder = divmod(long["relative_position"], 300 * per_row)
    assert remainder == 0
    assert 2 * 129 - 1 < reached_rows < 2 * 300 - 1
    assert long["linear"] * 129 == at_129["linear"] * 300
    assert long["attention"] * 129**2 == at_129["attention"] * 300**2


def test_variants_count_the_same_products(exported_dirs, tmp_path):
    """The fused encoder (MultiHeadAttention) and the default INT8 encoder (MatMulNBits) compute the same products
    as the plain one; counted on their own graphs they must give the plain graph's per-call FLOPs, kind by kind."""
    from optimum_gliner2.bundle.format import GLiNER2OnnxBundle
    from optimum_gliner2.variants import fuse_attention_gliner2, quantize_gliner2

    logging.getLogger("onnxruntime.quantization").setLevel(logging.WARNING)
    folder = fuse_attention_gliner2(exported_dirs["deberta_lstm"], output_dir=tmp_path / "variants")
    quantize_gliner2(folder, method="per_row", variant="int8_per_row")
    quantize_gliner2(folder, method="per_row_integer", variant="int8_integer")
    feed = _feed(3, 40)
    plain = count_flops(GLiNER2OnnxBundle.load(folder, precision="fp32").graph_files["encoder"], feed)
    for precision, op_type in (("fused", "MultiHeadAttention"), ("int8_per_row", "MatMulNBits"), ("int8_integer", "MatMulIntegerToFloat")):
        variant = count_flops(GLiNER2OnnxBundle.load(folder, precision=precision).graph_files["encoder"], feed)
        assert op_type in {node.op_type for node in variant.nodes}
        assert variant.by_kind() == plain.by_kind(), precision
