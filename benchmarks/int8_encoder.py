"""The INT8 encoders against the FP32 encoder, alone (no glue), on the full-size replica: speed and drift.

Each INT8 method of `optimum_gliner2.variants.quantize_gliner2` is made as its own variant of the full-size
export (fastino/gliner2-multi-v1 dimensions, random weights; see benchmarks/models.py) and its encoder graph
is timed against the FP32 encoder on the same token batches: 1 x 24, 1 x 105, 8 x 105 and 8 x 554 tokens,
every encoder once per repeat, interleaved, so that a neighbour's load hits them alike. Reported: the median
per call, each method's speed against FP32 (FP32 median / its median) and its relative error on
last_hidden_state (the Frobenius norm of the difference over FP32's). One process, 2 intra-op threads.

Usage (from the repository root):
    python -m benchmarks.int8_encoder [--repeats 7] [--methods per_row_integer,per_row]

Writes benchmarks/results/int8_encoder.{md,json}, with the CPU flags. The export and the variants are
cached in benchmarks/.cache/full-benchmark-tokenizer/ (shared with `python -m benchmarks.run`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from benchmarks import models  # noqa: E402
from benchmarks.base import BENCH_DIR, Prepared, log, ort_session_options  # noqa: E402
from benchmarks.report import load_average, machine_description, run_line  # noqa: E402

RESULTS = BENCH_DIR / "results"
#: (texts, tokens per text) of the timed batches: a short single text, a medium one, and batches of each.
SHAPES: Tuple[Tuple[int, int], ...] = ((1, 24), (1, 105), (8, 105), (8, 554))
#: INT8 method -> the variant name it is stored under in the cached export.
METHOD_VARIANTS = {
    "per_row_integer": "int8_per_row_integer",
    "per_row": "int8_per_row",
    "dynamic": "int8_dynamic",
}


def prepare(methods: Sequence[str]) -> Prepared:
    """The cached full-size checkpoint and export, with one INT8 variant per method (each made in a child)."""
    prepared = models.cached_full_export()
    for method in methods:
        variant = METHOD_VARIANTS[method]
        if variant not in prepared.variants():
            log(f"making the {variant} variant (method={method!r})")
            code = (
                "from optimum_gliner2.variants import quantize_gliner2; "
                f"quantize_gliner2({str(prepared.onnx_dir)!r}, method={method!r}, variant={variant!r})"
            )
            models._run_child([sys.executable, "-c", code], f"quantize_gliner2(method={method!r})")
    return prepared


def token_batch(shape: Tuple[int, int], vocabulary: int, seed: int = 0) -> Dict[str, np.ndarray]:
    """Random word pieces (no padding) of `shape`; the same for every encoder."""
    input_ids = np.random.default_rng(seed).integers(1000, vocabulary, size=shape).astype(np.int64)
    return {"input_ids": input_ids, "attention_mask": np.ones_like(input_ids)}


def measure(methods: Sequence[str], repeats: int, extra_variants: Sequence[str] = ()) -> Dict[str, Any]:
    import onnxruntime as ort

    prepared = prepare(methods)
    precisions = ["fp32"] + [METHOD_VARIANTS[method] for method in methods] + list(extra_variants)
    from optimum_gliner2.bundle.format import GLiNER2OnnxBundle

    sessions = {}
    for precision in precisions:
        path = GLiNER2OnnxBundle.load(prepared.onnx_dir, precision=precision).graph_files["encoder"]
        sessions[precision] = ort.InferenceSession(str(path), ort_session_options(), providers=["CPUExecutionProvider"])
    vocabulary = 200_000  # below the replica's 250,112 rows and its marker tokens
    load_before = load_average()
    rows: Dict[str, Dict[str, Any]] = {}
    for shape in SHAPES:
        feed = token_batch(shape, vocabulary)
        outputs = {precision: session.run(None, feed)[0] for precision, session in sessions.items()}  # also warms up
        reference = outputs["fp32"]
        seconds: Dict[str, List[float]] = {precision: [] for precision in precisions}
        for _ in range(repeats if shape[1] < 500 else max(3, repeats // 2)):
            for precision, session in sessions.items():
                start = time.perf_counter()
                session.run(None, feed)
                seconds[precision].append(time.perf_counter() - start)
        medians = {precision: statistics.median(values) for precision, values in seconds.items()}
        key = f"{shape[0]}x{shape[1]}"
        rows[key] = {
            precision: {
                "median_ms": 1000 * medians[precision],
                "speed_vs_fp32": medians["fp32"] / medians[precision],
                "relative_error": float(np.linalg.norm(outputs[precision] - reference) / np.linalg.norm(reference)),
                "seconds": seconds[precision],
            }
            for precision in precisions
        }
        log(f"{key}: " + ", ".join(f"{p} {r['median_ms']:.1f} ms ({r['speed_vs_fp32']:.2f}x)" for p, r in rows[key].items()))
    recipes = {p: prepared.metadata.get("variant_recipes", {}).get(p, {}) for p in precisions if p != "fp32"}
    return {
        "machine": machine_description(),
        "load_average": {"before": load_before, "after": load_average()},
        "methods": {**{METHOD_VARIANTS[m]: m for m in methods}, **{v: f"variant {v}" for v in extra_variants}},
        "recipes": recipes,
        "repeats": repeats,
        "threads": 2,
        "rows": rows,
    }


def markdown(result: Dict[str, Any]) -> str:
    precisions = list(next(iter(result["rows"].values())))
    methods = result["methods"]
    lines = [
        f"Full-size replica (mDeBERTa-v3-base encoder, random weights), encoder graph alone, 2 threads, median of "
        f"{result['repeats']} interleaved calls (8 x 554: half as many). {run_line(result)}",
        "",
        "| texts x tokens | " + " | ".join(
            "FP32" if p == "fp32" else f"INT8 `{methods[p]}`" for p in precisions
        ) + " |",
        "|---|" + "---|" * len(precisions),
    ]  # fmt: skip
    for key, row in result["rows"].items():
        cells = []
        for precision in precisions:
            entry = row[precision]
            if precision == "fp32":
                cells.append(f"{entry['median_ms']:.1f} ms")
            else:
                cells.append(f"{entry['median_ms']:.1f} ms, **{entry['speed_vs_fp32']:.2f}x**, error {100 * entry['relative_error']:.1f}%")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines += ["", "Speed: FP32 median / the method's median, same run. Error: relative to FP32's last_hidden_state.", ""]
    lines += [f"- `{methods[p]}`: {json.dumps(recipe)}" for p, recipe in result["recipes"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.int8_encoder", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="Interleaved timed calls per encoder and shape.")
    parser.add_argument("--methods", default="per_row_integer,per_row,dynamic",
                        help=f"Comma-separated INT8 methods, of {', '.join(METHOD_VARIANTS)}.")  # fmt: skip
    parser.add_argument("--extra-variants", default="",
                        help="Comma-separated variants already in the cached export to time as well (e.g. one made "
                             "by an earlier version of quantize_gliner2).")  # fmt: skip
    args = parser.parse_args()
    methods = [method for method in args.methods.split(",") if method]
    unknown = set(methods) - set(METHOD_VARIANTS)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; choose from {sorted(METHOD_VARIANTS)}")
    result = measure(methods, args.repeats, [v for v in args.extra_variants.split(",") if v])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "int8_encoder.json").write_text(json.dumps(result, indent=2))
    text = markdown(result)
    (RESULTS / "int8_encoder.md").write_text(f"# INT8 encoders against FP32 (encoder alone)\n\n{text}")
    print(text)


if __name__ == "__main__":
    main()
