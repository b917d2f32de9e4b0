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

from optimum_gliner2.errors import GLiNER2ExportError
from optimum_gliner2.exporters.boundary_patches import (
    boundary_attention_without_eye,
    boundary_head_rewrites,
    boundary_shifts_without_writes,
    record_head_without_baked_sizes,
    shape_independent_candidate_pool,
    shared_pool_scorer_with_fixed_scale,
    stable_order,
)
from optimum_gliner2.exporters.model_patcher import (
    GLiNER2ModelPatcher,
    relative_positions_within_reach,
    span_windows_as_gather,
    tracer_warnings_as_errors,
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
    from gliner2.models.boundary import encoding
    from gliner2.models.boundary.encoding import BoundaryAttentionBlock
    from gliner2.models.boundary.pool import DocumentCandidatePool, SharedPoolScorer
    from gliner2.models.boundary.records import RecordHead

    return {
        "SpanMarkerV0.score_queries": (SpanMarkerV0, "score_queries"),
        "TransformerEncoderLayer.forward": (torch.nn.TransformerEncoderLayer, "forward"),
        "mha.get_fastpath_enabled": (torch.backends.mha, "get_fastpath_enabled"),
        "DisentangledSelfAttention.disentangled_attention_bias": (DisentangledSelfAttention, "disentangled_attention_bias"),
        "encoding.shift_left_with_bos": (encoding, "shift_left_with_bos"),
        "encoding.shift_right_with_eos": (encoding, "shift_right_with_eos"),
        "BoundaryAttentionBlock.forward": (BoundaryAttentionBlock, "forward"),
        "DocumentCandidatePool.forward": (DocumentCandidatePool, "forward"),
        "SharedPoolScorer.forward": (SharedPoolScorer, "forward"),
        "RecordHead.forward_groups_dense": (RecordHead, "forward_groups_dense"),
    }


def _current():
    return {name: vars(owner)[attribute] for name, (owner, attribute) in _patch_targets().items()}


@pytest.mark.parametrize(
    "patch",
    [
        span_windows_as_gather,
        transformer_layers_without_fast_path,
        relative_positions_within_reach,
        boundary_shifts_without_writes,
        boundary_attention_without_eye,
        shape_independent_candidate_pool,
        shared_pool_scorer_with_fixed_scale,
        record_head_without_baked_sizes,
    ],
)
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


# -- GLiNER2.5 boundary head ----------------------------------------------------------------------


def _boundary_head(**overrides):
    """gliner2's BoundaryHead with the fixtures' published settings (tiny widths), random weights."""
    from gliner2.configuration import BoundaryHeadSettings, validate_boundary_head
    from gliner2.models.boundary.model import BoundaryHead

    from tests.support.checkpoint_factory import TINY_BOUNDARY_HEAD

    torch.manual_seed(0)
    settings = BoundaryHeadSettings(**validate_boundary_head({**TINY_BOUNDARY_HEAD, **overrides}))
    head = BoundaryHead(48, settings, query_dim=48, build_candidate_states=True).eval()
    with torch.no_grad():
        head.null_projection.weight.normal_(0.0, 0.2)
    return head


def _head_inputs(word_counts, queries, seed):
    generator = torch.Generator().manual_seed(seed)
    text_mask = torch.arange(max(word_counts)).unsqueeze(0) < torch.tensor(word_counts).unsqueeze(1)
    text_states = torch.randn(len(word_counts), max(word_counts), 48, generator=generator) * text_mask.unsqueeze(-1)
    query_states = torch.randn(len(word_counts), queries, 48, generator=generator)
    query_mask = torch.ones(len(word_counts), queries, dtype=torch.bool)
    if len(word_counts) > 1 and queries > 1:
        query_mask[0, -1] = False
    return text_states, text_mask, query_states, query_mask


# Pool of 32 x 32 pairs for 192 slots: short texts take the pad and min() branches the rewrite
# removes, long ones fill the pool and cut it; quota 0 and a top-k whose pairs cannot fill the pool too.
BOUNDARY_SETTINGS = {"published": {}, "no_quota": {"min_pool_per_query": 0}, "top_k_8": {"pool_boundary_top_k": 8},
                     "candidate_attention": {"candidate_attention_layers": 2}, "no_window": {"boundary_attention_window": 0}}  # fmt: skip


@pytest.mark.parametrize("settings", list(BOUNDARY_SETTINGS))
@pytest.mark.parametrize("word_counts,queries", [((1,), 1), ((2,), 3), ((3, 1), 2), ((8, 2, 40), 6), ((300,), 4)])
def test_boundary_rewrites_change_no_value(settings, word_counts, queries):
    head = _boundary_head(**BOUNDARY_SETTINGS[settings])
    inputs = _head_inputs(word_counts, queries, seed=len(word_counts) * 100 + queries)
    with torch.inference_mode():
        expected = head(*inputs, return_candidates=True)
        with boundary_head_rewrites():
            rewritten = head(*inputs, return_candidates=True)
    for name in ("indices", "valid_mask", "pair_logits", "proposal_logits"):
        assert torch.equal(getattr(rewritten.candidates, name), getattr(expected.candidates, name)), name
    assert torch.equal(rewritten.null_logits, expected.null_logits)


def test_stable_order_is_a_stable_sort_eagerly_and_ties_keep_index_order_in_onnx_runtime(tmp_path):
    import onnxruntime as ort

    class Order(torch.nn.Module):
        def forward(self, scores, keys):
            return stable_order(scores, descending=True), stable_order(keys, descending=False, keep=5)

    generator = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 3, (2, 700), generator=generator).float()  # heavy ties
    keys = torch.randint(0, 4, (2, 700), generator=generator)
    assert torch.equal(Order()(scores, keys)[0], torch.argsort(scores, dim=-1, descending=True, stable=True))
    path = tmp_path / "order.onnx"
    axes = {"scores": {1: "n"}, "keys": {1: "n"}}
    torch.onnx.export(Order(), (scores[:, :9], keys[:, :9]), str(path), input_names=list(axes), dynamic_axes=axes, dynamo=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    by_score, by_key = session.run(None, {"scores": scores.numpy(), "keys": keys.numpy()})
    assert (by_score == torch.argsort(scores, dim=-1, descending=True, stable=True).numpy()).all()
    assert (by_key == torch.argsort(keys, dim=-1, stable=True).numpy()[:, :5]).all()


def test_tracer_warnings_fail_the_block_and_name_the_line():
    import warnings

    filters = list(warnings.filters)

    def bake(x):
        return x * float(x.shape[0])  # a traced size turned into a Python number

    with pytest.raises(GLiNER2ExportError, match=r"test_model_patcher\.py:\d+.*TracerWarning"):
        with tracer_warnings_as_errors():
            torch.jit.trace(bake, (torch.ones(3),))
    assert warnings.filters == filters
    with tracer_warnings_as_errors():  # a literal torch.tensor from transformers' mask helper is benign
        from transformers.modeling_attn_mask_utils import AttentionMaskConverter

        torch.jit.trace(lambda mask: AttentionMaskConverter._expand_mask(mask, torch.float32), (torch.ones(2, 3),))


@pytest.mark.parametrize("word_counts,queries,spans", [((1,), 1, 1), ((5, 2), 3, 2), ((60,), 2, 5), ((300,), 3, 4)])
def test_explicit_span_injection_rewrite_changes_no_value(word_counts, queries, spans):
    """The pool rewrite with injected spans scores them exactly as gliner2's score_explicit_spans."""
    head = _boundary_head()
    text_states, text_mask, query_states, query_mask = _head_inputs(word_counts, queries, seed=sum(word_counts) + spans)
    generator = torch.Generator().manual_seed(queries)
    lengths = torch.tensor(word_counts).view(-1, 1, 1)
    starts = (torch.rand(len(word_counts), queries, spans, generator=generator) * lengths).long()
    requested = torch.stack((starts, starts + 1 + (torch.rand(starts.shape, generator=generator) * (lengths - starts)).long()), -1)
    with torch.inference_mode():
        expected = head.score_explicit_spans(text_states, text_mask, query_states, query_mask, requested)
        with boundary_head_rewrites():
            rewritten = head.score_explicit_spans(text_states, text_mask, query_states, query_mask, requested)
    assert torch.equal(rewritten, expected)


@pytest.mark.parametrize("directional,biaffine", [(True, True), (False, False)])
def test_relation_scorer_rewrite_changes_no_value(directional, biaffine):
    from gliner2.models.boundary.relations import RelationPairBatch, SparseRelationScorer

    torch.manual_seed(1)
    scorer = SparseRelationScorer(48, relation_query_dim=96 if directional else 48, use_biaffine_content=biaffine).eval()
    generator = torch.Generator().manual_seed(2)
    text_states = torch.randn(3, 17, 48, generator=generator)
    queries = torch.randn(3, 4, scorer.relation_query_dim, generator=generator)
    starts = torch.randint(0, 16, (50, 2), generator=generator)
    ends = starts + 1 + torch.randint(0, 2, (50, 2), generator=generator)
    rows, relations = torch.randint(0, 3, (50,), generator=generator), torch.randint(0, 4, (50,), generator=generator)
    unused = torch.zeros(50)
    pairs = RelationPairBatch(rows, relations, starts[:, 0], ends[:, 0], starts[:, 1], ends[:, 1], unused, unused)
    with torch.inference_mode():
        expected = scorer(text_states, queries, None, pairs)
        with boundary_head_rewrites():
            rewritten = scorer(text_states, queries, None, pairs)
    assert torch.equal(rewritten, expected)


#: (words of each text, queries, per text its record groups as (mode, field queries)).
RECORD_CASES = [
    ((1,), 1, [[("natural", [0])]]),
    ((4, 9), 3, [[("natural", [2, 0]), ("latent", [1])], [("anchorless", [0, 1, 2])]]),
    ((30, 2, 12), 5, [[("latent", [4, 4])], [("natural", [1, 3, 0]), ("anchorless", [2])], []]),
    ((300,), 2, [[("natural", [1, 0]), ("natural", [0])]]),
]


@pytest.mark.parametrize("word_counts,queries,groups", RECORD_CASES)
def test_record_head_rewrite_changes_no_value(word_counts, queries, groups):
    """The tensor-bounded record head gives gliner2's forward_groups_dense outputs, every one."""
    from gliner2.models.boundary.records import RecordHead

    head = _boundary_head()
    torch.manual_seed(3)
    records = RecordHead(48, 16, instance_queries=8).eval()
    text_states, text_mask, query_states, query_mask = _head_inputs(word_counts, queries, seed=len(word_counts))
    batch, group_count = len(word_counts), max(len(text_groups) for text_groups in groups)
    field_count = max(len(fields) for text_groups in groups for _, fields in text_groups)
    field_queries = torch.zeros(batch, group_count, field_count, dtype=torch.long)
    field_mask = torch.zeros(batch, group_count, field_count, dtype=torch.bool)
    modes = torch.full((batch, group_count), -1)
    anchors = torch.full((batch, group_count), -1)
    group_mask = torch.zeros(batch, group_count, dtype=torch.bool)
    for row, text_groups in enumerate(groups):
        for group, (mode, fields) in enumerate(text_groups):
            field_queries[row, group, : len(fields)] = torch.tensor(fields)
            field_mask[row, group, : len(fields)] = True
            modes[row, group] = ("natural", "latent", "anchorless").index(mode)
            anchors[row, group] = 0 if mode == "natural" else -1
            group_mask[row, group] = True
    routing = (field_queries, field_mask, torch.zeros_like(field_mask), modes, anchors, group_mask)
    with torch.inference_mode():
        candidates = head(text_states, text_mask, query_states, query_mask, return_candidates=True).candidates
        expected = records.forward_groups_dense(query_states, candidates, routing)
        with record_head_without_baked_sizes():
            rewritten = records.forward_groups_dense(query_states, candidates, routing)
    for name in ("object_logits", "assign_logits", "instance_mask", "field_membership", "pool_spans"):
        assert torch.equal(getattr(rewritten, name), getattr(expected, name)), name
