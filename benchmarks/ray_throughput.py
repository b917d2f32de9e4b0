"""Throughput of GLiNER2 on Ray Data against one process (issue 15).

    python -m benchmarks.ray_throughput            # full-size gliner2-multi-v1 replica (cached export), ~10 min on 2 cores
    python -m benchmarks.ray_throughput --quick    # tiny fixture: checks the script end to end (~2 min)

(from the repository root). Three ways to run the same documents with the same schema, on the
fp32 export of `benchmarks.models.prepare` (built and exported offline on first use):

- one process: `GLiNER2ONNXRuntime.batch_extract` on B rows at a time, 2 intra-op threads;
- Ray, 1 actor with 2 threads;
- Ray, 2 actors with 1 thread each;

at each batch size B (rows per call, and the encoder's `batch_size`). A local Ray with 2 CPUs runs
the actors. In each round every configuration runs twice, on a small and on the full document set;
documents per second is the difference in documents over the difference in time, so Ray's start-up
and each actor's model load (a fixed cost per job) do not count; that fixed cost is reported beside
it. Figures are medians over the rounds. Results, with the machine's CPU flags, go to
benchmarks/results/ray.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks import models, report  # noqa: E402
from benchmarks.base import BENCH_DIR, THREADS, log, ort_session_options  # noqa: E402
from benchmarks.workloads import ENTITY_LABELS, medium_texts, short_texts  # noqa: E402

#: (key, label, actors, threads per actor); None actors = one process, no Ray.
CONFIGURATIONS = (
    ("process", f"one process, {THREADS} threads", None, THREADS),
    ("ray-1x2", f"Ray, 1 actor x {THREADS} threads", 1, THREADS),
    ("ray-2x1", "Ray, 2 actors x 1 thread", 2, 1),
)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny fixture model, fewer documents")
    parser.add_argument("--documents", type=int, default=None, help="documents of the full set (default 192, --quick 96)")
    parser.add_argument("--warm-documents", type=int, default=None, help="documents of the small set (default 32)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32], help="rows per call (default 8 32)")
    parser.add_argument("--texts", choices=("short", "medium"), default="short", help="~15-word or ~120-word documents")
    parser.add_argument("--repeats", type=int, default=2, help="rounds, each running every configuration in turn (median)")
    parser.add_argument("--output-dir", type=Path, default=None, help="default benchmarks/results (--quick: benchmarks/.cache/quick-results)")
    args = parser.parse_args(argv)
    args.documents = args.documents or (96 if args.quick else 192)
    args.warm_documents = args.warm_documents or 32
    args.model_variant = "deberta_lstm" if args.quick else "full"
    args.output_dir = args.output_dir or (BENCH_DIR / ".cache" / "quick-results" if args.quick else BENCH_DIR / "results")
    return args


def prepare_export(model_variant: str) -> Path:
    """The fp32 export of the benchmark checkpoint; no precision variants are made for this benchmark."""
    models.VARIANT_STEPS = ()
    return models.prepare(model_variant, "benchmark", skip_export=True).onnx_dir


def timed(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def marginal_rate(small: int, large: int, small_seconds: float, large_seconds: float) -> Dict[str, float]:
    """Documents per second between a run over `small` and one over `large` documents, and the fixed cost."""
    rate = (large - small) / max(large_seconds - small_seconds, 1e-9)
    return {"docs_per_s": rate, "fixed_s": max(0.0, small_seconds - small / rate), "small_s": small_seconds, "large_s": large_seconds}


def median_rates(rounds: List[Dict[str, float]]) -> Dict[str, Any]:
    return {
        **{name: round(statistics.median(entry[name] for entry in rounds), 2) for name in rounds[0]},
        "rounds": [{name: round(value, 2) for name, value in entry.items()} for entry in rounds],
    }


def one_process(export: Path, texts: List[str], batch_size: int) -> Callable[[int], float]:
    from optimum_gliner2.runtime import GLiNER2ONNXRuntime, Schema

    schema = Schema().entities(ENTITY_LABELS)

    def run(count: int) -> float:
        def job() -> None:
            model = GLiNER2ONNXRuntime.from_pretrained(export, session_options=ort_session_options())
            for start in range(0, count, batch_size):
                model.batch_extract(texts[start : min(count, start + batch_size)], schema, batch_size=batch_size)

        return timed(job)

    return run


def on_ray(export: Path, texts: List[str], batch_size: int, actors: int, threads: int) -> Callable[[int], float]:
    import ray

    from optimum_gliner2.ray import ERROR_COLUMN, extract_dataset
    from optimum_gliner2.runtime import Schema

    schema = Schema().entities(ENTITY_LABELS)

    def run(count: int) -> float:
        # One block per call, so that both actors get work even from a small dataset.
        dataset = ray.data.from_items([{"id": i, "text": text} for i, text in enumerate(texts[:count])], override_num_blocks=max(1, count // batch_size))
        results = extract_dataset(
            dataset, export, schema, num_actors=actors, cpus_per_actor=threads, rows_per_batch=batch_size, batch_size=batch_size,
            intra_op_threads=threads,
        )  # fmt: skip
        start = time.perf_counter()
        rows = results.take_all()
        seconds = time.perf_counter() - start
        assert len(rows) == count and all(row[ERROR_COLUMN] is None for row in rows)
        return seconds

    return run


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    args = parse_args(argv)
    machine = report.machine_description()
    log(f"CPU: {machine['cpu_model']}, features {', '.join(machine['cpu_features'])}, {machine['usable_cpus']} CPUs")
    export = prepare_export(args.model_variant)
    texts = (short_texts if args.texts == "short" else medium_texts)(args.documents)
    load_before = report.load_average()
    from optimum_gliner2.ray.dataset import import_ray

    ray = import_ray()
    # Ray idles beside the one-process runs too, and the configurations take turns in every round,
    # so that a neighbour's load on this shared machine hits all of them alike.
    ray.init(num_cpus=THREADS, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    runs: Dict[str, Callable[[int], float]] = {}
    for batch_size in args.batch_sizes:
        for key, _, actors, threads in CONFIGURATIONS:
            runs[f"{key}/{batch_size}"] = (
                one_process(export, texts, batch_size) if actors is None else on_ray(export, texts, batch_size, actors, threads)
            )
    rounds: Dict[str, List[Dict[str, float]]] = {name: [] for name in runs}
    try:
        for round_index in range(args.repeats):
            for name, run in runs.items():
                log(f"round {round_index + 1}/{args.repeats}: {name}")
                small_seconds, large_seconds = run(args.warm_documents), run(args.documents)
                rounds[name].append(marginal_rate(args.warm_documents, args.documents, small_seconds, large_seconds))
    finally:
        ray.shutdown()
    results = {name: median_rates(entries) for name, entries in rounds.items()}
    return write_report(args, machine, results, load_before, report.load_average())


def write_report(args: argparse.Namespace, machine: Dict[str, Any], results: Dict[str, Any], load_before: Any, load_after: Any) -> Dict[str, Any]:
    """benchmarks/results/ray.{md,json}."""
    command = "python -m benchmarks.ray_throughput" + (" --quick" if args.quick else "")
    lines = [
        "# GLiNER2 on Ray Data vs one process",
        "",
        f"`{command}`; model `{args.model_variant}` (tests/support/checkpoint_factory.py, fp32 export), "
        f"{args.documents} {args.texts} documents (~{15 if args.texts == 'short' else 120} words), 5 entity labels; "
        f"rate measured between {args.warm_documents} and {args.documents} documents (start-up excluded, shown as fixed cost).",
        "",
        f"Machine: {report.machine_line(machine)}; CPU flags: {', '.join(machine['cpu_features']) or 'none of avx2/avx512'}; "
        f"load average before/after {load_before} / {load_after}; {report.now()}.",
        "",
        "| batch (rows per call = encoder batch) | " + " | ".join(f"{label}: docs/s (fixed s)" for _, label, _, _ in CONFIGURATIONS) + " |",
        "|---|" + "---|" * len(CONFIGURATIONS),
    ]
    for batch_size in args.batch_sizes:
        cells = [f"{results[f'{key}/{batch_size}']['docs_per_s']} ({results[f'{key}/{batch_size}']['fixed_s']})" for key, _, _, _ in CONFIGURATIONS]
        lines.append(f"| {batch_size} | " + " | ".join(cells) + " |")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "ray.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    payload = {"command": command, "machine": machine, "load_average": [load_before, load_after], "config": {
        "model_variant": args.model_variant, "documents": args.documents, "warm_documents": args.warm_documents,
        "texts": args.texts, "batch_sizes": args.batch_sizes, "repeats": args.repeats}, "results": results}  # fmt: skip
    (args.output_dir / "ray.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")
    print("\n".join(lines))
    log(f"wrote {args.output_dir / 'ray.md'}")
    return payload


if __name__ == "__main__":
    main()
