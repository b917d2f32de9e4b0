"""`GLiNER2ONNXRuntime`: gliner2's API on an exported folder, with ONNX Runtime and without torch."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

from tokenizers import Tokenizer

from optimum_gliner2.bundle.format import (
    METADATA_FILE,
    SIDE_FILES,
    SPAN,
    GLiNER2OnnxBundle,
    default_precision,
    exported_graph_files,
    optimum_tool_suffix,
    read_metadata,
    variant_file_names,
)
from optimum_gliner2.errors import GLiNER2LoadError
from optimum_gliner2.runtime.api import GLiNER2Pipeline
from optimum_gliner2.runtime.checks import check_model_location
from optimum_gliner2.runtime.onnx.sessions import OnnxBackend, ProviderSpec, onnx_backend
from optimum_gliner2.runtime.words import WordSplitterSpec


def locate_export(
    model_id: Union[str, os.PathLike],
    *,
    subfolder: str = "",
    revision: Optional[str] = None,
    cache_dir: Optional[Union[str, os.PathLike]] = None,
    token: Union[bool, str, None] = None,
    local_files_only: bool = False,
    force_download: bool = False,
    precision: Optional[str] = None,
    file_name: Optional[str] = None,
) -> Path:
    """The local folder of `model_id`: itself, or its hub snapshot (downloaded or cached).

    Both `GLiNER2ONNXRuntime` and `ORTModelForGLiNER2` load through here, so a path that does not
    exist, a hub id missing from the offline cache and an unknown hub repository give the same
    errors in both.

    Args:
        model_id: A local folder or a hub repository id.
        subfolder: The export's folder inside `model_id`; only it is downloaded from the hub.
        revision, cache_dir, token, local_files_only, force_download: As in
            `huggingface_hub.snapshot_download`.
        precision, file_name: What will be loaded; from the hub, only those graphs are downloaded
            (with the metadata and tokenizer), not every variant of the repository.

    Returns:
        The folder of `model_id` (for a hub id, the snapshot's root; `subfolder` lies under it).

    Raises:
        GLiNER2LoadError: `model_id` is neither a folder nor a hub id, the hub id is not cached while
            downloads are off, or the hub has no such repository or revision.
    """
    folder = check_model_location(model_id)
    if folder is None:
        folder = _download_snapshot(
            str(model_id),
            subfolder=subfolder,
            revision=revision,
            cache_dir=cache_dir,
            token=token,
            local_files_only=local_files_only,
            force_download=force_download,
            precision=precision,
            file_name=file_name,
        )
    return folder




def _download_snapshot(
    repo_id: str, *, subfolder: str, precision: Optional[str], file_name: Optional[str], **hub_options: Any
) -> Path:
    """The repository's snapshot with the metadata, the tokenizer and the graphs of what will be loaded.

    A repository may hold several variants (about 3 GB in all at full size): the metadata is fetched
    first, and then only the graph files it names for `precision` (or those `file_name` selects).
    """
    prefix = f"{subfolder}/" if subfolder else ""
    # The metadata and side files are small: fetched first, they say which graphs to fetch.
    snapshot = _snapshot_with(repo_id, [prefix + name for name in (METADATA_FILE, *SIDE_FILES)], hub_options)
    try:
        metadata = read_metadata(snapshot / subfolder)
    except GLiNER2LoadError:
        return snapshot  # not an export: loading says what is wrong with it
    if file_name is not None and not any(file_name in graphs.values() for graphs in metadata["variants"].values()):
        # Optimum's tools' outputs are not in the metadata: fetch `<graph>_<suffix>.onnx` where the repository has one.
        fp32_files = exported_graph_files(metadata)
        suffix = optimum_tool_suffix(fp32_files, file_name)
        if suffix is None:
            return snapshot  # loading names the problem
        stems = [Path(name).stem for name in fp32_files.values()]
        snapshot = _snapshot_with(repo_id, [f"{prefix}{stem}_{suffix}.onnx*" for stem in stems], hub_options)
        fallbacks = [name for name in fp32_files.values() if not (snapshot / subfolder / f"{Path(name).stem}_{suffix}.onnx").is_file()]
        names = [n for name in fallbacks for n in (name, *metadata["files"][name].get("external_data", {}))]
    else:
        names = variant_file_names(metadata, precision or _precision_of(metadata, file_name))
    return _snapshot_with(repo_id, [prefix + name for name in names], hub_options)


def _precision_of(metadata: Dict[str, Any], file_name: Optional[str]) -> str:
    for precision, graphs in metadata["variants"].items():
        if file_name in graphs.values():
            return precision
    return default_precision(metadata)


def _snapshot_with(repo_id: str, allow_patterns: Sequence[str], hub_options: Dict[str, Any]) -> Path:
    # Imported here: a serving process that loads local folders never needs the hub client.
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    local_files_only = hub_options.get("local_files_only", False)
    try:
        return Path(snapshot_download(repo_id, allow_patterns=list(allow_patterns), **hub_options))
    except RevisionNotFoundError as error:
        raise GLiNER2LoadError(f"The hub repository {repo_id!r} has no revision {hub_options.get('revision')!r}.") from error
    except RepositoryNotFoundError as error:  # also gated and private repositories the token cannot see
        raise GLiNER2LoadError(
            f"{repo_id} does not exist (neither a local folder nor a hub id that this token can access)."
        ) from error
    except LocalEntryNotFoundError as error:
        if constants.HF_HUB_OFFLINE or local_files_only:
            raise GLiNER2LoadError(
                f"{repo_id} is not a local folder, and the hub id {repo_id!r} is not in the Hugging Face cache "
                "while offline mode is on (HF_HUB_OFFLINE=1 or local_files_only=True). Download it once while "
                f"online (`huggingface-cli download {repo_id}`), or pass the path of an exported folder."
            ) from error
        raise GLiNER2LoadError(
            f"{repo_id} is not a local folder, and the hub could not be reached to download {repo_id!r} "
            f"(nor is it cached): {error}"
        ) from error


def load_tokenizer(bundle: GLiNER2OnnxBundle) -> Tokenizer:
    """tokenizer.json of the bundle, checked against the marker-token ids the graphs were exported with."""
    try:
        tokenizer = Tokenizer.from_file(str(bundle.tokenizer_file))
    except Exception as error:
        raise GLiNER2LoadError(f"{bundle.tokenizer_file} is not a valid tokenizers file: {error}") from error
    for token, expected in bundle.special_token_ids.items():
        actual = tokenizer.token_to_id(token)
        if actual != expected:
            raise GLiNER2LoadError(
                f"The tokenizer maps {token} to {actual}, but the export used id {expected}: "
                f"tokenizer.json and {bundle.folder.name}'s metadata do not belong together."
            )
    return tokenizer


class GLiNER2ONNXRuntime(GLiNER2Pipeline):
    """A GLiNER2 span model served by ONNX Runtime, with gliner2's `GLiNER2` methods and answers.

    Imports only numpy, onnxruntime and tokenizers: a serving image needs no torch.

    Example:
        ```python
        >>> from optimum_gliner2.runtime import GLiNER2ONNXRuntime
        >>> model = GLiNER2ONNXRuntime.from_pretrained("gliner2-multi-onnx/")
        >>> model.extract_entities("Apple released iPhone 15.", ["company", "product"])
        ```
    """

    def __init__(
        self,
        bundle: GLiNER2OnnxBundle,
        backend: OnnxBackend,
        tokenizer: Tokenizer,
        *,
        word_splitter: Optional[WordSplitterSpec] = None,
    ):
        super().__init__(backend, tokenizer, token_pooling=bundle.token_pooling, word_splitter=word_splitter)
        self.bundle = bundle

    @classmethod
    def from_pretrained(
        cls,
        model_dir: os.PathLike | str,
        *,
        precision: Optional[str] = None,
        file_name: Optional[str] = None,
        providers: Optional[Union[ProviderSpec, Sequence[ProviderSpec]]] = None,
        session_options: Any = None,
        provider_options: Optional[Sequence[Dict[str, Any]]] = None,
        word_splitter: Optional[WordSplitterSpec] = None,
        revision: Optional[str] = None,
        cache_dir: Optional[Union[str, os.PathLike]] = None,
        token: Union[bool, str, None] = None,
        local_files_only: bool = False,
    ) -> "GLiNER2ONNXRuntime":
        """Load an exported folder, local or from the hub.

        Args:
            model_dir: A folder written by `optimum-cli export onnx` (or `ORTModelForGLiNER2.save_pretrained`),
                or the hub id of one.
            precision: The variant to run (`"fp32"` by default; `"int8"`, `"fp16"`, ... where exported).
            file_name: A graph file to run instead, as Optimum's `file_name=`: a registered variant's file,
                or a `<graph>_<suffix>.onnx` that Optimum's ORTQuantizer or ORTOptimizer saved into the
                folder (`precision` then reports the suffix, e.g. `"quantized"`).
            providers: ONNX Runtime execution providers, e.g. `["CUDAExecutionProvider"]`; a single name
                such as `"CPUExecutionProvider"` is one provider.
            session_options: An `onnxruntime.SessionOptions` for every session. Intra-op spinning is turned
                off unless it sets `session.intra_op.allow_spinning` (the sessions share the cores). Without
                it, the defaults also turn memory patterns off (`enable_mem_pattern=False`): shapes change
                from batch to batch, and with patterns ONNX Runtime's arena grows with each new shape.
            provider_options: Options for each provider.
            word_splitter: gliner2's word splitter: `"whitespace"` (default), `"char"` (for languages
                written without spaces, such as Chinese or Japanese), a splitter class or a callable
                yielding `(word, start, end)`; as gliner2's `from_pretrained(..., word_splitter=...)`.
            revision, cache_dir, token, local_files_only: Hub options for a hub id, as in
                `huggingface_hub.snapshot_download`.

        Raises:
            GLiNER2LoadError: If `model_dir` is neither a folder nor a reachable hub id, if a provider
                is not available in this onnxruntime install, or if the folder is incomplete,
                inconsistent or tampered with.
        """
        folder = locate_export(
            model_dir, revision=revision, cache_dir=cache_dir, token=token, local_files_only=local_files_only,
            precision=precision, file_name=file_name,
        )  # fmt: skip
        bundle = GLiNER2OnnxBundle.load(folder, precision=precision, file_name=file_name)
        tokenizer = load_tokenizer(bundle)
        backend = onnx_backend(bundle, providers=providers, session_options=session_options, provider_options=provider_options)
        return cls(bundle, backend, tokenizer, word_splitter=word_splitter)

    @property
    def precision(self) -> str:
        """The variant in use, e.g. `"fp32"` or `"int8"`."""
        return self.bundle.precision

    @property
    def providers(self) -> list:
        """The execution providers of the sessions."""
        return self.backend.sessions["encoder"].get_providers()

    def quantize(self, method: str = "fp16") -> "GLiNER2ONNXRuntime":
        """Refused: an ONNX export is quantized ahead of time, into a variant of its folder.

        gliner2's `quantize()` casts the PyTorch weights in place. Here the INT8 (CPU) and FP16 (GPU)
        variants are made once with `python -m optimum_gliner2.variants FOLDER --int8` (or `--fp16`)
        and chosen at load with `from_pretrained(FOLDER, precision="int8")`.

        Args:
            method: gliner2's argument (`"fp16"` or `"bf16"`); accepted so that the call reaches this error.

        Raises:
            NotImplementedError: Always, naming the variant tool and the `precision` to load.
        """
        raise NotImplementedError(quantize_refusal(self.bundle, method))

    def __repr__(self) -> str:
        return describe_model(type(self).__name__, self.bundle, self.providers)


def quantize_refusal(bundle: GLiNER2OnnxBundle, method: str) -> str:
    """Why `quantize(method)` is refused, and the commands that make and load a variant instead."""
    folder = str(bundle.folder)
    return (
        f"quantize({method!r}) casts gliner2's PyTorch weights in place; an ONNX export is quantized "
        f"ahead of time into a variant of its folder instead. Make one with "
        f"`python -m optimum_gliner2.variants {folder} --int8` (CPU; `--fp16` for GPUs), then load it with "
        f'`from_pretrained({folder!r}, precision="int8")` (or "fp16"). This folder has {list(bundle.precisions)}; '
        f"this model runs {bundle.precision!r}."
    )


def describe_model(class_name: str, bundle: GLiNER2OnnxBundle, providers: Sequence[str]) -> str:
    """A short repr: folder, precision, providers, architecture (and max_width for span models)."""
    parts = [
        f"folder={str(bundle.folder)!r}",
        f"precision={bundle.precision!r}",
        f"providers={list(providers)!r}",
        f"architecture={bundle.architecture!r}",
    ]
    if bundle.architecture == SPAN:
        parts.append(f"max_width={bundle.max_width}")
    return f"{class_name}({', '.join(parts)})"
