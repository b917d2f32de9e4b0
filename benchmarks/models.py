"""Preparing what is measured (checkpoint, export, precision variants) and loading it.

The checkpoint, its export and the variants live in `benchmarks/.cache/<name>/` (git-ignored) and
are reused between runs; `prep.json` there records how long each step took when it ran. Heavy
steps (building the 1.2 GB checkpoint, exporting, quantizing) run in child processes so that
their memory never inflates the measuring process.

The implementations measured here (PyTorch gliner2, ORTModelForGLiNER2 per variant, the encoder
floors) are adapters of `base.Implementation`; the peers are in `peers.py`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from benchmarks.base import CACHE_ROOT, REPO_ROOT, THREADS, Implementation, ImplSpec, Prepared, log, ort_session_options
from benchmarks.workloads import ENTITY_LABELS, SCHEMAS, Workload


# ================================================================================================
# Preparation: checkpoint, export, variants
# ================================================================================================


def cache_dir_for(model_variant: str, tokenizer: str) -> Path:
    return CACHE_ROOT / f"{model_variant}-{tokenizer}-tokenizer"


def _run_child(arguments: List[str], what: str, timeout: int = 3600) -> Tuple[float, str]:
    """Run a child process; return (wall seconds, stdout). Raise with its stderr tail on failure."""
    start = time.perf_counter()
    completed = subprocess.run(arguments, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)
    seconds = time.perf_counter() - start
    if completed.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {completed.returncode}):\n{completed.stderr[-4000:]}")
    return seconds, completed.stdout


def cached_full_export() -> Prepared:
    """The full-size replica (benchmark tokenizer) and its FP32 export, each built in a child when not cached.

    Shared by the benchmarks that time or measure one graph at a time (int8_encoder, fused_attention, memory);
    `prepare` also adds every precision variant.
    """
    cache_dir = cache_dir_for("full", "benchmark")
    prepared = Prepared(cache_dir, cache_dir / "checkpoint", cache_dir / "onnx")
    if not (prepared.checkpoint / "config.json").is_file():
        log(f"building the full-size checkpoint in {prepared.checkpoint} (~1 min, ~4.3 GB)")
        _run_child(
            [sys.executable, "-m", "benchmarks.run", "--child-build-checkpoint", str(prepared.checkpoint),
             "--model-variant", "full", "--tokenizer", "benchmark"],
            "building the checkpoint",
        )  # fmt: skip
    if not (prepared.onnx_dir / "gliner2_onnx.json").is_file():
        _export(prepared)
    return prepared


def prepare(model_variant: str, tokenizer: str, skip_export: bool) -> Prepared:
    """Build or reuse the checkpoint; export it (or reuse the export with `skip_export`); add the
    precision variants `optimum_gliner2.variants` offers."""
    cache_dir = cache_dir_for(model_variant, tokenizer)
    cache_dir.mkdir(parents=True, exist_ok=True)
    prepared = Prepared(cache_dir, cache_dir / "checkpoint", cache_dir / "onnx")
    prep_file = cache_dir / "prep.json"
    previous = json.loads(prep_file.read_text()) if prep_file.is_file() else {}
    for step in previous.values():
        step["this_run"] = False
    prepared.steps = previous

    if not (prepared.checkpoint / "config.json").is_file():
        log(f"building the {model_variant!r} checkpoint in {prepared.checkpoint} (the full one takes ~1 min, ~4.3 GB)")
        seconds, _ = _run_child(
            [sys.executable, "-m", "benchmarks.run", "--child-build-checkpoint", str(prepared.checkpoint),
             "--model-variant", model_variant, "--tokenizer", tokenizer],
            "building the checkpoint",
        )
        prepared.steps["checkpoint_build"] = _step(seconds)
    else:
        log(f"reusing the checkpoint {prepared.checkpoint}")

    export_ok = (prepared.onnx_dir / "gliner2_onnx.json").is_file()
    if skip_export and export_ok:
        log(f"--skip-export: reusing {prepared.onnx_dir} (export time recorded when it was built)")
    else:
        if skip_export:
            log("--skip-export given, but there is no cached export yet: exporting")
        _export(prepared)
        _add_variants(prepared)
    prep_file.write_text(json.dumps(prepared.steps, indent=2))
    for precision in prepared.variants():
        if precision != "fp32":
            log(f"variant available: {precision}")
    return prepared


def _step(seconds: float, **extra: Any) -> Dict[str, Any]:
    return {"seconds": round(seconds, 2), "when": time.strftime("%Y-%m-%d %H:%M:%S"), "this_run": True, **extra}


def optimum_cli() -> List[str]:
    """The `optimum-cli` of this interpreter's environment (or its module form)."""
    cli = shutil.which("optimum-cli", path=str(Path(sys.executable).parent))
    return [cli] if cli else [sys.executable, "-m", "optimum.commands.optimum_cli"]


def _export(prepared: Prepared) -> None:
    """`optimum-cli export onnx --model CHECKPOINT OUT`, timed, into a fresh folder."""
    target = prepared.onnx_dir
    scratch = target.with_name(target.name + ".tmp")
    shutil.rmtree(scratch, ignore_errors=True)
    command = optimum_cli() + ["export", "onnx", "--model", str(prepared.checkpoint), str(scratch)]
    log("$ " + " ".join(command))
    seconds, _ = _run_child(command, "optimum-cli export onnx")
    shutil.rmtree(target, ignore_errors=True)
    scratch.rename(target)
    prepared.steps["export"] = _step(seconds, command="optimum-cli export onnx --model CHECKPOINT OUT")
    log(f"exported in {seconds:.1f} s")


def _the_other_int8_method() -> Dict[str, Any]:
    """Keyword arguments for the INT8 method this CPU does not default to, so that one run measures both:
    MatMulNBits (`per_row`) on a VNNI CPU, and the integer GEMM with reduced range elsewhere (issue 17)."""
    from optimum_gliner2.variants import default_method

    if default_method() == "per_row_integer":
        return {"method": "per_row", "variant": "int8_per_row"}
    return {"method": "per_row_integer", "reduce_range": True, "variant": "int8_integer"}


#: (step name, label in notes, function names to try, keyword arguments or a function that returns them).
#: INT8 first: it is the variant with a target, and each step runs in its own child so that one step's
#: memory cannot take the other down with it. ORTOptimizer's O2 is not among them: its fusions do not
#: match DeBERTa's attention (it measured within 3% of plain FP32) and it peaks near 19 GB on the full-size
#: encoder; `fused` is our encoder rewrite that does (issue 17).
VARIANT_STEPS: Tuple[Tuple[str, str, Tuple[str, ...], Any], ...] = (
    ("quantize_int8", "INT8", ("quantize_gliner2",), {}),
    ("quantize_int8_other", "INT8, the method this CPU does not default to", ("quantize_gliner2",), _the_other_int8_method),
    ("fuse_attention", "FP32 fused attention", ("fuse_attention_gliner2",), {}),
)
#: Peak RSS of a step / FP32 encoder file size, measured on the full-size export (1.11 GB encoder):
#: quantize_gliner2 ~5.7 GB. A step is skipped, with a note, when the machine has clearly less memory
#: available, rather than have the kernel's OOM killer pick a process, possibly someone else's.
VARIANT_MEMORY_FACTOR = {"quantize_int8": 5.5, "quantize_int8_other": 5.5}


def _available_memory_bytes() -> Optional[int]:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _add_variants(prepared: Prepared) -> None:
    """Optimized FP32 and INT8 variants through `optimum_gliner2.variants`, each timed in its
    own child process. A missing module or function, an exception or a killed child (out of
    memory) becomes a note, never a failed benchmark: the run must work before and after that
    module lands, and on machines too small for a step."""
    notes: List[str] = []
    encoder_bytes = (prepared.onnx_dir / "encoder.onnx").stat().st_size if (prepared.onnx_dir / "encoder.onnx").is_file() else 0
    for step_name, label, _, _ in VARIANT_STEPS:
        needed = VARIANT_MEMORY_FACTOR.get(step_name, 0) * encoder_bytes
        available = _available_memory_bytes()
        if available is not None and needed > available:
            notes.append(f"{label} not measured: its step needs about {needed / 1e9:.0f} GB of memory here "
                         f"(measured on this export size), only {available / 1e9:.0f} GB available.")
            log(notes[-1])
            continue
        for stale in prepared.onnx_dir.glob(".staging-*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a killed step; never referenced
        try:
            seconds, stdout = _run_child(
                [sys.executable, "-m", "benchmarks.run", "--child-add-variants", str(prepared.onnx_dir), "--variant-step", step_name],
                f"the {label} variant step",
            )
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            killed = "exit -9" in str(error)
            reason = "its child process was killed (exit -9), most likely out of memory" if killed else str(error).splitlines()[0]
            notes.append(f"{label} not measured: {reason}.")
            log(f"{label} variant step failed: {reason}")
            continue
        report = json.loads(stdout.strip().splitlines()[-1])
        for name, step in report.get("steps", {}).items():
            prepared.steps[name] = _step(step["seconds"], **{k: v for k, v in step.items() if k != "seconds"})
        notes += report.get("notes", [])
    for stale in prepared.onnx_dir.glob(".staging-*"):
        shutil.rmtree(stale, ignore_errors=True)
    prepared.steps["variant_notes"] = {"notes": notes, "this_run": True}


def child_add_variants(onnx_dir: Path, step_names: Optional[List[str]] = None) -> Dict[str, Any]:
    """Child mode: run the `VARIANT_STEPS` named in `step_names` (all by default) on `onnx_dir`.

    Returns:
        {"steps": {name: {"seconds": ..., "function": ..., "variants": [...]}}, "notes": [str, ...]}.
    """
    steps: Dict[str, Dict[str, Any]] = {}
    notes: List[str] = []
    selected = [step for step in VARIANT_STEPS if step_names is None or step[0] in step_names]
    try:
        from optimum_gliner2 import variants
    except ImportError as error:
        return {"steps": {}, "notes": [f"{label} not measured: optimum_gliner2.variants is not importable ({error})."
                                       for _, label, _, _ in selected]}

    for step_name, label, function_names, kwargs in selected:
        function = next((getattr(variants, n) for n in function_names if hasattr(variants, n)), None)
        if function is None:
            notes.append(f"{label} not measured: optimum_gliner2.variants has none of {', '.join(function_names)}.")
            continue
        before = set(_variant_names(onnx_dir))
        start = time.perf_counter()
        kwargs = kwargs() if callable(kwargs) else kwargs
        try:
            function(onnx_dir, **kwargs)
        except Exception as error:  # report, keep benchmarking the rest
            notes.append(f"{label} not measured: {function.__name__} failed: {type(error).__name__}: {error}")
            continue
        seconds = time.perf_counter() - start
        added = sorted(set(_variant_names(onnx_dir)) - before)
        steps[step_name] = {"seconds": seconds, "function": function.__name__, "kwargs": kwargs, "variants": added,
                            "peak_rss_mb": _peak_rss_mb()}
    return {"steps": steps, "notes": notes}


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _variant_names(onnx_dir: Path) -> List[str]:
    metadata = json.loads((onnx_dir / "gliner2_onnx.json").read_text(encoding="utf-8"))
    return list(metadata.get("variants", {}))


def child_build_checkpoint(directory: Path, model_variant: str, tokenizer: str) -> None:
    """Child mode: build a checkpoint with `tests/support/checkpoint_factory.py`, with the benchmark
    tokenizer in place of the factory's when `tokenizer == "benchmark"` (see workloads.py)."""
    from benchmarks import workloads
    from tests.support import checkpoint_factory

    if tokenizer == "benchmark":
        if not hasattr(checkpoint_factory, "_base_tokenizer"):
            raise RuntimeError("checkpoint_factory._base_tokenizer is gone; run with --tokenizer factory")
        checkpoint_factory._base_tokenizer = workloads.train_benchmark_tokenizer
    scratch = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(scratch, ignore_errors=True)
    checkpoint_factory.build_checkpoint(model_variant, scratch)
    shutil.rmtree(directory, ignore_errors=True)
    scratch.rename(directory)


def file_sizes(prepared: Prepared) -> Dict[str, Any]:
    """Bytes on disk: the PyTorch checkpoint, and each ONNX variant's four graphs (+ external data)."""
    sizes: Dict[str, Any] = {"checkpoint_bytes": sum(f.stat().st_size for f in prepared.checkpoint.rglob("*") if f.is_file())}
    metadata = prepared.metadata
    records = metadata.get("files", {})
    variants: Dict[str, int] = {}
    for precision, graphs in metadata.get("variants", {}).items():
        total = 0
        for file_name in graphs.values():
            path = prepared.onnx_dir / file_name
            total += path.stat().st_size if path.is_file() else 0
            for data_name in records.get(file_name, {}).get("external_data", {}):
                data_path = prepared.onnx_dir / data_name
                total += data_path.stat().st_size if data_path.is_file() else 0
        variants[precision] = total
    sizes["onnx_variant_bytes"] = variants
    encoder = metadata.get("variants", {}).get("fp32", {}).get("encoder")
    if encoder:
        sizes["fp32_encoder_bytes"] = (prepared.onnx_dir / encoder).stat().st_size
    return sizes


# ================================================================================================
# Implementations
# ================================================================================================


def variant_category(precision: str) -> str:
    """Target category of an export variant name ("fp32", "int8", "fp32-o2", ...)."""
    name = precision.lower()
    if "int8" in name or "quant" in name:
        return "int8"
    if "fp16" in name:
        return "fp16"
    if name == "fp32":
        return "fp32"
    return "fp32-optimized"


def implementation_specs(prepared: Prepared, with_floor: bool = True) -> Tuple[List[ImplSpec], List[str]]:
    """The PyTorch reference, one ORTModelForGLiNER2 per CPU-usable variant, and the encoder
    floor of each. Returns (specs, notes)."""
    specs = [ImplSpec("pytorch", "PyTorch gliner2", "pytorch", category="pytorch")]
    notes: List[str] = []
    variants = prepared.variants()
    ordered = sorted(variants, key=lambda p: ({"fp32": 0, "fp32-optimized": 1, "int8": 2}.get(variant_category(p), 3), p))
    for precision in ordered:
        category = variant_category(precision)
        if category == "fp16":
            notes.append(f"{precision} not measured: FP16 is a GPU format, not faster on CPU (docs/precision.md).")
            continue
        label = {"fp32": "ORT FP32", "int8": f"ORT INT8 ({precision})"}.get(category, f"ORT FP32 optimized ({precision})")
        specs.append(ImplSpec(f"ort-{precision}", label, "ort", precision, category))
    if not any(s.category == "int8" for s in specs):
        notes.append("INT8 not measured: the export has no INT8 variant (optimum_gliner2.variants unavailable or failed).")
    if not any(s.category == "fp32-optimized" for s in specs):
        notes.append("FP32 optimized not measured: the export has no optimized FP32 variant.")
    if with_floor:
        for spec in list(specs):
            if spec.kind == "ort":
                specs.append(ImplSpec(f"floor-{spec.precision}", f"encoder floor ({spec.precision})", "floor", spec.precision, spec.category))
    return specs, notes


class GLiNER2APIImplementation(Implementation):
    """PyTorch gliner2 or ORTModelForGLiNER2: both have gliner2's API, so one adapter serves both."""

    def __init__(self, spec: ImplSpec, model: Any, load_seconds: float):
        self.spec = spec
        self.model = model
        self.load_seconds = load_seconds
        # Schemas are built once, as an application would; both sides get identical prompts.
        self.schemas = {name: factory(model) for name, factory in SCHEMAS.items()}

    def run_batch(self, workload: Workload, batch_size: int) -> Any:
        return self.model.batch_extract(workload.texts, self.schemas[workload.schema], batch_size=batch_size)

    def run_single(self, workload: Workload, index: int) -> Any:
        text = workload.texts[index]
        if workload.schema == "entities":
            return self.model.extract_entities(text, ENTITY_LABELS)
        return self.model.extract(text, self.schemas[workload.schema])

    def run_long(self, workload: Workload, batch_size: int) -> Any:
        return self.model.extract_entities_long(workload.texts[0], ENTITY_LABELS, batch_size=batch_size)


class EncoderRecorder:
    """Records the (input_ids, attention_mask) batches an ORT pipeline sends to its encoder.

    Installed as an instance attribute over `backend.encode`, so the pipeline is unchanged.
    """

    def __init__(self, backend: Any):
        self.backend = backend
        self.batches: List[Tuple[np.ndarray, np.ndarray]] = []

    def __enter__(self) -> "EncoderRecorder":
        original = type(self.backend).encode.__get__(self.backend)

        def recording_encode(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
            self.batches.append((input_ids.copy(), attention_mask.copy()))
            return original(input_ids, attention_mask)

        self.backend.encode = recording_encode
        return self

    def __exit__(self, *exc: Any) -> None:
        del self.backend.encode


class EncoderFloor(Implementation):
    """The encoder session alone, on the exact batches the pipeline built for the same call.

    `record(call_key, batches)` stores them (from an `EncoderRecorder`); every run_* call then
    replays them on the encoder InferenceSession directly (no pipeline, no other graph)."""

    def __init__(self, spec: ImplSpec, session: Any):
        self.spec = spec
        self.session = session
        self.recorded: Dict[Tuple[str, str, int], List[Tuple[np.ndarray, np.ndarray]]] = {}

    def record(self, call_key: Tuple[str, str, int], batches: List[Tuple[np.ndarray, np.ndarray]]) -> None:
        self.recorded[call_key] = batches

    def _replay(self, call_key: Tuple[str, str, int]) -> None:
        for input_ids, attention_mask in self.recorded[call_key]:
            self.session.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})

    def run_batch(self, workload: Workload, batch_size: int) -> Any:
        self._replay(("throughput", workload.name, 0))

    def run_single(self, workload: Workload, index: int) -> Any:
        self._replay(("latency", workload.name, index))

    def run_long(self, workload: Workload, batch_size: int) -> Any:
        self._replay(("long", workload.name, 0))


def load_implementation(
    spec: ImplSpec, prepared: Prepared, loaded: Optional[Dict[str, Implementation]] = None, runtime_sessions: bool = False
) -> Implementation:
    """Load one implementation (floors reuse the already loaded ORT model of their variant).

    ORT models get the benchmark's SessionOptions (`ort_session_options`: the same threads for every session),
    or, with `runtime_sessions`, none, so that the runtime's own defaults apply, as for a user who passes none.
    """
    start = time.perf_counter()
    if spec.kind == "pytorch":
        import torch
        from gliner2 import GLiNER2

        torch.set_num_threads(THREADS)
        model = GLiNER2.from_pretrained(str(prepared.checkpoint))
        model.eval()
        return GLiNER2APIImplementation(spec, model, time.perf_counter() - start)
    session_options = None if runtime_sessions else ort_session_options()
    if spec.kind == "ort":
        from optimum_gliner2 import ORTModelForGLiNER2

        model = ORTModelForGLiNER2.from_pretrained(prepared.onnx_dir, precision=spec.precision, session_options=session_options)
        return GLiNER2APIImplementation(spec, model, time.perf_counter() - start)
    if spec.kind == "ort-torchfree":
        from optimum_gliner2.runtime import GLiNER2ONNXRuntime

        model = GLiNER2ONNXRuntime.from_pretrained(prepared.onnx_dir, precision=spec.precision, session_options=session_options)
        return GLiNER2APIImplementation(spec, model, time.perf_counter() - start)
    if spec.kind == "floor":
        owner = (loaded or {}).get(f"ort-{spec.precision}")
        if owner is None:
            raise RuntimeError(f"the floor of {spec.precision} needs ort-{spec.precision} loaded first")
        return EncoderFloor(spec, owner.model.runtime.backend.sessions["encoder"])
    raise ValueError(f"unknown implementation kind {spec.kind!r}")
