"""Loading GLiNER2 checkpoints for export: recognising them by their config.json, and the loader
Optimum's TasksManager calls (registered by optimum_glue.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional

from optimum_gliner2.bundle.format import ARCHITECTURE_GRAPHS, BOUNDARY, SPAN
from optimum_gliner2.errors import GLiNER2ExportError

if TYPE_CHECKING:
    from torch import nn

#: Task name under which GLiNER2 is registered with Optimum's TasksManager.
GLINER2_TASK = "information-extraction"

# Arguments Optimum passes to a loader's from_pretrained that gliner2's loader understands.
_HUB_KWARGS = ("subfolder", "revision", "cache_dir", "local_files_only", "force_download", "token")


def read_checkpoint_config(model_name_or_path: str | os.PathLike, **hub_kwargs: Any) -> Optional[Dict[str, Any]]:
    """config.json of a local directory or hub repo (cache included), or None if there is none."""
    path = Path(model_name_or_path)
    subfolder = hub_kwargs.get("subfolder") or ""
    if path.is_dir():
        config_file = path / subfolder / "config.json"
        if not config_file.is_file():
            return None
    else:
        try:
            from huggingface_hub import hf_hub_download

            config_file = Path(
                hf_hub_download(
                    str(model_name_or_path),
                    "config.json",
                    subfolder=subfolder or None,
                    revision=hub_kwargs.get("revision"),
                    cache_dir=hub_kwargs.get("cache_dir"),
                    token=hub_kwargs.get("token"),
                )
            )
        except Exception:
            return None
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise GLiNER2ExportError(f"{config_file} is not valid JSON: {error}") from error
    return config if isinstance(config, dict) else None


def is_gliner2_config(config: Optional[Dict[str, Any]]) -> bool:
    """gliner2 writes model_type "extractor", in the legacy 5-key form and in 2.1's form alike."""
    return bool(config) and config.get("model_type") == "extractor"


def checkpoint_architecture(config: Dict[str, Any]) -> str:
    """The architecture a gliner2 config.json declares: "span" when it names none (the legacy form)."""
    return str(config.get("architecture") or SPAN).strip().lower()


def model_architecture(model: "nn.Module") -> str:
    """"span" or "boundary" for a loaded gliner2 model."""
    return checkpoint_architecture({"architecture": getattr(model.config, "architecture", None)})


#: Boundary-head settings the export cannot reproduce exactly, as (setting, exportable value(s), why).
#: Each is off in every published GLiNER2.5 checkpoint (fastino/gliner2.5-small/base/multi-v1).
_UNEXPORTABLE_BOUNDARY_SETTINGS = (
    ("candidate_pool", ("shared",), "the per-query proposer is not exported"),
    ("content_soft_max_pool", (False,), "ONNX has no logcumsumexp"),
    ("query_attention_layers", (0,), "nn.MultiheadAttention's checks bake the query count into the trace"),
    ("enable_relations", (True,), "a boundary bundle always has the relation_scorer graph"),
)


def unexportable_boundary_settings(boundary_head: Mapping[str, Any]) -> List[str]:
    """The settings of a (validated) boundary_head that the export cannot reproduce exactly, explained."""
    problems = []
    for key, exportable, reason in _UNEXPORTABLE_BOUNDARY_SETTINGS:
        if boundary_head.get(key) not in exportable:
            allowed = " or ".join(repr(value) for value in exportable)
            problems.append(f"{key}={boundary_head.get(key)!r} ({reason}; exportable: {allowed})")
    if boundary_head.get("adaptive_threshold") and not boundary_head.get("enable_count_head"):
        problems.append("adaptive_threshold without a count head (gliner2 itself cannot decode it)")
    return problems


def boundary_settings(config: Dict[str, Any]) -> Dict[str, Any]:
    """The boundary_head gliner2 runs for this config.json: validated, with gliner2's defaults filled in.

    Raises:
        GLiNER2ExportError: If gliner2 rejects the settings.
    """
    from gliner2.configuration import migrate_config_dict

    try:
        return dict(migrate_config_dict(config)["boundary_head"])
    except ValueError as error:
        raise GLiNER2ExportError(f"gliner2 rejects the checkpoint's boundary_head: {_one_line(error)}") from error


def _one_line(error: BaseException) -> str:
    """The first line of an error message (the CLI prints export errors as one line)."""
    text = str(error).strip()
    if not text:
        return type(error).__name__
    line = text.splitlines()[0].strip()
    # A line that announces the details below ("... Original error:") ends with its last full sentence.
    if line.endswith(":") and ". " in line:
        line = line[: line.rindex(". ") + 1]
    return line


class GLiNER2ForOnnxExport:
    """The loader Optimum's TasksManager calls to load a GLiNER2 checkpoint for export."""

    @classmethod
    def from_pretrained(cls, model_name_or_path: str | os.PathLike, **kwargs: Any) -> "nn.Module":
        """Load a gliner2 checkpoint (span or boundary; local directory or hub id) in eval mode.

        Span checkpoints load with `gliner2.GLiNER2`, boundary (GLiNER2.5) checkpoints with
        `gliner2.auto.AutoExtractor`, as their users load them.

        Raises:
            GLiNER2ExportError: If the checkpoint is not a GLiNER2 checkpoint, uses settings the
                export cannot reproduce exactly, or cannot be loaded.
        """
        hub_kwargs = {key: kwargs[key] for key in _HUB_KWARGS if kwargs.get(key) not in (None, "")}
        config = read_checkpoint_config(model_name_or_path, **hub_kwargs)
        if not is_gliner2_config(config):
            raise GLiNER2ExportError(f"{model_name_or_path} is not a GLiNER2 checkpoint (no config.json with model_type 'extractor').")
        architecture = checkpoint_architecture(config)
        if architecture not in ARCHITECTURE_GRAPHS:
            raise GLiNER2ExportError(
                f"{model_name_or_path} is a GLiNER2 '{architecture}' checkpoint; optimum-gliner2 exports "
                f"{' and '.join(repr(name) for name in ARCHITECTURE_GRAPHS)} checkpoints."
            )
        if architecture == BOUNDARY:
            problems = unexportable_boundary_settings(boundary_settings(config))
            if problems:
                raise GLiNER2ExportError(
                    f"{model_name_or_path} is a GLiNER2.5 boundary checkpoint whose boundary_head cannot be "
                    f"exported exactly: {'; '.join(problems)}."
                )
        import torch

        torch_dtype = kwargs.get("torch_dtype")
        if torch_dtype is not None and torch_dtype != torch.float32:
            raise GLiNER2ExportError("GLiNER2 exports in float32; make FP16 variants from the exported model instead.")
        try:
            if architecture == BOUNDARY:
                from gliner2.auto import AutoExtractor

                model = AutoExtractor.from_pretrained(str(model_name_or_path), **hub_kwargs)
            else:
                from gliner2 import GLiNER2

                model = GLiNER2.from_pretrained(str(model_name_or_path), **hub_kwargs)
        except Exception as error:
            raise GLiNER2ExportError(
                f"Could not load the GLiNER2 {architecture} checkpoint {model_name_or_path}: {_one_line(error)}"
            ) from error
        return model.eval()
