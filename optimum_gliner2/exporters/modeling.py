"""Exportable wrappers around the PyTorch modules of a gliner2 model.

A GLiNER2 forward pass has data-dependent steps (per-task slicing, decoding). They stay on the
host, so a span model (gliner2-*-v1) is exported as four graphs without Loop/If:

    encoder       input_ids, attention_mask -> last_hidden_state      (the transformer)
    count_embed   prompt [N,H], fields [N,M,H], max_instances [N] -> count logits [N,C], queries [N,S,M,H]
    classifier    label markers [K,H] -> logits [K]
    span_scorer   words [B,L,H], queries [B,Q,H] -> span logits [B,Q,L,W]

count_embed runs S = max over tasks of min(predicted count, max_instances) GRU steps (at least 1),
as one ONNX GRU node: step t depends only on steps < t, so the host slicing [:count] of the result
is exactly gliner2's `count_embed(fields, count)`. Running all C = max_count (20) steps instead
cost as much as a fifth of the encoder on short texts, for entity tasks that read instance 0 only
(max_instances 1).

A boundary model (GLiNER2.5) is exported as five graphs, also without Loop/If:

    encoder          the same graph as for span models
    boundary_head    words [B,L,H], text_mask [B,L], queries [B,Q,H], query_mask [B,Q]
                     -> candidates [B,C,2], candidate_mask [B,C], pair_logits [B,Q,C],
                        null_logits [B,Q], count_log_rates [B,Q]          (C = the pool size)
    classifier       the same graph as for span models (gliner2 uses the same head)
    relation_scorer  words [B,L,H], relation_roles [B,R,2,H] (each relation's head and tail role
                     markers), and P proposed pairs: pair_rows [P], pair_relations [P], pair_spans
                     [P,4] (head start, head end, tail start, tail end, half-open) -> relation_logits [P]

    explicit_spans   words, text_mask, queries, query_mask as boundary_head, and requested spans
                     [B,Q,S,2] with span_mask [B,Q,S] -> span_logits [B,Q,S], span_outside_pool [B,Q,S]

A boundary model with a record head (GLiNER2.5's structured JSON) adds a sixth graph:

    record_head      words, text_mask, queries, query_mask as boundary_head, and the record groups
                     (structures with a record mode): field_queries [B,R,F], field_mask [B,R,F],
                     modes [B,R], anchor_fields [B,R], group_mask [B,R]
                     -> object_logits [B,R,I], assign_logits [B,R,I,F,1+C], instance_mask [B,R,I],
                        field_membership [B,R,F,C]          (I = max(C, learned instance queries))

It rebuilds the same candidate pool as boundary_head (the same computation on the same inputs), adds
the candidates' states and runs gliner2's RecordHead.forward_groups_dense on it; the host decodes the
records (runtime/records.py). Rebuilding the pool costs a second pass of the boundary head for calls
that ask for records, and leaves boundary_head's outputs, and so every existing export, unchanged.

explicit_spans is gliner2's `score_explicit_spans` (entity attributes and JSON choice fields): the
requested spans are injected into a pool built for those queries and scored inside it, since pooled
candidates inform one another. gliner2 raises when a requested span does not fit the pool; the graph
reports it in span_outside_pool and the host raises.

The host proposes the relation pairs (a typed top-k over the pool, runtime/relations.py): which
pairs exist depends on the scores, so it cannot be a fixed-shape graph. gliner2 normalises the
head-tail distance by the padded word axis L of its own batch, so the host pads `words` to that
length.

The boundary head builds its shared candidate pool in-graph: the pool is a fixed-size top-k
selection, which ONNX expresses without data-dependent shapes (exporters/boundary_patches.py).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Dict

import torch
from torch import nn

from optimum_gliner2.bundle.format import graph_names
from optimum_gliner2.exporters.loading import model_architecture
from optimum_gliner2.exporters.model_patcher import gru_over_first_steps


class GLiNER2EncoderForExport(nn.Module):
    """The encoder alone, called the way gliner2 calls it (no token_type_ids)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.encoder = model.encoder
        self.config = model.config
        self.tokenizer = model.processor.tokenizer

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Dict[str, torch.Tensor]:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return {"last_hidden_state": hidden}


class GLiNER2CountEmbedForExport(nn.Module):
    """count_pred and count_embed for N tasks that share a field count M, over the steps needed."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.count_pred = model.count_pred
        self.count_embed = model.count_embed
        self.max_count = model.count_embed.max_count
        self.config = model.config
        self.fields_attend_to_each_other = hasattr(model.count_embed, "transformer")

    def forward(
        self, prompt_embeddings: torch.Tensor, field_embeddings: torch.Tensor, max_instances: torch.Tensor
    ) -> Dict[str, torch.Tensor]:
        count_logits = self.count_pred(prompt_embeddings)
        steps = steps_needed(count_logits, max_instances)
        num_tasks, num_fields, hidden = field_embeddings.shape
        flat_fields = field_embeddings.reshape(-1, hidden)  # every field of every task is a GRU batch row
        with gru_over_first_steps(self.count_embed.gru, steps):
            if self.fields_attend_to_each_other:
                queries = self._count_lstm_v2(flat_fields, num_tasks, num_fields, hidden)
            else:
                # count_lstm and count_lstm_moe act on each field independently.
                queries = self.count_embed(flat_fields, self.max_count)
        queries = queries.reshape(-1, num_tasks, num_fields, hidden).permute(1, 0, 2, 3)
        return {"count_logits": count_logits, "queries": queries}

    def _count_lstm_v2(self, flat_fields, num_tasks, num_fields, hidden):
        # CountLSTMv2.forward, with its field transformer run per (instance, task) so fields of
        # different tasks never attend to each other.
        module = self.count_embed
        positions = module.pos_embedding.weight.unsqueeze(1).expand(-1, flat_fields.shape[0], -1)
        states = module.gru(positions, flat_fields) + flat_fields.unsqueeze(0)
        return module.transformer(states.reshape(-1, num_fields, hidden))


def steps_needed(count_logits: torch.Tensor, max_instances: torch.Tensor) -> torch.Tensor:
    """GRU steps the host will read: max over tasks of min(predicted count, max_instances), at least 1."""
    counts = count_logits.argmax(dim=-1)
    return torch.minimum(counts, max_instances.to(counts.dtype)).max().clamp(min=1)


class GLiNER2ClassifierForExport(nn.Module):
    """The classification head applied to [L] label markers."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.classifier = model.classifier
        self.config = model.config

    def forward(self, label_embeddings: torch.Tensor) -> Dict[str, torch.Tensor]:
        return {"logits": self.classifier(label_embeddings).squeeze(-1)}


class GLiNER2SpanScorerForExport(nn.Module):
    """SpanMarkerV0.score_queries without the invalid-span mask (the host applies it)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.span_rep = model.span_rep
        self.config = model.config

    def forward(self, word_embeddings: torch.Tensor, queries: torch.Tensor) -> Dict[str, torch.Tensor]:
        logits = self.span_rep.score_queries(word_embeddings, queries, None, mask_invalid=False)
        return {"span_logits": logits}


def _pooled_scores(
    head, text_states, text_mask, query_states, query_mask, injected=None, injected_mask=None, return_boundary_states=False
):
    """BoundaryHead's shared pool and its [B, C, Q] scores (masks already bool); `injected` spans
    [B, Q, S, 2] enter the pool first, as gliner2's explicit-span scoring injects them. With
    `return_boundary_states`, also the boundary encoder's states (the record head reads them)."""
    encoding = head.boundary_encoder(text_states, text_mask)
    marginals = head.boundary_query_head(encoding.states, encoding.mask, text_states, text_mask, query_states, query_mask)
    injection = {} if injected is None else {"gold_pairs": injected, "gold_mask": injected_mask, "gold_injection_prob": 1.0}
    pooled = head.shared_pool_builder(
        encoding.states, encoding.mask, query_mask, marginals.start_logits, marginals.end_logits, **injection
    )
    pool_scores, _ = head.shared_pool_scorer(
        encoding.states,
        query_states,
        query_mask,
        pooled,
        marginals.start_logits,
        marginals.end_logits,
        marginals.inside_prefix if head.use_inside_evidence else None,
        text_mask.sum(dim=1),
        text_states,
        text_mask,
        inside_prefix_mean=marginals.inside_prefix_mean,
    )
    if return_boundary_states:
        return pooled, pool_scores, encoding.states
    return pooled, pool_scores


class GLiNER2BoundaryHeadForExport(nn.Module):
    """gliner2's BoundaryHead at inference, shared candidate pool, returning what entity decoding reads.

    The steps are BoundaryHead.forward's for `candidate_pool="shared"` (boundary encoder, query
    marginals, document pool, pool scorer, abstention and count heads); the records' candidate
    states are not computed, since no exported graph reads them.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.boundary_head = model.boundary_head
        self.config = model.config
        self.pool_size = model.boundary_head.shared_pool_builder.pool_size

    def forward(
        self,
        text_states: torch.Tensor,
        text_mask: torch.Tensor,
        query_states: torch.Tensor,
        query_mask: torch.Tensor,
    ) -> Dict[str, torch.Tensor]:
        head = self.boundary_head
        text_mask, query_mask = text_mask.bool(), query_mask.bool()
        pooled, pool_scores = _pooled_scores(head, text_states, text_mask, query_states, query_mask)
        # Without an abstention head gliner2 never abstains: a null logit of -1e4 (probability 0)
        # never exceeds a threshold. Without a count head nothing reads the rates (export refuses
        # the adaptive threshold then): zeros. Either way every checkpoint has the same outputs.
        no_count_head = torch.zeros_like(query_mask, dtype=query_states.dtype)
        never_abstain = torch.full_like(no_count_head, -1.0e4)
        return {
            "candidates": pooled.indices,
            "candidate_mask": pooled.mask,
            "pair_logits": pool_scores.transpose(1, 2),
            "null_logits": head.null_projection(query_states).squeeze(-1) if head.null_projection is not None else never_abstain,
            "count_log_rates": head.count_head(query_states).squeeze(-1) if head.count_head is not None else no_count_head,
        }


class GLiNER2RelationScorerForExport(nn.Module):
    """gliner2's SparseRelationScorer on pairs given as tensors (see the module docstring).

    The relation query is built from the two role markers in the graph, as gliner2 builds it
    (concatenated for directional relation states, else averaged), so the host need not know which.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.relation_scorer = model.relation_scorer
        self.directional = bool(model.boundary_settings.directional_relation_states)
        self.config = model.config

    def forward(
        self,
        text_states: torch.Tensor,
        relation_roles: torch.Tensor,
        pair_rows: torch.Tensor,
        pair_relations: torch.Tensor,
        pair_spans: torch.Tensor,
    ) -> Dict[str, torch.Tensor]:
        from gliner2.models.boundary.relations import RelationPairBatch

        # Argument confidences are carried for decoding only; the scorer never reads them.
        unused_confidences = torch.zeros_like(pair_spans[:, 0], dtype=text_states.dtype)
        pairs = RelationPairBatch(
            batch_index=pair_rows,
            relation_index=pair_relations,
            head_start=pair_spans[:, 0],
            head_end=pair_spans[:, 1],
            tail_start=pair_spans[:, 2],
            tail_end=pair_spans[:, 3],
            head_prob=unused_confidences,
            tail_prob=unused_confidences,
        )
        relation_queries = relation_roles.flatten(2) if self.directional else relation_roles.mean(dim=2)
        return {"relation_logits": self.relation_scorer(text_states, relation_queries, None, pairs)}


class GLiNER2ExplicitSpansForExport(nn.Module):
    """gliner2's BoundaryHead.score_explicit_spans for the shared pool, reporting instead of raising
    when a requested span does not fit the pool (see the module docstring)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.boundary_head = model.boundary_head
        self.config = model.config

    def forward(
        self,
        text_states: torch.Tensor,
        text_mask: torch.Tensor,
        query_states: torch.Tensor,
        query_mask: torch.Tensor,
        spans: torch.Tensor,
        span_mask: torch.Tensor,
    ) -> Dict[str, torch.Tensor]:
        from gliner2.models.boundary.constants import MASK_LOGIT

        head = self.boundary_head
        text_mask, query_mask = text_mask.bool(), query_mask.bool()
        starts, ends = spans[..., 0], spans[..., 1]
        word_counts = text_mask.sum(dim=1)
        legal = (starts >= 0) & (ends > starts) & (ends <= word_counts[:, None, None])
        legal = legal & query_mask.unsqueeze(-1) & span_mask.bool()
        pooled, pool_scores = _pooled_scores(head, text_states, text_mask, query_states, query_mask, spans, legal)
        # [B, Q, S, C]: which pool slot holds each requested span.
        found = (spans.unsqueeze(3) == pooled.indices[:, None, None]).all(-1) & pooled.mask[:, None, None]
        slot = found.long().argmax(-1)
        span_logits = pool_scores.transpose(1, 2).gather(2, slot)
        return {
            "span_logits": span_logits.masked_fill(~legal, MASK_LOGIT),
            "span_outside_pool": legal & ~found.any(-1),
        }


class GLiNER2RecordHeadForExport(nn.Module):
    """gliner2's record head on the shared pool, with the pool's candidate states computed as
    BoundaryHead.forward computes them when records are enabled (see the module docstring)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.boundary_head = model.boundary_head
        self.record_head = model.record_decoder
        self.config = model.config

    def forward(
        self,
        text_states: torch.Tensor,
        text_mask: torch.Tensor,
        query_states: torch.Tensor,
        query_mask: torch.Tensor,
        field_queries: torch.Tensor,
        field_mask: torch.Tensor,
        modes: torch.Tensor,
        anchor_fields: torch.Tensor,
        group_mask: torch.Tensor,
    ) -> Dict[str, torch.Tensor]:
        from gliner2.models.boundary.indexing import gather_rows

        head = self.boundary_head
        text_mask, query_mask = text_mask.bool(), query_mask.bool()
        pooled, pool_scores, boundary_states = _pooled_scores(
            head, text_states, text_mask, query_states, query_mask, return_boundary_states=True
        )
        endpoints = torch.cat(
            (gather_rows(boundary_states, pooled.indices[..., 0]), gather_rows(boundary_states, pooled.indices[..., 1])), -1
        )
        candidate_states = head.candidate_encoder(endpoints).masked_fill(~pooled.mask.unsqueeze(-1), 0.0)
        # The fields the record head reads, without CandidateTensorBatch's shape checks (Python
        # booleans of traced sizes); the shared pool keeps a query axis of one.
        candidates = SimpleNamespace(
            indices=pooled.indices.unsqueeze(1),
            valid_mask=pooled.mask.unsqueeze(1),
            candidate_states=candidate_states.unsqueeze(1),
            pair_logits=pool_scores.transpose(1, 2),
            query_mask=query_mask,
            pool_size=head.shared_pool_builder.pool_size,
        )
        field_mask = field_mask.bool()
        # scalar_fields feeds only gliner2's training loss.
        routing = (field_queries, field_mask, torch.zeros_like(field_mask), modes, anchor_fields, group_mask.bool())
        records = self.record_head.forward_groups_dense(query_states, candidates, routing)
        return {
            "object_logits": records.object_logits,
            "assign_logits": records.assign_logits,
            "instance_mask": records.instance_mask,
            "field_membership": records.field_membership,
        }


_WRAPPERS = {
    "encoder": GLiNER2EncoderForExport,
    "count_embed": GLiNER2CountEmbedForExport,
    "classifier": GLiNER2ClassifierForExport,
    "span_scorer": GLiNER2SpanScorerForExport,
    "boundary_head": GLiNER2BoundaryHeadForExport,
    "relation_scorer": GLiNER2RelationScorerForExport,
    "explicit_spans": GLiNER2ExplicitSpansForExport,
    "record_head": GLiNER2RecordHeadForExport,
}


def split_into_submodels(model: nn.Module) -> Dict[str, nn.Module]:
    """The exportable graphs of a loaded gliner2 model (span or boundary), in the bundle's graph order."""
    model.eval()
    architecture = model_architecture(model)
    return {graph: _WRAPPERS[graph](model).eval() for graph in graphs_of_model(model, architecture)}


def graphs_of_model(model: nn.Module, architecture: str) -> tuple:
    """The graphs a loaded model exports to: its architecture's, plus record_head with a record head."""
    has_record_head = bool(getattr(model, "enable_records", False)) and getattr(model, "record_decoder", None) is not None
    return graph_names(architecture, has_record_head)
