"""What each precision route keeps of a *trained* GLiNER2's answers: the README's precision table.

The model is the trained fixture (tests/support/trained_fixture.py: all-MiniLM-L6-v2 encoder trained with
gliner2's trainer on generated data), exported with `optimum-cli export onnx`. Every route is scored on the
held-out set (tests/support/trained_quality.py) against the FP32 export, at batch 16:

- identical: decoded outputs equal to FP32's (confidences aside), per task and in all;
- confident kept: items that either side returns at confidence >= 0.75 and both return;
- entity F1: against the generated truth, as a difference to FP32's (in points);
- batch-independent: each text alone (batch of 1) against inside its batch of 16, same route;
- encoder size against FP32's, and end-to-end speed against FP32 on the same calls (median of
  interleaved repeats; one process, 2 intra-op threads).

Routes: our INT8 methods (`per_row_integer` with 8- and 7-bit weights, `per_row`, `dynamic`), Optimum's ORTQuantizer
on the encoder (avx2 and avx512_vnni presets), `optimum-cli onnxruntime quantize --avx2` on the whole
folder, FP16, and ORTOptimizer O2. FP32's own parity with gliner2's PyTorch model is the first row.

Usage (from the repository root):
    python -m benchmarks.precision [--repeats 3]

Writes benchmarks/results/precision.{md,json}. The export and variants are cached under
benchmarks/.cache/precision/<recipe digest>/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.base import BENCH_DIR, CACHE_ROOT, log, ort_session_options  # noqa: E402
from benchmarks.report import machine_description, machine_line  # noqa: E402
from optimum_gliner2 import variants  # noqa: E402
from optimum_gliner2.runtime import GLiNER2ONNXRuntime  # noqa: E402
from tests.support.trained_fixture import RECIPE, trained_checkpoint  # noqa: E402
from tests.support.trained_quality import (  # noqa: E402
    QUALITY_BATCH_SIZE,
    TASK_CALLS,
    agreement,
    answer_all,
    entity_f1,
    held_out_set,
    task_texts,
)

RESULTS = BENCH_DIR / "results"


def optimum_cli(*arguments: str) -> None:
    command = [sys.executable, "-m", "optimum.commands.optimum_cli", *arguments]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(arguments[:3])} failed:\n{completed.stderr[-3000:]}")


def ort_quantizer_on_encoder(export: Path, preset: str) -> Path:
    """Optimum's ORTQuantizer on encoder.onnx with a preset, saved into a copy of the export (Python route)."""
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    folder = export.parent / f"ortquantizer_{preset}"
    if not (folder / "encoder_quantized.onnx").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(export, folder)
        config = getattr(AutoQuantizationConfig, preset)(is_static=False, per_channel=True)
        ORTQuantizer.from_pretrained(folder, file_name="encoder.onnx").quantize(save_dir=folder, quantization_config=config)
    return folder


def prepare(workdir: Path) -> Tuple[Path, Path, Dict[str, Callable[[], Any]]]:
    """(checkpoint, export, {route label: loader}) with every route made (cached)."""
    checkpoint = trained_checkpoint()
    export = workdir / "export"
    if not (export / "gliner2_onnx.json").is_file():
        log("exporting the trained fixture with optimum-cli")
        optimum_cli("export", "onnx", "--model", str(checkpoint), str(export))
    made = set(json.loads((export / "gliner2_onnx.json").read_text())["variants"])
    steps = {
        "int8_per_row_integer": lambda: variants.quantize_gliner2(
            export, method="per_row_integer", variant="int8_per_row_integer"
        ),
        "int8_per_row_integer_reduce_range": lambda: variants.quantize_gliner2(
            export, method="per_row_integer", reduce_range=True, variant="int8_per_row_integer_reduce_range"
        ),
        "int8_per_row": lambda: variants.quantize_gliner2(export, method="per_row", variant="int8_per_row"),
        "int8_dynamic": lambda: variants.quantize_gliner2(export, method="dynamic", variant="int8_dynamic"),
        "fp16": lambda: variants.convert_gliner2_to_fp16(export),
        "o2": lambda: variants.optimize_gliner2(export, "O2"),
    }
    for name, step in steps.items():
        if name not in made:
            log(f"making the {name} variant")
            step()
    cli_avx2 = workdir / "optimum_cli_avx2"
    if not (cli_avx2 / "gliner2_onnx.json").is_file():
        log("optimum-cli onnxruntime quantize --avx2")
        plain = workdir / "export_fp32_only"
        shutil.rmtree(plain, ignore_errors=True)
        optimum_cli("export", "onnx", "--model", str(checkpoint), str(plain))
        optimum_cli("onnxruntime", "quantize", "--onnx_model", str(plain), "--avx2", "-o", str(cli_avx2))
    quantizer_folders = {preset: ort_quantizer_on_encoder(export, preset) for preset in ("avx2", "avx512_vnni")}
    options = ort_session_options()

    def load(folder: Path, **kwargs: Any) -> Callable[[], Any]:
        return lambda: GLiNER2ONNXRuntime.from_pretrained(folder, session_options=options, **kwargs)

    routes = {
        "FP32 (the export)": load(export),
        "INT8, ours, `per_row_integer` (u8 x s8 MatMulIntegerToFloat, a scale and zero point per row; default on x86 with VNNI and on ARM)": load(
            export, precision="int8_per_row_integer"
        ),
        "INT8, ours, `per_row_integer`, `reduce_range=True` (7-bit weights)": load(
            export, precision="int8_per_row_integer_reduce_range"
        ),
        "INT8, ours, `per_row` (MatMulNBits, 8-bit blocks of 32, accuracy level 4; default on x86 without VNNI)": load(export, precision="int8_per_row"),
        "INT8, ours, `dynamic` (ORTQuantizer, one activation scale per batch)": load(export, precision="int8_dynamic"),
        "ORTQuantizer avx2, encoder (`file_name=`)": load(quantizer_folders["avx2"], file_name="encoder_quantized.onnx"),
        "ORTQuantizer avx512_vnni, encoder (`file_name=`)": load(
            quantizer_folders["avx512_vnni"], file_name="encoder_quantized.onnx"
        ),
        "`optimum-cli onnxruntime quantize --avx2` (all graphs)": load(cli_avx2),
        "FP16 (`--fp16`)": load(export, precision="fp16"),
        "O2 (`--optimize O2`)": load(export, precision="o2"),
    }
    return checkpoint, export, routes


def encoder_bytes(model) -> int:
    path = model.bundle.graph_files["encoder"]
    return path.stat().st_size + sum(p.stat().st_size for p in path.parent.glob(f"{path.name}_data*"))


def timed_entities(model, texts: List[str]) -> float:
    start = time.perf_counter()
    TASK_CALLS["entities"](model, texts, QUALITY_BATCH_SIZE)
    return time.perf_counter() - start


def measure(repeats: int) -> Dict[str, Any]:
    workdir = CACHE_ROOT / "precision" / RECIPE.digest()
    checkpoint, export, routes = prepare(workdir)
    examples = held_out_set()
    texts = task_texts(examples)
    log("PyTorch gliner2 on the held-out set")
    from gliner2 import GLiNER2

    torch_answers = answer_all(GLiNER2.from_pretrained(str(checkpoint)), texts)
    models = {label: load() for label, load in routes.items()}
    fp32_label = next(iter(models))
    fp32 = models[fp32_label]
    reference = answer_all(fp32, texts)
    rows: Dict[str, Dict[str, Any]] = {}
    torch_agreement = agreement(torch_answers, reference)
    rows["PyTorch gliner2 (reference of FP32)"] = {
        "identical": torch_agreement.identical_share,
        "detail": torch_agreement.describe(),
        "entity_f1": entity_f1(torch_answers["entities"], examples),
    }
    timings: Dict[str, List[float]] = {label: [] for label in models}
    for _ in range(repeats):  # interleaved, so drifts in machine load hit every route alike
        for label, model in models.items():
            timings[label].append(timed_entities(model, texts["entities"]))
    fp32_f1 = entity_f1(reference["entities"], examples)
    fp32_size = encoder_bytes(fp32)
    for label, model in models.items():
        log(f"scoring {label}")
        batched = reference if model is fp32 else answer_all(model, texts)
        alone = answer_all(model, texts, batch_size=1)
        against_fp32 = agreement(reference, batched)
        batch_independence = agreement(alone, batched)
        rows[label] = {
            "precision": model.precision,
            "identical": against_fp32.identical_share,
            "detail": against_fp32.describe(),
            "confident_kept": [against_fp32.confident_kept, against_fp32.confident_total],
            "entity_f1": entity_f1(batched["entities"], examples),
            "entity_f1_delta_pt": 100 * (entity_f1(batched["entities"], examples) - fp32_f1),
            "batch_independent": batch_independence.identical_share,
            "encoder_size_vs_fp32": encoder_bytes(model) / fp32_size,
            "speed_vs_fp32": statistics.median(timings[fp32_label]) / statistics.median(timings[label]),
        }
    return {
        "machine": machine_description(),
        "recipe": RECIPE.__dict__,
        "held_out": {task: len(values) for task, values in texts.items()},
        "batch_size": QUALITY_BATCH_SIZE,
        "repeats": repeats,
        "rows": rows,
    }


def markdown(result: Dict[str, Any]) -> str:
    rows = result["rows"]
    lines = [
        f"Trained fixture (MiniLM-L6 encoder, recipe {result['recipe']}), held-out texts per task "
        f"{result['held_out']}, batch {result['batch_size']}. {machine_line(result['machine'])}",
        "",
        "| route | identical to FP32 | confident items kept | entity F1 vs FP32 | batch-independent | encoder size | speed vs FP32 |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, row in rows.items():
        if "precision" not in row:
            lines.append(
                f"| {label} | FP32 export vs PyTorch: {100 * row['identical']:.1f}% | | F1 {row['entity_f1']:.3f} | | | |"
            )
            continue
        kept, total = row["confident_kept"]
        independent = row["batch_independent"]
        lines.append(
            f"| {label} | {100 * row['identical']:.1f}% | {kept}/{total} | {row['entity_f1_delta_pt']:+.2f} pt | "
            f"{'yes' if independent == 1.0 else 'no'} ({100 * independent:.1f}%) | "
            f"{100 * row['encoder_size_vs_fp32']:.0f}% | {row['speed_vs_fp32']:.2f}x |"
        )
    lines += ["", "Per task:", ""]
    lines += [f"- {label}: {row['detail']}" for label, row in rows.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.precision", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="Interleaved timing repeats per route.")
    args = parser.parse_args()
    result = measure(args.repeats)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "precision.json").write_text(json.dumps(result, indent=2))
    text = markdown(result)
    (RESULTS / "precision.md").write_text(f"# Precision routes on the trained fixture\n\n{text}")
    print(text)


if __name__ == "__main__":
    main()
