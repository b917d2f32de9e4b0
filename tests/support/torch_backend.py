"""Test-only backends that run gliner2's own PyTorch modules.

With them, `GLiNER2Pipeline` differs from gliner2 only in the host code (preprocessing, batching,
decoding), so parity tests check the port apart from any ONNX graph. `TorchBackend` serves span
models (gliner2's `GLiNER2`), `TorchBoundaryBackend` GLiNER2.5 models (gliner2's `BoundaryExtractor`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from tokenizers import Tokenizer

from optimum_gliner2.runtime import CandidateScores, GLiNER2Pipeline, RecordScores
from tests.support.parity import first_difference


class TorchBackend:
    """The four numeric stages computed by a loaded gliner2 `GLiNER2` model.

    Args:
        model: A gliner2 `GLiNER2` (span architecture) in eval mode.
    """

    architecture = "span"

    def __init__(self, model):
        self.model = model
        self.max_width = model.max_width
        self.max_count = model.count_pred[-1].out_features
        self.hidden_size = model.hidden_size

    @staticmethod
    def _tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array))

    def encode(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            output = self.model.encoder(
                input_ids=self._tensor(input_ids), attention_mask=self._tensor(attention_mask)
            )
        return output.last_hidden_state.numpy()

    def count_and_queries(
        self, prompt_embeddings: np.ndarray, field_embeddings: np.ndarray, max_instances: np.ndarray
    ) -> Tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            count_logits = self.model.count_pred(self._tensor(prompt_embeddings))
            counts = np.minimum(count_logits.argmax(-1).numpy(), max_instances)
            steps = max(1, int(counts.max()))
            queries = torch.stack(
                [self.model.count_embed(fields, steps) for fields in self._tensor(field_embeddings)]
            )
        return count_logits.numpy(), queries.numpy()

    def classify(self, label_embeddings: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.model.classifier(self._tensor(label_embeddings)).squeeze(-1).numpy()

    def score_spans(self, word_embeddings: np.ndarray, queries: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits = self.model.span_rep.score_queries(
                self._tensor(word_embeddings), self._tensor(queries), mask_invalid=False
            )
        return logits.numpy()


def boundary_head_settings(model) -> Dict[str, Any]:
    """The decoding settings of a gliner2 boundary model, as an export writes them to the bundle."""
    from optimum_gliner2.exporters.modeling import GLiNER2BoundaryHeadForExport
    from optimum_gliner2.exporters.publishing import boundary_head_metadata

    return boundary_head_metadata(GLiNER2BoundaryHeadForExport(model))


class TorchBoundaryBackend:
    """The numeric stages of a GLiNER2.5 model computed by gliner2's `BoundaryExtractor`.

    Args:
        model: A gliner2 boundary model (from `gliner2.auto.AutoExtractor`) in eval mode.
    """

    architecture = "boundary"

    def __init__(self, model):
        self.model = model
        self.hidden_size = model.hidden_size
        self.boundary_head = boundary_head_settings(model)

    encode = TorchBackend.encode
    classify = TorchBackend.classify
    _tensor = staticmethod(TorchBackend._tensor)

    def score_candidates(self, text_states, text_mask, query_states, query_mask) -> CandidateScores:
        with torch.inference_mode():
            out = self.model.boundary_head(
                self._tensor(text_states),
                self._tensor(text_mask).bool(),
                self._tensor(query_states),
                self._tensor(query_mask).bool(),
                return_candidates=True,
            )
        candidates = out.candidates
        batch, queries = query_mask.shape
        zeros = np.zeros((batch, queries), dtype=np.float32)
        return CandidateScores(
            # The pool is shared: every query sees the same candidates.
            candidates=candidates.indices[:, 0].numpy() if queries else np.zeros((batch, 0, 2), np.int64),
            candidate_mask=candidates.valid_mask[:, 0].numpy() if queries else np.zeros((batch, 0), bool),
            pair_logits=candidates.pair_logits.float().numpy(),
            null_logits=np.full_like(zeros, -1.0e4) if out.null_logits is None else out.null_logits.float().numpy(),
            count_log_rates=zeros if out.count_log_rates is None else out.count_log_rates.float().numpy(),
        )


    def score_records(
        self, text_states, text_mask, query_states, query_mask, field_queries, field_mask, modes, anchor_fields, group_mask
    ) -> RecordScores:
        # gliner2's _extract_from_batch: the head's candidates (with their states), then the dense record head.
        with torch.inference_mode():
            queries = self._tensor(query_states)
            out = self.model.boundary_head(
                self._tensor(text_states),
                self._tensor(text_mask).bool(),
                queries,
                self._tensor(query_mask).bool(),
                return_candidates=True,
            )
            field_mask = self._tensor(field_mask).bool()
            routing = (
                self._tensor(field_queries),
                field_mask,
                torch.zeros_like(field_mask),  # scalar fields: read by the training loss only
                self._tensor(modes),
                self._tensor(anchor_fields),
                self._tensor(group_mask).bool(),
            )
            dense = self.model.record_decoder.forward_groups_dense(queries, out.candidates, routing)
        return RecordScores(
            dense.object_logits.float().numpy(),
            dense.assign_logits.float().numpy(),
            dense.instance_mask.numpy(),
            dense.field_membership.numpy(),
        )

    def score_explicit_spans(self, text_states, text_mask, query_states, query_mask, spans, span_mask):
        # gliner2 raises when a span does not fit the pool: nothing is ever reported outside it.
        with torch.inference_mode():
            logits = self.model.boundary_head.score_explicit_spans(
                self._tensor(text_states),
                self._tensor(text_mask).bool(),
                self._tensor(query_states),
                self._tensor(query_mask).bool(),
                self._tensor(spans),
                self._tensor(span_mask).bool(),
            )
        return logits.float().numpy(), np.zeros(spans.shape[:-1], dtype=bool)

    def score_relations(self, text_states, relation_roles, pair_rows, pair_relations, pair_spans) -> np.ndarray:
        from gliner2.models.boundary.relations import RelationPairBatch

        roles = self._tensor(relation_roles)
        # gliner2's `_encode_core` builds the relation query from the two role markers.
        if self.model.boundary_settings.directional_relation_states:
            queries = torch.cat((roles[:, :, 0], roles[:, :, 1]), dim=-1)
        else:
            queries = torch.stack((roles[:, :, 0], roles[:, :, 1])).mean(dim=0)
        spans = self._tensor(pair_spans)
        unused = torch.zeros(len(spans))
        pairs = RelationPairBatch(
            self._tensor(pair_rows), self._tensor(pair_relations), spans[:, 0], spans[:, 1], spans[:, 2], spans[:, 3], unused, unused
        )
        with torch.inference_mode():
            return self.model.relation_scorer(self._tensor(text_states), queries, None, pairs).float().numpy()


def torch_pipeline(model, checkpoint_dir, **kwargs) -> GLiNER2Pipeline:
    """`GLiNER2Pipeline` on gliner2's own modules (span or boundary) with the checkpoint's tokenizer.json."""
    tokenizer = Tokenizer.from_file(str(Path(checkpoint_dir) / "tokenizer.json"))
    kwargs.setdefault("token_pooling", model.config.token_pooling)
    backend = TorchBoundaryBackend(model) if getattr(model, "architecture", "span") == "boundary" else TorchBackend(model)
    return GLiNER2Pipeline(backend, tokenizer, **kwargs)


HOST_CODE_DIFFERS = "the host code on gliner2's modules differs from gliner2"

_NUMERIC_STAGES = ("encode", "count_and_queries", "classify", "score_spans", "score_candidates",
                   "score_explicit_spans", "score_relations", "score_records")


class RecordingBackend:
    """Passes every call to `backend` and keeps each numeric stage's outputs, as flat arrays."""

    def __init__(self, backend):
        self._backend = backend
        self.outputs: List[Tuple[str, np.ndarray]] = []

    def __getattr__(self, name: str):
        attribute = getattr(self._backend, name)
        if name not in _NUMERIC_STAGES:
            return attribute

        def recorded(*args):
            result = attribute(*args)
            parts = dataclasses.astuple(result) if dataclasses.is_dataclass(result) else result
            for array in parts if isinstance(parts, tuple) else (parts,):
                self.outputs.append((name, np.asarray(array)))
            return result

        return recorded


def divergence_beyond_float_noise(
    torch_model, onnx_model: GLiNER2Pipeline, call: Callable[[Any], Any], expected: Any, rtol: float = 1e-4, atol: float = 1e-4
) -> Optional[str]:
    """Why an ONNX answer that differs from gliner2's is a real divergence, or None when it is not.

    An answer can flip at a decision boundary (two overlapping spans whose confidences tie within
    1e-6, a score at the threshold) while every number agrees to float precision. It is float noise,
    not a port bug, when both hold:
    - the host code on gliner2's own modules (`TorchBackend`) gives gliner2's answer `expected`, so
      preprocessing, batching and decoding are right;
    - every numeric stage of that run and of the ONNX run agrees within `rtol`/`atol` (same calls,
      same shapes), so the graphs compute what gliner2's modules compute.

    Args:
        torch_model: The gliner2 model that gave `expected`.
        onnx_model: The ONNX runtime that answered differently.
        call: Runs the same extraction on a pipeline, e.g. `lambda model: model.batch_extract(...)`.
        expected: gliner2's answer to `call`.
    """
    engine = onnx_model.engine
    torch_backend = TorchBoundaryBackend(torch_model) if engine.backend.architecture == "boundary" else TorchBackend(torch_model)
    recorded = []
    for backend in (torch_backend, engine.backend):
        recorder = RecordingBackend(backend)
        pipeline = GLiNER2Pipeline(recorder, engine.preprocessor.tokenizer, token_pooling=engine.token_pooling,
                                   max_sequence_tokens=engine.max_sequence_tokens)
        recorded.append((call(pipeline), recorder.outputs))
    (host_answer, torch_outputs), (_, onnx_outputs) = recorded
    host_difference = first_difference(expected, host_answer, atol=1e-5)
    if host_difference is not None:
        return f"{HOST_CODE_DIFFERS}: {host_difference}"
    if [(name, array.shape) for name, array in torch_outputs] != [(name, array.shape) for name, array in onnx_outputs]:
        return "the ONNX graphs were called in another order or gave other shapes than gliner2's modules"
    for index, ((name, torch_array), (_, onnx_array)) in enumerate(zip(torch_outputs, onnx_outputs)):
        if torch_array.dtype.kind == "f":
            close = np.allclose(onnx_array, torch_array, rtol=rtol, atol=atol)
        else:
            close = np.array_equal(onnx_array, torch_array)
        if not close:
            return f"output {index} of {name} differs beyond float noise between ONNX and gliner2's modules"
    return None


@contextlib.contextmanager
def gliner2_without_token_boundaries_crash() -> Iterator[None]:
    """gliner2 2.1.0 with its one unchecked token-to-character conversion made total.

    Its boundary engine converts a record's anchor to characters without a range check when the
    record gets a choice value from the choice prefix; an anchor on a prefix word then raises
    `ValueError: token boundaries [..) out of range`. Inside this block that conversion answers
    (0, 0), which is where gliner2 places such a value for a record without an anchor, and what the
    runtime answers (a deliberate difference, README). Every other conversion gliner2 range-checks
    before making it, so nothing else changes.
    """
    import gliner2.models.boundary.engine as engine

    checked = engine.token_boundaries_to_character_offsets

    def total(start, end, start_map, end_map):
        if start < 0 or end > len(end_map) or end <= start:
            return 0, 0
        return checked(start, end, start_map, end_map)

    engine.token_boundaries_to_character_offsets = total
    try:
        yield
    finally:
        engine.token_boundaries_to_character_offsets = checked
