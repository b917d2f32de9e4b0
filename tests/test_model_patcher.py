"""Export-time rewrites (exporters/model_patcher.py): same numbers as the code they replace, restored on exit.

The exported graphs are compared with gliner2 by the export's own validation and by the parity suites;
these tests pin the rewrites themselves, at lengths and configurations the fixtures do not reach.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import DebertaV2Config, DebertaV2Model
from transformers.models.deberta_v2.modeling_deberta_v2 import DisentangledSelfAttention

from optimum_gliner2.exporters.model_patcher import (
    GLiNER2ModelPatcher,
    relative_positions_within_reach,
    span_windows_as_gather,
    transformer_layers_without_fast_path,
)

#: mDeBERTa-v3's attention settings (gliner2-multi-v1), and DeBERTa-v2's other layout: separate
#: position projections, content-to-position only.
ATTENTION_LAYOUTS = {
    "shared_keys_c2p_p2c": {"share_att_key": True, "pos_att_type": ["p2c", "c2p"]},
    "own_position_projection_c2p": {"share_att_key": False, "pos_att_type": ["c2p"]},
}


def _deberta(layout: str) -> DebertaV2Model:
    torch.manual_seed(0)
    config = DebertaV2Config(
        vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
        max_position_embeddings=512, relative_attention=True, position_buckets=256, max_relative_positions=-1,
        norm_rel_ebd="layer_norm", position_biased_input=False, **ATTENTION_LAYOUTS[layout],
    )  # fmt: skip
    return DebertaV2Model(config).eval()


def _inputs(length: int):
    generator = torch.Generator().manual_seed(length)
    input_ids = torch.randint(0, 300, (2, length), generator=generator)
    attention_mask = torch.ones(2, length, dtype=torch.long)
    attention_mask[1, (length + 1) // 2 :] = 0  # one padded row
    return input_ids, attention_mask


@pytest.mark.parametrize("layout", list(ATTENTION_LAYOUTS))
@pytest.mark.parametrize("length", [1, 2, 16, 129, 300, 700])  # 129+: log-bucketed distances; 700 > 512 rows
def test_relative_positions_within_reach_changes_no_value(layout, length):
    model = _deberta(layout)
    input_ids, attention_mask = _inputs(length)
    with torch.no_grad():
        expected = model(input_ids, attention_mask).last_hidden_state
        with relative_positions_within_reach():
            rewritten = model(input_ids, attention_mask).last_hidden_state
    torch.testing.assert_close(rewritten, expected, rtol=0, atol=1e-6)


def test_relative_positions_within_reach_scores_only_reachable_rows():
    model = _deberta("shared_keys_c2p_p2c")
    input_ids, attention_mask = _inputs(16)  # distances -15..15: 31 of the 512 rows

    def flops() -> int:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(input_ids, attention_mask)
        return counter.get_total_flops()

    original = flops()
    with relative_positions_within_reach():
        rewritten = flops()
    # Per layer and score type, the product against the position rows shrinks from 512 to 31 columns.
    batch_heads, length, head_size, layers = 2 * 4, 16, 16, 2
    saved = 2 * layers * 2 * batch_heads * length * head_size * (512 - 31)
    assert original - rewritten == saved


def _patch_targets():
    from gliner2.layers import SpanMarkerV0

    return {
        "SpanMarkerV0.score_queries": (SpanMarkerV0, "score_queries"),
        "TransformerEncoderLayer.forward": (torch.nn.TransformerEncoderLayer, "forward"),
        "mha.get_fastpath_enabled": (torch.backends.mha, "get_fastpath_enabled"),
        "DisentangledSelfAttention.disentangled_attention_bias": (DisentangledSelfAttention, "disentangled_attention_bias"),
    }


def _current():
    return {name: vars(owner)[attribute] for name, (owner, attribute) in _patch_targets().items()}


@pytest.mark.parametrize("patch", [span_windows_as_gather, transformer_layers_without_fast_path, relative_positions_within_reach])
def test_each_rewrite_restores_what_it_patched_even_on_error(patch):
    before = _current()
    with pytest.raises(RuntimeError, match="inside"):
        with patch():
            assert _current() != before
            raise RuntimeError("inside")
    assert _current() == before


def test_model_patcher_applies_every_rewrite_and_restores_them():
    from optimum_gliner2.exporters.model_configs import GLiNER2ClassifierOnnxConfig
    from transformers import PretrainedConfig

    config = GLiNER2ClassifierOnnxConfig(PretrainedConfig(hidden_size=8, max_width=2, max_count=3))
    before = _current()
    with GLiNER2ModelPatcher(config, torch.nn.Linear(8, 1)):
        during = _current()
        assert all(during[name] is not before[name] for name in before), "a rewrite is not applied during export"
    assert _current() == before
