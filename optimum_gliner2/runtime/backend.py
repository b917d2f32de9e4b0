"""The four numeric stages the engine calls, whatever runs them.

`OnnxBackend` (runtime/onnx/sessions.py) runs them with ONNX Runtime; tests also run them with
gliner2's own PyTorch modules (tests/support/torch_backend.py) to check the host code apart from the
graphs. All arrays are numpy; float arrays are float32, index arrays int64.
"""

from __future__ import annotations

from typing import Protocol, Tuple

import numpy as np


class GLiNER2Backend(Protocol):
    """Numeric stages of a GLiNER2 span model. Data-dependent steps stay on the host."""

    #: Largest span width in words (config.max_width); span logits have this last dimension.
    max_width: int
    #: Number of count classes of count_pred (20 in gliner2).
    max_count: int
    #: Encoder hidden size.
    hidden_size: int

    def encode(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """[B, S] int64 ids and mask (right-padded with 0) -> last hidden state [B, S, H]."""

    def count_and_queries(
        self, prompt_embeddings: np.ndarray, field_embeddings: np.ndarray, max_instances: np.ndarray
    ) -> Tuple[np.ndarray, np.ndarray]:
        """N tasks with M fields each: prompts [N, H], fields [N, M, H], int64 max_instances [N] ->
        (count logits [N, max_count], count-aware queries [N, S, M, H]).

        max_instances is how many instances the host reads per task (1 for entities). S is at least
        min(predicted count, max_instances) for every task; instance t depends only on instances
        < t, so the host keeps [:count].
        """

    def classify(self, label_embeddings: np.ndarray) -> np.ndarray:
        """Classification label markers [K, H] -> logits [K]."""

    def score_spans(self, word_embeddings: np.ndarray, queries: np.ndarray) -> np.ndarray:
        """Words [B, L, H] (zero-padded) and queries [B, Q, H] -> raw span logits [B, Q, L, W].

        Spans that run past a text's last word are not masked here; the host masks them.
        """
