"""`ORTModelForGLiNER2`: the Optimum-facing class, an ORTModel over the torch-free GLiNER2 runtime."""

from __future__ import annotations

import shutil
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, Dict, Optional, Sequence, Union

from onnxruntime import InferenceSession, SessionOptions

try:
    from huggingface_hub import HfApi
    from huggingface_hub.constants import HUGGINGFACE_HUB_CACHE
    from optimum.onnxruntime.base import ORTParentMixin, ORTSessionMixin
    from optimum.onnxruntime.modeling import ORTModel
    from optimum.onnxruntime.utils import prepare_providers_and_provider_options
    from transformers import PretrainedConfig
except ImportError as missing:
    # A torch-free serving image (pip install --no-deps optimum-gliner2) has no Optimum, transformers
    # or torch: say what this class needs, and which class serves without them.
    raise ImportError(
        f"ORTModelForGLiNER2 is built on Optimum's ONNX Runtime classes (optimum-onnx, transformers, torch), "
        f"which cannot be imported here ({missing}). Either install the full package with "
        "`pip install optimum-gliner2` (its default dependencies bring them), or serve without torch with "
        "optimum_gliner2.runtime.GLiNER2ONNXRuntime (`from optimum_gliner2.runtime import GLiNER2ONNXRuntime`), "
        "which has the same methods and answers."
    ) from missing

from optimum_gliner2.bundle.format import METADATA_FILE, SIDE_FILES
from optimum_gliner2.optimum_glue import GLINER2_LIBRARY, register_gliner2_with_optimum
from optimum_gliner2.runtime.api import GLiNER2Methods
from optimum_gliner2.runtime.checks import check_model_location
from optimum_gliner2.runtime.engine import ExtractionEngine
from optimum_gliner2.runtime.onnx import GLiNER2ONNXRuntime
from optimum_gliner2.runtime.onnx.model import describe_model, locate_export
from optimum_gliner2.runtime.onnx.sessions import ProviderSpec, resolve_providers
from optimum_gliner2.runtime.words import WordSplitterSpec

register_gliner2_with_optimum()



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
        """The variant in use, e.g. `"fp32"` or `"int8"` (for a `file_name=` from Optimum's tools, its suffix)."""
        return self.runtime.precision

    @property
    def dtype(self):
        """The torch dtype of the encoder's output, which the variant sets (FP32 heads would make Optimum's
        `ORTParentMixin.dtype` warn that the parts differ)."""
        return self.graphs["encoder"].dtype

    @property
    def path(self) -> Path:
        """The encoder graph in use: what `ORTOptimizer.from_pretrained(model)` and `ORTQuantizer.from_pretrained(model)`
        work on. The heads are small and sit right before the thresholds, so Optimum's tools leave them be."""
        return self.runtime.bundle.graph_files["encoder"]

    @classmethod
    def from_pretrained(
        cls,
        model_id: Union[str, Path],
        config: Optional[PretrainedConfig] = None,
        export: bool = False,
        subfolder: str = "",
        revision: str = "main",
        force_download: bool = False,
        local_files_only: bool = False,
        trust_remote_code: bool = False,
        cache_dir: str = HUGGINGFACE_HUB_CACHE,
        token: Union[bool, str, None] = None,
        **kwargs: Any,
    ) -> "ORTModelForGLiNER2":
        """Load an exported folder (local or a hub id), or export a GLiNER2 checkpoint with `export=True`.

        Takes Optimum's `ORTModel.from_pretrained` arguments, plus:

        Args:
            precision (`str`, *optional*): The variant to run (`"fp32"` by default; `"int8"`, `"fp16"`,
                ... where made with `python -m optimum_gliner2.variants`).
            providers (`str` or list, *optional*): ONNX Runtime execution providers; a single name is
                one provider. A provider missing from this onnxruntime install is refused.
            word_splitter (`str` or callable, *optional*): gliner2's word splitter (`"whitespace"`,
                the default, or `"char"` for languages written without spaces), as in gliner2.

        Raises:
            GLiNER2LoadError: `model_id` is neither an existing folder nor a hub id, a hub id that
                cannot be fetched (e.g. not cached while offline), a provider that is not available,
                or a folder that is not a complete export.
        """
        # Before Optimum's own hub look-ups, whose errors ("Repo id must use alphanumeric chars")
        # do not say that the path simply does not exist.
        if export:
            check_model_location(model_id)
        else:
            model_id = locate_export(
                model_id,
                subfolder=subfolder,
                revision=revision,
                cache_dir=cache_dir,
                token=token,
                local_files_only=local_files_only,
                force_download=force_download,
                precision=kwargs.get("precision"),
                file_name=kwargs.get("file_name"),
            )
        return super().from_pretrained(
            model_id,
            config=config,
            export=export,
            subfolder=subfolder,
            revision=revision,
            force_download=force_download,
            local_files_only=local_files_only,
            trust_remote_code=trust_remote_code,
            cache_dir=cache_dir,
            token=token,
            **kwargs,
        )

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
        providers: Optional[Union[ProviderSpec, Sequence[ProviderSpec]]] = None,
        provider_options: Optional[Sequence[Dict[str, Any]] | Dict[str, Any]] = None,
        session_options: Optional[SessionOptions] = None,
        use_io_binding: Optional[bool] = None,
        model_save_dir: Optional[str | Path | TemporaryDirectory] = None,
        word_splitter: Optional[WordSplitterSpec] = None,
        **kwargs: Any,
    ) -> "ORTModelForGLiNER2":
        if trust_remote_code:
            raise ValueError("GLiNER2 exports run no remote code; trust_remote_code is not needed and not accepted.")
        folder = locate_export(
            model_id,
            subfolder=subfolder,
            revision=revision,
            cache_dir=cache_dir,
            token=token,
            local_files_only=local_files_only,
            force_download=force_download,
        )
        folder = folder / subfolder if subfolder else folder
        # Checked here, not by Optimum, so that both classes refuse a missing provider the same way.
        providers = resolve_providers([provider] if providers is None else providers)
        provider_names = [name if isinstance(name, str) else name[0] for name in providers]
        _, provider_options = prepare_providers_and_provider_options(providers=provider_names, provider_options=provider_options)
        runtime = GLiNER2ONNXRuntime.from_pretrained(
            folder,
            precision=precision,
            file_name=file_name,
            providers=providers,
            session_options=session_options,
            provider_options=provider_options,
            word_splitter=word_splitter,
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
        names |= {name for name in SIDE_FILES if (source / name).is_file()}
        for name in sorted(names):
            shutil.copy2(source / name, target / name)
        shutil.copy2(source / METADATA_FILE, target / METADATA_FILE)

    def quantize(self, method: str = "fp16") -> "ORTModelForGLiNER2":
        """Refused, as `GLiNER2ONNXRuntime.quantize` explains: exports are quantized ahead of time.

        Raises:
            NotImplementedError: Always, naming the variant tool and the `precision` to load.
        """
        self.runtime.quantize(method)
        return self

    def push_to_hub(
        self,
        repo_id: Optional[str] = None,
        private: Optional[bool] = True,
        token: Union[bool, str, None] = None,
        *,
        repository_id: Optional[str] = None,
        save_directory: Optional[Union[str, Path]] = None,
    ) -> str:
        """Upload the export (every variant, the tokenizer and the metadata) to a hub repository.

        Takes gliner2's form, `push_to_hub("me/gliner2-onnx")`, and Optimum's keywords,
        `push_to_hub(repository_id="me/gliner2-onnx", save_directory=...)`; `save_pretrained(folder,
        push_to_hub=True, repository_id=...)` calls it as `push_to_hub(folder, repository_id=...)`.

        Args:
            repo_id: The repository id; with `repository_id` also given, this is the folder to upload
                (Optimum's positional order).
            private: Create the repository as private if it does not exist. Defaults to True, as in
                gliner2 (Optimum's default leaves it to the hub, usually public).
            token: The hub token; the saved login by default.
            repository_id: Optimum's name for the repository id.
            save_directory: A folder written by `save_pretrained` to upload as is; by default the model
                is saved to a temporary folder first.

        Returns:
            The repository's URL.

        Raises:
            TypeError: No repository id, or Optimum's positional `(save_directory, repository_id)`
                order (pass them as keywords).
        """
        if repository_id is not None and repo_id is not None:
            if save_directory is not None:
                raise TypeError("push_to_hub got a folder twice: as its first argument and as save_directory")
            repo_id, save_directory = repository_id, repo_id
        repo_id = repo_id if repo_id is not None else repository_id
        if not isinstance(repo_id, str):
            raise TypeError("push_to_hub needs the hub repository id, e.g. push_to_hub('me/gliner2-onnx')")
        if not isinstance(private, (bool, type(None))):
            raise TypeError(
                f"push_to_hub's second argument is `private` (gliner2's order), got {private!r}; for Optimum's "
                "order write push_to_hub(repository_id=..., save_directory=...)"
            )
        api = HfApi(token=token)
        url = api.create_repo(repo_id=repo_id, private=private, exist_ok=True)
        if save_directory is not None:
            api.upload_folder(repo_id=repo_id, folder_path=str(save_directory))
        else:
            with TemporaryDirectory() as staging:
                self.save_pretrained(staging)
                api.upload_folder(repo_id=repo_id, folder_path=staging)
        return str(url)

    def __repr__(self) -> str:
        return describe_model(type(self).__name__, self.runtime.bundle, self.runtime.providers)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(
            "ORTModelForGLiNER2 has no single forward pass; use extract_entities, classify_text, "
            "extract_relations, extract_json or (batch_)extract with a schema."
        )

