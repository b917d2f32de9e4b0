"""optimum-gliner2: GLiNER2 on ONNX Runtime, exported and served the Hugging Face Optimum way.

Importing this package is cheap and torch-free. It arranges for GLiNER2 support to be registered
with Optimum's exporters as soon as those are imported (or at once if they already are), so that
`optimum.exporters.onnx.main_export` and `optimum-cli export onnx` accept GLiNER2 checkpoints.

The package has three rooms, data flowing one way:
    exporters/        PyTorch side: ONNX configs, model patcher, exportable wrappers, validation
    runtime/          torch-free serving core: preprocess -> ONNX Runtime sessions -> decode
    optimum_glue.py   every touch of Optimum internals
`modeling_ort.ORTModelForGLiNER2` is the Optimum-facing class on top of the runtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_LAZY = {
    "ORTModelForGLiNER2": "optimum_gliner2.modeling_ort",
    "GLiNER2ONNXRuntime": "optimum_gliner2.runtime",
    "GLiNER2OnnxBundle": "optimum_gliner2.runtime",
    "GLiNER2LoadError": "optimum_gliner2.runtime",
    "GLiNER2InputError": "optimum_gliner2.runtime",
    "export_gliner2": "optimum_gliner2.exporters",
    "GLiNER2ForOnnxExport": "optimum_gliner2.exporters",
    "GLiNER2ExportError": "optimum_gliner2.exporters",
}

if TYPE_CHECKING:
    from optimum_gliner2.exporters import GLiNER2ExportError, export_gliner2
    from optimum_gliner2.modeling_ort import ORTModelForGLiNER2
    from optimum_gliner2.runtime import (
        GLiNER2InputError,
        GLiNER2LoadError,
        GLiNER2ONNXRuntime,
        GLiNER2OnnxBundle,
    )


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'optimum_gliner2' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


from optimum_gliner2._registration_hook import register_when_optimum_loads  # noqa: E402

register_when_optimum_loads()
