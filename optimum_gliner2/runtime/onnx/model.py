"""`GLiNER2ONNXRuntime`: gliner2's API on an exported folder, with ONNX Runtime and without torch."""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Sequence

from tokenizers import Tokenizer

from optimum_gliner2.bundle.format import GLiNER2OnnxBundle
from optimum_gliner2.errors import GLiNER2LoadError
from optimum_gliner2.runtime.api import GLiNER2Pipeline
from optimum_gliner2.runtime.onnx.sessions import OnnxBackend, ProviderSpec, onnx_backend


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

    def __init__(self, bundle: GLiNER2OnnxBundle, backend: OnnxBackend, tokenizer: Tokenizer):
        super().__init__(backend, tokenizer, token_pooling=bundle.token_pooling)
        self.bundle = bundle

    @classmethod
    def from_pretrained(
        cls,
        model_dir: os.PathLike | str,
        *,
        precision: Optional[str] = None,
        providers: Optional[Sequence[ProviderSpec]] = None,
        session_options: Any = None,
        provider_options: Optional[Sequence[Dict[str, Any]]] = None,
    ) -> "GLiNER2ONNXRuntime":
        """Load an exported folder.

        Args:
            model_dir: A folder written by `optimum-cli export onnx` (or `ORTModelForGLiNER2.save_pretrained`).
            precision: The variant to run (`"fp32"` by default; `"int8"`, `"fp16"`, ... where exported).
            providers: ONNX Runtime execution providers, e.g. `["CUDAExecutionProvider"]`.
            session_options: An `onnxruntime.SessionOptions` for every session. Intra-op spinning is turned
                off unless it sets `session.intra_op.allow_spinning` (the sessions share the cores).
            provider_options: Options for each provider.

        Raises:
            GLiNER2LoadError: If the folder is incomplete, inconsistent or tampered with.
        """
        bundle = GLiNER2OnnxBundle.load(model_dir, precision=precision)
        tokenizer = load_tokenizer(bundle)
        backend = onnx_backend(bundle, providers=providers, session_options=session_options, provider_options=provider_options)
        return cls(bundle, backend, tokenizer)

    @property
    def precision(self) -> str:
        """The variant in use, e.g. `"fp32"` or `"int8"`."""
        return self.bundle.precision

    @property
    def providers(self) -> list:
        """The execution providers of the sessions."""
        return self.backend.sessions["encoder"].get_providers()
