"""What the CPU does with 8-bit integer GEMMs: one answer for the variant tool (which method to make by
default) and for the runtime (whether a variant's integer GEMM is exact on this machine).

ONNX Runtime multiplies uint8 activations by int8 weights with VNNI (vpdpbusd, 32-bit sums) where the
CPU has it, and otherwise, on x86 with AVX2, with vpmaddubsw, which adds two products in 16 bits and
saturates once they pass 32,767 (255 * 127 * 2 does). ARM's dot-product kernels widen before adding.
"""

from __future__ import annotations

import platform
from functools import lru_cache
from typing import FrozenSet

_X86 = {"x86_64", "amd64", "i386", "i686", "x86"}


@lru_cache(maxsize=None)
def cpu_features() -> FrozenSet[str]:
    """Lower-case feature names of this CPU: numpy's runtime dispatch probe (every OS), with the Linux
    kernel's flags added where readable (numpy has no name for AVX-VNNI, the VEX form of Alder Lake on)."""
    features = set()
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__
    features.update(name.lower() for name, present in __cpu_features__.items() if present)
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith(("flags", "Features")):
                    features.update(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return frozenset(features)


def is_x86() -> bool:
    return platform.machine().lower() in _X86


def has_vnni() -> bool:
    """True where the CPU has AVX-512 VNNI or AVX-VNNI."""
    features = cpu_features()
    return bool({"avx512vnni", "avx512_vnni", "avx_vnni", "avxvnni"} & features)


def full_range_integer_gemm_is_exact() -> bool:
    """Whether ONNX Runtime's u8 x s8 GEMM with 8-bit weights sums exactly here: everywhere but x86
    without VNNI."""
    return not is_x86() or has_vnni()
