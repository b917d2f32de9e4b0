"""Torch-free GLiNER2 serving core: preprocessing, numeric stages behind a backend, decoding.

`GLiNER2Pipeline` exposes gliner2's extraction API on any `GLiNER2Backend`; only numpy,
`tokenizers` and pydantic are imported (never torch, transformers or gliner2).
"""

from optimum_gliner2.runtime.backend import GLiNER2Backend
from optimum_gliner2.runtime.errors import GLiNER2InputError, GLiNER2LoadError
from optimum_gliner2.runtime.pipeline import GLiNER2Pipeline

__all__ = ["GLiNER2Backend", "GLiNER2InputError", "GLiNER2LoadError", "GLiNER2Pipeline"]

# The ONNX Runtime side (onnxruntime is imported only here and in sessions.py).
from optimum_gliner2.runtime.bundle import GLiNER2OnnxBundle  # noqa: E402
from optimum_gliner2.runtime.onnx_model import GLiNER2ONNXRuntime  # noqa: E402

__all__ += ["GLiNER2ONNXRuntime", "GLiNER2OnnxBundle"]
