"""Interleaved timing loops and their statistics.

Every repetition runs every implementation once, in an order rotated by one position per
repetition: a slow drift of the machine (another process, thermal state, page cache) then lands
on all implementations alike instead of on whichever happened to run last. Ratios are taken
between figures of the same run only.
"""

from __future__ import annotations

import gc
import statistics
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from benchmarks.base import Implementation, log
from benchmarks.models import EncoderFloor, EncoderRecorder
from benchmarks.workloads import Workload


def rotated(items: Sequence[Any], shift: int) -> List[Any]:
    """`items` rotated left by `shift` (mod len)."""
    if not items:
        return []
    shift %= len(items)
    return list(items[shift:]) + list(items[:shift])


def timed(call: Callable[[], Any]) -> float:
    """Wall seconds of one call. Garbage is collected before, outside the timed region, so one
    implementation's garbage is not collected on another's clock."""
    gc.collect()
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def percentile(samples: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100), numpy's default method."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(samples: Sequence[float]) -> Dict[str, float]:
    """Median, p95, min, max and the interquartile range of samples in seconds."""
    return {
        "n": len(samples),
        "median_s": statistics.median(samples),
        "p50_s": percentile(samples, 50),
        "p95_s": percentile(samples, 95),
        "min_s": min(samples),
        "max_s": max(samples),
        "p25_s": percentile(samples, 25),
        "p75_s": percentile(samples, 75),
    }


def _call_for(impl: Implementation, kind: str, workload: Workload, index: int, batch_size: int) -> Callable[[], Any]:
    if kind == "throughput":
        return lambda: impl.run_batch(workload, batch_size)
    if kind == "latency":
        return lambda: impl.run_single(workload, index)
    return lambda: impl.run_long(workload, batch_size)


def record_floor_batches(
    reference: Implementation, floors: Sequence[EncoderFloor], kind: str, workload: Workload, batch_size: int
) -> Dict[str, Any]:
    """Run the reference ORT pipeline once per call of the workload (its warm-up), recording the
    encoder batches, and hand them to every floor. Returns the batch shapes for the report."""
    indices = range(len(workload.texts)) if kind == "latency" else [0]
    shapes: List[Tuple[int, int]] = []
    real_tokens = 0
    for index in indices:
        with EncoderRecorder(reference.model.runtime.backend) as recorder:
            _call_for(reference, kind, workload, index, batch_size)()
        for floor in floors:
            floor.record((kind, workload.name, index), recorder.batches)
        shapes += [tuple(ids.shape) for ids, _ in recorder.batches]
        real_tokens += sum(int(mask.sum()) for _, mask in recorder.batches)
    padded_tokens = sum(b * s for b, s in shapes)
    return {
        "encoder_batches": [list(s) for s in shapes],
        "tokens_per_text_mean": real_tokens / (len(workload.texts) if kind != "long" else max(1, sum(b for b, _ in shapes))),
        "padding_fraction": 1 - real_tokens / padded_tokens if padded_tokens else 0.0,
    }


def measure_interleaved(
    impls: Sequence[Implementation],
    kind: str,
    workload: Workload,
    repeats: int,
    batch_size: int,
    warmup: int = 1,
    reference_key: Optional[str] = "ort-fp32",
) -> Tuple[Dict[str, List[float]], Dict[str, Any]]:
    """Time every implementation on one workload, interleaved.

    kind "throughput": one `batch_extract` of all texts per sample.
    kind "latency": one single-text call per sample; each repetition walks all texts, and the
        implementation order rotates per text and per repetition.
    kind "long": one `extract_entities_long` of the document per sample.

    Returns:
        ({impl key: [seconds, ...]}, workload facts such as the encoder batch shapes).
    """
    impls = [impl for impl in impls if impl.supports(kind, workload)]
    floors = [impl for impl in impls if isinstance(impl, EncoderFloor)]
    others = [impl for impl in impls if not isinstance(impl, EncoderFloor)]
    facts: Dict[str, Any] = {}
    reference = next((impl for impl in others if impl.spec.key == reference_key), None)
    if reference is None:
        reference = next((impl for impl in others if impl.spec.kind == "ort"), None)
    if reference is not None:
        facts = record_floor_batches(reference, floors, kind, workload, batch_size)

    # Warm-up: first calls pay for allocator growth, lazy initialisation and caches.
    indices = list(range(len(workload.texts))) if kind == "latency" else [0]
    for _ in range(warmup):
        for impl in impls:
            for index in indices[: max(1, min(len(indices), 2))]:
                _call_for(impl, kind, workload, index, batch_size)()

    samples: Dict[str, List[float]] = {impl.spec.key: [] for impl in impls}
    step = 0
    for repetition in range(repeats):
        for index in indices:
            for impl in rotated(impls, step):
                samples[impl.spec.key].append(timed(_call_for(impl, kind, workload, index, batch_size)))
            step += 1
        medians = ", ".join(
            f"{impl.spec.key}={statistics.median(samples[impl.spec.key]) * 1000:.0f}ms" for impl in impls
        )
        log(f"  {kind}/{workload.name} repetition {repetition + 1}/{repeats}: {medians}")
    return samples, facts
