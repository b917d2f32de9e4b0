"""Peak memory (RSS): a loaded model, a batch of 8 x 512 tokens, and `*_long` documents; one process each.

Two measurements, each in a fresh child process so that no measurement's memory (or ONNX Runtime arena)
inflates another's:

- Loading and one batch: gliner2's PyTorch `GLiNER2` against the torch-free ORT FP32 runtime
  (`GLiNER2ONNXRuntime`, its default session options: one process-wide CPU arena that grows by what is
  asked), the same runtime with ONNX Runtime's memory patterns back on (and an arena per session), with an
  arena per session that grows by doubling (ONNX Runtime's default), with no CPU arena and, when the export
  has one, the INT8 variant. Loaded, then
  `batch_extract_entities` on 8 texts of ~512 tokens each (5 labels, batch_size 8), then
  `extract_entities_long` on a 3,000-word document. Reported: RSS after import and after loading, and the
  peak RSS after loading, after the batch and after the long document. On the full-size replica
  (fastino/gliner2-multi-v1 dimensions, random weights; benchmarks/models.py) unless `--model tiny`.
- `extract_entities_long` on documents of 10k, 50k and 100k words (`--long-words`) with the ORT runtime
  on the tiny `deberta_lstm` test fixture (tests/support/checkpoint_factory.py): the peak RSS, and the
  peak above the loaded model, which issue 17 bounds at 1.5 GB for 100k words. Default windows (384
  words, 64 shared), batch_size 8; the document repeats an entity-dense sentence, so every window has
  predictions to merge.

Usage (from the repository root):
    python -m benchmarks.memory [--model full|tiny] [--long-words 10000,50000,100000] [--skip-batch]

Writes benchmarks/results/memory.{md,json}, with the CPU flags. The full-size checkpoint and export are
cached in benchmarks/.cache/full-benchmark-tokenizer/ (shared with `python -m benchmarks.run`), the tiny
fixture and its export in benchmarks/.cache/tiny-deberta_lstm/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Sequence

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks import models  # noqa: E402
from benchmarks.base import BENCH_DIR, CACHE_ROOT, REPO_ROOT, THREADS, Prepared, log  # noqa: E402
from benchmarks.report import load_average, machine_description, run_line  # noqa: E402

RESULTS = BENCH_DIR / "results"
ENTITY_LABELS = ["person", "organization", "location", "date", "product"]
#: Text pieces per batch text: with the schema prompt, about 512 model tokens.
BATCH_TEXT_PIECES = 490
BATCH_TEXTS = 8
BATCH_DOCUMENT_WORDS = 3000
#: The long documents repeat this sentence: 6 words, 2 entities, so every window has predictions to merge.
LONG_SENTENCE = "Tim Cook leads Apple in Cupertino"
#: Issue 17: a 100k-word document peaks at most this far above the loaded model.
LONG_BOUND_MB = 1536


# ================================================================================================
# What is measured
# ================================================================================================


def prepare_full() -> Prepared:
    """The cached full-size checkpoint and its export (built in children when missing)."""
    prepared = models.cached_full_export()
    return prepared


def prepare_tiny() -> Prepared:
    """The tiny `deberta_lstm` test fixture and its export, cached."""
    cache_dir = CACHE_ROOT / "tiny-deberta_lstm"
    prepared = Prepared(cache_dir, cache_dir / "checkpoint", cache_dir / "onnx")
    if not (prepared.checkpoint / "config.json").is_file():
        log(f"building the tiny deberta_lstm fixture in {prepared.checkpoint}")
        code = "import sys; from tests.support.checkpoint_factory import build_checkpoint; build_checkpoint('deberta_lstm', sys.argv[1])"
        models._run_child([sys.executable, "-c", code, str(prepared.checkpoint)], "building the tiny fixture")
    if not (prepared.onnx_dir / "gliner2_onnx.json").is_file():
        models._export(prepared)
    return prepared


def batch_texts(tokenizer_json: Path) -> List[str]:
    """8 texts of the benchmark's sentences, each cut to ~490 pieces the way gliner2 tokenizes
    (each lower-cased word on its own): ~512 model tokens with the entity prompt."""
    from tokenizers import Tokenizer

    from benchmarks.workloads import long_document

    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    texts = []
    for index in range(BATCH_TEXTS):
        pieces, kept = 0, []
        for word in long_document(600, seed=10 + index).split():
            count = len(tokenizer.encode(word.lower(), add_special_tokens=False).ids)
            if pieces + count > BATCH_TEXT_PIECES:
                break
            pieces += count
            kept.append(word)
        texts.append(" ".join(kept))
    return texts


def long_text(words: int) -> str:
    return " ".join([LONG_SENTENCE] * (words // len(LONG_SENTENCE.split())))


# ================================================================================================
# Child mode: one measurement in this fresh process
# ================================================================================================


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def child(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Loads one implementation, runs the spec's workload, reports RSS figures (MB)."""
    import psutil

    process = psutil.Process()

    def rss_mb() -> float:
        return process.memory_info().rss / 2**20

    figures: Dict[str, Any] = {}
    if spec["kind"] == "pytorch":
        import torch

        torch.set_num_threads(THREADS)
        from gliner2 import GLiNER2

        figures["rss_after_import_mb"] = rss_mb()
        model = GLiNER2.from_pretrained(spec["model_dir"])
        model.eval()
    else:
        import onnxruntime as ort

        from optimum_gliner2.runtime import GLiNER2ONNXRuntime

        figures["rss_after_import_mb"] = rss_mb()
        session_options = None
        if spec.get("sessions", "defaults") != "defaults":
            # The runtime's defaults but one (spinning stays off: the runtime adds that to any options).
            session_options = ort.SessionOptions()
            session_options.log_severity_level = 3
            session_options.enable_mem_pattern = spec["sessions"] == "memory patterns"
            # "own arenas": each session's arena, growing by doubling chunks (ONNX Runtime's default, and ours
            # before the shared arena); "no arena": every tensor malloc'd and freed.
            session_options.enable_cpu_mem_arena = spec["sessions"] != "no arena"
        model = GLiNER2ONNXRuntime.from_pretrained(
            spec["model_dir"], precision=spec.get("precision", "fp32"), session_options=session_options
        )
    figures["rss_after_load_mb"] = rss_mb()
    figures["peak_after_load_mb"] = _peak_mb()

    if spec["workload"] == "batch":
        model.batch_extract_entities(spec["texts"], ENTITY_LABELS, batch_size=BATCH_TEXTS)
        figures["peak_after_batch_mb"] = _peak_mb()
        from benchmarks.workloads import long_document

        model.extract_entities_long(long_document(BATCH_DOCUMENT_WORDS), ENTITY_LABELS, batch_size=8)
        figures["peak_after_long_mb"] = _peak_mb()
    else:
        result = model.extract_entities_long(long_text(spec["words"]), ["person", "organization"], batch_size=8)
        figures["entities"] = sum(len(spans) for spans in result["entities"].values())
        figures["peak_mb"] = _peak_mb()
        figures["above_loaded_mb"] = figures["peak_mb"] - figures["peak_after_load_mb"]
    figures["rss_at_end_mb"] = rss_mb()
    return figures


def run_child(spec: Dict[str, Any]) -> Dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", "--child", json.dumps(spec)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=3600,
    )  # fmt: skip
    if completed.returncode != 0:
        raise RuntimeError(f"measurement {spec['label']!r} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# ================================================================================================
# Main mode
# ================================================================================================


def measure(model: str, long_words: Sequence[int], skip_batch: bool) -> Dict[str, Any]:
    load_before = load_average()
    result: Dict[str, Any] = {"machine": machine_description(), "threads": THREADS, "model": model}
    if not skip_batch:
        prepared = prepare_full() if model == "full" else prepare_tiny()
        texts = batch_texts(prepared.onnx_dir / "tokenizer.json")
        specs = [
            {"label": "PyTorch gliner2 FP32", "kind": "pytorch", "model_dir": str(prepared.checkpoint)},
            {"label": "ORT FP32 (runtime defaults)", "kind": "ort", "model_dir": str(prepared.onnx_dir)},
            {"label": "ORT FP32, memory patterns on (an arena per session)", "kind": "ort", "model_dir": str(prepared.onnx_dir), "sessions": "memory patterns"},
            {"label": "ORT FP32, an arena per session", "kind": "ort", "model_dir": str(prepared.onnx_dir), "sessions": "own arenas"},
            {"label": "ORT FP32, no CPU arena", "kind": "ort", "model_dir": str(prepared.onnx_dir), "sessions": "no arena"},
        ]
        if "int8" in prepared.variants():
            specs.append({"label": "ORT INT8 (runtime defaults)", "kind": "ort", "model_dir": str(prepared.onnx_dir), "precision": "int8"})
        else:
            result["notes"] = ["no INT8 variant in the export (make one with `python -m optimum_gliner2.variants DIR --int8`)"]
        result["batch"] = {}
        for spec in specs:
            log(f"loading + batch: {spec['label']}")
            result["batch"][spec["label"]] = run_child({**spec, "workload": "batch", "texts": texts})
            log(f"  {json.dumps({k: round(v) for k, v in result['batch'][spec['label']].items()})}")
    if long_words:
        tiny = prepare_tiny()
        result["long"] = {}
        for words in long_words:
            log(f"extract_entities_long, {words} words")
            spec = {"label": f"{words} words", "kind": "ort", "model_dir": str(tiny.onnx_dir), "workload": "long", "words": words}
            result["long"][str(words)] = run_child(spec)
            log(f"  {json.dumps({k: round(v) for k, v in result['long'][str(words)].items()})}")
    result["load_average"] = {"before": load_before, "after": load_average()}
    return result


def markdown(result: Dict[str, Any]) -> str:
    lines = [
        f"Peak RSS (`ru_maxrss`) of a fresh process per row, {result['threads']} threads. {run_line(result)}",
        "",
    ]
    if "batch" in result:
        model = "full-size replica (fastino/gliner2-multi-v1 dimensions)" if result["model"] == "full" else "tiny deberta_lstm fixture"
        lines += [
            f"## Loading, a batch of {BATCH_TEXTS} x ~512 tokens, a {BATCH_DOCUMENT_WORDS:,}-word `extract_entities_long` ({model})",
            "",
            "| implementation | RSS after import MB | RSS after load MB | peak after load MB | peak after batch MB | peak after long document MB |",
            "|---|---|---|---|---|---|",
        ]
        for label, row in result["batch"].items():
            lines.append(
                f"| {label} | {row['rss_after_import_mb']:,.0f} | {row['rss_after_load_mb']:,.0f} | {row['peak_after_load_mb']:,.0f} | "
                f"{row['peak_after_batch_mb']:,.0f} | {row['peak_after_long_mb']:,.0f} |"
            )
        lines += ["", "Each column's peak includes everything before it (the peak after the batch includes loading).", ""]
        lines += [f"Note: {note}" for note in result.get("notes", [])]
    if "long" in result:
        lines += [
            "## `extract_entities_long` by document length (tiny deberta_lstm fixture, ORT runtime defaults)",
            "",
            "| words | entities | peak after load MB | peak MB | above the loaded model MB |",
            "|---|---|---|---|---|",
        ]
        for words, row in result["long"].items():
            lines.append(
                f"| {int(words):,} | {row['entities']:,} | {row['peak_after_load_mb']:,.0f} | {row['peak_mb']:,.0f} | "
                f"{row['above_loaded_mb']:,.0f} |"
            )
        lines += ["", f"Bound (issue 17): 100k words at most {LONG_BOUND_MB:,} MB above the loaded model.", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=("full", "tiny"), default="full", help="Model of the loading + batch rows.")
    parser.add_argument("--long-words", default="10000,50000,100000", help="Comma-separated document lengths ('' for none).")
    parser.add_argument("--skip-batch", action="store_true", help="Only the *_long rows.")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    long_words = [int(words) for words in args.long_words.split(",") if words]
    result = measure(args.model, long_words, args.skip_batch)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "memory.json").write_text(json.dumps(result, indent=2))
    text = markdown(result)
    (RESULTS / "memory.md").write_text(f"# Memory: loaded model, batches and long documents\n\n{text}")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
