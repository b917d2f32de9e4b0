"""Shape-op overhead of the FP32 encoder (issue #17): the plain encoder against graphs with static shapes folded.

Candidates, each made from the same exported encoder:
- `shapes`: our pass (`optimum_gliner2.variants.fold_static_shapes`, registered as the `shapes` variant);
- `ort_basic`, `ort_extended`: ONNX Runtime's own offline optimization, saved (`SessionOptions.optimized_model_filepath`
  at ORT_ENABLE_BASIC / ORT_ENABLE_EXTENDED; EXTENDED writes contrib ops, see the report's domains column);
- `onnxslim`, `onnxscript`: those projects' graph optimizers, when installed (neither is a dependency);
- `fused`, `shapes_fused` (only when asked for with --candidates): the `fused` variant's attention rewrite alone,
  and after our folding.

For each: the nodes as stored and as ONNX Runtime runs them (after its own load-time optimization, level ALL),
how many of those are shape ops, the op domains stored (portability), the max abs difference of last_hidden_state
against the plain encoder (padded batches too), and the median time per call at 1 x 24, 1 x 105 and 8 x 105 tokens,
every candidate once per repeat in an order that alternates between repeats. One process, 2 intra-op threads.

Usage (from the repository root):
    python -m benchmarks.shape_folding [--repeats 20] [--fixture] [--candidates shapes,onnxslim]

`--fixture` measures the tiny `deberta_lstm` test fixture (2 layers, hidden 64: per-node overhead dominates
it, so its ratios overstate a full-size gain). Writes benchmarks/results/shape_folding[_fixture].{md,json}.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from benchmarks.base import BENCH_DIR, log, ort_session_options, shown_path  # noqa: E402
from benchmarks.fused_attention import token_batch  # noqa: E402
from benchmarks.report import load_average, machine_description, run_line  # noqa: E402

RESULTS = BENCH_DIR / "results"
#: (texts, tokens per text) of the timed batches: a short single text, a medium one, a batch of medium ones.
SHAPES: Tuple[Tuple[int, int], ...] = ((1, 24), (1, 105), (8, 105))
#: Shape-handling op types counted in the report.
SHAPE_OPS = ("Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast", "Reshape", "Expand", "Range",
             "ConstantOfShape", "Equal", "Where", "If", "Not", "Identity", "Constant")  # fmt: skip
CANDIDATES = ("shapes", "ort_basic", "ort_extended", "onnxslim", "onnxscript")
_PROTOBUF_HALF_LIMIT = 1_000_000_000


def _save(model, path: Path) -> None:
    import onnx

    large = model.ByteSize() > 2 * _PROTOBUF_HALF_LIMIT
    onnx.save_model(model, str(path), save_as_external_data=large, location=f"{path.name}_data" if large else None)


def _ort_offline(level_name: str) -> Callable[[Path, Path], None]:
    def make(source: Path, target: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level_name)
        options.optimized_model_filepath = str(target)
        if source.stat().st_size > _PROTOBUF_HALF_LIMIT:
            options.add_session_config_entry("session.optimized_model_external_initializers_file_name", f"{target.name}_data")
        ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])

    return make


def _onnxslim(source: Path, target: Path) -> None:
    import onnxslim

    _save(onnxslim.slim(str(source)), target)


def _onnxscript(source: Path, target: Path) -> None:
    import onnx
    import onnxscript.optimizer

    _save(onnxscript.optimizer.optimize(onnx.load(str(source))), target)


def _shapes_then_fused(source: Path, target: Path) -> None:
    """Our folding, then the `fused` variant's attention rewrite on the folded graph (do they add up?)."""
    import onnx

    from optimum_gliner2.variants.fused_attention import fuse_deberta_attention
    from optimum_gliner2.variants.shape_folding import fold_static_shapes_in_model

    model = onnx.load(str(source))
    fold_static_shapes_in_model(model)
    fuse_deberta_attention(model)
    _save(model, target)


def _fused_only(source: Path, target: Path) -> None:
    """The `fused` variant's attention rewrite alone, for comparison with `shapes_fused`."""
    import onnx

    from optimum_gliner2.variants.fused_attention import fuse_deberta_attention

    model = onnx.load(str(source))
    fuse_deberta_attention(model)
    _save(model, target)


MAKERS: Dict[str, Callable[[Path, Path], None]] = {
    "fused": _fused_only,
    "shapes_fused": _shapes_then_fused,
    "ort_basic": _ort_offline("ORT_ENABLE_BASIC"),
    "ort_extended": _ort_offline("ORT_ENABLE_EXTENDED"),
    "onnxslim": _onnxslim,
    "onnxscript": _onnxscript,
}


def graph_counts(path: Path) -> Dict[str, Any]:
    """Nodes, shape ops and op domains of the graph at `path`, as stored and as ONNX Runtime runs it."""
    import onnx
    import onnxruntime as ort

    def count(model) -> Dict[str, Any]:
        ops = collections.Counter(node.op_type for node in model.graph.node)
        return {
            "nodes": len(model.graph.node),
            "shape_ops": sum(ops.get(op, 0) for op in SHAPE_OPS),
            "ops": dict(ops.most_common()),
            "domains": sorted({node.domain for node in model.graph.node if node.domain}),
        }

    stored = count(onnx.load(str(path), load_external_data=False))
    with tempfile.TemporaryDirectory() as scratch:
        optimized = Path(scratch) / "as_run.onnx"
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(optimized)
        options.add_session_config_entry("session.optimized_model_external_initializers_file_name", "as_run.onnx_data")
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        as_run = count(onnx.load(str(optimized), load_external_data=False))
    return {"stored": stored, "as_run": as_run}


def make_candidates(folder: Path, names: List[str]) -> Dict[str, Dict[str, Any]]:
    """{candidate: {"path", "seconds"}} for the plain encoder of `folder` and each candidate in `names`."""
    from optimum_gliner2.bundle.format import GLiNER2OnnxBundle

    plain = GLiNER2OnnxBundle.load(folder).graph_files["encoder"]
    made: Dict[str, Dict[str, Any]] = {"plain": {"path": plain, "seconds": 0.0}}
    scratch = folder.parent / f"{folder.name}-shape-candidates"
    scratch.mkdir(exist_ok=True)
    for name in names:
        start = time.perf_counter()
        if name == "shapes":
            if "shapes" not in GLiNER2OnnxBundle.load(folder).precisions:
                from optimum_gliner2.variants import fold_static_shapes

                fold_static_shapes(folder)
            path = GLiNER2OnnxBundle.load(folder, precision="shapes").graph_files["encoder"]
        else:
            path = scratch / f"encoder_{name}.onnx"
            if not path.is_file():
                try:
                    MAKERS[name](plain, path)
                except ImportError as error:
                    log(f"{name}: not installed ({error}); skipped")
                    continue
        made[name] = {"path": path, "seconds": time.perf_counter() - start}
        log(f"{name}: {path.name} ready in {made[name]['seconds']:.1f} s")
    return made


def repeats_for(shape: Tuple[int, int], repeats: int) -> int:
    """`repeats` for 8 x 105, more for the single texts (a short call is cheap to repeat and noisier)."""
    return repeats * max(1, min(4, 840 // (shape[0] * shape[1])))


def measure(folder: Path, candidates: Dict[str, Dict[str, Any]], repeats: int) -> Dict[str, Any]:
    import onnxruntime as ort

    from optimum_gliner2.bundle.format import GLiNER2OnnxBundle

    sessions = {
        name: ort.InferenceSession(str(made["path"]), ort_session_options(), providers=["CPUExecutionProvider"])
        for name, made in candidates.items()
    }
    vocabulary = min(GLiNER2OnnxBundle.load(folder).special_token_ids.values())
    differences: Dict[str, float] = {name: 0.0 for name in sessions}
    for shape in ((1, 3), (1, 24), (3, 41), (2, 130), (2, 600)):
        for padded in (False, True):
            feed = token_batch(shape, vocabulary, seed=1, padded=padded)
            expected = sessions["plain"].run(None, feed)[0]
            for name, session in sessions.items():
                differences[name] = max(differences[name], float(np.abs(session.run(None, feed)[0] - expected).max()))
    load_before = load_average()
    rows: Dict[str, Dict[str, Any]] = {}
    order = list(sessions)
    for shape in SHAPES:
        feed = token_batch(shape, vocabulary)
        for session in sessions.values():
            session.run(None, feed)  # warm-up
        seconds: Dict[str, List[float]] = {name: [] for name in sessions}
        for repeat in range(repeats_for(shape, repeats)):
            for name in order if repeat % 2 == 0 else order[::-1]:
                start = time.perf_counter()
                sessions[name].run(None, feed)
                seconds[name].append(time.perf_counter() - start)
        medians = {name: statistics.median(values) for name, values in seconds.items()}
        key = f"{shape[0]}x{shape[1]}"
        rows[key] = {
            "median_ms": {name: 1000 * value for name, value in medians.items()},
            "over_plain": {name: value / medians["plain"] for name, value in medians.items()},
            "repeats": repeats_for(shape, repeats),
            "seconds": seconds,
        }
        log(f"{key}: " + ", ".join(f"{name} {1000 * value:.2f} ms" for name, value in medians.items()))
    return {
        "model": shown_path(folder),
        "machine": machine_description(),
        "load_average": {"before": load_before, "after": load_average()},
        "repeats": repeats,
        "threads": 2,
        "max_abs_diff": differences,
        "graphs": {name: graph_counts(made["path"]) for name, made in candidates.items()},
        "make_seconds": {name: made["seconds"] for name, made in candidates.items()},
        "rows": rows,
    }


def markdown(result: Dict[str, Any], what: str, command: str) -> str:
    names = list(result["graphs"])
    lines = [
        f"{what}, encoder graph alone, 2 threads, medians of interleaved calls ({result['repeats']} at 8 x 105, up to 4x "
        f"as many for single texts). {run_line(result)} Command: `{command}`.",
        "",
        "| candidate | nodes stored | nodes as run | shape ops as run | domains stored | max abs diff | "
        + " | ".join(f"{key} ms (x plain)" for key in result["rows"]) + " |",
        "|---|---|---|---|---|---|" + "---|" * len(result["rows"]),
    ]
    for name in names:
        graphs = result["graphs"][name]
        cells = [
            f"{row['median_ms'][name]:.2f} ({row['over_plain'][name]:.3f})" for row in result["rows"].values()
        ]
        lines.append(
            f"| {name} | {graphs['stored']['nodes']} | {graphs['as_run']['nodes']} | {graphs['as_run']['shape_ops']} | "
            f"{', '.join(graphs['stored']['domains']) or 'ai.onnx'} | {result['max_abs_diff'][name]:.1e} | " + " | ".join(cells) + " |"
        )
    lines += [
        "",
        "nodes as run: after ONNX Runtime's own load-time optimization (level ALL), i.e. what executes. x plain: the "
        "candidate's median over the plain encoder's, same run (below 1: faster). max abs diff: last_hidden_state "
        "against the plain encoder at 1 x 3 ... 2 x 600 tokens, padded batches included.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.shape_folding", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20, help="Interleaved timed calls per candidate at 8 x 105.")
    parser.add_argument("--fixture", action="store_true", help="Measure the tiny deberta_lstm test fixture instead.")
    parser.add_argument("--candidates", default=",".join(CANDIDATES), help=f"Comma-separated subset of {CANDIDATES}.")
    args = parser.parse_args()
    names = [name for name in args.candidates.split(",") if name]
    if args.fixture:
        from tests.conftest import export_with_optimum_cli
        from tests.support.checkpoint_factory import build_checkpoint

        root = Path(tempfile.mkdtemp(prefix="shape-folding-fixture-"))
        export_with_optimum_cli(build_checkpoint("deberta_lstm", root / "checkpoint"), root / "onnx")
        folder = root / "onnx"
    else:
        from benchmarks import models

        folder = models.cached_full_export().onnx_dir
    result = measure(folder, make_candidates(folder, names), args.repeats)
    command = ("python -m benchmarks.shape_folding " + " ".join(sys.argv[1:])).strip()
    what = "Tiny deberta_lstm test fixture (2 layers, hidden 64)" if args.fixture else (
        "Full-size replica (mDeBERTa-v3-base encoder, random weights)")  # fmt: skip
    name = "shape_folding_fixture" if args.fixture else "shape_folding"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({**result, "command": command}, indent=2, default=str))
    text = markdown(result, what, command)
    (RESULTS / f"{name}.md").write_text(f"# Static shapes folded out of the FP32 encoder (encoder alone)\n\n{text}")
    print(text)


if __name__ == "__main__":
    main()
