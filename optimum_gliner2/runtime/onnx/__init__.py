"""The ONNX Runtime side of the runtime: sessions of an exported folder behind the backend interface."""

from optimum_gliner2.runtime.onnx.model import GLiNER2ONNXRuntime
from optimum_gliner2.runtime.onnx.sessions import OnnxBackend, OnnxBoundaryBackend, OnnxSpanBackend, onnx_backend

__all__ = ["GLiNER2ONNXRuntime", "OnnxBackend", "OnnxBoundaryBackend", "OnnxSpanBackend", "onnx_backend"]
