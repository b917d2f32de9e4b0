"""Serving overhead of two source trees, measured in one run: import time and a single short call.

    python -m benchmarks.serving_overhead --baseline <git revision>

The host code (preprocessing, planning, decoding, formatting) is what a runtime change moves; on a
tiny checkpoint the encoder costs almost nothing, so a single short call shows the host's cost. Both
trees serve the same export (made by this tree) in child processes that alternate, so machine noise
hits both alike:

- import: wall time of `import optimum_gliner2.runtime` in a fresh interpreter (median of --imports);
- call: median latency of `extract_entities` on a short text, after warm-up, per child, then the
  median over --rounds children of each tree.

The baseline tree is checked out with `git worktree` into a temporary folder and removed after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

REPOSITORY = Path(__file__).resolve().parents[1]
TEXT = "Tim Cook is the chief executive officer of Apple Inc. and lives in Palo Alto."
LABELS = ["person", "organization", "location", "date"]

IMPORT_PROBE = """
import time
start = time.perf_counter()
import optimum_gliner2.runtime
print(time.perf_counter() - start)
"""

CALL_PROBE = """
import json, statistics, sys, time
from optimum_gliner2.runtime import GLiNER2ONNXRuntime
model = GLiNER2ONNXRuntime.from_pretrained(sys.argv[1])
text, labels, calls = sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
for _ in range(20):
    model.extract_entities(text, labels)
times = []
for _ in range(calls):
    start = time.perf_counter()
    model.extract_entities(text, labels)
    times.append(time.perf_counter() - start)
print(statistics.median(times))
"""


def _child(tree: Path, code: str, *arguments: str) -> float:
    environment = {**os.environ, "PYTHONPATH": str(tree), "TOKENIZERS_PARALLELISM": "false"}
    completed = subprocess.run(
        [sys.executable, "-c", code, *arguments], cwd=tree, env=environment, capture_output=True, text=True, check=True
    )
    return float(completed.stdout.strip().splitlines()[-1])


def _cpu_flags() -> List[str]:
    from optimum_gliner2.bundle.cpu import cpu_features

    present = cpu_features()
    return [flag for flag in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if flag in present]


def _export(workdir: Path, variant: str) -> Path:
    from tests.support.checkpoint_factory import build_checkpoint

    checkpoint = build_checkpoint(variant, workdir / "checkpoint")
    export = workdir / "export"
    subprocess.run(
        [sys.executable, "-m", "optimum.commands.optimum_cli", "export", "onnx", "--model", str(checkpoint), str(export)],
        cwd=REPOSITORY,
        check=True,
        capture_output=True,
    )
    return export


def main(argv: List[str] | None = None) -> Dict[str, Dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, help="git revision to compare this tree with, e.g. HEAD~1")
    parser.add_argument("--model-variant", default="deberta_lstm", help="tests/support/checkpoint_factory variant")
    parser.add_argument("--imports", type=int, default=15, help="fresh interpreters per tree for the import time")
    parser.add_argument("--rounds", type=int, default=6, help="call-latency children per tree")
    parser.add_argument("--calls", type=int, default=200, help="timed calls per child")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="serving-overhead-"))
    baseline = workdir / "baseline"
    try:
        subprocess.run(["git", "worktree", "add", "--detach", str(baseline), args.baseline], cwd=REPOSITORY, check=True, capture_output=True)
        trees = {f"baseline ({args.baseline})": baseline, "this tree": REPOSITORY}
        export = _export(workdir, args.model_variant)
        imports: Dict[str, List[float]] = {name: [] for name in trees}
        calls: Dict[str, List[float]] = {name: [] for name in trees}
        for _ in range(args.imports):
            for name, tree in trees.items():
                imports[name].append(_child(tree, IMPORT_PROBE))
        for _ in range(args.rounds):
            for name, tree in trees.items():
                calls[name].append(_child(tree, CALL_PROBE, str(export), TEXT, json.dumps(LABELS), str(args.calls)))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(baseline)], cwd=REPOSITORY, capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)

    results = {
        name: {"import_ms": 1000 * statistics.median(imports[name]), "call_ms": 1000 * statistics.median(calls[name])}
        for name in trees
    }
    print(f"CPU: {platform.processor() or platform.machine()}, flags {', '.join(_cpu_flags())}, {os.cpu_count()} CPUs")
    print(f"model: {args.model_variant}; {args.imports} imports and {args.rounds} x {args.calls} calls per tree, alternating")
    print("| tree | import optimum_gliner2.runtime (ms, median) | single short extract_entities (ms, median) |")
    print("|---|---|---|")
    for name, figures in results.items():
        print(f"| {name} | {figures['import_ms']:.1f} | {figures['call_ms']:.3f} |")
    base, this = results[f"baseline ({args.baseline})"], results["this tree"]
    print(f"this tree / baseline: import {this['import_ms'] / base['import_ms']:.2f}x, call {this['call_ms'] / base['call_ms']:.2f}x")
    return results


if __name__ == "__main__":
    main()
