"""GLiNER2.5 (boundary) on ONNX Runtime vs gliner2 PyTorch, and span vs 2.5, in one run (issues 13, 14).

    python -m benchmarks.boundary            # full-size replicas (mDeBERTa-v3-base dims), ~20-30 min on 2 cores
    python -m benchmarks.boundary --quick    # tiny fixtures: checks the script end to end (< 3 min)

(from the repository root). Both models are built offline with tests/support/checkpoint_factory.py
(`full`: gliner2-multi-v1 dims; `boundary_full`: gliner2.5-multi-v1 dims with the published head),
exported with `optimum-cli export onnx` and given its variants (`optimum_gliner2.variants`), all
cached in benchmarks/.cache/. Then, in this one process, the implementations run interleaved
(order rotated every repetition) on the same inputs and the same entity labels: PyTorch, ORT FP32,
ORT FP32 fused and both ORT INT8 methods, for each architecture, and GLiNER2.5's encoder floors: each
ORT variant's encoder session alone on the batches its pipeline built for the same call (as `benchmarks.run`
has them for span models), which bound what any host code could reach with that encoder. Ratios are taken
within this run only; the CPU flags are recorded with them in benchmarks/results/boundary.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks import models, report  # noqa: E402
from benchmarks.base import BENCH_DIR, THREADS, ImplSpec, Prepared, log, ort_session_options  # noqa: E402
from benchmarks.measure import measure_interleaved, summarize  # noqa: E402
from benchmarks.models import EncoderFloor, GLiNER2APIImplementation  # noqa: E402
from benchmarks.workloads import Workload, build_workloads  # noqa: E402

ARCHITECTURES = ("span", "boundary")
#: Workloads both architectures answer; "mixed" is entities + classification + relations in one schema.
MEASURED = (
    ("throughput", "short"), ("throughput", "medium"), ("throughput", "mixed"),
    ("latency", "short"), ("latency", "mixed"), ("long", "long"),
)  # fmt: skip


def parse_args(argv: List[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny fixtures and few repetitions")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved repetitions (default 5, --quick 2)")
    parser.add_argument("--batch-texts", type=int, default=32, help="texts per batch_extract call (default 32)")
    parser.add_argument("--batch-size", type=int, default=8, help="batch_size of batch_extract and *_long (default 8)")
    parser.add_argument("--latency-texts", type=int, default=None, help="texts of the single-text workload (default 8, --quick 2)")
    parser.add_argument("--long-words", type=int, default=None, help="words of the long document (default 3000, --quick 500)")
    parser.add_argument("--tokenizer", choices=("benchmark", "factory"), default="benchmark")
    parser.add_argument("--skip-export", action="store_true", help="reuse cached exports and variants")
    parser.add_argument("--output-dir", type=Path, default=None, help="default benchmarks/results (--quick: benchmarks/.cache/quick-results)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.repeats = args.repeats or (2 if quick else 5)
    args.latency_texts = args.latency_texts or (2 if quick else 8)
    args.long_words = args.long_words or (500 if quick else 3000)
    args.output_dir = args.output_dir or (BENCH_DIR / ".cache" / "quick-results" if quick else BENCH_DIR / "results")
    if quick and args.batch_texts == 32:
        args.batch_texts = 8
    args.model_variants = {"span": "deberta_lstm", "boundary": "boundary"} if quick else {"span": "full", "boundary": "boundary_full"}
    return args


def prepare(args: argparse.Namespace) -> Dict[str, Prepared]:
    """Build, export and add variants to both models (cached): both INT8 methods and the fused-attention
    encoder, as `benchmarks.run` makes them."""
    return {
        architecture: models.prepare(args.model_variants[architecture], args.tokenizer, args.skip_export)
        for architecture in ARCHITECTURES
    }


def load(architecture: str, kind: str, precision: str, prepared: Prepared) -> GLiNER2APIImplementation:
    """One implementation: gliner2 PyTorch (`kind="pytorch"`) or ORTModelForGLiNER2 at `precision`."""
    key = f"{architecture}-{'pytorch' if kind == 'pytorch' else 'ort-' + precision}"
    label = f"{architecture} " + ("PyTorch" if kind == "pytorch" else f"ORT {precision.upper()}")
    spec = ImplSpec(key, label, kind, precision, category=precision if kind != "pytorch" else "pytorch")
    start = time.perf_counter()
    if kind == "pytorch":
        import torch
        from gliner2.auto import AutoExtractor

        torch.set_num_threads(THREADS)
        model = AutoExtractor.from_pretrained(str(prepared.checkpoint))
        model.eval()
    else:
        from optimum_gliner2 import ORTModelForGLiNER2

        model = ORTModelForGLiNER2.from_pretrained(prepared.onnx_dir, precision=precision, session_options=ort_session_options())
    return GLiNER2APIImplementation(spec, model, time.perf_counter() - start)


#: The architecture whose encoder floors are measured (its issue's goals are the ones in question).
FLOORED = "boundary"


def encoder_floor(owner: GLiNER2APIImplementation) -> EncoderFloor:
    """The encoder session of a loaded ORT implementation, alone (`benchmarks.models.EncoderFloor`)."""
    architecture, precision = owner.spec.key.split("-")[0], owner.spec.precision
    spec = ImplSpec(f"{architecture}-floor-{precision}", f"{architecture} encoder floor ({precision})", "floor", precision, category=owner.spec.category)
    return EncoderFloor(spec, owner.model.runtime.backend.sessions["encoder"])


def main(argv: List[str] | None = None) -> None:
    args = parse_args(argv)
    machine = report.machine_description()
    log(f"CPU: {machine['cpu_model']}, features {', '.join(machine['cpu_features'])}, {machine['usable_cpus']} CPUs")
    prepared = prepare(args)
    impls = []
    for architecture in ARCHITECTURES:
        variants = sorted(name for name in prepared[architecture].variants() if name != "fp32")
        impls.append(load(architecture, "pytorch", "fp32", prepared[architecture]))
        impls.append(load(architecture, "ort", "fp32", prepared[architecture]))
        for precision in variants:
            impls.append(load(architecture, "ort", precision, prepared[architecture]))
        if not any(models.variant_category(name) == "int8" for name in variants):
            log(f"{architecture}: no INT8 variant was made; INT8 not measured")
    impls += [encoder_floor(impl) for impl in impls if impl.spec.key.startswith(f"{FLOORED}-ort-")]

    workloads = build_workloads(args.batch_texts, args.latency_texts, args.long_words)
    run = {"machine": machine, "load_average": {"before": report.load_average()},
           "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}
    results: Dict[str, Any] = {}
    for kind, name in MEASURED:
        workload: Workload = workloads[kind][name]
        repeats = max(1, args.repeats // 2) if kind == "long" else args.repeats
        # The floors replay the encoder batches that GLiNER2.5's FP32 pipeline builds for this call.
        samples, _ = measure_interleaved(impls, kind, workload, repeats, args.batch_size, reference_key=f"{FLOORED}-ort-fp32")
        results[f"{kind}/{name}"] = {
            "description": workload.description,
            "median_s": {key: summarize(values)["median_s"] for key, values in samples.items()},
        }
    run["load_average"]["after"] = report.load_average()
    write_report(args, run, impls, results)


def _ratio(medians: Dict[str, float], slower: str, faster: str) -> str:
    if slower not in medians or faster not in medians:
        return "-"
    return f"{medians[slower] / medians[faster]:.2f}x"


def _ratio_table(caption: str, columns: List[Tuple[str, str, str]], results: Dict[str, Any]) -> List[str]:
    """Markdown lines: the caption, then one row per workload of `columns` (title, slower key, faster key)."""
    lines = ["", caption, "", *report.markdown_table_head("workload", [title for title, _, _ in columns])]
    for workload, entry in results.items():
        medians = entry["median_s"]
        lines.append(f"| {workload} | " + " | ".join(_ratio(medians, slower, faster) for _, slower, faster in columns) + " |")
    return lines


def write_report(args: argparse.Namespace, run: Dict[str, Any], impls: List[Any], results: Dict[str, Any]) -> None:
    """benchmarks/results/boundary.{json,md}: medians and the ratios that answer the issue; `run` is the machine,
    the load averages and the start time."""
    keys = [impl.spec.key for impl in impls]
    variant_precisions = sorted({impl.spec.precision for impl in impls if impl.spec.kind != "pytorch" and impl.spec.precision != "fp32"})
    # (column title, slower implementation, faster implementation)
    ratio_columns = [("2.5 ORT FP32 vs PyTorch", "boundary-pytorch", "boundary-ort-fp32")]
    ratio_columns += [(f"2.5 ORT {p.upper()} vs PyTorch", "boundary-pytorch", f"boundary-ort-{p}") for p in variant_precisions]
    ratio_columns += [("span ORT FP32 vs PyTorch", "span-pytorch", "span-ort-fp32")]
    ratio_columns += [(f"span ORT {p.upper()} vs PyTorch", "span-pytorch", f"span-ort-{p}") for p in variant_precisions]
    ratio_columns += [("PyTorch span/2.5", "span-pytorch", "boundary-pytorch"), ("ORT FP32 span/2.5", "span-ort-fp32", "boundary-ort-fp32")]
    floor_columns = [
        (f"2.5 {p.upper()} encoder alone vs PyTorch", "boundary-pytorch", f"boundary-floor-{p}") for p in ["fp32", *variant_precisions]
    ] + [(f"2.5 ORT {p.upper()} over its encoder", f"boundary-ort-{p}", f"boundary-floor-{p}") for p in ["fp32", *variant_precisions]]
    floor_columns = [column for column in floor_columns if column[2] in keys]
    lines = [
        "# GLiNER2.5 (boundary) vs span, ONNX Runtime vs gliner2 PyTorch",
        "",
        f"`python -m benchmarks.boundary{' --quick' if args.quick else ''}`; models: span = `{args.model_variants['span']}`, "
        f"2.5 = `{args.model_variants['boundary']}` (tests/support/checkpoint_factory.py), {THREADS} threads each.",
        "",
        f"{report.run_line(run)} Started {run['started_utc']} UTC.",
        "",
        "Median seconds per call:",
        "",
        *report.markdown_table_head("workload", [impl.spec.label for impl in impls]),
    ]
    for workload, entry in results.items():
        medians = entry["median_s"]
        lines.append(f"| {workload} ({entry['description']}) | " + " | ".join(f"{medians[k]:.4f}" for k in keys) + " |")
    lines += _ratio_table(
        "Ratios (PyTorch time / ORT time, so > 1 means ORT is faster; last two columns: span time / 2.5 time). "
        "INT8 is the variant tool's default method on this CPU (`per_row_integer`, u8 x s8 integer GEMM, with VNNI; "
        "`per_row`, MatMulNBits, without); INT8_PER_ROW and INT8_INTEGER name the other one explicitly; FUSED is the "
        "FP32 encoder with static shapes folded and DeBERTa's attention in ORT's MultiHeadAttention:",
        ratio_columns,
        results,
    )
    if floor_columns:
        lines += _ratio_table(
            "GLiNER2.5's encoder floors: PyTorch's time over the encoder session alone on the same batches (the most any host "
            "code could reach with that encoder), and each ORT variant's end-to-end time over its encoder alone (1.00 = the "
            "glue costs nothing):",
            floor_columns,
            results,
        )
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "boundary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (args.output_dir / "boundary.json").write_text(
        json.dumps({**run, "implementations": keys, "results": results, "load_seconds": {
            impl.spec.key: impl.load_seconds for impl in impls}}, indent=2),
        encoding="utf-8",
    )
    print("\n".join(lines))
    log(f"wrote {args.output_dir / 'boundary.md'}")


if __name__ == "__main__":
    main()
