"""Torch-free GLiNER2 serving: preprocess -> numeric stages behind a backend -> decode.

Imports only numpy, `tokenizers` and (for `GLiNER2ONNXRuntime`) onnxruntime; never torch,
transformers or gliner2. The schema builder is gliner2's API, so a serving process builds schemas
with `from optimum_gliner2.runtime import Schema`.
"""

from optimum_gliner2.bundle.format import GLiNER2OnnxBundle
from optimum_gliner2.errors import GLiNER2InputError, GLiNER2LoadError
from optimum_gliner2.runtime.api import GLiNER2Methods, GLiNER2Pipeline
from optimum_gliner2.runtime.backend import BoundaryBackend, CandidateScores, GLiNER2Backend, RecordScores, SpanBackend
from optimum_gliner2.runtime.onnx import GLiNER2ONNXRuntime
from optimum_gliner2.runtime.schema import AttributeGroup, RegexValidator, Schema

__all__ = [
    "AttributeGroup",
    "BoundaryBackend",
    "CandidateScores",
    "RecordScores",
    "GLiNER2Backend",
    "GLiNER2InputError",
    "GLiNER2LoadError",
    "GLiNER2Methods",
    "GLiNER2ONNXRuntime",
    "GLiNER2OnnxBundle",
    "GLiNER2Pipeline",
    "RegexValidator",
    "Schema",
    "SpanBackend",
]
