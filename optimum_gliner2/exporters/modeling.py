"""Exportable wrappers around the PyTorch modules of a gliner2 span model.

A GLiNER2 forward pass has data-dependent steps (per-task slicing, decoding). They stay on the
host, so the model is exported as four graphs without Loop/If:

    encoder       input_ids, attention_mask -> last_hidden_state      (the transformer)
    count_embed   prompt [N,H], fields [N,M,H], max_instances [N] -> count logits [N,C], queries [N,S,M,H]
    classifier    label markers [K,H] -> logits [K]
    span_scorer   words [B,L,H], queries [B,Q,H] -> span logits [B,Q,L,W]

count_embed runs S = max over tasks of min(predicted count, max_instances) GRU steps (at least 1),
as one ONNX GRU node: step t depends only on steps < t, so the host slicing [:count] of the result
is exactly gliner2's `count_embed(fields, count)`. Running all C = max_count (20) steps instead
cost as much as a fifth of the encoder on short texts, for entity tasks that read instance 0 only
(max_instances 1).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from torch import nn

from optimum_gliner2.exporters.errors import GLiNER2ExportError
from optimum_gliner2.exporters.model_patcher import gru_over_first_steps

#: Task name under which GLiNER2 is registered with Optimum's TasksManager.
GLINER2_TASK = "information-extraction"
SUBMODEL_NAMES = ("encoder", "count_embed", "classifier", "span_scorer")

# Arguments Optimum passes to a loader's from_pretrained that gliner2's loader understands.
_HUB_KWARGS = ("subfolder", "revision", "cache_dir", "local_files_only", "force_download", "token")


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


def split_into_submodels(model: nn.Module) -> Dict[str, nn.Module]:
    """The four exportable graphs of a loaded gliner2 span model, in SUBMODEL_NAMES order."""
    model.eval()
    return {
        "encoder": GLiNER2EncoderForExport(model).eval(),
        "count_embed": GLiNER2CountEmbedForExport(model).eval(),
        "classifier": GLiNER2ClassifierForExport(model).eval(),
        "span_scorer": GLiNER2SpanScorerForExport(model).eval(),
    }


def read_checkpoint_config(model_name_or_path: str | os.PathLike, **hub_kwargs: Any) -> Optional[Dict[str, Any]]:
    """config.json of a local directory or hub repo (cache included), or None if there is none."""
    path = Path(model_name_or_path)
    subfolder = hub_kwargs.get("subfolder") or ""
    if path.is_dir():
        config_file = path / subfolder / "config.json"
        if not config_file.is_file():
            return None
    else:
        try:
            from huggingface_hub import hf_hub_download

            config_file = Path(
                hf_hub_download(
                    str(model_name_or_path),
                    "config.json",
                    subfolder=subfolder or None,
                    revision=hub_kwargs.get("revision"),
                    cache_dir=hub_kwargs.get("cache_dir"),
                    token=hub_kwargs.get("token"),
                )
            )
        except Exception:
            return None
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise GLiNER2ExportError(f"{config_file} is not valid JSON: {error}") from error
    return config if isinstance(config, dict) else None


def is_gliner2_config(config: Optional[Dict[str, Any]]) -> bool:
    """gliner2 writes model_type "extractor", in the legacy 5-key form and in 2.1's form alike."""
    return bool(config) and config.get("model_type") == "extractor"


class GLiNER2ForOnnxExport:
    """The loader Optimum's TasksManager calls to load a GLiNER2 checkpoint for export."""

    @classmethod
    def from_pretrained(cls, model_name_or_path: str | os.PathLike, **kwargs: Any) -> nn.Module:
        """Load a gliner2 span checkpoint (local directory or hub id) in eval mode.

        Raises:
            GLiNER2ExportError: If the checkpoint is not a GLiNER2 span checkpoint or cannot be loaded.
        """
        hub_kwargs = {key: kwargs[key] for key in _HUB_KWARGS if kwargs.get(key) not in (None, "")}
        config = read_checkpoint_config(model_name_or_path, **hub_kwargs)
        if not is_gliner2_config(config):
            raise GLiNER2ExportError(f"{model_name_or_path} is not a GLiNER2 checkpoint (no config.json with model_type 'extractor').")
        architecture = config.get("architecture") or "span"
        if architecture != "span":
            raise GLiNER2ExportError(
                f"{model_name_or_path} is a GLiNER2 '{architecture}' checkpoint (the GLiNER2.5 family). "
                "optimum-gliner2 exports the span architecture only (fastino/gliner2-multi-v1, -base-v1, -large-v1)."
            )
        from gliner2 import GLiNER2

        try:
            model = GLiNER2.from_pretrained(str(model_name_or_path), **hub_kwargs)
        except Exception as error:
            raise GLiNER2ExportError(f"Could not load the GLiNER2 checkpoint {model_name_or_path}: {error}") from error
        torch_dtype = kwargs.get("torch_dtype")
        if torch_dtype is not None and torch_dtype != torch.float32:
            raise GLiNER2ExportError("GLiNER2 exports in float32; make FP16 variants from the exported model instead.")
        return model.eval()
