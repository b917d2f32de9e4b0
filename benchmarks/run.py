"""GLiNER2 on ONNX Runtime vs PyTorch gliner2: throughput, latency, memory, export (issue 6).

    python -m benchmarks.run            # full-size multi-v1-shaped model, 15-30 min on 2 cores
    python -m benchmarks.run --quick    # tiny model, smoke test of the whole script (< 2 min)

(from the repository root).

Steps:
 1. Build or reuse the checkpoint in benchmarks/.cache/ (random weights, gliner2's own classes),
    export it with `optimum-cli export onnx` (timed; `--skip-export` reuses the cached export)
    and add the optimized-FP32 and INT8 variants when `optimum_gliner2.variants` offers them.
 2. Peak RSS and load time of each implementation, each in its own child process
    (`python -m benchmarks.run --rss-probe KEY`), so that no implementation's memory pollutes another's.
 3. In this one process, interleaved (implementation order rotates every repetition):
    PyTorch gliner2, ORTModelForGLiNER2 per variant, and each variant's encoder session alone on
    the exact batches the pipeline built (the floor), over the workloads of workloads.py.
 4. Ratios against PyTorch from this run, PASS/MISS per target, and
    benchmarks/results/{results.md, results.json, speedup.png}.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

# Before numpy/torch/onnxruntime load: offline, and no tokenizers thread pool fighting for 2 cores.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks import models, peers, report  # noqa: E402
from benchmarks.base import BENCH_DIR, REPO_ROOT, THREADS, Implementation, ImplSpec, Prepared, log  # noqa: E402
from benchmarks.measure import measure_interleaved  # noqa: E402
from benchmarks.workloads import build_workloads, pieces_per_word  # noqa: E402

MODEL_DESCRIPTIONS = {
    "full": "fastino/gliner2-multi-v1 dimensions: mDeBERTa-v3-base encoder, 250,112-entry vocabulary, count_lstm, max_width 8, 307M parameters",
    "deberta_lstm": "tiny DeBERTa-v2 (2 layers, hidden 64), count_lstm; for smoke tests only",
}


def parse_args(argv: List[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny checkpoint and few repetitions: checks the script end to end in < 2 min")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved repetitions per workload (default 5, --quick 2)")
    parser.add_argument("--long-repeats", type=int, default=None, help="repetitions of the long document (default 3, --quick 1)")
    parser.add_argument("--skip-export", action="store_true", help="reuse the cached export and variants instead of exporting again")
    parser.add_argument("--batch-texts", type=int, default=32, help="texts per batch_extract call (default 32)")
    parser.add_argument("--batch-size", type=int, default=8, help="batch_size of batch_extract and the *_long methods (default 8)")
    parser.add_argument("--latency-texts", type=int, default=None, help="distinct texts per single-text latency workload (default 8, --quick 3)")
    parser.add_argument("--long-words", type=int, default=None, help="words of the long document (default 3000, --quick 800)")
    parser.add_argument("--model-variant", default=None, help="tests/support/checkpoint_factory.py variant (default full, --quick deberta_lstm)")
    parser.add_argument("--tokenizer", choices=("benchmark", "factory"), default="benchmark",
                        help="benchmark: BPE trained for ~1.5 pieces/word like mDeBERTa (default); factory: the test factory's tiny Unigram")
    parser.add_argument("--prepare-only", action="store_true", help="build/export/add variants into the cache, measure nothing")
    parser.add_argument("--no-memory", action="store_true", help="skip the RSS/load-time child processes")
    parser.add_argument("--peers", action="store_true", help="also measure peer ONNX ports installed under benchmarks/.cache/peers (see peers.py)")
    parser.add_argument("--output-dir", type=Path, default=None,
                        help="where results.md/json and speedup.png go (default benchmarks/results; --quick: benchmarks/.cache/quick-results)")
    # Child modes (used by the script itself).
    parser.add_argument("--rss-probe", metavar="KEY", help=argparse.SUPPRESS)
    parser.add_argument("--child-build-checkpoint", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-add-variants", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--variant-step", action="append", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    def default(name: str, full: Any, quick: Any) -> None:
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)

    default("repeats", 5, 2)
    default("long_repeats", 3, 1)
    default("latency_texts", 8, 2)
    default("long_words", 3000, 500)
    default("model_variant", "full", "deberta_lstm")
    # A smoke test must not overwrite the published full-size results.
    default("output_dir", BENCH_DIR / "results", BENCH_DIR / ".cache" / "quick-results")
    if args.quick and args.batch_texts == 32:
        args.batch_texts = 8
    return args


def forwarded_args(args: argparse.Namespace) -> List[str]:
    """The arguments a child probe needs to find the same cache and build the same workloads."""
    forwarded = ["--model-variant", args.model_variant, "--tokenizer", args.tokenizer, "--batch-texts", str(args.batch_texts),
                 "--batch-size", str(args.batch_size), "--long-words", str(args.long_words), "--latency-texts", str(args.latency_texts)]
    return forwarded + (["--quick"] if args.quick else [])


def load_implementation(
    spec: ImplSpec, prepared: Prepared, loaded: Optional[Dict[str, Implementation]] = None, runtime_sessions: bool = False
) -> Implementation:
    """`models.load_implementation`, or `peers.load_peer` for a peer."""
    if spec.kind == "peer":
        return peers.load_peer(spec, prepared)
    return models.load_implementation(spec, prepared, loaded, runtime_sessions)


# ================================================================================================
# Child mode: memory probe
# ================================================================================================


def rss_probe(args: argparse.Namespace, key: str) -> Dict[str, Any]:
    """Load one implementation in this fresh process, run each workload once, report memory."""
    import psutil

    process = psutil.Process()
    prepared = Prepared(models.cache_dir_for(args.model_variant, args.tokenizer), Path(), Path())
    prepared.checkpoint = prepared.cache_dir / "checkpoint"
    prepared.onnx_dir = prepared.cache_dir / "onnx"
    spec = _probe_specs(prepared, args).get(key)
    if spec is None:
        raise SystemExit(f"unknown --rss-probe key {key!r}")
    rss_start = process.memory_info().rss
    start = time.perf_counter()
    if spec.kind == "pytorch":
        import torch  # noqa: F401
        from gliner2 import GLiNER2  # noqa: F401
    elif spec.kind == "ort":
        from optimum_gliner2 import ORTModelForGLiNER2  # noqa: F401
    elif spec.kind == "ort-torchfree":
        from optimum_gliner2.runtime import GLiNER2ONNXRuntime  # noqa: F401
    import_s = time.perf_counter() - start
    rss_imported = process.memory_info().rss
    # The runtime's own session defaults (a process-wide arena, no memory patterns), as a user gets them.
    impl = load_implementation(spec, prepared, runtime_sessions=True)
    rss_loaded = process.memory_info().rss
    workloads = build_workloads(args.batch_texts, args.latency_texts, args.long_words)
    for kind, name in (("throughput", "short"), ("throughput", "medium"), ("long", "long")):
        workload = workloads[kind][name]
        if impl.supports(kind, workload):
            (impl.run_long if kind == "long" else impl.run_batch)(workload, args.batch_size)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return {
        "label": spec.label,
        "import_s": import_s,
        "load_s": impl.load_seconds,
        "rss_start_mb": rss_start / 2**20,
        "rss_after_import_mb": rss_imported / 2**20,
        "rss_after_load_mb": rss_loaded / 2**20,
        "rss_after_runs_mb": process.memory_info().rss / 2**20,
        "peak_rss_mb": peak_kb / 1024,
        "has_torch_loaded": "torch" in sys.modules,
    }


def _probe_specs(prepared: Prepared, args: argparse.Namespace) -> Dict[str, ImplSpec]:
    specs, _ = models.implementation_specs(prepared, with_floor=False)
    probe = {s.key: s for s in specs}
    probe["ort-fp32-torchfree"] = ImplSpec("ort-fp32-torchfree", "ORT FP32, torch-free GLiNER2ONNXRuntime", "ort-torchfree", "fp32", "fp32")
    if args.peers:
        probe.update({s.key: s for s in peers.peer_specs(prepared)[0]})
    return probe


def run_memory_probes(args: argparse.Namespace, prepared: Prepared) -> Dict[str, Any]:
    results: Dict[str, Any] = {}
    keys = list(_probe_specs(prepared, args))
    if args.quick:
        # The smoke test only needs each probe kind once; variants probe exactly like ort-fp32.
        keys = [key for key in keys if key in ("pytorch", "ort-fp32", "ort-fp32-torchfree") or key.startswith("peer")]
    for key in keys:
        log(f"memory probe: {key}")
        command = [sys.executable, "-m", "benchmarks.run", "--rss-probe", key] + forwarded_args(args) + (["--peers"] if args.peers else [])
        completed = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=1800)
        if completed.returncode != 0:
            results[key] = {"label": key, "error": completed.stderr.strip().splitlines()[-1] if completed.stderr.strip() else f"exit {completed.returncode}"}
            log(f"  failed: {results[key]['error']}")
            continue
        results[key] = json.loads(completed.stdout.strip().splitlines()[-1])
        log(f"  load {results[key]['load_s']:.1f} s, peak RSS {results[key]['peak_rss_mb']:,.0f} MB")
    return results


# ================================================================================================
# Main mode
# ================================================================================================


def main(argv: List[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child_build_checkpoint:
        models.child_build_checkpoint(args.child_build_checkpoint, args.model_variant, args.tokenizer)
        return 0
    if args.child_add_variants:
        print(json.dumps(models.child_add_variants(args.child_add_variants, args.variant_step)))
        return 0
    if args.rss_probe:
        print(json.dumps(rss_probe(args, args.rss_probe)))
        return 0

    started = report.now()
    load_before = report.load_average()
    command = "python -m benchmarks.run" + ("" if argv is None and len(sys.argv) == 1 else " " + shlex.join(sys.argv[1:] if argv is None else argv))
    log(f"load average before: {load_before}")

    prepared = models.prepare(args.model_variant, args.tokenizer, args.skip_export)
    if args.prepare_only:
        log(f"prepared {prepared.cache_dir}: variants {sorted(prepared.variants())}")
        return 0
    specs, notes = models.implementation_specs(prepared)
    notes = list(prepared.steps.get("variant_notes", {}).get("notes", [])) + notes
    if args.peers:
        peer_specs, peer_notes = peers.peer_specs(prepared)
        specs = specs[:1] + peer_specs + specs[1:]
        notes += peer_notes
    else:
        notes.append("Peers (gliner2-onnx, fast-gliner) not measured in this run: pass --peers (see benchmarks/README.md).")
    notes = list(dict.fromkeys(notes))

    memory = {} if args.no_memory else run_memory_probes(args, prepared)

    workloads = build_workloads(args.batch_texts, args.latency_texts, args.long_words)
    loaded: Dict[str, Any] = {}
    for spec in specs:
        log(f"loading {spec.label}")
        loaded[spec.key] = load_implementation(spec, prepared, loaded)
    impls = [loaded[s.key] for s in specs]

    import numpy as np  # noqa: F401  (already loaded; keeps the import order explicit)

    raw: Dict[str, Dict[str, Dict[str, List[float]]]] = {}
    facts: Dict[str, Dict[str, Any]] = {}
    for kind, by_name in workloads.items():
        raw[kind], facts[kind] = {}, {}
        repeats = args.long_repeats if kind == "long" else args.repeats
        for name, workload in by_name.items():
            log(f"measuring {kind}/{name}: {workload.description}")
            samples, workload_facts = measure_interleaved(impls, kind, workload, repeats, args.batch_size)
            raw[kind][name] = samples
            facts[kind][name] = {"description": workload.description, "words_mean": workload.words_mean, **workload_facts}

    derived = report.derive(raw, workloads, specs)
    checks = report.check_targets(derived, specs)
    tokenizer_json = str(prepared.onnx_dir / "tokenizer.json")
    results: Dict[str, Any] = {
        "started": started,
        "finished": report.now(),
        "command": command,
        "load_average_before": load_before,
        "load_average_after": report.load_average(),
        "machine": report.machine_description(),
        "config": {
            "quick": args.quick, "repeats": args.repeats, "long_repeats": args.long_repeats, "batch_texts": args.batch_texts,
            "batch_size": args.batch_size, "latency_texts": args.latency_texts, "long_words": args.long_words,
            "model_variant": args.model_variant, "model_description": MODEL_DESCRIPTIONS.get(args.model_variant, args.model_variant),
            "tokenizer": args.tokenizer, "threads": THREADS,
        },
        "pieces_per_word": pieces_per_word(tokenizer_json, workloads["throughput"]["medium"].texts),
        "implementations": [vars(s) for s in specs],
        "load_seconds_in_process": {s.key: loaded[s.key].load_seconds for s in specs},
        "workloads": facts,
        "derived": derived,
        "targets": checks,
        "memory": memory,
        "export": {"steps": {k: v for k, v in prepared.steps.items() if "seconds" in v}, "sizes": models.file_sizes(prepared)},
        "notes": notes,
        "raw_seconds": raw,
    }
    log(f"load average after: {results['load_average_after']}")

    args.output_dir.mkdir(parents=True, exist_ok=True)
    report.write_json(args.output_dir / "results.json", results)
    plot_note = report.write_plot(args.output_dir / "speedup.png", results)
    if plot_note:
        results["notes"].append(plot_note)
        report.write_json(args.output_dir / "results.json", results)
    text = report.write_markdown(args.output_dir / "results.md", results)
    print(text)
    if args.output_dir.resolve() == (BENCH_DIR / "results").resolve() and not args.quick:
        for readme, results_dir in ((BENCH_DIR / "README.md", "results"), (REPO_ROOT / "README.md", "benchmarks/results")):
            if report.update_readme(readme, results, results_dir):
                log(f"updated the results section of {readme.relative_to(REPO_ROOT)}")
    print("\n".join(report.target_lines(checks)))
    log(f"wrote {args.output_dir / 'results.md'}, results.json, speedup.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
