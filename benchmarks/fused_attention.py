"""The `fused` encoder (DeBERTa attention in ORT's MultiHeadAttention) against the plain FP32 encoder, alone.

The `fused` variant of `optimum_gliner2.variants.fuse_attention_gliner2` is made from the full-size export
(fastino/gliner2-multi-v1 dimensions, random weights; see benchmarks/models.py) and its encoder graph is
timed against the plain FP32 encoder on the same token batches: 1 x 24, 1 x 105, 8 x 105 and 8 x 554
tokens, both encoders once per repeat (more repeats for the smaller batches), in an order that alternates
between repeats, so that a neighbour's load hits them alike. Reported: the median per call, the ratio fused / plain (below 1 means
the fused encoder is faster) and the speed-up plain / fused, the max abs difference of last_hidden_state
(also on a padded batch), the load average and the CPU flags. One process, 2 intra-op threads.

Usage (from the repository root):
    python -m benchmarks.fused_attention [--repeats 5] [--fixture]

`--fixture` measures the tiny `deberta_lstm` test fixture instead (seconds to build; its ratios say little
about a full-size encoder, whose attention is 12 layers x 12 heads of 64).

Writes benchmarks/results/fused_attention.{md,json} (`fused_attention_fixture.*` with --fixture). The
full-size export and its variant are cached in benchmarks/.cache/full-benchmark-tokenizer/ (shared with
`python -m benchmarks.run` and `python -m benchmarks.int8_encoder`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from benchmarks import models  # noqa: E402
from benchmarks.base import BENCH_DIR, log, ort_session_options, shown_path  # noqa: E402
from benchmarks.report import load_average, machine_description, run_line  # noqa: E402

RESULTS = BENCH_DIR / "results"
#: (texts, tokens per text) of the timed batches: a short single text, a medium one, and batches of each.
SHAPES: Tuple[Tuple[int, int], ...] = ((1, 24), (1, 105), (8, 105), (8, 554))
VARIANT = "fused"


def prepare_full_size() -> Path:
    """The cached full-size export, with the fused variant (made in a child process)."""
    prepared = models.cached_full_export()
    if VARIANT not in prepared.variants():
        log("making the fused variant")
        code = f"from optimum_gliner2.variants import fuse_attention_gliner2; fuse_attention_gliner2({str(prepared.onnx_dir)!r})"
        models._run_child([sys.executable, "-c", code], "fuse_attention_gliner2")
    return prepared.onnx_dir


def prepare_fixture() -> Path:
    """The tiny `deberta_lstm` test fixture, built, exported and fused in a temporary folder."""
    from optimum_gliner2.variants import fuse_attention_gliner2
    from tests.conftest import export_with_optimum_cli
    from tests.support.checkpoint_factory import build_checkpoint

    root = Path(tempfile.mkdtemp(prefix="fused-attention-fixture-"))
    export_with_optimum_cli(build_checkpoint("deberta_lstm", root / "checkpoint"), root / "onnx")
    return fuse_attention_gliner2(root / "onnx")


def repeats_for(shape: Tuple[int, int], repeats: int) -> int:
    """`repeats` for the 8 x 554 batch, more for smaller ones (up to 10x): a short call is cheap to repeat, and
    its median needs the repeats on a shared machine, where one call's noise is of the size of the effect."""
    return repeats * max(1, min(10, 4432 // (shape[0] * shape[1])))


def token_batch(shape: Tuple[int, int], vocabulary: int, seed: int = 0, padded: bool = False) -> Dict[str, np.ndarray]:
    """Random word pieces of `shape`; with `padded`, text i > 0 loses its last i / texts of tokens."""
    input_ids = np.random.default_rng(seed).integers(5, vocabulary, size=shape).astype(np.int64)
    attention_mask = np.ones_like(input_ids)
    if padded:
        texts, length = shape
        for row in range(1, texts):
            attention_mask[row, max(1, length * (texts - row) // texts) :] = 0
        input_ids[attention_mask == 0] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def measure(folder: Path, repeats: int) -> Dict[str, Any]:
    import onnxruntime as ort

    from optimum_gliner2.bundle.format import GLiNER2OnnxBundle

    sessions = {}
    for precision in ("fp32", VARIANT):
        path = GLiNER2OnnxBundle.load(folder, precision=precision).graph_files["encoder"]
        sessions[precision] = ort.InferenceSession(str(path), ort_session_options(), providers=["CPUExecutionProvider"])
    bundle = GLiNER2OnnxBundle.load(folder)
    vocabulary = min(bundle.special_token_ids.values())  # word pieces only, below gliner2's markers
    load_before = load_average()
    rows: Dict[str, Dict[str, Any]] = {}
    for shape in SHAPES:
        feed = token_batch(shape, vocabulary)
        outputs = {precision: session.run(None, feed)[0] for precision, session in sessions.items()}  # also warms up
        padded = token_batch(shape, vocabulary, seed=1, padded=True)
        padded_outputs = {precision: session.run(None, padded)[0] for precision, session in sessions.items()}
        seconds: Dict[str, List[float]] = {precision: [] for precision in sessions}
        order = list(sessions)
        for repeat in range(repeats_for(shape, repeats)):
            for precision in order if repeat % 2 == 0 else order[::-1]:
                start = time.perf_counter()
                sessions[precision].run(None, feed)
                seconds[precision].append(time.perf_counter() - start)
        medians = {precision: statistics.median(values) for precision, values in seconds.items()}
        key = f"{shape[0]}x{shape[1]}"
        rows[key] = {
            "plain_ms": 1000 * medians["fp32"],
            "fused_ms": 1000 * medians[VARIANT],
            "fused_over_plain": medians[VARIANT] / medians["fp32"],
            "speedup": medians["fp32"] / medians[VARIANT],
            "max_abs_diff": float(np.abs(outputs[VARIANT] - outputs["fp32"]).max()),
            "max_abs_diff_padded": float(np.abs(padded_outputs[VARIANT] - padded_outputs["fp32"]).max()),
            "repeats": repeats_for(shape, repeats),
            "seconds": seconds,
        }
        row = rows[key]
        log(f"{key}: plain {row['plain_ms']:.1f} ms, fused {row['fused_ms']:.1f} ms, fused/plain {row['fused_over_plain']:.3f}, "
            f"max |diff| {row['max_abs_diff']:.1e} (padded {row['max_abs_diff_padded']:.1e})")  # fmt: skip
    return {
        "model": shown_path(folder),
        "machine": machine_description(),
        "load_average": {"before": load_before, "after": load_average()},
        "recipe": bundle.metadata.get("variant_recipes", {}).get(VARIANT, {}),
        "repeats": repeats,
        "threads": 2,
        "rows": rows,
    }


def markdown(result: Dict[str, Any], what: str, command: str) -> str:
    lines = [
        f"{what}, encoder graph alone, 2 threads, median of interleaved calls ({result['repeats']} at 8 x 554, up to 10x "
        f"as many for smaller batches: see the json). {run_line(result)} Command: `{command}`.",
        "",
        "| texts x tokens | plain FP32 | fused | fused / plain | speed-up | max abs diff | max abs diff, padded batch |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, row in result["rows"].items():
        lines.append(
            f"| {key} | {row['plain_ms']:.1f} ms | {row['fused_ms']:.1f} ms | {row['fused_over_plain']:.3f} | "
            f"**{row['speedup']:.2f}x** | {row['max_abs_diff']:.1e} | {row['max_abs_diff_padded']:.1e} |"
        )
    lines += [
        "",
        "fused / plain: the fused encoder's median over the plain one's, same run (below 1: faster). "
        "Differences: last_hidden_state, every position (padded ones included).",
        "",
        f"- recipe: {json.dumps(result['recipe'])}",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fused_attention", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5,
                        help="Interleaved timed calls per encoder at 8 x 554 (smaller batches: up to 10x as many).")
    parser.add_argument("--fixture", action="store_true", help="Measure the tiny deberta_lstm test fixture instead.")
    args = parser.parse_args()
    folder = prepare_fixture() if args.fixture else prepare_full_size()
    result = measure(folder, args.repeats)
    command = "python -m benchmarks.fused_attention " + " ".join(sys.argv[1:])
    what = "Tiny deberta_lstm test fixture (2 layers, hidden 64)" if args.fixture else (
        "Full-size replica (mDeBERTa-v3-base encoder, random weights)")  # fmt: skip
    name = "fused_attention_fixture" if args.fixture else "fused_attention"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({**result, "command": command.strip()}, indent=2))
    text = markdown(result, what, command.strip())
    (RESULTS / f"{name}.md").write_text(f"# Fused DeBERTa attention against the plain FP32 encoder (encoder alone)\n\n{text}")
    print(text)


if __name__ == "__main__":
    main()
