"""A test-only `GLiNER2Backend` that runs gliner2's own PyTorch modules.

With it, `GLiNER2Pipeline` differs from gliner2's `GLiNER2` only in the host code (preprocessing,
batching, decoding), so parity tests check the port apart from any ONNX graph.
"""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

import numpy as np
import torch
from tokenizers import Tokenizer

from optimum_gliner2.runtime import GLiNER2Pipeline


class TorchBackend:
    """The four numeric stages computed by a loaded gliner2 `GLiNER2` model.

    Args:
        model: A gliner2 `GLiNER2` (span architecture) in eval mode.
    """

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


def torch_pipeline(model, checkpoint_dir, **kwargs) -> GLiNER2Pipeline:
    """`GLiNER2Pipeline` on `TorchBackend(model)` with the checkpoint's tokenizer.json."""
    tokenizer = Tokenizer.from_file(str(Path(checkpoint_dir) / "tokenizer.json"))
    kwargs.setdefault("token_pooling", model.config.token_pooling)
    return GLiNER2Pipeline(TorchBackend(model), tokenizer, **kwargs)
