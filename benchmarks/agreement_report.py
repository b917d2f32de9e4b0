"""How far each precision variant of a GLiNER2 export is from FP32: the agreement report.

For every variant against FP32 of the same export:
- decoded-output agreement on the parity corpus (tests/support/parity_corpus.py): texts, labels,
  offsets and structure equal, confidences ignored; counted per text and per corpus case;
- confidence drift over the outputs that agree (max and mean |variant - FP32|);
- special-token embedding cosine: the rows of gliner2's marker tokens ([P], [E], [R], [L], ...) as the
  variant's encoder looks them up (dequantized), against FP32 (min over the ten markers), and the
  encoder outputs at the marker positions of one mixed-schema call;
- batch-composition sensitivity: each text alone vs inside a padded batch with the other texts
  (fraction of texts whose decoded output is identical), which dynamic quantization can break;
- whether the encoder output stays finite on a padded batch of 2 x 1,000 tokens;
- file size of the encoder and of the four graphs, against FP32;
- latency of one single-text `extract_entities` call, against FP32 (median; meaningless on the tiny
  fixture, where Python overhead dominates).

Usage:
    python -m benchmarks.agreement_report --variant deberta_lstm   # tiny fixture, about a minute
    python -m benchmarks.agreement_report --variant full           # mDeBERTa-base-sized, random weights: slow
    python -m benchmarks.agreement_report --variant full --resume  # after an interruption: keep the rows saved

(from the repository root). The measures themselves live in tests/support/agreement.py, which
tests/test_quantization.py asserts on.

Checkpoint, export and variants are cached under benchmarks/.cache/agreement/<variant>/. The report is
printed and written into benchmarks/results/agreement.md, one section per fixture variant.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import psutil

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from optimum_gliner2 import variants  # noqa: E402
from optimum_gliner2.runtime import GLiNER2ONNXRuntime  # noqa: E402
from optimum_gliner2.bundle.format import MARKER_TOKENS, GLiNER2OnnxBundle  # noqa: E402
from tests.support.agreement import (  # noqa: E402
    batch_sensitivity,
    corpus_agreement,
    padded_token_batch,
    run_corpus,
    temper_attention,
)
from tests.support.parity_corpus import ENTITY_LABELS, SCHEMA_BUILDERS, SENTENCES  # noqa: E402

RESULTS_FILE = BENCH_DIR / "results" / "agreement.md"
CACHE_ROOT = BENCH_DIR / ".cache" / "agreement"
TEMPERED_SUFFIX = "_tempered"
FIXTURE_DESCRIPTIONS = {
    "deberta_lstm_tempered": "the deberta_lstm fixture with attention tempered (query/key weights x0.3): the "
    "fixture's N(0, 0.35) weights make attention near one-hot, where any 1% perturbation swaps attention winners "
    "(INT8's relative error on the encoder output is 11-13% there, 2% once tempered, as on trained encoders). "
    "Heads unchanged: many scores still sit at the thresholds, so exact agreement is a harsh, lower-bound measure.",
    "full": "fastino/gliner2-multi-v1 dimensions (mDeBERTa-v3-base, 250k vocabulary), random weights: "
    "outputs are near-constant, so agreement there mostly shows that nothing breaks; sizes and latency are real.",
}
TRAINED_LIKE = (
    "tiny fixture with rescaled heads and N(0, 0.35) weights (tests/support/checkpoint_factory.py): outputs differ by "
    "label and straddle the thresholds, but attention is near one-hot, so any lossy variant reshuffles many "
    "outputs (compare deberta_lstm_tempered); sizes and latency are not representative."
)
LATENCY_TEXT = " ".join(SENTENCES[:3])


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# Preparation: checkpoint, export, variants (cached)
# ------------------------------------------------------------------------------------------------


def _run(arguments: List[str], what: str) -> None:
    log(what)
    completed = subprocess.run(arguments, capture_output=True, text=True, cwd=REPO_ROOT)
    if completed.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{completed.stderr[-4000:]}")


def _variant_plan(export: Path) -> Dict[str, Tuple[str, Callable[[], Any]]]:
    """Variant name -> (description, function adding it to `export`)."""
    plan: Dict[str, Tuple[str, Callable[[], Any]]] = {
        "int8": (
            f"default: MatMul per-channel, table {variants.DEFAULT_EMBEDDINGS}, heads FP32",
            lambda: variants.quantize_gliner2(export),
        ),
    }
    for storage in variants.EMBEDDING_STORAGES:
        if storage != variants.DEFAULT_EMBEDDINGS:
            plan[f"int8_table_{storage}"] = (
                f"as int8, table {storage}",
                lambda storage=storage: variants.quantize_gliner2(
                    export, embeddings=storage, variant=f"int8_table_{storage}"
                ),
            )
    plan["int8_heads"] = (
        "as int8, heads INT8 too",
        lambda: variants.quantize_gliner2(export, quantize_heads=True, variant="int8_heads"),
    )
    plan["int8_optimum_cli"] = (
        "`optimum-cli onnxruntime quantize --avx2` (all graphs, ORT defaults)",
        lambda: _optimum_cli_variant(export),
    )
    plan["fp16"] = ("FP16 Linear layers + table, rest FP32", lambda: variants.convert_gliner2_to_fp16(export))
    for level in variants.OPTIMIZATION_LEVELS:
        plan[level.lower()] = (
            f"ORTOptimizer {level}, FP32",
            lambda level=level: variants.optimize_gliner2(export, level),
        )
    return plan


def _optimum_cli_variant(export: Path) -> None:
    """Run Optimum's own quantize command on the plain export and register what it writes.

    The command quantizes every .onnx file of its input folder and fails on already quantized or FP16
    ones, so it gets a folder of hard links to the FP32 export only.
    """
    metadata = GLiNER2OnnxBundle.load(export).metadata
    fp32_graphs = set(metadata["variants"]["fp32"].values())
    other_graphs = {name for graphs in metadata["variants"].values() for name in graphs.values()} - fp32_graphs
    plain_export, output = export.parent / "fp32_only", export.parent / "optimum_cli_quantized"
    shutil.rmtree(plain_export, ignore_errors=True)
    shutil.copytree(
        export,
        plain_export,
        copy_function=os.link,
        ignore=lambda _, names: [n for n in names if n in other_graphs or n.startswith(".staging-")],
    )
    _run(
        [sys.executable, "-m", "optimum.commands.optimum_cli", "onnxruntime", "quantize",
         "--onnx_model", str(plain_export), "-o", str(output), "--avx2"],
        "optimum-cli onnxruntime quantize --avx2",
    )  # fmt: skip
    files = variants.optimum_cli_quantized_files(export, output)
    variants.import_variant(export, "int8_optimum_cli", files, {"command": "optimum-cli onnxruntime quantize --avx2"})


def build_checkpoint(variant: str, checkpoint: Path) -> None:
    """checkpoint_factory's `variant`, or for "<variant>_tempered" that one with `temper_attention` applied."""
    base = variant[: -len(TEMPERED_SUFFIX)] if variant.endswith(TEMPERED_SUFFIX) else variant
    _run(
        [sys.executable, "-c", "import sys; from tests.support.checkpoint_factory import build_checkpoint; build_checkpoint(sys.argv[1], sys.argv[2])",
         base, str(checkpoint)],
        f"building the {base!r} checkpoint",
    )  # fmt: skip
    if base != variant:
        temper_attention(checkpoint)


def prepare(variant: str, workdir: Path, skip: Sequence[str] = ()) -> Tuple[Path, Dict[str, str], List[str]]:
    """Build the checkpoint, export it and add every variant of the plan that is missing.

    Returns:
        (export folder, {variant: description} of the variants present, notes on variants that failed).
    """
    checkpoint, export = workdir / "checkpoint", workdir / "export"
    if not (checkpoint / "config.json").is_file():
        build_checkpoint(variant, checkpoint)
    if not (export / "gliner2_onnx.json").is_file():
        _run(
            [sys.executable, "-m", "optimum.commands.optimum_cli", "export", "onnx", "--model", str(checkpoint), str(export)],
            "optimum-cli export onnx",
        )
    present = GLiNER2OnnxBundle.load(export).precisions
    descriptions, notes = {}, []
    for name, (description, _) in _variant_plan(export).items():
        if name in skip:
            notes.append(f"`{name}` not measured: skipped (--skip).")
            continue
        if name not in present:
            # One child process per variant: the tools' peak memory on a full-size encoder is several GB
            # and would otherwise add up in this process.
            try:
                _run([sys.executable, "-m", "benchmarks.agreement_report", "--variant", variant, "--workdir", str(workdir), "--add-only", name],
                     f"adding variant {name}")  # fmt: skip
            except RuntimeError as error:
                notes.append(f"`{name}` not measured: making it failed ({str(error).strip().splitlines()[-1][:300]}).")
                continue
        descriptions[name] = description
    return export, descriptions, notes


# ------------------------------------------------------------------------------------------------
# Measurements
# ------------------------------------------------------------------------------------------------


def marker_cosine(export: Path, precision: str, reference_rows: np.ndarray, marker_ids: List[int]) -> Optional[float]:
    rows = variants.embedding_rows(export, precision, marker_ids)
    if rows is None:
        return None
    norms = np.linalg.norm(rows, axis=1) * np.linalg.norm(reference_rows, axis=1)
    # A row quantized to all zeros has lost its direction entirely: cosine 0.
    cosines = np.divide(np.sum(rows * reference_rows, axis=1), norms, out=np.zeros(len(rows)), where=norms > 0)
    return float(cosines.min())


def _encoder_outputs(model, call: Callable[[], Any]) -> List[Tuple[np.ndarray, np.ndarray]]:
    """(input_ids, last_hidden_state) of every encoder run during `call()`."""
    backend, captured = model.backend, []
    original = backend.encode

    def encode(input_ids, attention_mask):
        hidden = original(input_ids, attention_mask)
        captured.append((input_ids, hidden))
        return hidden

    backend.encode = encode
    try:
        call()
    finally:
        backend.encode = original
    return captured


def marker_hidden_cosine(reference_model, model, marker_ids: List[int]) -> float:
    """Min cosine between the encoder outputs at marker tokens, FP32 vs variant, on one mixed-schema call."""

    def run(m):
        return _encoder_outputs(m, lambda: m.extract(SENTENCES[1], SCHEMA_BUILDERS["mixed"](m.create_schema())))

    cosines = []
    for (ids, expected), (_, actual) in zip(run(reference_model), run(model)):
        at_markers = np.isin(ids, marker_ids)
        left, right = expected[at_markers], actual[at_markers]
        cosines.extend(np.sum(left * right, axis=1) / (np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1)))
    return float(min(cosines))


def finite_on_long_input(model, length: int = 1000) -> bool:
    """Whether the encoder's output stays finite on a padded batch of `length` tokens."""
    return bool(np.isfinite(model.backend.encode(*padded_token_batch(model.bundle, 2, length))).all())


def sizes(bundle: GLiNER2OnnxBundle) -> Dict[str, int]:
    def size_of(name: str) -> int:
        record = bundle.metadata["files"][name]
        return record["size"] + sum(record.get("external_data", {}).values())

    graphs = bundle.metadata["variants"][bundle.precision]
    return {"encoder": size_of(graphs["encoder"]), "bundle": sum(size_of(graphs[graph]) for graph in graphs)}


def latency_ratio(reference_model, model, repeats: int) -> Tuple[float, float]:
    """(median seconds of one single-text `extract_entities` call on `reference_model`, median ratio
    `model` / reference). The calls alternate, so a change in machine load affects both sides alike."""
    timings: Dict[int, List[float]] = {id(reference_model): [], id(model): []}
    for candidate in (reference_model, model):
        candidate.extract_entities(LATENCY_TEXT, ENTITY_LABELS)  # warm-up
    for _ in range(repeats):
        for candidate in (reference_model, model):
            start = time.perf_counter()
            candidate.extract_entities(LATENCY_TEXT, ENTITY_LABELS)
            timings[id(candidate)].append(time.perf_counter() - start)
    reference_median = float(np.median(timings[id(reference_model)]))
    return reference_median, float(np.median(timings[id(model)])) / reference_median


def _release_memory() -> None:
    """Collect the last variant's sessions and hand freed heap back to the OS.

    A full-size variant's sessions and ONNX protos take several GB; without trimming, glibc keeps the
    freed pages and nine variants in one process exceeded 24 GB.
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def measure(
    export: Path,
    precisions: List[str],
    repeats: int,
    measured: Optional[Dict[str, Dict[str, Any]]] = None,
    save: Callable[[Dict[str, Dict[str, Any]]], None] = lambda rows: None,
) -> Dict[str, Dict[str, Any]]:
    """One row per precision; rows already in `measured` are kept, and `save` gets the rows after each one."""
    rows = dict(measured or {})
    fp32 = GLiNER2ONNXRuntime.from_pretrained(export)
    marker_ids = [fp32.bundle.special_token_ids[token] for token in MARKER_TOKENS]
    reference_rows = variants.embedding_rows(export, "fp32", marker_ids)
    log("running the corpus on fp32")
    reference = run_corpus(fp32)
    fp32_sizes = sizes(fp32.bundle)
    for precision in ["fp32", *precisions]:
        if precision in rows:
            log(f"{precision}: measured by an earlier run, kept")
            continue
        log(f"measuring {precision} (RSS {psutil.Process().memory_info().rss / 1e9:.1f} GB)")
        model = fp32 if precision == "fp32" else GLiNER2ONNXRuntime.from_pretrained(export, precision=precision)
        assert model.precision == precision
        variant_sizes = sizes(model.bundle)
        fp32_latency, ratio = latency_ratio(fp32, model, repeats)
        rows[precision] = {
            **corpus_agreement(reference, model),
            "marker_cosine": marker_cosine(export, precision, reference_rows, marker_ids),
            "marker_hidden_cosine": marker_hidden_cosine(fp32, model, marker_ids),
            "batch_identical": batch_sensitivity(model),
            "finite_1000_tokens": finite_on_long_input(model),
            "encoder_mb": variant_sizes["encoder"] / 1e6,
            "encoder_ratio": variant_sizes["encoder"] / fp32_sizes["encoder"],
            "bundle_ratio": variant_sizes["bundle"] / fp32_sizes["bundle"],
            "latency_ratio": ratio,
            "fp32_latency_ms": fp32_latency * 1e3,
        }
        save(rows)
        del model
        _release_memory()
    return {precision: rows[precision] for precision in ["fp32", *precisions]}


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------


def markdown(
    variant: str, rows: Dict[str, Dict[str, Any]], descriptions: Dict[str, str], command: str, notes: List[str]
) -> str:
    first = next(iter(rows.values()))
    lines = [
        f"## `{variant}`",
        "",
        FIXTURE_DESCRIPTIONS.get(variant, TRAINED_LIKE),
        "",
        f"Reproduce: `{command}` ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs; FP32 single-text "
        f"`extract_entities` median {first['fp32_latency_ms']:.1f} ms; latency ratios from alternating calls).",
        "",
        "| variant | how | identical texts | identical cases | confident items kept | conf. drift max / mean | marker rows cosine (min) "
        "| marker outputs cosine (min) | batch vs alone identical | finite at 1,000 tokens | encoder MB (vs FP32) "
        "| 4 graphs vs FP32 | latency vs FP32 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for precision, row in rows.items():
        cosine = "n/a (table fused)" if row["marker_cosine"] is None else f"{row['marker_cosine']:.5f}"
        lines.append(
            f"| `{precision}` | {descriptions.get(precision, 'reference')} "
            f"| {row['texts_same']}/{row['texts_total']} ({100 * row['texts_same'] / row['texts_total']:.1f}%) "
            f"| {row['cases_same']}/{row['cases_total']} | {row['confident_kept']}/{row['confident_total']} "
            f"| {row['max_drift']:.2e} / {row['mean_drift']:.2e} | {cosine} | {row['marker_hidden_cosine']:.5f} "
            f"| {100 * row['batch_identical']:.0f}% | {'yes' if row['finite_1000_tokens'] else '**no**'} "
            f"| {row['encoder_mb']:.1f} ({100 * row['encoder_ratio']:.0f}%) | {100 * row['bundle_ratio']:.0f}% "
            f"| {row['latency_ratio']:.2f}x |"
        )
    lines.extend(["", *(f"- {note}" for note in notes)] if notes else [])
    return "\n".join(lines) + "\n"


def write_section(variant: str, section: str) -> None:
    """Replace this fixture's section of RESULTS_FILE, keeping the others."""
    begin, end = f"<!-- agreement:{variant} -->", f"<!-- /agreement:{variant} -->"
    text = RESULTS_FILE.read_text(encoding="utf-8") if RESULTS_FILE.is_file() else (
        "# Agreement of the precision variants with FP32\n\nWritten by `benchmarks/agreement_report.py`; "
        "see docs/precision.md for what the columns mean.\n\n"
    )  # fmt: skip
    block = f"{begin}\n{section}{end}\n"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) + 1 :]
    else:
        text += "\n" + block
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(text, encoding="utf-8")


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="deberta_lstm",
                        help="checkpoint_factory variant (deberta_lstm, bert, full, ...), or one with the suffix "
                             f"{TEMPERED_SUFFIX} (attention tempered, see temper_attention)")  # fmt: skip
    parser.add_argument("--workdir", type=Path, help="default: benchmarks/.cache/agreement/<variant>")
    parser.add_argument("--repeats", type=int, default=None, help="latency repeats (default 20; 7 for full)")
    parser.add_argument("--no-write", action="store_true", help=f"print only, do not update {RESULTS_FILE.name}")
    parser.add_argument("--prepare-only", action="store_true", help="build, export and add the variants; measure nothing")
    parser.add_argument("--skip", nargs="*", default=[], metavar="NAME", help="variants not to make or measure")
    parser.add_argument("--resume", action="store_true",
                        help="keep the rows an interrupted run of the same export saved, measure the rest")  # fmt: skip
    parser.add_argument("--add-only", metavar="NAME", help=argparse.SUPPRESS)  # child mode of prepare()
    args = parser.parse_args(argv)
    workdir = args.workdir or CACHE_ROOT / args.variant
    workdir.mkdir(parents=True, exist_ok=True)
    if args.add_only:
        _variant_plan(workdir / "export")[args.add_only][1]()
        return
    export, descriptions, notes = prepare(args.variant, workdir, args.skip)
    if args.prepare_only:
        return
    repeats = args.repeats or (7 if args.variant == "full" else 20)
    rows_file = workdir / "agreement.json"
    export_stamp = (export / "gliner2_onnx.json").read_text(encoding="utf-8")

    def save(rows: Dict[str, Dict[str, Any]]) -> None:
        rows_file.write_text(json.dumps({"export_metadata": export_stamp, "rows": rows}, indent=2), encoding="utf-8")

    measured = {}
    if args.resume and rows_file.is_file():
        saved = json.loads(rows_file.read_text(encoding="utf-8"))
        if saved.get("export_metadata") == export_stamp:  # same export, same variants
            measured = saved["rows"]
    rows = measure(export, list(descriptions), repeats, measured, save)
    command = f"python -m benchmarks.agreement_report --variant {args.variant}" + (
        f" --skip {' '.join(args.skip)}" if args.skip else ""
    )
    section = markdown(args.variant, rows, descriptions, command, notes)
    print(section)
    if not args.no_write:
        write_section(args.variant, section)


if __name__ == "__main__":
    main()
