"""Finishing an export: validate the graphs Optimum wrote, then make the folder loadable.

The runtime metadata (bundle/format.py) is written last and atomically: its presence marks a
finished, validated export. An export is written into a staging folder next to the output and
published only once validated, so an interrupted or failed export never leaves (or half-replaces)
a loadable folder.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
from pathlib import Path
from typing import Dict

from optimum_gliner2.bundle.format import (
    BOUNDARY,
    BOUNDARY_HEAD_KEYS,
    MARKER_TOKENS,
    METADATA_FILE,
    SPAN,
    new_metadata,
    remove_graph_files,
    write_metadata,
)
from optimum_gliner2.errors import GLiNER2ExportError
from optimum_gliner2.exporters.validation import validate_graphs

logger = logging.getLogger(__name__)

_PACKAGES = ("optimum-gliner2", "optimum", "optimum-onnx", "transformers", "torch", "gliner2", "onnx", "onnxruntime")


def finalize_export(output_dir, models_and_onnx_configs, onnx_files_subpaths) -> None:
    """Validate the graphs Optimum just wrote, save the tokenizer, and write the metadata last.

    Raises:
        GLiNER2ExportError: If a graph does not reproduce PyTorch; the graphs are removed.
    """
    output_dir = Path(output_dir)
    onnx_files = dict(zip(models_and_onnx_configs, onnx_files_subpaths))
    submodels = {name: module for name, (module, _) in models_and_onnx_configs.items()}
    (output_dir / METADATA_FILE).unlink(missing_ok=True)  # a stale marker must not vouch for new files
    try:
        report = validate_graphs(output_dir, onnx_files, submodels)
        submodels["encoder"].tokenizer.save_pretrained(str(output_dir))
        metadata = _metadata(output_dir, onnx_files, submodels, report)
    except BaseException:
        remove_graph_files(output_dir, onnx_files.values())
        raise
    write_metadata(output_dir, metadata)
    worst = max(record["max_abs_diff"] for record in report)
    logger.info("GLiNER2 export validated at %d shapes (max abs diff %.2e); metadata written.", len(report), worst)


def _metadata(output_dir: Path, onnx_files: Dict[str, str], submodels, report) -> dict:
    encoder_wrapper = submodels["encoder"]
    gliner2_config, encoder_config = encoder_wrapper.config, encoder_wrapper.encoder.config
    tokenizer = encoder_wrapper.tokenizer
    special_ids = {token: tokenizer.convert_tokens_to_ids(token) for token in MARKER_TOKENS}
    if any(i is None or i == tokenizer.unk_token_id for i in special_ids.values()):
        raise GLiNER2ExportError(f"The checkpoint's tokenizer lacks gliner2's marker tokens: {special_ids}")
    if "boundary_head" in submodels:
        head_metadata = {"architecture": BOUNDARY, "boundary_head": boundary_head_metadata(submodels["boundary_head"])}
    else:
        head_metadata = {
            "architecture": SPAN,
            "max_width": gliner2_config.max_width,
            "max_count": submodels["count_embed"].max_count,
            "counting_layer": gliner2_config.counting_layer,
        }
    return new_metadata(
        output_dir,
        onnx_files,
        **head_metadata,
        hidden_size=encoder_config.hidden_size,
        token_pooling=gliner2_config.token_pooling,
        encoder_model_type=encoder_config.model_type,
        pad_token_id=tokenizer.pad_token_id or 0,
        special_token_ids=special_ids,
        opset=_onnx_opset(output_dir / onnx_files["encoder"]),
        exporter_versions=_versions(),
        validation=report,
        **_graph_optimization(output_dir),
    )


def _graph_optimization(output_dir: Path) -> dict:
    """`optimum-cli export onnx --optimize O2` runs ORTOptimizer over the graphs in place, before validation, and
    leaves Optimum's ort_config.json: recorded so that the folder says its FP32 graphs are optimized ones."""
    ort_config = output_dir / "ort_config.json"
    if not ort_config.is_file():
        return {}
    try:
        optimization = json.loads(ort_config.read_text(encoding="utf-8")).get("optimization") or {}
    except ValueError:
        return {}
    return {"graph_optimization": optimization} if optimization else {}


#: The shortest text the boundary_head graph reproduces exactly: its candidate pool is built with
#: fixed top-k sizes at every length (exporters/boundary_patches.py), so a 1-word text needs no padding.
BOUNDARY_MIN_WORDS = 1


def boundary_head_metadata(boundary_wrapper) -> dict:
    """The boundary head's decoding settings, as gliner2 runs them, for the bundle metadata."""
    settings = boundary_wrapper.boundary_head.settings
    values = {
        "pair_temperature": float(settings.pair_temperature),
        "classification_temperature": float(settings.classification_temperature),
        "abstention_threshold": float(settings.abstention_threshold),
        "overlap_policy": str(settings.overlap_policy),
        "adaptive_threshold": bool(settings.adaptive_threshold),
        "pool_size": int(boundary_wrapper.pool_size),
        "min_words": BOUNDARY_MIN_WORDS,
        "relation_temperature": float(settings.relation_temperature),
        "relation_heads_per_type": int(settings.relation_heads_per_type),
        "relation_tails_per_type": int(settings.relation_tails_per_type),
        "relation_pair_cap": int(settings.relation_pair_cap),
        "relation_argument_proposal_threshold": float(settings.relation_argument_proposal_threshold),
        "enable_records": bool(settings.enable_records),
        "record_temperature": float(settings.record_temperature),
    }
    return {key: values[key] for key in BOUNDARY_HEAD_KEYS}


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


def staging_folder_for(output_dir: Path) -> Path:
    """Where an export into `output_dir` is written before it is published (same file system)."""
    return output_dir.parent / f".{output_dir.name}.gliner2-export-{os.getpid()}"
