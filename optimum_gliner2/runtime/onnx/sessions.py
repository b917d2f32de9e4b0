"""ONNX Runtime sessions of an exported folder, behind the GLiNER2Backend interface."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import onnxruntime as ort

from optimum_gliner2.bundle.format import GRAPH_NAMES, GLiNER2OnnxBundle
from optimum_gliner2.errors import GLiNER2LoadError

ProviderSpec = Union[str, Tuple[str, Dict[str, Any]]]

#: Each graph's inputs and outputs: name -> (rank, what its last dimension must equal). Checked at
#: load so that a bundle whose graphs do not match its metadata fails there, not with a wrong answer.
HIDDEN, MAX_COUNT, MAX_WIDTH, DYNAMIC = "hidden_size", "max_count", "max_width", None
GRAPH_SIGNATURES = {
    "encoder": ({"input_ids": (2, DYNAMIC), "attention_mask": (2, DYNAMIC)}, {"last_hidden_state": (3, HIDDEN)}),
    "count_embed": (
        {"prompt_embeddings": (2, HIDDEN), "field_embeddings": (3, HIDDEN), "max_instances": (1, DYNAMIC)},
        {"count_logits": (2, MAX_COUNT), "queries": (4, HIDDEN)},
    ),
    "classifier": ({"label_embeddings": (2, HIDDEN)}, {"logits": (1, DYNAMIC)}),
    "span_scorer": ({"word_embeddings": (3, HIDDEN), "queries": (3, HIDDEN)}, {"span_logits": (4, MAX_WIDTH)}),
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
        session_options = _without_spinning_by_default(session_options)
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
        expected_sizes = {HIDDEN: self.hidden_size, MAX_COUNT: self.max_count, MAX_WIDTH: self.max_width}
        for graph, (inputs, outputs) in GRAPH_SIGNATURES.items():
            session = self.sessions[graph]
            for kind, expected, actual in (("inputs", inputs, session.get_inputs()), ("outputs", outputs, session.get_outputs())):
                found = {arg.name: arg.shape for arg in actual}
                if set(found) != set(expected):
                    raise GLiNER2LoadError(
                        f"{self.bundle.graph_files[graph].name} has {kind} {sorted(found)}, expected {sorted(expected)}."
                    )
                for name, (rank, last_dimension) in expected.items():
                    shape = found[name]
                    if len(shape) != rank:
                        raise GLiNER2LoadError(f"{graph}.{name} has rank {len(shape)}, expected {rank}.")
                    size = expected_sizes.get(last_dimension)
                    if size is not None and isinstance(shape[-1], int) and shape[-1] != size:
                        raise GLiNER2LoadError(
                            f"{graph}.{name} ends in a dimension of {shape[-1]}, but the metadata says "
                            f"{last_dimension} {size}."
                        )

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

    def count_and_queries(self, prompt_embeddings: np.ndarray, field_embeddings: np.ndarray, max_instances: np.ndarray):
        count_logits, queries = self._run(
            "count_embed",
            {"prompt_embeddings": prompt_embeddings, "field_embeddings": field_embeddings, "max_instances": max_instances},
        )
        return count_logits, queries

    def classify(self, label_embeddings: np.ndarray) -> np.ndarray:
        return self._run("classifier", {"label_embeddings": label_embeddings})[0]

    def score_spans(self, word_embeddings: np.ndarray, queries: np.ndarray) -> np.ndarray:
        return self._run("span_scorer", {"word_embeddings": word_embeddings, "queries": queries})[0]


ALLOW_SPINNING = "session.intra_op.allow_spinning"


def _without_spinning_by_default(session_options: Optional[ort.SessionOptions]) -> ort.SessionOptions:
    """`session_options` (or new defaults) with intra-op spinning off unless the caller set it.

    A call runs four sessions one after another, each with its own thread pool; with spinning on, the
    encoder's threads keep spinning while the head graphs run and take their cores (measured on
    2 CPUs, full-size model: 290 ms -> 225 ms per single-text call).
    """
    session_options = session_options if session_options is not None else ort.SessionOptions()
    try:
        session_options.get_session_config_entry(ALLOW_SPINNING)
    except RuntimeError:  # not set by the caller
        session_options.add_session_config_entry(ALLOW_SPINNING, "0")
    return session_options
