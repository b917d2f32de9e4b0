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

One rewrite changes no construct but the amount of work, still without changing a number:
- `relative_positions_within_reach`: DeBERTa-v2's disentangled attention projects all 2 x 256
  relative-position embeddings through the query and key weights in every layer (constants that
  ONNX Runtime folds when it loads the graph), repeats them for every batch row and scores every token against all 512,
  whatever the sequence length. A sequence of L tokens only indexes the rows of relative distances
  up to L - 1 (bucketed), so the rewrite scores those rows alone, broadcast over the batch.

The boundary head's (GLiNER2.5) rewrites live in exporters/boundary_patches.py.

`tracer_warnings_as_errors`: a TracerWarning means the tracer turned a traced value into a Python
constant: the graph would be right at the example's shapes and wrong elsewhere, which Optimum's
validation at those shapes cannot see. Inside the patcher every TracerWarning fails the export.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from gliner2.layers import SpanMarkerV0
from optimum.exporters.onnx.model_patcher import ModelPatcher
from torch import nn
from transformers.models.deberta_v2 import modeling_deberta_v2

from optimum_gliner2.errors import GLiNER2ExportError
from optimum_gliner2.exporters.patching import patched_attribute


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


def _disentangled_attention_bias_within_reach(
    self: modeling_deberta_v2.DisentangledSelfAttention,
    query_layer: torch.Tensor,
    key_layer: torch.Tensor,
    relative_pos: Optional[torch.Tensor],
    rel_embeddings: torch.Tensor,
    scale_factor: int,
) -> torch.Tensor:
    """DisentangledSelfAttention.disentangled_attention_bias (transformers 4.57) over the reachable
    relative-position rows only: the rows outside [first, last] are never gathered, so dropping them
    before the score products changes no value. The products broadcast over the batch instead of
    repeating the position rows for every batch row."""
    if relative_pos is None:
        relative_pos = modeling_deberta_v2.build_relative_position(
            query_layer, key_layer, bucket_size=self.position_buckets, max_position=self.max_relative_positions
        )
    if relative_pos.dim() == 2:
        relative_pos = relative_pos.unsqueeze(0).unsqueeze(0)
    elif relative_pos.dim() == 3:
        relative_pos = relative_pos.unsqueeze(1)
    elif relative_pos.dim() != 4:
        raise ValueError(f"Relative position ids must be of dim 2 or 3 or 4. {relative_pos.dim()}")

    att_span = self.pos_ebd_size
    relative_pos = relative_pos.to(device=query_layer.device, dtype=torch.long)
    # Rows of the relative-position table each score type gathers (upstream's clamps).
    table_rows = {}
    if "c2p" in self.pos_att_type:
        table_rows["c2p"] = torch.clamp(relative_pos + att_span, 0, att_span * 2 - 1)
    if "p2c" in self.pos_att_type:
        # Same argument order as upstream, which swaps the last two; they only matter when
        # query and key lengths differ, which never happens in gliner2.
        r_pos = modeling_deberta_v2.build_rpos(
            query_layer, key_layer, relative_pos, self.max_relative_positions, self.position_buckets
        )
        table_rows["p2c"] = torch.clamp(-r_pos + att_span, 0, att_span * 2 - 1)
    if not table_rows:
        return 0
    first = torch.stack([rows.min() for rows in table_rows.values()]).min()
    last = torch.stack([rows.max() for rows in table_rows.values()]).max()
    reachable = torch.arange(first, last + 1, device=query_layer.device)

    # The projections of the whole table depend on weights only, so ONNX Runtime folds them into
    # constants at load time; the selection of reachable rows must come after them to keep that.
    rel_embeddings = rel_embeddings[0 : att_span * 2, :].unsqueeze(0)
    heads = self.num_attention_heads

    def reachable_rows_of(projection: nn.Linear) -> torch.Tensor:  # [heads, reachable, head size]
        return self.transpose_for_scores(projection(rel_embeddings), heads).index_select(1, reachable)

    def scores_against(layer: torch.Tensor, position_rows: torch.Tensor) -> torch.Tensor:
        # [batch x heads, length, head size] x [heads, reachable, head size] -> [batch x heads, length, reachable]
        per_head = layer.view(-1, heads, layer.size(-2), layer.size(-1))
        return torch.matmul(per_head, position_rows.transpose(-1, -2)).view(layer.size(0), layer.size(-2), -1)

    if self.share_att_key:
        pos_query_layer, pos_key_layer = reachable_rows_of(self.query_proj), reachable_rows_of(self.key_proj)
    else:
        if "c2p" in self.pos_att_type:
            pos_key_layer = reachable_rows_of(self.pos_key_proj)
        if "p2c" in self.pos_att_type:
            pos_query_layer = reachable_rows_of(self.pos_query_proj)

    score = 0
    if "c2p" in self.pos_att_type:
        scale = modeling_deberta_v2.scaled_size_sqrt(pos_key_layer, scale_factor)
        c2p_att = scores_against(query_layer, pos_key_layer)
        c2p_index = (table_rows["c2p"] - first).squeeze(0)
        c2p_att = torch.gather(
            c2p_att, dim=-1, index=c2p_index.expand([query_layer.size(0), query_layer.size(1), relative_pos.size(-1)])
        )
        score += c2p_att / scale.to(dtype=c2p_att.dtype)
    if "p2c" in self.pos_att_type:
        scale = modeling_deberta_v2.scaled_size_sqrt(pos_query_layer, scale_factor)
        p2c_att = scores_against(key_layer, pos_query_layer)
        p2c_index = (table_rows["p2c"] - first).squeeze(0)
        p2c_att = torch.gather(
            p2c_att, dim=-1, index=p2c_index.expand([query_layer.size(0), key_layer.size(-2), key_layer.size(-2)])
        ).transpose(-1, -2)
        score += p2c_att / scale.to(dtype=p2c_att.dtype)
    return score


def relative_positions_within_reach() -> contextlib.AbstractContextManager:
    return patched_attribute(
        modeling_deberta_v2.DisentangledSelfAttention, "disentangled_attention_bias", _disentangled_attention_bias_within_reach
    )


#: TracerWarnings known to bake nothing: (message prefix, module) as `warnings.filterwarnings` takes
#: them. transformers' attention-mask helper (BERT encoders) calls `torch.tensor(1.0)`, a literal.
BENIGN_TRACER_WARNINGS = (
    (r"torch\.tensor results are registered as constants", r"transformers\.modeling_attn_mask_utils"),
)
#: torch.onnx UserWarnings that mislead on a GLiNER2 export, silenced inside the export:
#: - the GRU/LSTM batch-size warning: the count head's recurrent state starts at zeros inside the graph, and
#:   validation runs every graph against PyTorch at several batch sizes, which is what the warning asks for;
#: - "Only steps=1 can be constant folded": informational, the slices stay in the graph and are validated.
MISLEADING_EXPORT_WARNINGS = (
    r"Exporting a model to ONNX with a batch_size other than 1",
    r"Constant folding - Only steps=1 can be constant folded",
)


@contextlib.contextmanager
def tracer_warnings_as_errors() -> Iterator[None]:
    """Fail the block with a GLiNER2ExportError naming the line of the first TracerWarning issued in
    it (BENIGN_TRACER_WARNINGS aside).

    The error is raised when the block ends, not from the warning itself: many TracerWarnings are
    issued from C++ (e.g. inside `float(tensor)`), where an exception raised by the warning
    machinery surfaces as a SystemError instead of propagating.
    """
    baked = []
    with warnings.catch_warnings():  # restores the filters and `warnings.showwarning` on exit
        warnings.simplefilter("always", torch.jit.TracerWarning)
        for message, module in BENIGN_TRACER_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=torch.jit.TracerWarning, module=module)
        for message in MISLEADING_EXPORT_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=UserWarning)
        show_other_warnings = warnings.showwarning

        def record_tracer_warnings(message, category, filename, lineno, file=None, line=None):
            if issubclass(category, torch.jit.TracerWarning):
                baked.append((filename, lineno, (str(message).strip().splitlines() or [""])[0]))
                return None
            return show_other_warnings(message, category, filename, lineno, file, line)

        warnings.showwarning = record_tracer_warnings
        try:
            yield
        except BaseException as error:
            if baked:
                raise _baked_value_error(baked) from error
            raise
    if baked:
        raise _baked_value_error(baked)


def _baked_value_error(baked) -> GLiNER2ExportError:
    filename, lineno, message = baked[0]
    more = f" and {len(baked) - 1} more" if len(baked) > 1 else ""
    return GLiNER2ExportError(
        f"The ONNX trace would bake a value into the graph at {filename}:{lineno}{more} "
        f"(TracerWarning: {message}); such a graph is only right at the export's example shapes."
    )


class GLiNER2ModelPatcher(ModelPatcher):
    """Optimum's ModelPatcher plus GLiNER2's own rewrites for the duration of the export; a
    TracerWarning during the export fails it with a GLiNER2ExportError."""

    def __enter__(self):
        from optimum_gliner2.exporters.boundary_patches import boundary_head_rewrites

        super().__enter__()
        self._gliner2_patches = contextlib.ExitStack()
        try:
            for rewrite in (
                tracer_warnings_as_errors,
                span_windows_as_gather,
                transformer_layers_without_fast_path,
                relative_positions_within_reach,
                boundary_head_rewrites,
            ):
                self._gliner2_patches.enter_context(rewrite())
        except BaseException:  # leave nothing patched behind
            self._gliner2_patches.close()
            super().__exit__(None, None, None)
            raise
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        try:
            self._gliner2_patches.close()  # raises if a TracerWarning was issued
        finally:
            super().__exit__(exc_type, exc_value, traceback)
