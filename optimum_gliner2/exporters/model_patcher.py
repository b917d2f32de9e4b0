"""Export-time rewrites of gliner2 modules: each patches on entry and restores on exit.

None of them changes a number; each replaces a construct the TorchScript exporter cannot express
with dynamic shapes:
- `span_windows_as_gather`: SpanMarkerV0.score_queries builds span-end windows with `unfold`
  ("Unfold, input size not accessible"); an index gather gives the same values.
- `transformer_layers_without_fast_path`: count_lstm_v2's nn.TransformerEncoderLayer takes the
  fused `_transformer_encoder_layer_fwd` in eval mode, which has no ONNX symbolic, and its slow path
  bakes the field count into a Reshape. The rewrite is the same post-norm layer with dynamic reshapes.
- `gru_over_first_steps`: gliner2's CompileSafeGRU loops over steps in Python, which tracing
  unrolls to a fixed count; the rewrite runs the first `steps` (a traced tensor) as one GRU op
  (`torch._VF.gru`, PyTorch's nn.GRU kernel, exported as ONNX GRU with a dynamic sequence length).
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from gliner2.layers import SpanMarkerV0
from optimum.exporters.onnx.model_patcher import ModelPatcher
from torch import nn


@contextlib.contextmanager
def patched_attribute(owner: object, name: str, replacement: object) -> Iterator[None]:
    """Set `owner.name` to `replacement` inside the block and restore the original after it."""
    had_own_attribute = name in vars(owner)
    original = vars(owner).get(name)
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        if had_own_attribute:
            setattr(owner, name, original)
        else:  # an instance patch over a class attribute: remove it
            delattr(owner, name)


def _score_queries_with_gather(
    self: SpanMarkerV0,
    h: torch.Tensor,
    queries: torch.Tensor,
    text_lengths: Optional[torch.Tensor] = None,
    *,
    mask_invalid: bool = True,
) -> torch.Tensor:
    """SpanMarkerV0.score_queries with the unfold window replaced by an index gather."""
    batch, length, hidden = h.shape
    first_linear, final_linear = self.out_project[0], self.out_project[3]
    start_rep = self.project_start(h).relu()
    end_rep = self.project_end(h).relu()
    start_hidden = F.linear(start_rep, first_linear.weight[:, :hidden], None)
    end_hidden = F.linear(end_rep, first_linear.weight[:, hidden:], None)

    end_padded = F.pad(end_hidden, (0, 0, 0, self.max_width - 1))
    starts = torch.arange(length, device=h.device).unsqueeze(1)
    widths = torch.arange(self.max_width, device=h.device).unsqueeze(0)
    end_windows = end_padded[:, starts + widths]  # [B, L, W, 4H]
    span_hidden = (start_hidden.unsqueeze(2) + end_windows + first_linear.bias).relu()
    span_hidden = span_hidden.reshape(batch, length * self.max_width, -1)

    folded_queries = torch.matmul(queries, final_linear.weight)
    query_bias = torch.matmul(queries, final_linear.bias)
    logits = torch.baddbmm(query_bias[:, None, :], span_hidden, folded_queries.transpose(1, 2))
    logits = logits.transpose(1, 2).reshape(batch, queries.shape[1], length, self.max_width)
    if mask_invalid:
        ends = starts + widths
        valid = (ends < length).unsqueeze(0)
        if text_lengths is not None:
            valid = valid & (ends.unsqueeze(0) < text_lengths[:, None, None])
        logits = logits.masked_fill(~valid[:, None, :, :], float("-inf"))
    return logits


def span_windows_as_gather() -> contextlib.AbstractContextManager:
    return patched_attribute(SpanMarkerV0, "score_queries", _score_queries_with_gather)


def _transformer_encoder_layer_forward(
    self: nn.TransformerEncoderLayer,
    src: torch.Tensor,
    src_mask: Optional[torch.Tensor] = None,
    src_key_padding_mask: Optional[torch.Tensor] = None,
    is_causal: bool = False,
) -> torch.Tensor:
    """Eval-mode nn.TransformerEncoderLayer (batch_first, post-norm) with shape-agnostic reshapes."""
    if src_mask is not None or src_key_padding_mask is not None or is_causal or self.norm_first:
        raise NotImplementedError("GLiNER2 export expects gliner2's unmasked post-norm transformer layers")
    attention = self.self_attn
    heads = attention.num_heads
    query, key, value = F.linear(src, attention.in_proj_weight, attention.in_proj_bias).chunk(3, dim=-1)

    def split_heads(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.reshape(tensor.shape[0], tensor.shape[1], heads, -1).transpose(1, 2)

    query, key, value = split_heads(query), split_heads(key), split_heads(value)
    scores = torch.matmul(query, key.transpose(-2, -1)) / math.sqrt(attention.head_dim)
    context = torch.matmul(scores.softmax(dim=-1), value)
    context = context.transpose(1, 2).reshape(src.shape[0], src.shape[1], -1)
    x = self.norm1(src + attention.out_proj(context))
    return self.norm2(x + self.linear2(self.activation(self.linear1(x))))


def transformer_layers_without_fast_path() -> contextlib.AbstractContextManager:
    stack = contextlib.ExitStack()
    stack.enter_context(patched_attribute(nn.TransformerEncoderLayer, "forward", _transformer_encoder_layer_forward))
    # nn.TransformerEncoder also has a fused path that bypasses the layers' forward.
    stack.enter_context(patched_attribute(torch.backends.mha, "get_fastpath_enabled", lambda: False))
    return stack


def gru_over_first_steps(gru: nn.Module, steps: torch.Tensor) -> contextlib.AbstractContextManager:
    """Make `gru` (a CompileSafeGRU instance) run only the first `steps` of its input sequence."""

    def forward(inputs: torch.Tensor, initial_state: torch.Tensor) -> torch.Tensor:
        first_steps = torch.index_select(inputs, 0, torch.arange(steps, device=inputs.device))
        weights = [gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0]
        # (input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first)
        outputs, _ = torch._VF.gru(first_steps, initial_state.unsqueeze(0), weights, True, 1, 0.0, False, False, False)
        return outputs

    return patched_attribute(gru, "forward", forward)


class GLiNER2ModelPatcher(ModelPatcher):
    """Optimum's ModelPatcher plus GLiNER2's own rewrites for the duration of the export."""

    def __enter__(self):
        super().__enter__()
        self._gliner2_patches = contextlib.ExitStack()
        self._gliner2_patches.enter_context(span_windows_as_gather())
        self._gliner2_patches.enter_context(transformer_layers_without_fast_path())
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        self._gliner2_patches.close()
        super().__exit__(exc_type, exc_value, traceback)
