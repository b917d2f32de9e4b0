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

A boundary model (GLiNER2.5) is exported as three graphs, also without Loop/If:

    encoder        the same graph as for span models
    boundary_head  words [B,L,H], text_mask [B,L], queries [B,Q,H], query_mask [B,Q]
                   -> candidates [B,C,2], candidate_mask [B,C], pair_logits [B,Q,C],
                      null_logits [B,Q], count_log_rates [B,Q]          (C = the pool size)
    classifier     the same graph as for span models (gliner2 uses the same head)

The boundary head builds its shared candidate pool in-graph: the pool is a fixed-size top-k
selection, which ONNX expresses without data-dependent shapes (exporters/boundary_patches.py).
"""

from __future__ import annotations

from typing import Dict

import torch
from torch import nn

from optimum_gliner2.bundle.format import ARCHITECTURE_GRAPHS
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
        encoding = head.boundary_encoder(text_states, text_mask)
        marginals = head.boundary_query_head(
            encoding.states, encoding.mask, text_states, text_mask, query_states, query_mask
        )
        pooled = head.shared_pool_builder(
            encoding.states, encoding.mask, query_mask, marginals.start_logits, marginals.end_logits
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


_WRAPPERS = {
    "encoder": GLiNER2EncoderForExport,
    "count_embed": GLiNER2CountEmbedForExport,
    "classifier": GLiNER2ClassifierForExport,
    "span_scorer": GLiNER2SpanScorerForExport,
    "boundary_head": GLiNER2BoundaryHeadForExport,
}


def split_into_submodels(model: nn.Module) -> Dict[str, nn.Module]:
    """The exportable graphs of a loaded gliner2 model (span or boundary), in the bundle's graph order."""
    model.eval()
    architecture = model_architecture(model)
    return {graph: _WRAPPERS[graph](model).eval() for graph in ARCHITECTURE_GRAPHS[architecture]}
