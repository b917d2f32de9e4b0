"""The exported folder's format, shared by the exporter, the runtime and the variant tools (torch-free)."""

from optimum_gliner2.bundle.format import (
    DEFAULT_PRECISION,
    ARCHITECTURE_GRAPHS,
    MARKER_TOKENS,
    METADATA_FILE,
    TOKEN_POOLINGS,
    GLiNER2OnnxBundle,
)

__all__ = ["DEFAULT_PRECISION", "ARCHITECTURE_GRAPHS", "MARKER_TOKENS", "METADATA_FILE", "TOKEN_POOLINGS", "GLiNER2OnnxBundle"]
