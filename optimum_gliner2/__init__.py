"""optimum-gliner2: GLiNER2 on ONNX Runtime, exported and served the Hugging Face Optimum way.

Importing this package is cheap and torch-free. It arranges for GLiNER2 support to be registered
with Optimum's exporters as soon as those are imported (or at once if they already are), so that
`optimum.exporters.onnx.main_export` and `optimum-cli export onnx` accept GLiNER2 checkpoints.

The package has three rooms, data flowing one way, around the format they share:
    exporters/        PyTorch side: loading, exportable wrappers, ONNX configs, patcher, validation
    runtime/          torch-free serving core: plan -> preprocess -> ONNX Runtime sessions -> decode
    optimum_glue.py   every touch of Optimum internals
    bundle/           the exported folder's format, read and written by all of them
    variants/         INT8 / FP16 / optimized variants of an exported folder
`modeling_ort.ORTModelForGLiNER2` is the Optimum-facing class composing one runtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_LAZY = {
    "ORTModelForGLiNER2": "optimum_gliner2.modeling_ort",
    "GLiNER2ONNXRuntime": "optimum_gliner2.runtime",
    "GLiNER2OnnxBundle": "optimum_gliner2.bundle",
    "GLiNER2LoadError": "optimum_gliner2.errors",
    "GLiNER2InputError": "optimum_gliner2.errors",
    "GLiNER2ExportError": "optimum_gliner2.errors",
    "Schema": "optimum_gliner2.runtime",
    "export_gliner2": "optimum_gliner2.exporters",
    "GLiNER2ForOnnxExport": "optimum_gliner2.exporters",
}
__all__ = sorted(_LAZY)

if TYPE_CHECKING:
    from optimum_gliner2.bundle import GLiNER2OnnxBundle
    from optimum_gliner2.errors import GLiNER2ExportError, GLiNER2InputError, GLiNER2LoadError
    from optimum_gliner2.exporters import GLiNER2ForOnnxExport, export_gliner2
    from optimum_gliner2.modeling_ort import ORTModelForGLiNER2
    from optimum_gliner2.runtime import GLiNER2ONNXRuntime, Schema


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
