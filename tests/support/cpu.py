"""Test markers that follow the CPU's integer GEMM (optimum_gliner2/bundle/cpu.py)."""

from __future__ import annotations

import pytest

from optimum_gliner2.bundle.cpu import full_range_integer_gemm_is_exact

#: For tests that run a `method="per_row_integer"` variant with 8-bit weights: on x86 without VNNI the
#: runtime refuses it (test_quantization.py checks the refusal there), so its answers cannot be measured.
needs_exact_integer_gemm = pytest.mark.skipif(
    not full_range_integer_gemm_is_exact(),
    reason="x86 CPU without VNNI: ONNX Runtime's u8 x s8 GEMM saturates with 8-bit weights, and the runtime refuses such variants",
)
