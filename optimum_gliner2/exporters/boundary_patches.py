"""Export-time rewrites of gliner2's boundary head (GLiNER2.5): each patches on entry, restores on exit.

None of them changes a number PyTorch computes. Each replaces a construct that the TorchScript
exporter bakes to the example's shapes, or that ONNX Runtime cannot run:

- `boundary_shifts_without_writes`: `shift_left_with_bos` / `shift_right_with_eos` fill an
  `empty()` tensor through slice and index writes, which the exporter records as mutations of
  fixed-size buffers; the rewrite builds the same tensors with `cat` and `where`.
- `boundary_attention_without_eye`: BoundaryAttentionBlock unpacks its fused q/k/v tensor by
  iterating over it (a TracerWarning) and builds its diagonal with a bool `torch.eye`, which has no
  ONNX Runtime kernel; the rewrite uses `unbind` and an arange equality.
- `shape_independent_candidate_pool`: DocumentCandidatePool takes `min(top_k, boundaries)` starts
  and ends, `min(quota, pairs)` per query, and pads the pool to `pool_size` only when short, all
  decided in Python from the example's shapes. The rewrite pads the score vectors instead (with
  masked entries that sort last), so every top-k has a fixed k and every text length, down to one
  word, runs the same graph. It also sorts with ONNX TopK while exporting (see `stable_order`).
- `shared_pool_scorer_with_fixed_scale`: SharedPoolScorer divides by the square root of a traced
  width (a TracerWarning); the rewrite reads the width from the module.
- `relation_scorer_without_baked_length`: SparseRelationScorer normalises the head-tail distance by
  `float(max(length, 1))` and clamps positions to `max(length - 1, 0)` and `length`, where
  `length` is the padded word axis: Python arithmetic on a traced size, baked silently at the
  example's length. The rewrite derives every bound from the input tensors.
- `record_head_without_baked_sizes`: RecordHead.forward_groups_dense bounds query ids with
  `min(int(...))` of traced sizes (safe_query_ids) and clamps anchor positions to the traced field
  count, both baked silently; it also selects masks with a bool `torch.where` and updates one with
  an in-place `&=`, which ONNX Runtime cannot run. The rewrite takes every bound from the tensors
  and combines masks with `&` and `|`.

Why padding keeps the pool exact: gliner2's pool is, in the end, the set of valid (start, end)
keys, each with the best priority among its occurrences, ordered by (priority descending, key
ascending) and cut at `pool_size`; masked entries never enter it. Extra masked entries change
neither that set nor that order, and stable sorts keep the real entries in their relative order.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Optional, Union

import torch
from gliner2.models.boundary import encoding as boundary_encoding
from gliner2.models.boundary.constants import MASK_LOGIT
from gliner2.models.boundary.encoding import BoundaryAttentionBlock
from gliner2.models.boundary.indexing import gather_rows
from gliner2.models.boundary.pool import DocumentCandidatePool, PooledCandidates, SharedPoolScorer
from gliner2.models.boundary.records import DenseRecordBatchOutput, RecordHead
from gliner2.models.boundary.relations import RelationPairBatch, SparseRelationScorer
from torch.nn import functional as F

from optimum_gliner2.exporters.patching import patched_attribute

#: gliner2 gives a quota entry this priority plus (quota - rank): above every real pair score.
_QUOTA_PRIORITY_BASE = -MASK_LOGIT * 0.5


def stable_order(values: torch.Tensor, descending: bool, keep: Optional[int] = None) -> torch.Tensor:
    """Indices that sort `values` along the last axis, ties in index order; the first `keep` only.

    Eagerly this is `torch.argsort(stable=True)`, gliner2's own sort. While exporting it is ONNX
    TopK, which breaks ties by the lower index as well (the ONNX specification requires it, and
    ONNX Runtime's CPU kernel was checked against stable argsort on heavily tied inputs). The
    exporter has no symbolic for the stable sort overload.
    """
    if torch.onnx.is_in_onnx_export():
        count = values.shape[-1] if keep is None else keep
        return torch.topk(values, count, dim=-1, largest=descending, sorted=True).indices
    order = torch.argsort(values, dim=-1, descending=descending, stable=True)
    return order if keep is None else order[..., :keep]


# ---------------------------------------------------------------------------------------------
# Boundary encoder
# ---------------------------------------------------------------------------------------------


def _left_states_with_bos(text_states: torch.Tensor, bos_state: torch.Tensor) -> torch.Tensor:
    """[B, L+1, H]: the BOS state, then each word (the word left of each boundary)."""
    bos = bos_state.to(text_states.dtype).expand(text_states.shape[0], 1, -1)
    return torch.cat((bos, text_states), dim=1)


def _right_states_with_eos(
    text_states: torch.Tensor, text_lengths: torch.Tensor, eos_state: torch.Tensor
) -> torch.Tensor:
    """[B, L+1, H]: each word (the word right of each boundary), with EOS at boundary L and at
    each row's own last boundary min(length, L)."""
    eos = eos_state.to(text_states.dtype)
    padded_length = text_states.shape[1]
    with_eos_last = torch.cat((text_states, eos.expand(text_states.shape[0], 1, -1)), dim=1)
    boundaries = torch.arange(padded_length + 1, device=text_states.device)
    row_end = text_lengths.clamp(max=padded_length).unsqueeze(1)
    return torch.where((boundaries.unsqueeze(0) == row_end).unsqueeze(-1), eos, with_eos_last)


def boundary_shifts_without_writes() -> contextlib.AbstractContextManager:
    """Patch gliner2's boundary shift helpers with write-free equivalents (see the module docstring)."""
    stack = contextlib.ExitStack()
    stack.enter_context(patched_attribute(boundary_encoding, "shift_left_with_bos", _left_states_with_bos))
    stack.enter_context(patched_attribute(boundary_encoding, "shift_right_with_eos", _right_states_with_eos))
    return stack


def _boundary_attention_forward(
    self: BoundaryAttentionBlock, states: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """BoundaryAttentionBlock.forward (eval) without tensor iteration and without a bool eye."""
    batch, boundaries = states.shape[0], states.shape[1]
    fused = self.qkv_projection(self.norm(states)).reshape(batch, boundaries, 3, self.num_heads, self.head_dim)
    query, key, value = fused.permute(2, 0, 3, 1, 4).unbind(0)
    positions = torch.arange(boundaries, device=states.device)
    allowed = mask[:, None, None, :]
    if self.window > 0:
        distance = (positions.unsqueeze(1) - positions.unsqueeze(0)).abs()
        allowed = allowed & (distance <= self.window)
    # Every row may attend to itself, so padded rows keep one legal key (no NaN).
    allowed = allowed | (positions.unsqueeze(1) == positions.unsqueeze(0))
    attended = F.scaled_dot_product_attention(query, key, value, attn_mask=allowed)
    attended = attended.transpose(1, 2).reshape(batch, boundaries, -1)
    return (states + self.output_projection(attended)) * mask.unsqueeze(-1).to(states.dtype)


def boundary_attention_without_eye() -> contextlib.AbstractContextManager:
    """Patch BoundaryAttentionBlock.forward with an eye-free, iteration-free equivalent (eval mode)."""
    return patched_attribute(BoundaryAttentionBlock, "forward", _boundary_attention_forward)


# ---------------------------------------------------------------------------------------------
# Shared candidate pool
# ---------------------------------------------------------------------------------------------


def _pad_last_axis(values: torch.Tensor, extra: int, fill: float) -> torch.Tensor:
    """`values` with `extra` entries of `fill` appended (masks are padded with False)."""
    # The tracer has no schema for new_full/full_like with a bool fill, hence zeros_like for masks.
    first = values[..., :1]
    padding = torch.zeros_like(first) if values.dtype == torch.bool else torch.full_like(first, fill)
    return torch.cat((values, padding.expand(*([-1] * (values.dim() - 1)), extra)), dim=-1)


def _top_boundaries(scores: torch.Tensor, valid: torch.Tensor, count: int):
    """The `count` best valid boundaries per row, best first: (indices, valid), invalid ones at 0.

    gliner2 takes min(count, boundaries); padding with `count` masked entries gives exactly
    `count` picks, the padded ones invalid and after every real one."""
    masked = _pad_last_axis(scores.masked_fill(~valid, MASK_LOGIT), count, MASK_LOGIT)
    padded_valid = _pad_last_axis(valid, count, 0.0)
    picked = stable_order(masked, descending=True, keep=count)
    picked_valid = padded_valid.gather(-1, picked)
    return torch.where(picked_valid, picked, torch.zeros_like(picked)), picked_valid


def _best_distinct_keys(keys: torch.Tensor, priorities: torch.Tensor, valid: torch.Tensor, capacity: int, key_space):
    """gliner2's pool deduplication: each valid key once, with its best priority, the pool ordered
    by (priority descending, key ascending) and cut or padded to `capacity` entries.

    The caller guarantees at least `capacity` entries, so no shape-dependent padding is needed."""
    keys = torch.where(valid, keys, key_space)
    priorities = torch.where(valid, priorities, torch.full_like(priorities, MASK_LOGIT))
    by_priority = stable_order(priorities, descending=True)
    keys, priorities, valid = keys.gather(-1, by_priority), priorities.gather(-1, by_priority), valid.gather(-1, by_priority)
    by_key = stable_order(keys, descending=False)
    keys, priorities, valid = keys.gather(-1, by_key), priorities.gather(-1, by_key), valid.gather(-1, by_key)
    # Within a run of equal keys the best priority now comes first: keep that occurrence only.
    starts_run = torch.cat((torch.ones_like(valid[..., :1]), keys[..., 1:] != keys[..., :-1]), dim=-1)
    kept = valid & starts_run
    chosen = stable_order(torch.where(kept, priorities, torch.full_like(priorities, MASK_LOGIT)), True, keep=capacity)
    return keys.gather(-1, chosen), kept.gather(-1, chosen)


def _reserved_pairs(start_logits, end_logits, query_mask, pair_start, pair_end, pair_valid, compat, quota, boundaries):
    """Each query's `quota` best pairs by its own start + end + compat: (keys, priorities, valid),
    flattened query-major, with gliner2's priority band (above every real pair score) by rank."""
    queries = query_mask.shape[1]
    query_starts = pair_start.unsqueeze(1).expand(-1, queries, -1)
    query_ends = pair_end.unsqueeze(1).expand(-1, queries, -1)
    query_pair_valid = pair_valid.unsqueeze(1) & query_mask.unsqueeze(-1)
    query_scores = start_logits.gather(2, query_starts) + end_logits.gather(2, query_ends) + compat.unsqueeze(1)
    reserved = stable_order(query_scores.masked_fill(~query_pair_valid, MASK_LOGIT), descending=True, keep=quota)
    keys = query_starts.gather(-1, reserved) * boundaries + query_ends.gather(-1, reserved)
    valid = query_pair_valid.gather(-1, reserved)
    rank_bonus = torch.arange(quota, 0, -1, device=compat.device, dtype=compat.dtype)
    priorities = (rank_bonus + _QUOTA_PRIORITY_BASE).expand_as(valid)
    return keys.flatten(1), priorities.flatten(1), valid.flatten(1)


@dataclass
class PoolEntries:
    """Every entry gliner2's pool chooses from, before deduplication: [B, T] each.

    A key is `start * boundaries + end`; its priority is its quota band value or its pair score.
    `best_start`/`best_end` [B, N] are each boundary's best score over the active queries, and
    `start_features`/`end_features` [B, N, D] the pool's endpoint projections."""

    keys: torch.Tensor
    priorities: torch.Tensor
    valid: torch.Tensor
    boundaries: Union[int, torch.Tensor]  # a traced size while exporting
    best_start: torch.Tensor
    best_end: torch.Tensor
    start_features: torch.Tensor
    end_features: torch.Tensor


def pool_entries(
    pool: DocumentCandidatePool,
    boundary_states: torch.Tensor,
    boundary_mask: torch.Tensor,
    query_mask: torch.Tensor,
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
) -> PoolEntries:
    """The entries of a DocumentCandidatePool at inference, with fixed top-k and quota sizes.

    The validation reads the priorities to tell an order difference caused by a float near-tie
    from a real divergence."""
    boundaries = boundary_states.shape[1]
    scale = math.sqrt(pool.start_projection.in_features)
    top_k = pool.pool_boundary_top_k

    # Each boundary's best start and end score over the active queries.
    active = boundary_mask.unsqueeze(1) & query_mask.unsqueeze(-1)
    best_start = start_logits.masked_fill(~active, MASK_LOGIT).amax(1)
    best_end = end_logits.masked_fill(~active, MASK_LOGIT).amax(1)
    boundary_valid = boundary_mask & query_mask.any(-1, keepdim=True)

    starts, starts_valid = _top_boundaries(best_start, boundary_valid, top_k)
    ends, ends_valid = _top_boundaries(best_end, boundary_valid, top_k)
    # Every start against every end, start-major (gliner2's pair order, up to masked pairs).
    pair_start = starts.unsqueeze(-1).expand(-1, top_k, top_k).flatten(1)
    pair_end = ends.unsqueeze(1).expand(-1, top_k, top_k).flatten(1)
    pair_valid = (
        starts_valid.unsqueeze(-1) & ends_valid.unsqueeze(1) & (ends.unsqueeze(1) > starts.unsqueeze(-1))
    ).flatten(1)

    start_features = pool.start_projection(boundary_states)
    end_features = pool.end_projection(boundary_states)
    compat = (gather_rows(start_features, pair_start) * gather_rows(end_features, pair_end)).sum(-1) / scale
    pair_priority = compat + best_start.gather(1, pair_start) + best_end.gather(1, pair_end)

    keys = [pair_start * boundaries + pair_end]
    priorities = [pair_priority.detach()]
    valid = [pair_valid]
    # Each active query reserves its `quota` best pairs, ranked by its own start + end + compat.
    quota = min(pool.min_pool_per_query, top_k * top_k)
    if quota:
        reserved_keys, reserved_priority, reserved_valid = _reserved_pairs(
            start_logits, end_logits, query_mask, pair_start, pair_end, pair_valid, compat, quota, boundaries
        )
        keys.insert(0, reserved_keys)
        priorities.insert(0, reserved_priority)
        valid.insert(0, reserved_valid)
    filler = torch.zeros_like(pair_start[:, :1]).expand(-1, pool.pool_size)  # guarantees pool_size entries
    return PoolEntries(
        keys=torch.cat((*keys, filler), dim=-1),
        priorities=torch.cat((*priorities, filler.to(pair_priority.dtype)), dim=-1),
        valid=torch.cat((*valid, torch.zeros_like(filler, dtype=torch.bool)), dim=-1),
        boundaries=boundaries,
        best_start=best_start,
        best_end=best_end,
        start_features=start_features,
        end_features=end_features,
    )


def _shape_independent_pool_forward(
    self: DocumentCandidatePool,
    boundary_states: torch.Tensor,
    boundary_mask: torch.Tensor,
    query_mask: torch.Tensor,
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    *,
    gold_pairs: Optional[torch.Tensor] = None,
    gold_mask: Optional[torch.Tensor] = None,
    gold_injection_prob: float = 1.0,
    return_stats: bool = False,
    generator: Optional[torch.Generator] = None,
) -> PooledCandidates:
    """DocumentCandidatePool.forward at inference (no statistics), with every top-k, quota and pool
    size fixed by the configuration instead of the input's shapes.

    Gold pairs are what gliner2's explicit-span scoring injects (always, above every other entry);
    the random partial injection of training is not covered."""
    if return_stats or (gold_pairs is not None and gold_injection_prob < 1.0):
        raise NotImplementedError("The export rewrite of the shared pool covers inference only.")
    entries = pool_entries(self, boundary_states, boundary_mask, query_mask, start_logits, end_logits)
    if gold_pairs is not None and gold_mask is not None:
        entries = _with_injected_pairs(entries, boundary_states, query_mask, gold_pairs, gold_mask)
    boundaries = entries.boundaries
    with torch.no_grad():
        pooled_keys, pooled_valid = _best_distinct_keys(
            entries.keys, entries.priorities, entries.valid, self.pool_size, boundaries * boundaries
        )

    pooled_keys = torch.where(pooled_valid, pooled_keys, torch.zeros_like(pooled_keys))
    pooled_start = torch.div(pooled_keys, boundaries, rounding_mode="floor")
    pooled_end = pooled_keys - pooled_start * boundaries
    start_part = gather_rows(entries.start_features, pooled_start)
    end_part = gather_rows(entries.end_features, pooled_end)
    pooled_compat = (start_part * end_part).sum(-1) / math.sqrt(self.start_projection.in_features)
    proposal = pooled_compat + entries.best_start.gather(1, pooled_start) + entries.best_end.gather(1, pooled_end)
    return PooledCandidates(
        indices=torch.stack((pooled_start, pooled_end), dim=-1),
        mask=pooled_valid,
        proposal_logits=proposal.masked_fill(~pooled_valid, MASK_LOGIT),
        gold_mask=None,
        compat_logits=torch.where(pooled_valid, pooled_compat, torch.zeros_like(pooled_compat)),
        stats=None,
    )


def _with_injected_pairs(
    entries: PoolEntries, boundary_states: torch.Tensor, query_mask: torch.Tensor, pairs: torch.Tensor, pair_mask: torch.Tensor
) -> PoolEntries:
    """`entries` plus each requested (start, end) pair [B, Q, S, 2] of an active query that lies
    inside the boundaries, at gliner2's injection priority (above the quota band)."""
    boundaries = torch.ones_like(boundary_states[0, :, 0], dtype=torch.long).sum()
    inside = (pairs >= 0).all(-1) & (pairs < boundaries).all(-1)
    valid = (pair_mask & query_mask.unsqueeze(-1) & inside).flatten(1)
    safe = torch.minimum(pairs.clamp_min(0), boundaries - 1)
    keys = (safe[..., 0] * boundaries + safe[..., 1]).flatten(1)
    priorities = torch.full_like(keys, 0, dtype=entries.priorities.dtype) - MASK_LOGIT
    return PoolEntries(
        keys=torch.cat((keys, entries.keys), dim=-1),
        priorities=torch.cat((priorities, entries.priorities), dim=-1),
        valid=torch.cat((valid, entries.valid), dim=-1),
        boundaries=entries.boundaries,
        best_start=entries.best_start,
        best_end=entries.best_end,
        start_features=entries.start_features,
        end_features=entries.end_features,
    )


def shape_independent_candidate_pool() -> contextlib.AbstractContextManager:
    """Patch DocumentCandidatePool.forward with the fixed-size pool (inference only)."""
    return patched_attribute(DocumentCandidatePool, "forward", _shape_independent_pool_forward)


def _shared_pool_scorer_forward(
    self: SharedPoolScorer,
    boundary_states: torch.Tensor,
    query_states: torch.Tensor,
    query_mask: torch.Tensor,
    pooled: PooledCandidates,
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    inside_prefix: Optional[torch.Tensor],
    text_lengths: torch.Tensor,
    text_states: torch.Tensor,
    text_mask: torch.Tensor,
    inside_prefix_mean: Optional[torch.Tensor] = None,
):
    """SharedPoolScorer.forward (eval) with its score scale read from the module, not a traced shape."""
    starts, ends = pooled.indices[..., 0], pooled.indices[..., 1]
    start_part = gather_rows(self.start_projection(boundary_states), starts)
    end_part = gather_rows(self.end_projection(boundary_states), ends)
    dtype = start_part.dtype
    width = (ends - starts).clamp_min(1).to(dtype)
    text_length = text_lengths.unsqueeze(1).to(dtype).clamp_min(1)
    length_features = torch.stack((torch.log1p(width), width / text_length, torch.rsqrt(width)), dim=-1)
    prior = pooled.compat_logits if pooled.compat_logits is not None else pooled.proposal_logits
    if prior is None:
        prior = torch.zeros_like(width)
    candidate = start_part + end_part + self.length_projection(length_features)
    candidate = candidate + self.prior_projection(prior.unsqueeze(-1).to(dtype))
    if self.content_pooler is not None:
        mean_prefix, soft_max_prefix = self.content_pooler.build_prefix(text_states, text_mask)
        content = self.content_pooler.pool(mean_prefix, soft_max_prefix, starts, ends, candidate.dtype)
        candidate = candidate + self.content_projection(content)
    candidate = self.candidate_norm(candidate) * pooled.mask.unsqueeze(-1).to(dtype)
    for layer in self.candidate_layers:
        candidate = layer(candidate, pooled.indices, pooled.mask)

    query = self.query_projection(query_states)
    for layer in self.query_layers:
        relevance = torch.einsum("bcd,bqd->bcq", candidate, query).masked_fill(~pooled.mask.unsqueeze(-1), MASK_LOGIT)
        evidence = torch.einsum("bcq,bcd->bqd", relevance.softmax(dim=1), candidate)
        query = layer(query, evidence, query_mask)

    scale = math.sqrt(self.candidate_norm.normalized_shape[-1])
    score = torch.einsum("bcd,bqd->bcq", candidate, query) / scale
    gamma, beta = self.film(query).chunk(2, dim=-1)
    modulated = candidate.unsqueeze(2) * (1.0 + gamma.unsqueeze(1)) + beta.unsqueeze(1)
    score = score + self.film_output(modulated).squeeze(-1)

    queries, candidates = query_states.shape[1], starts.shape[1]
    start_at = starts.clamp(0, start_logits.shape[2] - 1).unsqueeze(1).expand(-1, queries, candidates)
    end_at = ends.clamp(0, end_logits.shape[2] - 1).unsqueeze(1).expand(-1, queries, candidates)
    score = score + start_logits.gather(2, start_at).transpose(1, 2)
    score = score + end_logits.gather(2, end_at).transpose(1, 2)
    if inside_prefix is not None:
        last = inside_prefix.shape[2] - 1
        inside = inside_prefix.gather(2, end_at.clamp(max=last)) - inside_prefix.gather(2, start_at.clamp(max=last))
        if inside_prefix_mean is not None:
            inside = inside + inside_prefix_mean * (end_at - start_at).to(inside.dtype)
        normalised = inside / torch.sqrt((end_at - start_at).clamp_min(1).float())
        score = score + normalised.transpose(1, 2).to(score.dtype)
    score = score.masked_fill(~pooled.mask.unsqueeze(-1), MASK_LOGIT)
    return score.masked_fill(~query_mask.unsqueeze(1), MASK_LOGIT), candidate


def shared_pool_scorer_with_fixed_scale() -> contextlib.AbstractContextManager:
    """Patch SharedPoolScorer.forward with a copy whose score scale is a module constant (eval mode)."""
    return patched_attribute(SharedPoolScorer, "forward", _shared_pool_scorer_forward)


# ---------------------------------------------------------------------------------------------
# Relation scorer
# ---------------------------------------------------------------------------------------------


def _rows_and_length(states: torch.Tensor):
    """Axes 0 and 1 of a [B, N, H] tensor as int64 0-d tensors, which the tracer keeps symbolic
    (Python ints from `.shape` become constants once they meet Python arithmetic)."""
    return (
        torch.ones_like(states[:, 0, 0], dtype=torch.long).sum(),
        torch.ones_like(states[0, :, 0], dtype=torch.long).sum(),
    )


def _relation_scorer_forward(
    self: SparseRelationScorer,
    boundary_states: torch.Tensor,
    relation_query_states: torch.Tensor,
    entity_candidates,
    relation_pairs: RelationPairBatch,
) -> torch.Tensor:
    """SparseRelationScorer.forward (eval) with the word-axis length and the batch and relation
    counts taken from the tensors instead of Python ints.

    gliner2 returns early for no pairs or no relation query; here such inputs simply give an empty
    or masked result, which is what the early returns return too."""
    rows, length = _rows_and_length(boundary_states)
    query_rows, relations = _rows_and_length(relation_query_states)
    rows = torch.minimum(rows, query_rows)
    batch_index, relation_index = relation_pairs.batch_index, relation_pairs.relation_index
    pair_valid = (batch_index >= 0) & (batch_index < rows) & (relation_index >= 0) & (relation_index < relations)
    if relation_pairs.pair_mask is not None:
        pair_valid = pair_valid & relation_pairs.pair_mask
    row = torch.minimum(batch_index.clamp_min(0), rows - 1)
    relation = torch.minimum(relation_index.clamp_min(0), relations - 1)
    last_word = (length - 1).clamp_min(0)

    def state_at(position: torch.Tensor) -> torch.Tensor:
        return boundary_states[row, torch.minimum(position.clamp_min(0), last_word)]

    head_start, head_end = relation_pairs.head_start, relation_pairs.head_end
    tail_start, tail_end = relation_pairs.tail_start, relation_pairs.tail_end
    relation_states = relation_query_states[row, relation]
    offset = (tail_start - head_start).to(boundary_states.dtype)
    distance = offset.abs() / length.clamp_min(1).to(boundary_states.dtype)
    features = torch.cat(
        [
            state_at(head_start),
            state_at(head_end - 1),
            state_at(tail_start),
            state_at(tail_end - 1),
            relation_states,
            torch.sign(offset).unsqueeze(-1),
            distance.unsqueeze(-1),
        ],
        dim=-1,
    )
    score = self.mlp(features).squeeze(-1)
    if self.use_biaffine_content:
        running = boundary_states.float().cumsum(1).to(boundary_states.dtype)
        prefix = torch.cat((torch.zeros_like(running[:, :1]), running), dim=1)

        def mean_state(start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
            total = prefix[row, torch.minimum(end.clamp_min(0), length)] - prefix[row, torch.minimum(start.clamp_min(0), length)]
            return total / (end - start).clamp_min(1).unsqueeze(-1).to(total.dtype)

        head_content = self.head_content_projection(mean_state(head_start, head_end))
        tail_content = self.tail_content_projection(mean_state(tail_start, tail_end))
        gate = torch.sigmoid(self.relation_content_gate(relation_states))
        biaffine = (head_content * gate * tail_content).sum(-1) / (self.hidden_size**0.5)
        linear = self.content_linear(torch.cat((head_content, tail_content, relation_states), dim=-1)).squeeze(-1)
        score = score + biaffine + linear
    return score.masked_fill(~pair_valid, 0.0)


def relation_scorer_without_baked_length() -> contextlib.AbstractContextManager:
    """Patch SparseRelationScorer.forward with the tensor-bounded equivalent (eval mode)."""
    return patched_attribute(SparseRelationScorer, "forward", _relation_scorer_forward)


# ---------------------------------------------------------------------------------------------
# Record head
# ---------------------------------------------------------------------------------------------


def _record_groups_forward(self: RecordHead, query_states: torch.Tensor, candidates, routing) -> DenseRecordBatchOutput:
    """RecordHead.forward_groups_dense (eval, shared pool) with tensor-derived bounds and masks
    combined without bool Where or in-place updates.

    Shapes: B texts, Q queries, R record groups of F fields, C pool slots, I = max(C, learned
    instance queries) instance hypotheses. C is the fixed pool size, so I is a constant too.
    """
    field_query_ids, field_mask, scalar_fields, modes, anchor_fields, group_mask = routing
    pool_states = candidates.candidate_states[:, 0]  # the pool is shared: every query row is the same
    pool_spans = candidates.indices[:, 0]
    pool_mask = candidates.valid_mask[:, 0]
    # The pool size is a constant of the model; the export wrapper passes it, since a traced size
    # in Python arithmetic would be baked with a warning (with the same value, but unchecked).
    pool_size = getattr(candidates, "pool_size", None) or pool_states.shape[1]
    instances = max(pool_size, self.instance_queries)
    _, query_count = _rows_and_length(query_states)
    field_count = torch.ones_like(field_query_ids[0, 0], dtype=torch.long).sum()
    rows = torch.arange(pool_states.shape[0], device=query_states.device)[:, None, None]

    # gliner2's safe_query_ids: out-of-range ids are clamped for gathering and marked invalid.
    query_ok = (field_query_ids >= 0) & (field_query_ids < query_count)
    safe_ids = torch.minimum(field_query_ids.clamp_min(0), query_count - 1)
    field_states = query_states[rows, safe_ids]  # [B, R, F, H]
    field_on = field_mask & query_ok & candidates.query_mask[rows, safe_ids]
    membership = field_on.unsqueeze(-1) & pool_mask[:, None, None, :]  # [B, R, F, C]

    extra = instances - pool_size
    learned = F.pad(self.instance_embed, (0, 0, 0, instances - self.instance_queries))  # [I, H]
    attention = torch.einsum("id,bcd->bic", self.q_proj(learned), self.k_proj(pool_states)) / math.sqrt(self.record_dim)
    attention = attention.masked_fill(~pool_mask[:, None, :], MASK_LOGIT)
    anchorless_states = learned + torch.einsum("bic,bch->bih", torch.softmax(attention, -1), self.v_proj(pool_states))
    natural, latent = modes == 0, modes == 1
    anchorless = ~(natural | latent)  # gliner2's innermost else for masks and objects, padding included
    instance_states = torch.where(
        (modes == 2)[..., None, None], anchorless_states[:, None], F.pad(pool_states, (0, 0, 0, extra))[:, None]
    )  # [B, R, I, H]

    anchor_index = torch.minimum(anchor_fields.clamp_min(0), field_count - 1)  # [B, R]
    anchor_members = membership.gather(2, anchor_index[..., None, None].expand(-1, -1, 1, pool_size)).squeeze(2)
    natural_mask = F.pad(anchor_members, (0, extra))
    latent_mask = F.pad(membership.any(2), (0, extra))
    learned_mask = (torch.arange(instances, device=query_states.device) < self.instance_queries)[None, None]
    instance_mask = (
        (natural[..., None] & natural_mask) | (latent[..., None] & latent_mask) | (anchorless[..., None] & learned_mask)
    ) & group_mask[..., None]

    anchor_query = safe_ids.gather(2, anchor_index[..., None]).squeeze(-1)  # [B, R], already in range
    natural_object = F.pad(candidates.pair_logits[rows[..., 0], anchor_query], (0, extra))  # [B, R, I]
    latent_object = F.pad(self.latent_seed_head(pool_states).squeeze(-1), (0, extra))[:, None]
    anchorless_object = self.object_head(anchorless_states).squeeze(-1)[:, None]
    object_logits = torch.where(natural[..., None], natural_object, torch.where(latent[..., None], latent_object, anchorless_object))
    object_logits = object_logits.masked_fill(~instance_mask, MASK_LOGIT)

    assignment_query = self.inst_proj(instance_states).unsqueeze(3) + self.field_proj(field_states).unsqueeze(2)
    null_logits = torch.einsum("brifd,d->brif", assignment_query, self.null_embed)
    candidate_logits = torch.einsum("brifd,bcd->brifc", assignment_query, self.cand_proj(pool_states))
    candidate_logits = candidate_logits.masked_fill(~membership.unsqueeze(2), MASK_LOGIT)
    assign_logits = torch.cat((null_logits.unsqueeze(-1), candidate_logits), -1)
    return DenseRecordBatchOutput(
        object_logits, assign_logits, instance_mask, membership, pool_spans, field_mask, scalar_fields, modes, anchor_fields, group_mask
    )


def record_head_without_baked_sizes() -> contextlib.AbstractContextManager:
    """Patch RecordHead.forward_groups_dense with the tensor-bounded equivalent (eval, shared pool)."""
    return patched_attribute(RecordHead, "forward_groups_dense", _record_groups_forward)


def boundary_head_rewrites() -> contextlib.AbstractContextManager:
    """Every boundary-model rewrite above, for the duration of an export."""
    stack = contextlib.ExitStack()
    for rewrite in (
        boundary_shifts_without_writes,
        boundary_attention_without_eye,
        shape_independent_candidate_pool,
        shared_pool_scorer_with_fixed_scale,
        relation_scorer_without_baked_length,
        record_head_without_baked_sizes,
    ):
        stack.enter_context(rewrite())
    return stack
