"""A roofline table for the encoder (issue 17): counted FLOPs, achieved GFLOPS, and their share of GEMM roofs.

For each workload shape (texts x tokens: short batch 8 x 105, medium batch 8 x 554, a short single text 1 x 105,
the shapes of `int8_encoder` and `fused_attention`):

1. The FP32 encoder's FLOPs are counted from the graph (`benchmarks/flops.py`: every matrix product's operand
   shapes, read by running the graph once on the workload's inputs), split into the Linear layers, content
   attention (Q K^T, probabilities x V) and DeBERTa's relative-position terms. The fused and INT8 encoders compute
   the same products, so their achieved GFLOPS are taken against the same count.
2. The encoder sessions are timed alone on those inputs: the plain FP32 export, the `fused` variant
   (`fuse_attention_gliner2`), and both INT8 methods `quantize_gliner2` may pick by default: `per_row`
   (MatMulNBits) and `per_row_integer` (integer GEMM), each quantizing the fused encoder as it does by default
   (so INT8 over plain FP32 includes the fused attention's gain), interleaved with four one-node GEMM graphs of 832 x 768 by
   768 x 3072 (8 x 104 tokens through a feed-forward layer): FP32 MatMul, u8 x s8 MatMulInteger,
   DynamicQuantizeMatMul and 8-bit MatMulNBits. The FP32 MatMul is the FP32 roof and the faster of MatMulInteger
   and DynamicQuantizeMatMul the INT8 roof: what ONNX Runtime's GEMMs reach on this CPU, with these threads, in
   this process, at the same moments as the encoders. Beside them, one-node FP32 MatMuls of each workload's own
   Linear-layer shapes (rows = texts x tokens; h x h, h x ffn, ffn x h) give a second FP32 roof, the rate those
   very GEMMs reach alone.
3. Each encoder's achieved GFLOPS = counted FLOPs / median seconds, as a share of each roof; fused / plain and
   INT8 / FP32 speed; the issue's goals marked PASS or MISS.

Usage (from the repository root):
    python -m benchmarks.roofline            # full-size replica (cached export; the first run builds it), ~10 min
    python -m benchmarks.roofline --quick    # the tiny deberta_lstm fixture, < 2 min

Writes benchmarks/results/roofline.{md,json} (`--quick`: benchmarks/.cache/quick-results/, so that a smoke test
never replaces published figures), with the CPU flags and the load average. One process, 2 intra-op threads.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from benchmarks import fused_attention, int8_encoder, models  # noqa: E402
from benchmarks.base import BENCH_DIR, THREADS, log, ort_session_options, shown_path  # noqa: E402
from benchmarks.flops import FlopCount, count_flops  # noqa: E402
from benchmarks.report import load_average, machine_description, machine_line  # noqa: E402

RESULTS = BENCH_DIR / "results"
QUICK_RESULTS = BENCH_DIR / ".cache" / "quick-results"
#: (name, texts, tokens per text); the goals below name the first two.
WORKLOADS: Tuple[Tuple[str, int, int], ...] = (("short batch", 8, 105), ("medium batch", 8, 554), ("short single", 1, 105))
#: Encoder variant -> label. Both INT8 methods that `quantize_gliner2(folder)` may pick by default, named
#: explicitly so that the table means the same on every CPU: "int8_per_row_integer" runs ONNX Runtime's integer
#: GEMM (MatMulIntegerToFloat), the INT8 roof's kernel (the default on x86 with VNNI and on ARM);
#: "int8_per_row" runs MatMulNBits (the default on x86 without VNNI).
ENCODERS: Dict[str, str] = {
    "fp32": "plain FP32",
    "fused": "fused attention",
    "int8_per_row": "INT8 per_row (MatMulNBits, fused attention)",
    "int8_per_row_integer": "INT8 per_row_integer (integer GEMM, fused attention)",
}
PER_ROW_INTEGER = "per_row_integer"
#: Rows x inner x columns of the GEMM micro-benchmarks: 8 x 104 tokens through the 768 -> 3072 feed-forward layer.
GEMM_SHAPE = (832, 768, 3072)
FP32_ROOF = "fp32_matmul"
#: The INT8 roof is the faster of the two integer-GEMM kernels in the run (both run ONNX Runtime's u8 x s8 GEMM;
#: which is faster varies with the machine).
INT8_ROOF_CANDIDATES = ("int8_matmul_integer", "int8_dynamic_quantize_matmul")
#: Issue 17's goals: minimum share of the FP32 roof for the FP32 encoder, per workload.
FP32_ROOF_SHARE_GOALS = {"short batch": 0.80, "medium batch": 0.70}
FUSED_SPEEDUP_GOAL = 1.3
#: The flags issue 17 asks to record with the result, each as present or absent (`machine_description` lists
#: only those present).
RECORDED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
INT8_SPEEDUP_GOAL = 2.0


# ================================================================================================
# What is measured
# ================================================================================================


def prepare_full_size() -> Path:
    """The cached full-size export with its `fused` and INT8 variants (each made in a child process)."""
    folder = fused_attention.prepare_full_size()
    int8_encoder.prepare(["per_row", PER_ROW_INTEGER])
    return folder


def prepare_quick() -> Path:
    """The tiny deberta_lstm fixture, exported and fused in a temporary folder, with both INT8 variants."""
    from optimum_gliner2.variants import quantize_gliner2

    folder = fused_attention.prepare_fixture()
    for method in ("per_row", PER_ROW_INTEGER):
        quantize_gliner2(folder, method=method, variant=int8_encoder.METHOD_VARIANTS[method])
    return folder


@dataclass
class GemmBenchmark:
    """One single-node GEMM graph, ready to run.

    Attributes:
        label: Name in the tables.
        operations: 2 x rows x inner x columns (FLOPs, or integer operations for the INT8 kernels).
        run: Runs the graph once on its prepared input.
    """

    label: str
    operations: int
    run: Callable[[], Any]


def _single_node_session(node: Any, inputs: Sequence[Any], outputs: Sequence[Any], initializers: Sequence[Any], opset: int = 21):
    import onnxruntime as ort
    from onnx import helper

    graph = helper.make_graph([node], node.op_type, list(inputs), list(outputs), list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("com.microsoft", 1)])
    return ort.InferenceSession(model.SerializeToString(), ort_session_options(), providers=["CPUExecutionProvider"])


def fp32_matmul_benchmark(shape: Tuple[int, int, int], label: str) -> GemmBenchmark:
    """A one-node FP32 MatMul graph of `shape` (rows, inner, columns), weights as an initializer, random input."""
    from onnx import TensorProto, helper, numpy_helper

    rows, inner, columns = shape
    generator = np.random.default_rng(0)
    activation = generator.standard_normal((rows, inner), dtype=np.float32)
    weight = (generator.standard_normal((inner, columns), dtype=np.float32) * 0.05).astype(np.float32)
    session = _single_node_session(
        helper.make_node("MatMul", ["activation", "weight"], ["product"]),
        [helper.make_tensor_value_info("activation", TensorProto.FLOAT, [rows, inner])],
        [helper.make_tensor_value_info("product", TensorProto.FLOAT, [rows, columns])],
        [numpy_helper.from_array(weight, "weight")],
    )
    return GemmBenchmark(label, 2 * rows * inner * columns, lambda: session.run(None, {"activation": activation}))


def linear_gemm_shapes(count: FlopCount) -> Dict[Tuple[int, int, int], int]:
    """(rows, inner, columns) of every per-call Linear-layer MatMul of `count`, with how often each occurs.

    Empty when some Linear node is not an activation x [inner, columns] weight product, so that no partial set of
    shapes is taken for the whole.
    """
    shapes: Dict[Tuple[int, int, int], int] = {}
    for node in count.nodes:
        if node.kind != "linear" or not node.per_call:
            continue
        activation, weight = node.shapes[0], node.shapes[1]
        if node.op_type != "MatMul" or len(weight) != 2 or activation[-1] != weight[0]:
            return {}
        key = (int(np.prod(activation[:-1])), int(weight[0]), int(weight[1]))
        shapes[key] = shapes.get(key, 0) + 1
    return shapes


def gemm_benchmarks(shape: Tuple[int, int, int] = GEMM_SHAPE) -> Dict[str, GemmBenchmark]:
    """The four one-node GEMM graphs of `shape` (rows, inner, columns), with random inputs and weights.

    FP32 MatMul is the FP32 roof. MatMulInteger multiplies an activation already in uint8 by int8 weights (the
    integer kernel alone); DynamicQuantizeMatMul adds the activation's quantization (what ORT's dynamic INT8
    graphs run): the faster of the two is the INT8 roof. MatMulNBits with 8-bit weights and accuracy level 4 is
    the op of the `per_row` INT8 variant (the default on x86 without VNNI).
    """
    from onnx import TensorProto, helper, numpy_helper
    from optimum_gliner2.variants.int8 import matmul_nbits_quantizer_module

    nbits = matmul_nbits_quantizer_module()

    rows, inner, columns = shape
    operations = 2 * rows * inner * columns
    generator = np.random.default_rng(0)
    activation = generator.standard_normal((rows, inner), dtype=np.float32)
    weight = (generator.standard_normal((inner, columns), dtype=np.float32) * 0.05).astype(np.float32)
    float_in = helper.make_tensor_value_info("activation", TensorProto.FLOAT, [rows, inner])
    float_out = helper.make_tensor_value_info("product", TensorProto.FLOAT, [rows, columns])
    benchmarks: Dict[str, GemmBenchmark] = {FP32_ROOF: fp32_matmul_benchmark(shape, "FP32 MatMul")}

    weight_int8 = generator.integers(-127, 128, size=(inner, columns), dtype=np.int8)
    activation_uint8 = generator.integers(0, 256, size=(rows, inner), dtype=np.uint8)
    integer = _single_node_session(
        helper.make_node("MatMulInteger", ["activation", "weight", "activation_zero"], ["product"]),
        [helper.make_tensor_value_info("activation", TensorProto.UINT8, [rows, inner])],
        [helper.make_tensor_value_info("product", TensorProto.INT32, [rows, columns])],
        [numpy_helper.from_array(weight_int8, "weight"), numpy_helper.from_array(np.array(128, np.uint8), "activation_zero")],
    )
    benchmarks["int8_matmul_integer"] = GemmBenchmark(
        "INT8 MatMulInteger (u8 x s8)", operations, lambda: integer.run(None, {"activation": activation_uint8})
    )

    dynamic = _single_node_session(
        helper.make_node("DynamicQuantizeMatMul", ["activation", "weight", "weight_scale"], ["product"], domain="com.microsoft"),
        [float_in], [float_out],
        [numpy_helper.from_array(weight_int8, "weight"), numpy_helper.from_array(np.full(columns, 0.01, np.float32), "weight_scale")],
    )  # fmt: skip
    benchmarks["int8_dynamic_quantize_matmul"] = GemmBenchmark(
        "INT8 DynamicQuantizeMatMul (FP32 in, quantized per call)", operations,
        lambda: dynamic.run(None, {"activation": activation}),
    )  # fmt: skip

    import onnxruntime as ort

    float_graph = helper.make_model(
        helper.make_graph([helper.make_node("MatMul", ["activation", "weight"], ["product"], name="gemm")], "gemm",
                          [float_in], [float_out], [numpy_helper.from_array(weight, "weight")]),
        opset_imports=[helper.make_opsetid("", 21)],
    )  # fmt: skip
    config = nbits.DefaultWeightOnlyQuantConfig(block_size=32, is_symmetric=True, accuracy_level=4, bits=8, op_types_to_quantize=("MatMul",))
    quantizer = nbits.MatMulNBitsQuantizer(float_graph, nodes_to_include=["gemm"], algo_config=config)
    quantizer.process()
    blockwise = ort.InferenceSession(
        quantizer.model.model.SerializeToString(), ort_session_options(), providers=["CPUExecutionProvider"]
    )
    benchmarks["int8_matmul_nbits"] = GemmBenchmark(
        "INT8 MatMulNBits (8-bit, block 32, accuracy 4)", operations,
        lambda: blockwise.run(None, {"activation": activation}),
    )  # fmt: skip
    return benchmarks


def encoder_sessions(folder: Path) -> Dict[str, Any]:
    """One ONNX Runtime session per encoder of `ENCODERS` (the runtime's threading), in that order."""
    import onnxruntime as ort

    from optimum_gliner2.bundle.format import GLiNER2OnnxBundle

    sessions = {}
    for precision in ENCODERS:
        path = GLiNER2OnnxBundle.load(folder, precision=precision).graph_files["encoder"]
        sessions[precision] = ort.InferenceSession(str(path), ort_session_options(), providers=["CPUExecutionProvider"])
    return sessions


def repeats_for(texts: int, tokens: int, repeats: int) -> int:
    """`repeats` for the medium batch; twice as many for the short batch and three times for a single text, whose
    calls are cheap and whose medians need more samples on a shared machine."""
    if texts * tokens >= 4000:
        return repeats
    return repeats * (2 if texts > 1 else 3)


def flop_summary(count: FlopCount) -> Dict[str, Any]:
    """Per-call FLOPs, per kind and as shares, and what ONNX Runtime computes once at load instead."""
    by_kind = count.by_kind()
    total = count.per_call
    return {
        "per_call": total,
        "by_kind": by_kind,
        "shares": {kind: flops / total for kind, flops in by_kind.items()},
        "folded_at_load": count.folded_at_load,
        "counted_nodes": len(count.nodes),
        "uncounted": count.uncounted,
    }


def measure(folder: Path, repeats: int) -> Dict[str, Any]:
    """Count, time and compare (see the module docstring); every sample is kept in the result."""
    from optimum_gliner2.bundle.format import GLiNER2OnnxBundle

    fp32_encoder = GLiNER2OnnxBundle.load(folder, precision="fp32").graph_files["encoder"]
    vocabulary = min(GLiNER2OnnxBundle.load(folder).special_token_ids.values())  # word pieces, below gliner2's markers
    gemms = gemm_benchmarks()
    sessions = encoder_sessions(folder)
    load_before = load_average()
    gemm_seconds: Dict[str, List[float]] = {name: [] for name in gemms}
    rows: Dict[str, Dict[str, Any]] = {}
    for name, texts, tokens in WORKLOADS:
        feed = fused_attention.token_batch((texts, tokens), vocabulary)
        start = time.perf_counter()
        count = count_flops(fp32_encoder, feed, threads=THREADS)
        flops = flop_summary(count)
        own_shapes = linear_gemm_shapes(count)
        own_gemms = {shape: fp32_matmul_benchmark(shape, " x ".join(map(str, shape))) for shape in own_shapes}
        log(f"{name} ({texts} x {tokens}): {flops['per_call'] / 1e9:.2f} GFLOP per call, counted in "
            f"{time.perf_counter() - start:.1f} s")  # fmt: skip
        # Every encoder and every GEMM once per repeat, in an order rotated by one each repeat, so that a
        # neighbour's load spreads over all of them; the first call of each is a warm-up.
        calls: Dict[str, Callable[[], Any]] = {f"encoder:{p}": (lambda s=s: s.run(None, feed)) for p, s in sessions.items()}
        calls.update({f"gemm:{g}": bench.run for g, bench in gemms.items()})
        calls.update({f"own:{shape}": bench.run for shape, bench in own_gemms.items()})
        for call in calls.values():
            call()
        seconds: Dict[str, List[float]] = {key: [] for key in calls}
        order = list(calls)
        for repeat in range(repeats_for(texts, tokens, repeats)):
            shift = repeat % len(order)
            for key in order[shift:] + order[:shift]:
                gc.collect()
                begin = time.perf_counter()
                calls[key]()
                seconds[key].append(time.perf_counter() - begin)
        for gemm in gemms:
            gemm_seconds[gemm] += seconds[f"gemm:{gemm}"]
        rows[name] = {
            "texts": texts,
            "tokens": tokens,
            "flops": flops,
            "encoders": {p: {"seconds": seconds[f"encoder:{p}"]} for p in sessions},
            "gemm_seconds": {g: seconds[f"gemm:{g}"] for g in gemms},
        }
        if own_shapes:
            rows[name]["own_shape_roof"] = own_shape_roof(own_gemms, own_shapes, {s: seconds[f"own:{s}"] for s in own_shapes})
        log(f"{name}: " + ", ".join(
            f"{p} {1000 * statistics.median(v['seconds']):.1f} ms" for p, v in rows[name]["encoders"].items()
        ))  # fmt: skip
    roofs = {
        name: {
            "label": bench.label,
            "shape": list(GEMM_SHAPE),
            "operations": bench.operations,
            "median_ms": 1000 * statistics.median(gemm_seconds[name]),
            "gops": bench.operations / statistics.median(gemm_seconds[name]) / 1e9,
            "samples": len(gemm_seconds[name]),
        }
        for name, bench in gemms.items()
    }
    int8_roof = max(INT8_ROOF_CANDIDATES, key=lambda name: roofs[name]["gops"])
    for row in rows.values():
        derive_row(row, roofs[FP32_ROOF]["gops"], roofs[int8_roof]["gops"])
    machine = machine_description()
    return {
        "model": shown_path(folder),
        "machine": machine,
        "cpu_flags": {flag: flag in machine["cpu_features"] for flag in RECORDED_FLAGS},
        "load_average": {"before": load_before, "after": load_average()},
        "threads": THREADS,
        "repeats": repeats,
        "gemm": roofs,
        "roofs": {"fp32": FP32_ROOF, "int8": int8_roof},
        "workloads": rows,
    }


def own_shape_roof(gemms: Mapping[Tuple[int, int, int], GemmBenchmark], times_per_call: Mapping[Tuple[int, int, int], int],
                   seconds: Mapping[Tuple[int, int, int], List[float]]) -> Dict[str, Any]:
    """The FP32 roof at a workload's own Linear-layer shapes: their FLOPs over the time their one-node MatMuls take,
    each shape's median counted as often as the encoder runs it."""
    medians = {shape: statistics.median(seconds[shape]) for shape in gemms}
    operations = sum(gemms[shape].operations * times for shape, times in times_per_call.items())
    total_seconds = sum(medians[shape] * times for shape, times in times_per_call.items())
    return {
        "gflops": operations / total_seconds / 1e9,
        "shapes": [
            {"shape": list(shape), "per_call": times, "median_ms": 1000 * medians[shape],
             "gflops": gemms[shape].operations / medians[shape] / 1e9}
            for shape, times in times_per_call.items()
        ],
    }  # fmt: skip


def derive_row(row: Dict[str, Any], fp32_roof: float, int8_roof: float) -> None:
    """Median, achieved GFLOPS, roof shares (roofs in GFLOPS / GOPS) and speed against plain FP32 of each encoder
    of one workload."""
    flops = row["flops"]["per_call"]
    plain = statistics.median(row["encoders"]["fp32"]["seconds"])
    for entry in row["encoders"].values():
        median = statistics.median(entry["seconds"])
        gflops = flops / median / 1e9
        entry.update(median_ms=1000 * median, gflops=gflops, fp32_roof_share=gflops / fp32_roof,
                     int8_roof_share=gflops / int8_roof, speed_vs_fp32=plain / median)  # fmt: skip
        if "own_shape_roof" in row:
            entry["own_shape_roof_share"] = gflops / row["own_shape_roof"]["gflops"]


def check_goals(result: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """Issue 17's goals, one line per goal and workload: PASS or MISS."""
    vnni = any(flag in result["machine"]["cpu_features"] for flag in ("avx512_vnni", "avx_vnni"))
    checks = []

    def add(goal: str, workload: str, value: float, threshold: float, shown: str, note: str = "") -> None:
        checks.append({"goal": goal, "workload": workload, "value": value, "threshold": threshold,
                       "status": "PASS" if value >= threshold else "MISS", "shown": shown, "note": note})  # fmt: skip

    for name, row in result["workloads"].items():
        encoders = row["encoders"]
        if name in FP32_ROOF_SHARE_GOALS:
            threshold = FP32_ROOF_SHARE_GOALS[name]
            # Judged on both FP32 encoders: the plain export, and `fused`, the FP32 encoder this work ships.
            for precision in ("fp32", "fused"):
                share = encoders[precision]["fp32_roof_share"]
                own = encoders[precision].get("own_shape_roof_share")
                shown = f"{share:.0%}" + (f" ({own:.0%} of the roof at its own Linear shapes)" if own is not None else "")
                add(f"FP32 encoder ({ENCODERS[precision]}) >= {threshold:.0%} of the FP32 roof", name, share, threshold, shown)
        add(f"fused attention >= {FUSED_SPEEDUP_GOAL}x plain FP32", name, encoders["fused"]["speed_vs_fp32"],
            FUSED_SPEEDUP_GOAL, f"{encoders['fused']['speed_vs_fp32']:.2f}x")  # fmt: skip
        for precision in (p for p in encoders if p.startswith("int8")):
            speed = encoders[precision]["speed_vs_fp32"]
            add(f"{ENCODERS[precision]} >= {INT8_SPEEDUP_GOAL}x FP32 encoder (VNNI CPU)", name, speed, INT8_SPEEDUP_GOAL,
                f"{speed:.2f}x", "" if vnni else "this CPU has no VNNI: the goal is set for one that has")  # fmt: skip
    return checks


# ================================================================================================
# Report
# ================================================================================================


def markdown(result: Mapping[str, Any], what: str) -> str:
    """The report: roofs, FLOP counts, the roofline table and the goals."""
    machine = result["machine"]
    flags = ", ".join(f"{flag} {'yes' if present else 'no'}" for flag, present in result["cpu_flags"].items())
    lines = [
        f"{what}, encoder graph alone, {result['threads']} intra-op threads, one process. CPU flags: "
        f"**{flags}**. {machine_line(machine)}. Load average before/after: "
        f"{result['load_average']['before']} / {result['load_average']['after']}. Command: `{result['command']}`.",
        "",
        "## GEMM roofs (same process, same threads, interleaved with the encoders)",
        "",
        f"One-node graphs, {' x '.join(map(str, GEMM_SHAPE[:2]))} by {' x '.join(map(str, GEMM_SHAPE[1:]))}; "
        "median over every repeat of every workload.",
        "",
        "| kernel | median | GFLOPS / GOPS | samples |",
        "|---|---|---|---|",
    ]
    for name, gemm in result["gemm"].items():
        roof = {FP32_ROOF: " (**FP32 roof**)", result["roofs"]["int8"]: " (**INT8 roof**)"}.get(name, "")
        lines.append(f"| {gemm['label']}{roof} | {gemm['median_ms']:.2f} ms | {gemm['gops']:.1f} | {gemm['samples']} |")
    lines += [
        "",
        "## FLOPs per call, counted from the FP32 graph",
        "",
        "| workload | texts x tokens | GFLOP per call | Linear layers | attention (QK^T, AV) | relative position (c2p, p2c) | folded at load (GFLOP) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in result["workloads"].items():
        flops = row["flops"]
        shares = flops["shares"]
        lines.append(
            f"| {name} | {row['texts']} x {row['tokens']} | {flops['per_call'] / 1e9:.2f} | {shares['linear']:.1%} | "
            f"{shares['attention']:.1%} | {shares['relative_position']:.1%} | {flops['folded_at_load'] / 1e9:.2f} |"
        )
    own_roofs = {name: row["own_shape_roof"] for name, row in result["workloads"].items() if "own_shape_roof" in row}
    if own_roofs:
        lines += [
            "",
            "## FP32 roof at each workload's own Linear-layer shapes",
            "",
            "One-node FP32 MatMuls of every (rows x inner x columns) the encoder's Linear layers run on the workload, "
            "timed in the same rotation; the roof is their FLOPs over their medians, each counted as often as the "
            "encoder runs it.",
            "",
            "| workload | shapes (times per call: GFLOPS) | roof GFLOPS |",
            "|---|---|---|",
        ]
        for name, roof in own_roofs.items():
            shapes = ", ".join(
                f"{' x '.join(map(str, item['shape']))} ({item['per_call']}: {item['gflops']:.1f})" for item in roof["shapes"]
            )
            lines.append(f"| {name} | {shapes} | {roof['gflops']:.1f} |")
    own_column = bool(own_roofs)
    lines += [
        "",
        "## Roofline",
        "",
        "| workload | encoder | median | achieved GFLOPS | share of FP32 roof | share of INT8 roof | speed vs plain FP32 |"
        + (" share of FP32 roof at own shapes |" if own_column else ""),
        "|---|---|---|---|---|---|---|" + ("---|" if own_column else ""),
    ]
    for name, row in result["workloads"].items():
        for precision, entry in row["encoders"].items():
            own = f" {entry['own_shape_roof_share']:.0%} |" if "own_shape_roof_share" in entry else (" |" if own_column else "")
            lines.append(
                f"| {name} | {ENCODERS[precision]} | {entry['median_ms']:.1f} ms | {entry['gflops']:.1f} | "
                f"{entry['fp32_roof_share']:.0%} | {entry['int8_roof_share']:.0%} | {entry['speed_vs_fp32']:.2f}x |{own}"
            )
    lines += ["", "## Goals (issue 17)", "", "```"]
    for check in result["goals"]:
        note = f" ({check['note']})" if check["note"] else ""
        lines.append(f"{check['status']:<5} {check['goal']} [{check['workload']}]: {check['shown']}{note}")
    lines += ["```", ""] + [f"- {line}" for line in kernel_findings(result)] + [
        "",
        "How to read it: FLOPs are 2 x multiply-adds of every MatMul of the plain FP32 encoder at the workload's "
        "exact shapes, read by running the graph once (`benchmarks/flops.py`); element-wise work (bias, GELU, "
        "LayerNorm, Softmax, gathers) is not counted. The fused and INT8 encoders are credited with the same "
        "count. \"Folded at load\": the query/key projections of the relative-position table, which depend on "
        "weights only and which ONNX Runtime's constant folding computes once per session, not per call. "
        "Achieved GFLOPS = counted FLOPs / median seconds per call; a share of a roof is that over the GEMM's "
        "GFLOPS (GOPS for the INT8 kernels) measured in the same repeats. Medians of "
        f"{result['repeats']} interleaved calls for the medium batch, twice as many for the short batch and three "
        "times for the single text.",
    ]
    return "\n".join(lines) + "\n"


def kernel_findings(result: Mapping[str, Any]) -> List[str]:
    """What the GEMM roofs alone imply for the INT8 and fused-attention goals, from this run's figures."""
    gemm = result["gemm"]
    fp32_roof, int8_roof = gemm[FP32_ROOF]["gops"], gemm[result["roofs"]["int8"]]["gops"]
    blockwise = gemm["int8_matmul_nbits"]["gops"]
    lines = [
        f"The INT8 roof ({gemm[result['roofs']['int8']]['label']}) is {int8_roof / fp32_roof:.2f}x the FP32 roof: an INT8 "
        f"encoder's speed over the FP32 one if both ran every counted FLOP at their roof."
    ]
    # Upper bound on the per_row INT8 encoder's speed-up: its Linear layers alone at MatMulNBits's measured rate,
    # every other op free, against the FP32 encoder's whole measured call.
    bounds = []
    for name, row in result["workloads"].items():
        linear_seconds = row["flops"]["by_kind"]["linear"] / (blockwise * 1e9)
        bounds.append(f"{name} {row['encoders']['fp32']['median_ms'] / 1000 / linear_seconds:.2f}x")
    lines.append(
        f"MatMulNBits, the `per_row` INT8 variant's op (the default on x86 without VNNI), ran at {blockwise:.1f} GOPS, {blockwise / fp32_roof:.2f}x the FP32 "
        f"MatMul. Its Linear layers alone at that rate, everything else free, bound the `per_row` INT8 encoder's speed "
        f"over the FP32 encoder to: {', '.join(bounds)} (at the micro-benchmark's 832 rows)."
    )
    lines += _ceiling_lines(result, "fp32_roof_share", "the FP32 roof")
    lines += _ceiling_lines(result, "own_shape_roof_share", "the FP32 roof at the workload's own Linear shapes")
    return lines


def _ceiling_lines(result: Mapping[str, Any], share_key: str, roof: str) -> List[str]:
    """The most any FP32 rewrite can gain over the plain encoder against one roof: every counted FLOP at the roof,
    every uncounted op free. A speed-up goal above that ceiling is out of reach on this CPU, whatever the graph."""
    ceilings, above_roof = [], []
    for name, row in result["workloads"].items():
        plain_share = row["encoders"]["fp32"].get(share_key)
        if plain_share is None:
            continue
        if plain_share >= 1:
            above_roof.append(f"{name} ({plain_share:.0%})")
            continue
        ceilings.append(f"{name} {1 / plain_share:.2f}x ({FUSED_SPEEDUP_GOAL}x needs {FUSED_SPEEDUP_GOAL * plain_share:.0%} "
                        "of the roof)")  # fmt: skip
    lines = []
    if ceilings:
        lines.append(
            f"Ceiling of any FP32 encoder over the plain one against {roof} (every counted FLOP at that roof, "
            f"everything else free): {', '.join(ceilings)}."
        )
    if above_roof:
        lines.append(
            f"The plain FP32 encoder ran above {roof} on: {', '.join(above_roof)}. Those one-node GEMMs were slower "
            "than the encoder's own in this run, so that roof bounds nothing there and shares of it are not evidence either way."
        )
    return lines


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.roofline", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny deberta_lstm fixture (< 2 min); results go to benchmarks/.cache/quick-results/")
    parser.add_argument("--repeats", type=int, default=None,
                        help="interleaved timed calls per encoder for the medium batch (default 5, --quick 3); more for smaller ones")  # fmt: skip
    parser.add_argument("--render-only", action="store_true",
                        help="measure nothing: rewrite roofline.md (and the goals) from the existing roofline.json")  # fmt: skip
    args = parser.parse_args(argv)
    output = QUICK_RESULTS if args.quick else RESULTS
    if args.render_only:
        result = json.loads((output / "roofline.json").read_text())
    else:
        repeats = args.repeats or (3 if args.quick else 5)
        folder = prepare_quick() if args.quick else prepare_full_size()
        result = measure(folder, repeats)
        result["command"] = ("python -m benchmarks.roofline " + " ".join(sys.argv[1:] if argv is None else argv)).strip()
    result["goals"] = check_goals(result)
    what = "Tiny deberta_lstm test fixture (2 layers, hidden 64)" if args.quick else (
        "Full-size replica (mDeBERTa-v3-base encoder, random weights)")  # fmt: skip
    output.mkdir(parents=True, exist_ok=True)
    (output / "roofline.json").write_text(json.dumps(result, indent=2))
    text = markdown(result, what)
    (output / "roofline.md").write_text(f"# Encoder roofline: counted FLOPs against GEMM roofs\n\n{text}")
    print(text)
    log(f"wrote {shown_path(output / 'roofline.md')} and roofline.json")


if __name__ == "__main__":
    main()
