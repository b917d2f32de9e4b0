"""The plugin's own checks of an export, and the metadata that makes the folder loadable.

Optimum validates each graph at the export shapes only and merely warns on a mismatch. Here every
graph is compared with gliner2's PyTorch modules at several other shapes; any divergence beyond
tolerance removes the graphs and raises, so a failed export never leaves a loadable folder.
The runtime metadata is written last, atomically: its presence marks a finished, validated export.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

import numpy as np
import onnxruntime as ort
import torch

from optimum_gliner2.exporters.errors import GLiNER2ExportError
from optimum_gliner2.runtime.bundle import (
    DEFAULT_PRECISION,
    FORMAT_VERSION,
    GRAPH_NAMES,
    MARKER_TOKENS,
    METADATA_FILE,
    file_record,
)

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
_PACKAGES = ("optimum-gliner2", "optimum", "optimum-onnx", "transformers", "torch", "gliner2", "onnx", "onnxruntime")


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


def _onnx_opset(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx"))


def _versions() -> Dict[str, str]:
    versions = {}
    for package in _PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def build_metadata(output_dir: Path, onnx_files: Dict[str, str], submodels, report: List[dict], opset: int) -> dict:
    """The runtime metadata of a finished export (see runtime/bundle.py for the reader)."""
    encoder_wrapper, count_wrapper = submodels["encoder"], submodels["count_embed"]
    gliner2_config = encoder_wrapper.config
    tokenizer = encoder_wrapper.tokenizer
    special_ids = {token: tokenizer.convert_tokens_to_ids(token) for token in MARKER_TOKENS}
    if any(i is None or i == tokenizer.unk_token_id for i in special_ids.values()):
        raise GLiNER2ExportError(f"The checkpoint's tokenizer lacks gliner2's marker tokens: {special_ids}")
    files = {name: file_record(output_dir, name) for name in [*onnx_files.values(), "tokenizer.json"]}
    return {
        "format_version": FORMAT_VERSION,
        "architecture": "span",
        "graphs": list(GRAPH_NAMES),
        "variants": {DEFAULT_PRECISION: dict(onnx_files)},
        "files": files,
        "tokenizer_file": "tokenizer.json",
        "max_width": int(gliner2_config.max_width),
        "max_count": int(count_wrapper.max_count),
        "hidden_size": int(encoder_wrapper.encoder.config.hidden_size),
        "counting_layer": gliner2_config.counting_layer,
        "token_pooling": gliner2_config.token_pooling,
        "encoder_model_type": encoder_wrapper.encoder.config.model_type,
        "pad_token_id": int(tokenizer.pad_token_id or 0),
        "special_token_ids": special_ids,
        "opset": opset,
        "exporter_versions": _versions(),
        "validation": report,
    }


def write_json_atomically(path: Path, content: dict) -> None:
    """Write `content` to `path` so that readers see the old file or the whole new one, never a part."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(descriptor, 0o644)  # mkstemp's 0600 would hide the metadata from other users
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(content, handle, indent=2)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def remove_export_files(output_dir: Path, names: Iterable[str]) -> None:
    """Delete graphs (with their external data) so that a failed export cannot be loaded."""
    for name in names:
        for path in [output_dir / name, *output_dir.glob(f"{Path(name).name}_data*")]:
            path.unlink(missing_ok=True)


def finalize_export(output_dir, models_and_onnx_configs, onnx_files_subpaths) -> None:
    """Validate the graphs Optimum just wrote, save the tokenizer, and write the metadata last."""
    output_dir = Path(output_dir)
    onnx_files = dict(zip(models_and_onnx_configs, onnx_files_subpaths))
    submodels = {name: module for name, (module, _) in models_and_onnx_configs.items()}
    (output_dir / METADATA_FILE).unlink(missing_ok=True)  # a stale marker must not vouch for new files
    try:
        report = validate_graphs(output_dir, onnx_files, submodels)
        submodels["encoder"].tokenizer.save_pretrained(str(output_dir))
        opset = _onnx_opset(output_dir / onnx_files["encoder"])
        metadata = build_metadata(output_dir, onnx_files, submodels, report, opset)
    except BaseException:
        remove_export_files(output_dir, onnx_files.values())
        raise
    write_json_atomically(output_dir / METADATA_FILE, metadata)
    worst = max(record["max_abs_diff"] for record in report)
    logger.info("GLiNER2 export validated at %d shapes (max abs diff %.2e); metadata written.", len(report), worst)


def staging_folder_for(output_dir: Path) -> Path:
    """Where an export into `output_dir` is written before it is published (same file system)."""
    return output_dir.parent / f".{output_dir.name}.gliner2-export-{os.getpid()}"


def publish_export(staging: Path, output_dir: Path) -> None:
    """Move a finished export from `staging` into `output_dir`, replacing a previous export there.

    The previous metadata goes first and the new metadata comes last, so at every instant the folder
    either loads as the old export, as the new one, or not at all.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    previous = output_dir / METADATA_FILE
    if previous.is_file():
        try:
            old_files = json.loads(previous.read_text(encoding="utf-8")).get("files", {})
        except (OSError, ValueError):
            old_files = {}
        previous.unlink()
        remove_export_files(output_dir, [name for name in old_files if name.endswith(".onnx")])
    for path in sorted(staging.iterdir()):
        if path.name != METADATA_FILE:
            os.replace(path, output_dir / path.name)
    os.replace(staging / METADATA_FILE, output_dir / METADATA_FILE)
    staging.rmdir()
