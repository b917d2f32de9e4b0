"""Threads: the runtime at 1, 2, ... all cores, against its own defaults, on single texts and batches (issue 17).

    python -m benchmarks.threads              # full-size replica (gliner2-multi-v1 dims), ~10 min on 2 cores
    python -m benchmarks.threads --quick      # tiny fixture: checks the script end to end (< 1 min)

(from the repository root). One process loads `ORTModelForGLiNER2` once per intra-op thread count (1, 2, 4, ...
up to the usable CPUs, and the usable CPUs themselves) and once with no session options at all, which is
what a user gets: ONNX Runtime's own default, one intra-op thread per physical core. All of them run
interleaved on the same inputs, so the ratios hold within this run. Writes
benchmarks/results/threads.{md,json} with the CPU flags.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks import int8_encoder, models, report  # noqa: E402
from benchmarks.base import BENCH_DIR, ImplSpec, log, ort_session_options  # noqa: E402
from benchmarks.measure import measure_interleaved, summarize  # noqa: E402
from benchmarks.models import GLiNER2APIImplementation  # noqa: E402
from benchmarks.workloads import build_workloads  # noqa: E402

MEASURED = (("latency", "short"), ("latency", "medium"), ("throughput", "short"), ("throughput", "medium"))
DEFAULT_KEY = "defaults"


def thread_counts(usable: int) -> List[int]:
    """1, 2, 4, ... below `usable`, then `usable` itself."""
    counts, count = [], 1
    while count < usable:
        counts.append(count)
        count *= 2
    return counts + [usable]


def session_options(threads: Optional[int]):
    """None (the runtime's defaults) or the runtime's defaults with `threads` intra-op threads."""
    if threads is None:
        return None
    options = ort_session_options(threads)
    options.enable_mem_pattern = False  # as the runtime's defaults, so that only the thread count differs
    options.log_severity_level = 3
    return options


def load(onnx_dir: Path, precision: str, threads: Optional[int]) -> GLiNER2APIImplementation:
    from optimum_gliner2 import ORTModelForGLiNER2

    name = DEFAULT_KEY if threads is None else f"{threads}t"
    label = f"{precision.upper()} " + ("runtime defaults" if threads is None else f"{threads} thread{'s' * (threads > 1)}")
    spec = ImplSpec(f"{precision}-{name}", label, "ort", precision, category=models.variant_category(precision))
    start = time.perf_counter()
    model = ORTModelForGLiNER2.from_pretrained(onnx_dir, precision=precision, session_options=session_options(threads))
    return GLiNER2APIImplementation(spec, model, time.perf_counter() - start)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny fixture, few repetitions")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved repetitions (default 3, --quick 1)")
    parser.add_argument("--precisions", default="fp32,int8_per_row_integer",
                        help="variants to measure, when the export has them (the full-size int8_per_row_integer is made if missing)")
    parser.add_argument("--output-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    output_dir = args.output_dir or (BENCH_DIR / ".cache" / "quick-results" if args.quick else BENCH_DIR / "results")

    machine = report.machine_description()
    usable = machine["usable_cpus"]
    if args.quick:
        prepared = models.prepare("deberta_lstm", "benchmark", skip_export=True)
    else:
        prepared = int8_encoder.prepare(["per_row_integer"])
    available = prepared.variants()
    precisions = [p for p in args.precisions.split(",") if p in available]
    counts = thread_counts(usable)
    impls = [load(prepared.onnx_dir, precision, threads) for precision in precisions for threads in [None, *counts]]

    batch_texts = 4 if args.quick else 16
    workloads = build_workloads(batch_texts, 2 if args.quick else 6, 0)
    load_average = {"before": report.load_average()}
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    results: Dict[str, Any] = {}
    for kind, name in MEASURED:
        workload = workloads[kind][name]
        samples, _ = measure_interleaved(impls, kind, workload, repeats, batch_size=8, reference_key=None)
        statistic = "p50_s" if kind == "latency" else "median_s"
        results[f"{kind}/{name}"] = {
            "description": workload.description,
            "seconds": {key: summarize(values)[statistic] for key, values in samples.items()},
        }
    load_average["after"] = report.load_average()
    run = {"machine": machine, "load_average": load_average, "started_utc": started}

    lines = [
        "# Threads: the runtime at 1..all cores and with its defaults",
        "",
        f"`python -m benchmarks.threads{' --quick' if args.quick else ''}`; model: "
        f"{'tiny deberta_lstm fixture' if args.quick else 'full-size replica (gliner2-multi-v1 dims)'}; started {started} UTC.",
        "",
        f"{report.run_line(run)} ONNX Runtime's default intra-op pool: one thread per physical core.",
        "",
        f"Seconds per call (p50 of single-text calls, median of batch calls of {batch_texts} texts, batch_size 8); in brackets, "
        "the 1-thread time / this time:",
        "",
        *report.markdown_table_head("workload", [impl.spec.label for impl in impls]),
    ]
    for workload, entry in results.items():
        seconds = entry["seconds"]
        cells = []
        for impl in impls:
            one_thread = seconds.get(f"{impl.spec.precision}-1t")
            value = seconds[impl.spec.key]
            cells.append(f"{value:.4f} ({one_thread / value:.2f}x)" if one_thread else f"{value:.4f}")
        lines.append(f"| {workload} ({entry['description']}) | " + " | ".join(cells) + " |")
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "threads.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (output_dir / "threads.json").write_text(json.dumps({**run, "results": results}, indent=2), encoding="utf-8")
    print("\n".join(lines))
    log(f"wrote {output_dir / 'threads.md'}")


if __name__ == "__main__":
    main()
