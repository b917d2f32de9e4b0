"""ONNX Runtime sessions of an exported folder, behind the GLiNER2Backend interface."""

from __future__ import annotations

from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import onnxruntime as ort

from optimum_gliner2.runtime.bundle import GRAPH_NAMES, GLiNER2OnnxBundle
from optimum_gliner2.runtime.errors import GLiNER2LoadError

ProviderSpec = Union[str, Tuple[str, Dict[str, Any]]]

#: Inputs and outputs each graph must have (name -> rank); checked at load so that a mismatched
#: bundle fails there rather than with a wrong answer later.
GRAPH_SIGNATURES = {
    "encoder": ({"input_ids": 2, "attention_mask": 2}, {"last_hidden_state": 3}),
    "count_embed": ({"prompt_embeddings": 2, "field_embeddings": 3}, {"count_logits": 2, "queries": 4}),
    "classifier": ({"label_embeddings": 2}, {"logits": 1}),
    "span_scorer": ({"word_embeddings": 3, "queries": 3}, {"span_logits": 4}),
}


class OnnxBackend:
    """Runs the four GLiNER2 graphs with ONNX Runtime.

    Sessions are created once and are safe to call from several threads at the same time
    (ONNX Runtime's `InferenceSession.run` is thread-safe); nothing else here is mutable.
    """

    def __init__(
        self,
        bundle: GLiNER2OnnxBundle,
        providers: Optional[Sequence[ProviderSpec]] = None,
        session_options: Optional[ort.SessionOptions] = None,
        provider_options: Optional[Sequence[Dict[str, Any]]] = None,
    ):
        self.bundle = bundle
        self.max_width = bundle.max_width
        self.max_count = bundle.max_count
        self.hidden_size = bundle.hidden_size
        self.providers = list(providers or ["CPUExecutionProvider"])
        self.sessions: Dict[str, ort.InferenceSession] = {}
        for graph in GRAPH_NAMES:
            path = bundle.graph_files[graph]
            try:
                self.sessions[graph] = ort.InferenceSession(
                    str(path), sess_options=session_options, providers=self.providers, provider_options=provider_options
                )
            except Exception as error:  # ORT raises its own exception types for corrupt files
                raise GLiNER2LoadError(f"ONNX Runtime cannot load {path}: {error}") from error
        self._check_signatures()
        self._float_type = {graph: self._input_element_type(graph) for graph in GRAPH_NAMES}

    def _check_signatures(self) -> None:
        for graph, (inputs, outputs) in GRAPH_SIGNATURES.items():
            session = self.sessions[graph]
            for kind, expected, actual in (
                ("inputs", inputs, session.get_inputs()),
                ("outputs", outputs, session.get_outputs()),
            ):
                found = {arg.name: arg for arg in actual}
                if set(found) != set(expected):
                    raise GLiNER2LoadError(
                        f"{self.bundle.graph_files[graph].name} has {kind} {sorted(found)}, expected {sorted(expected)}."
                    )
                for name, rank in expected.items():
                    shape = found[name].shape
                    if len(shape) != rank:
                        raise GLiNER2LoadError(f"{graph}.{name} has rank {len(shape)}, expected {rank}.")
                    last = shape[-1]
                    if name in ("last_hidden_state", "prompt_embeddings", "field_embeddings", "label_embeddings", "word_embeddings") or (
                        graph == "count_embed" and name == "queries"
                    ) or (graph == "span_scorer" and name == "queries"):
                        if isinstance(last, int) and last != self.hidden_size:
                            raise GLiNER2LoadError(
                                f"{graph}.{name} has hidden size {last}, but {self.bundle.folder.name}'s metadata says {self.hidden_size}."
                            )
        span_width = self.sessions["span_scorer"].get_outputs()[0].shape[-1]
        if isinstance(span_width, int) and span_width != self.max_width:
            raise GLiNER2LoadError(f"span_scorer scores spans of width {span_width}, but the metadata says max_width {self.max_width}.")
        count_classes = self.sessions["count_embed"].get_outputs()[0].shape[-1]
        if isinstance(count_classes, int) and count_classes != self.max_count:
            raise GLiNER2LoadError(f"count_embed predicts {count_classes} counts, but the metadata says max_count {self.max_count}.")

    def _input_element_type(self, graph: str) -> type:
        # An FP16 graph exported with keep_io_types still takes float32; a plain FP16 graph takes float16.
        for arg in self.sessions[graph].get_inputs():
            if arg.type == "tensor(float16)":
                return np.float16
        return np.float32

    def _run(self, graph: str, feeds: Mapping[str, np.ndarray]) -> list:
        dtype = self._float_type[graph]
        feeds = {name: value.astype(dtype, copy=False) if value.dtype.kind == "f" else value for name, value in feeds.items()}
        return [np.asarray(out, dtype=np.float32) for out in self.sessions[graph].run(None, feeds)]

    def encode(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return self._run("encoder", {"input_ids": input_ids, "attention_mask": attention_mask})[0]

    def count_and_queries(self, prompt_embeddings: np.ndarray, field_embeddings: np.ndarray):
        count_logits, queries = self._run(
            "count_embed", {"prompt_embeddings": prompt_embeddings, "field_embeddings": field_embeddings}
        )
        return count_logits, queries

    def classify(self, label_embeddings: np.ndarray) -> np.ndarray:
        return self._run("classifier", {"label_embeddings": label_embeddings})[0]

    def score_spans(self, word_embeddings: np.ndarray, queries: np.ndarray) -> np.ndarray:
        return self._run("span_scorer", {"word_embeddings": word_embeddings, "queries": queries})[0]
