"""`ORTModelForGLiNER2`: the Optimum-facing class, an ORTModel over the torch-free GLiNER2 runtime."""

from __future__ import annotations

import shutil
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, Dict, Optional, Sequence

from huggingface_hub import snapshot_download
from huggingface_hub.constants import HUGGINGFACE_HUB_CACHE
from onnxruntime import InferenceSession, SessionOptions
from optimum.onnxruntime.base import ORTParentMixin, ORTSessionMixin
from optimum.onnxruntime.modeling import ORTModel
from optimum.onnxruntime.utils import prepare_providers_and_provider_options
from transformers import PretrainedConfig

from optimum_gliner2.bundle.format import METADATA_FILE, read_metadata
from optimum_gliner2.optimum_glue import GLINER2_LIBRARY, register_gliner2_with_optimum
from optimum_gliner2.runtime.api import GLiNER2Methods
from optimum_gliner2.runtime.engine import ExtractionEngine
from optimum_gliner2.runtime.onnx import GLiNER2ONNXRuntime

register_gliner2_with_optimum()

# Files of an export besides the graphs, copied by save_pretrained when present.
_SIDE_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "spm.model", "added_tokens.json")


class ORTGLiNER2Graph(ORTSessionMixin):
    """One of the GLiNER2 sessions, as an Optimum session part (providers, device, `.to()`)."""

    def __init__(self, session: InferenceSession, use_io_binding: Optional[bool] = None):
        self.initialize_ort_attributes(session=session, use_io_binding=use_io_binding)


class ORTModelForGLiNER2(ORTParentMixin, ORTModel, GLiNER2Methods):
    """GLiNER2 on ONNX Runtime with gliner2's `GLiNER2` methods and the same answers.

    Loads a folder exported by `optimum-cli export onnx` (or exports a PyTorch checkpoint on the fly with
    `export=True`) and offers `extract_entities`, `classify_text`, `extract_relations`, `extract_json`,
    `extract`/`batch_extract` with schemas, the `batch_*` methods and the `*_long` methods.

    Example:
        ```python
        >>> from optimum_gliner2 import ORTModelForGLiNER2
        >>> model = ORTModelForGLiNER2.from_pretrained("gliner2-multi-onnx/")
        >>> model.extract_entities("Apple released iPhone 15 in Cupertino.", ["company", "product", "location"])
        ```
    """

    _library_name = GLINER2_LIBRARY

    def __init__(
        self,
        *,
        config: PretrainedConfig,
        runtime: GLiNER2ONNXRuntime,
        use_io_binding: Optional[bool] = None,
        model_save_dir: Optional[str | Path | TemporaryDirectory] = None,
    ):
        sessions = runtime.backend.sessions
        super(ORTModel, self).__init__(model=sessions["encoder"], config=config)
        self.runtime = runtime
        self.graphs = {name: ORTGLiNER2Graph(session, use_io_binding) for name, session in sessions.items()}
        self.initialize_ort_attributes(parts=list(self.graphs.values()))
        self._model_save_dir_tempdirectory_instance = None
        if isinstance(model_save_dir, TemporaryDirectory):
            self._model_save_dir_tempdirectory_instance = model_save_dir
            model_save_dir = model_save_dir.name
        self.model_save_dir = Path(model_save_dir) if model_save_dir is not None else runtime.bundle.folder

    @property
    def engine(self) -> ExtractionEngine:
        """The runtime's extraction engine: the Optimum class adds no second pipeline."""
        return self.runtime.engine

    @property
    def precision(self) -> str:
        """The variant in use, e.g. `"fp32"` or `"int8"`."""
        return self.runtime.precision

    @classmethod
    def _from_pretrained(
        cls,
        model_id: str | Path,
        config: PretrainedConfig,
        subfolder: str = "",
        revision: str = "main",
        force_download: bool = False,
        local_files_only: bool = False,
        trust_remote_code: bool = False,
        cache_dir: str = HUGGINGFACE_HUB_CACHE,
        token: bool | str | None = None,
        file_name: Optional[str] = None,
        precision: Optional[str] = None,
        provider: str = "CPUExecutionProvider",
        providers: Optional[Sequence[str]] = None,
        provider_options: Optional[Sequence[Dict[str, Any]] | Dict[str, Any]] = None,
        session_options: Optional[SessionOptions] = None,
        use_io_binding: Optional[bool] = None,
        model_save_dir: Optional[str | Path | TemporaryDirectory] = None,
        **kwargs: Any,
    ) -> "ORTModelForGLiNER2":
        if trust_remote_code:
            raise ValueError("GLiNER2 exports run no remote code; trust_remote_code is not needed and not accepted.")
        folder = Path(model_id)
        if not folder.is_dir():
            folder = Path(
                snapshot_download(
                    str(model_id),
                    revision=revision,
                    cache_dir=cache_dir,
                    token=token,
                    local_files_only=local_files_only,
                    force_download=force_download,
                    allow_patterns=[f"{subfolder}/*" if subfolder else "*"],
                )
            )
        folder = folder / subfolder if subfolder else folder
        if file_name is not None and precision is None:
            precision = _precision_of_file(folder, file_name)
        providers, provider_options = prepare_providers_and_provider_options(
            provider=provider, providers=providers, provider_options=provider_options
        )
        runtime = GLiNER2ONNXRuntime.from_pretrained(
            folder, precision=precision, providers=providers, session_options=session_options, provider_options=provider_options
        )
        return cls(config=config, runtime=runtime, use_io_binding=use_io_binding, model_save_dir=model_save_dir or folder)

    @classmethod
    def _export(
        cls,
        model_id: str | Path,
        config: PretrainedConfig,
        subfolder: str = "",
        revision: str = "main",
        force_download: bool = False,
        local_files_only: bool = False,
        trust_remote_code: bool = False,
        cache_dir: str = HUGGINGFACE_HUB_CACHE,
        token: bool | str | None = None,
        **kwargs: Any,
    ) -> "ORTModelForGLiNER2":
        from optimum.exporters.onnx import main_export

        model_save_dir = TemporaryDirectory()
        main_export(
            model_name_or_path=str(model_id),
            output=model_save_dir.name,
            subfolder=subfolder,
            revision=revision,
            cache_dir=cache_dir,
            token=token,
            local_files_only=local_files_only,
            force_download=force_download,
        )
        return cls._from_pretrained(model_save_dir.name, config, model_save_dir=model_save_dir, **kwargs)

    def _save_pretrained(self, save_directory: str | Path) -> None:
        """Copy the whole export (every variant, the tokenizer and the metadata, last) to `save_directory`."""
        source, target = self.runtime.bundle.folder, Path(save_directory)
        if source.resolve() == target.resolve():
            return
        metadata = self.runtime.bundle.metadata
        names = set(metadata["files"]) | {n for record in metadata["files"].values() for n in record.get("external_data", {})}
        names |= {name for name in _SIDE_FILES if (source / name).is_file()}
        for name in sorted(names):
            shutil.copy2(source / name, target / name)
        shutil.copy2(source / METADATA_FILE, target / METADATA_FILE)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(
            "ORTModelForGLiNER2 has no single forward pass; use extract_entities, classify_text, "
            "extract_relations, extract_json or (batch_)extract with a schema."
        )


def _precision_of_file(folder: Path, file_name: str) -> str:
    """The variant whose encoder (or any graph) is `file_name`, for Optimum's `file_name=` argument."""
    variants = read_metadata(folder)["variants"]
    for precision, graphs in variants.items():
        if file_name in graphs.values():
            return precision
    raise FileNotFoundError(f"{file_name} is not a graph of any variant in {folder} ({sorted(variants)}).")
