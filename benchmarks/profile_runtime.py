"""Where does ORTModelForGLiNER2 spend a call beyond the encoder? Stage breakdown + pyinstrument.

    python -m benchmarks.profile_runtime                       # cached full-size export, FP32
    python -m benchmarks.profile_runtime --workload short-single --precision int8
    python -m benchmarks.profile_runtime --quick               # the --quick cache (tiny model)

Run from the repository root; needs a cache built by `python -m benchmarks.run` (or with
`--prepare-only`). For each workload the script times the backend's four stages (encoder,
count_embed, classifier, span_scorer) by wrapping the backend methods, so "host" is everything else:
preprocessing, padding, gathers, decoding, formatting. With `pyinstrument` installed (`pip install
pyinstrument`), it also prints the call tree of the host code, the part a fix in
`optimum_gliner2/runtime/` can shrink.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Dict, List

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks import models  # noqa: E402
from benchmarks.base import ImplSpec, Prepared  # noqa: E402
from benchmarks.workloads import build_workloads  # noqa: E402

STAGES = ("encode", "count_and_queries", "classify", "score_spans")
WORKLOADS = ("short-batch", "medium-batch", "mixed-batch", "short-single", "medium-single", "mixed-single", "long")


class StageTimer:
    """Wraps the backend's stage methods (instance attributes; the class is untouched)."""

    def __init__(self, backend: Any):
        self.backend = backend
        self.seconds: Dict[str, float] = defaultdict(float)
        self.calls: Dict[str, int] = defaultdict(int)

    def __enter__(self) -> "StageTimer":
        for stage in STAGES:
            original = getattr(type(self.backend), stage).__get__(self.backend)
            setattr(self.backend, stage, self._timed(stage, original))
        return self

    def _timed(self, stage: str, original: Callable) -> Callable:
        def wrapper(*args: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args)
            finally:
                self.seconds[stage] += time.perf_counter() - start
                self.calls[stage] += 1

        return wrapper

    def __exit__(self, *exc: Any) -> None:
        for stage in STAGES:
            delattr(self.backend, stage)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="profile the tiny --quick cache")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--workload", choices=WORKLOADS + ("all",), default="all")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-pyinstrument", action="store_true")
    args = parser.parse_args()

    variant = "deberta_lstm" if args.quick else "full"
    prepared = Prepared(models.cache_dir_for(variant, "benchmark"), Path(), Path())
    prepared.checkpoint, prepared.onnx_dir = prepared.cache_dir / "checkpoint", prepared.cache_dir / "onnx"
    if not (prepared.onnx_dir / "gliner2_onnx.json").is_file():
        raise SystemExit(f"no export in {prepared.onnx_dir}: run `python -m benchmarks.run{' --quick' if args.quick else ''} --prepare-only` first")
    spec = ImplSpec(f"ort-{args.precision}", f"ORT {args.precision}", "ort", args.precision, args.precision)
    impl = models.load_implementation(spec, prepared)
    backend = impl.model.runtime.backend
    workloads = build_workloads(32, 8, 500 if args.quick else 3000)

    calls: Dict[str, Callable[[], Any]] = {
        "short-batch": lambda: impl.run_batch(workloads["throughput"]["short"], 8),
        "medium-batch": lambda: impl.run_batch(workloads["throughput"]["medium"], 8),
        "mixed-batch": lambda: impl.run_batch(workloads["throughput"]["mixed"], 8),
        "short-single": lambda: [impl.run_single(workloads["latency"]["short"], i) for i in range(8)],
        "medium-single": lambda: [impl.run_single(workloads["latency"]["medium"], i) for i in range(8)],
        "mixed-single": lambda: [impl.run_single(workloads["latency"]["mixed"], i) for i in range(8)],
        "long": lambda: impl.run_long(workloads["long"]["long"], 8),
    }
    selected = WORKLOADS if args.workload == "all" else (args.workload,)
    print(f"ORTModelForGLiNER2 {args.precision}, {variant} model; median of {args.repeats} runs per workload\n")
    print(f"{'workload':<14} {'total ms':>9} {'encoder':>8} {'count':>7} {'classif':>8} {'spans':>7} {'host':>7} {'host %':>7}  stage calls")
    for name in selected:
        calls[name]()  # warm-up (tokenization cache, allocator)
        runs: List[Dict[str, float]] = []
        counts: Dict[str, int] = {}
        for _ in range(args.repeats):
            with StageTimer(backend) as timer:
                start = time.perf_counter()
                calls[name]()
                total = time.perf_counter() - start
            runs.append({"total": total, **{stage: timer.seconds[stage] for stage in STAGES}})
            counts = dict(timer.calls)
        median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        host = median["total"] - sum(median[stage] for stage in STAGES)
        print(f"{name:<14} {median['total'] * 1000:>9.1f} {median['encode'] * 1000:>8.1f} {median['count_and_queries'] * 1000:>7.1f} "
              f"{median['classify'] * 1000:>8.1f} {median['score_spans'] * 1000:>7.1f} {host * 1000:>7.1f} {host / median['total'] * 100:>6.1f}%  {counts}")

    if args.no_pyinstrument:
        return 0
    try:
        from pyinstrument import Profiler
    except ImportError:
        print("\n(pyinstrument not installed: `pip install pyinstrument` for the call tree)")
        return 0
    for name in selected:
        profiler = Profiler(interval=0.0005)
        profiler.start()
        for _ in range(args.repeats):
            calls[name]()
        profiler.stop()
        print(f"\n===== pyinstrument: {name} x{args.repeats} =====")
        print(profiler.output_text(unicode=False, color=False, show_all=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
