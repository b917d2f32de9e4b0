"""Loading GLiNER2 checkpoints for export: recognising them by their config.json, and the loader
Optimum's TasksManager calls (registered by optimum_glue.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional

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


class GLiNER2ForOnnxExport:
    """The loader Optimum's TasksManager calls to load a GLiNER2 checkpoint for export."""

    @classmethod
    def from_pretrained(cls, model_name_or_path: str | os.PathLike, **kwargs: Any) -> "nn.Module":
        """Load a gliner2 span checkpoint (local directory or hub id) in eval mode.

        Raises:
            GLiNER2ExportError: If the checkpoint is not a GLiNER2 span checkpoint or cannot be loaded.
        """
        hub_kwargs = {key: kwargs[key] for key in _HUB_KWARGS if kwargs.get(key) not in (None, "")}
        config = read_checkpoint_config(model_name_or_path, **hub_kwargs)
        if not is_gliner2_config(config):
            raise GLiNER2ExportError(f"{model_name_or_path} is not a GLiNER2 checkpoint (no config.json with model_type 'extractor').")
        architecture = config.get("architecture") or "span"
        if architecture != "span":
            raise GLiNER2ExportError(
                f"{model_name_or_path} is a GLiNER2 '{architecture}' checkpoint (the GLiNER2.5 family). "
                "optimum-gliner2 exports the span architecture only (fastino/gliner2-multi-v1, -base-v1, -large-v1)."
            )
        import torch
        from gliner2 import GLiNER2

        try:
            model = GLiNER2.from_pretrained(str(model_name_or_path), **hub_kwargs)
        except Exception as error:
            raise GLiNER2ExportError(f"Could not load the GLiNER2 checkpoint {model_name_or_path}: {error}") from error
        torch_dtype = kwargs.get("torch_dtype")
        if torch_dtype is not None and torch_dtype != torch.float32:
            raise GLiNER2ExportError("GLiNER2 exports in float32; make FP16 variants from the exported model instead.")
        return model.eval()
