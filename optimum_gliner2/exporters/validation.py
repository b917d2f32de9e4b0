"""The plugin's own check of exported graphs against gliner2's PyTorch modules.

Optimum validates each graph at the export shapes only and merely warns on a mismatch. Here every
graph is compared with gliner2's PyTorch modules at several other shapes; any divergence beyond
tolerance raises (exporters/publishing.py then removes the graphs, so no loadable folder is left).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import onnxruntime as ort
import torch

from optimum_gliner2.bundle.format import GRAPH_NAMES
from optimum_gliner2.errors import GLiNER2ExportError

logger = logging.getLogger(__name__)

#: Accepted |ONNX - PyTorch| per element: ATOL + RTOL * |PyTorch|. The graphs agree to ~1e-5 relative;
#: full-size span logits reach magnitudes where a pure absolute bound would be arbitrary.
VALIDATION_ATOL = 1e-4
VALIDATION_RTOL = 1e-4
ENCODER_SHAPES = ((1, 5), (3, 37), (2, 130))  # (batch, sequence length)
#: (fields, instances the host reads per task): one task, two, and five that read instance 0 only.
COUNT_EMBED_CASES = ((1, (20,)), (5, (1, 20)), (12, (1, 1, 1, 1, 1)))
CLASSIFIER_SHAPES = (1, 3, 17)  # label markers
SPAN_SCORER_SHAPES = ((1, 1, 1), (2, 9, 4), (3, 41, 11))  # (batch, words, queries)


def _compare(expected: torch.Tensor, actual: np.ndarray) -> Tuple[float, bool]:
    """(max abs diff, whether every element is within VALIDATION_ATOL + VALIDATION_RTOL * |expected|)."""
    expected = expected.detach().cpu().numpy()
    if expected.shape != actual.shape:
        raise GLiNER2ExportError(f"shape {actual.shape} from ONNX Runtime, {expected.shape} from PyTorch")
    if not expected.size:
        return 0.0, True
    diff = np.abs(expected - actual)
    within = bool(np.all(diff <= VALIDATION_ATOL + VALIDATION_RTOL * np.abs(expected)))
    return float(diff.max()), within


def _cases(submodels: Dict[str, torch.nn.Module], vocab_size: int, hidden: int, seed: int = 0):
    """(graph, shape description, ONNX feeds, PyTorch reference outputs) at non-export shapes."""
    generator = torch.Generator().manual_seed(seed)

    def floats(*shape):
        return torch.randn(*shape, generator=generator) * 2.0

    with torch.inference_mode():
        for batch, length in ENCODER_SHAPES:
            ids = torch.randint(0, vocab_size, (batch, length), generator=generator)
            mask = torch.ones(batch, length, dtype=torch.long)
            mask[0, length // 2 + 1 :] = 0  # right padding, as the runtime pads
            reference = submodels["encoder"](ids, mask)["last_hidden_state"] * mask[..., None]
            yield "encoder", f"batch {batch} x {length} tokens", {"input_ids": ids, "attention_mask": mask}, {
                "last_hidden_state": (reference, mask)
            }
        count_module = submodels["count_embed"]
        for fields, instances in COUNT_EMBED_CASES:
            tasks = len(instances)
            prompts, field_embs = floats(tasks, hidden), floats(tasks, fields, hidden)
            max_instances = torch.tensor([min(n, count_module.max_count) for n in instances])
            count_logits = count_module.count_pred(prompts)
            counts = [min(int(c), int(n)) for c, n in zip(count_logits.argmax(-1), max_instances)]
            steps = max(1, *counts)
            # Reference: gliner2's count_embed called per task with an int count, as gliner2 calls it.
            queries = torch.stack([count_module.count_embed(field_embs[t], steps) for t in range(tasks)])
            yield "count_embed", f"{tasks} tasks x {fields} fields, {steps} steps", {
                "prompt_embeddings": prompts,
                "field_embeddings": field_embs,
                "max_instances": max_instances,
            }, {"count_logits": (count_logits, None), "queries": (queries, None)}
        for labels in CLASSIFIER_SHAPES:
            embs = floats(labels, hidden)
            yield "classifier", f"{labels} labels", {"label_embeddings": embs}, {
                "logits": (submodels["classifier"](embs)["logits"], None)
            }
        for batch, words, queries_count in SPAN_SCORER_SHAPES:
            word_embs, queries = floats(batch, words, hidden), floats(batch, queries_count, hidden)
            yield "span_scorer", f"batch {batch} x {words} words x {queries_count} queries", {
                "word_embeddings": word_embs,
                "queries": queries,
            }, {"span_logits": (submodels["span_scorer"](word_embs, queries)["span_logits"], None)}


def validate_graphs(output_dir: Path, onnx_files: Dict[str, str], submodels: Dict[str, torch.nn.Module]) -> List[dict]:
    """Compare every graph with PyTorch at shapes other than the export example.

    Returns:
        One record per case: graph, shape, output, max_abs_diff.

    Raises:
        GLiNER2ExportError: If any output differs by more than VALIDATION_ATOL, or a shape fails.
    """
    encoder_config = submodels["encoder"].encoder.config
    sessions = {
        graph: ort.InferenceSession(str(output_dir / onnx_files[graph]), providers=["CPUExecutionProvider"])
        for graph in GRAPH_NAMES
    }
    report, failures = [], []
    for graph, shape, feeds, references in _cases(submodels, encoder_config.vocab_size, encoder_config.hidden_size):
        try:
            outputs = sessions[graph].run(list(references), {k: v.numpy() for k, v in feeds.items()})
        except Exception as error:
            failures.append(f"{graph} fails at {shape}: {error}")
            continue
        for (name, (expected, mask)), actual in zip(references.items(), outputs):
            if mask is not None:  # padded positions are not compared: nothing reads them
                actual = actual * mask.numpy()[..., None]
            try:
                diff, within_tolerance = _compare(expected, actual)
            except GLiNER2ExportError as error:
                failures.append(f"{graph}.{name} at {shape}: {error}")
                continue
            report.append({"graph": graph, "shape": shape, "output": name, "max_abs_diff": diff})
            logger.info("validated %s.%s at %s: max abs diff %.2e", graph, name, shape, diff)
            if not within_tolerance:
                failures.append(
                    f"{graph}.{name} at {shape}: max abs diff {diff:.3e} exceeds {VALIDATION_ATOL:.0e} + {VALIDATION_RTOL:.0e} x |PyTorch|"
                )
    if failures:
        raise GLiNER2ExportError("The exported ONNX graphs do not reproduce PyTorch:\n  " + "\n  ".join(failures))
    return report
