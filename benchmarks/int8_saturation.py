"""Does ONNX Runtime's u8 x s8 integer GEMM saturate? On this CPU, and on an emulated AVX2-only CPU.

`method="per_row_integer"` feeds ONNX Runtime's u8 x s8 GEMM rows stored as uint8 (zero point 128) and int8
weights. CPUs with VNNI accumulate the four u8 x s8 products of a group in int32; AVX2 CPUs without VNNI
add pairs of products in int16 first (vpmaddubsw), which 255 x 127 x 2 overflows. This script multiplies
extreme operands (every activation 255, every weight at the top of its range) and realistic ones (Gaussian
activations with outlier channels, quantized per row; Gaussian weights, quantized per column) with one
MatMulInteger node, for 8-bit weights and for 7-bit ones (`reduce_range=True`), and reports the error against
the exact integer product. With `qemu-x86_64` installed (Debian: `apt-get install qemu-user`) it runs the same
again as `qemu-x86_64 -cpu Haswell` (AVX2, FMA, no AVX-512, no VNNI), so an AVX-512 machine also shows
what an AVX2-only one computes.

Usage (from the repository root):
    python -m benchmarks.int8_saturation

Prints a table (markdown); no files are written.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np

WIDTH, COLUMNS, ROWS = 768, 64, 64
#: Emulated CPU model: Haswell has AVX2 and FMA, no AVX-512 and no VNNI.
EMULATED_CPU = "Haswell"


def integer_gemm_errors() -> List[Dict[str, float]]:
    """Errors of ONNX Runtime's MatMulInteger (u8 x s8, zero point 128) on this process's CPU."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    def session(weights: np.ndarray):
        graph = helper.make_graph(
            [helper.make_node("MatMulInteger", ["rows", "weights", "zero_point"], ["product"])],
            "integer_gemm",
            [helper.make_tensor_value_info("rows", TensorProto.UINT8, [None, WIDTH])],
            [helper.make_tensor_value_info("product", TensorProto.INT32, None)],
            initializer=[numpy_helper.from_array(weights, "weights"),
                         numpy_helper.from_array(np.array(128, np.uint8), "zero_point")],
        )  # fmt: skip
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])

    rng = np.random.default_rng(0)
    activations = rng.standard_normal((ROWS, WIDTH))
    activations[:, :4] *= 20  # outlier channels, as trained transformers have
    row_scales = np.abs(activations).max(axis=1, keepdims=True) / 127
    realistic_rows = (np.round(activations / row_scales) + 128).astype(np.uint8)
    gaussian_weights = rng.standard_normal((WIDTH, COLUMNS))
    results = []
    for levels in (127, 63):
        column_scales = np.abs(gaussian_weights).max(axis=0) / levels
        cases = {
            "extreme": (np.full((4, WIDTH), 255, np.uint8), np.full((WIDTH, COLUMNS), levels, np.int8)),
            "realistic": (realistic_rows, np.round(gaussian_weights / column_scales).astype(np.int8)),
        }
        for name, (rows, weights) in cases.items():
            product = session(weights).run(None, {"rows": rows})[0].astype(np.int64)
            exact = (rows.astype(np.int64) - 128) @ weights.astype(np.int64)
            results.append({
                "weights": f"{'8' if levels == 127 else '7'}-bit (+-{levels})",
                "operands": name,
                "max_abs_error": int(np.abs(product - exact).max()),
                "relative_error": float(np.linalg.norm(product - exact) / np.linalg.norm(exact)),
            })  # fmt: skip
    return results


def cpu_flags() -> List[str]:
    from optimum_gliner2.bundle.cpu import cpu_features

    return sorted(cpu_features() & {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"})


def main() -> None:
    if "--child" in sys.argv:
        print(json.dumps(integer_gemm_errors()))
        return
    runs = {f"this CPU ({', '.join(cpu_flags())})": integer_gemm_errors()}
    qemu = shutil.which("qemu-x86_64")
    if qemu:
        command = [qemu, "-cpu", EMULATED_CPU, sys.executable, "-m", "benchmarks.int8_saturation", "--child"]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=900)
        if completed.returncode == 0:
            runs[f"qemu-x86_64 -cpu {EMULATED_CPU} (AVX2, no VNNI)"] = json.loads(completed.stdout.strip().splitlines()[-1])
        else:
            runs[f"qemu-x86_64 -cpu {EMULATED_CPU}: failed ({completed.stderr.strip().splitlines()[-1:]})"] = []
    else:
        runs["qemu-x86_64 not installed: no AVX2-only run (apt-get install qemu-user)"] = []
    print("| CPU | weights | operands | max abs error | relative error |")
    print("|---|---|---|---|---|")
    for cpu, results in runs.items():
        for row in results or [{"weights": "", "operands": "", "max_abs_error": "", "relative_error": float("nan")}]:
            print(f"| {cpu} | {row['weights']} | {row['operands']} | {row['max_abs_error']} | {row['relative_error']:.2e} |")


if __name__ == "__main__":
    main()
