"""Turning raw samples into ratios, target checks, results.md, results.json and speedup.png."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from benchmarks.measure import summarize

#: (kind, workload) -> display name, in table order.
ROWS: List[Tuple[str, str, str]] = [
    ("throughput", "short", "short batch"),
    ("throughput", "medium", "medium batch"),
    ("throughput", "mixed", "mixed batch"),
    ("latency", "short", "short single p50"),
    ("latency", "medium", "medium single p50"),
    ("latency", "mixed", "mixed single p50"),
    ("long", "long", "long document"),
]

# The targets of issue 6, as ratios measured in the same run.
TARGET_LATENCY_SPEEDUP = 3.0
TARGET_FP32_THROUGHPUT = 1.5
GOAL_FP32_THROUGHPUT = 2.0
TARGET_INT8_THROUGHPUT = 3.0
TARGET_FLOOR_RATIO = 1.15

#: Issue 17's end-to-end goals by kind of CPU: (FP32 batches, FP32 single short text, INT8 batches).
CPU_CLASS_GOALS = {"AVX-512 with VNNI": (4.0, 4.0, 6.0), "AVX2-only": (2.5, 3.5, 3.0)}
#: Implementation categories that count as "ORT FP32" for the targets: the plain export and its FP32 rewrites.
FP32_CATEGORIES = ("fp32", "fp32-optimized")


def cpu_class() -> str:
    """Which row of issue 17's goals this machine can show ("AVX-512 with VNNI" or "AVX2-only")."""
    from optimum_gliner2.bundle.cpu import cpu_features

    features = cpu_features()
    return "AVX-512 with VNNI" if {"avx512f", "avx512_vnni"} <= features or {"avx512f", "avx512vnni"} <= features else "AVX2-only"


# ================================================================================================
# Machine description
# ================================================================================================


def machine_description() -> Dict[str, Any]:
    """CPU model and features, cores, memory, OS, Python and package versions, git revision."""
    cpu_model, flags, family, model = "unknown", set(), None, None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "model name" and cpu_model == "unknown":
                cpu_model = value
            elif key == "flags" and not flags:
                flags = set(value.split())
            elif key == "cpu family" and family is None:
                family = value
            elif key == "model" and model is None:
                model = value
    except OSError:
        pass
    memory_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    packages = {}
    for name in ("torch", "onnxruntime", "onnx", "gliner2", "optimum", "optimum-onnx", "transformers", "tokenizers", "numpy", "optimum-gliner2"):
        try:
            packages[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            packages[name] = None
    return {
        "cpu_model": cpu_model,
        "cpu_family_model": f"family {family}, model {model}" if family else None,
        "cpu_features": sorted(f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "fma") if f in flags),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gb": memory_gb,
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": packages,
        "git": _git_revision(),
    }


def _git_revision() -> str:
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        return head + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_flags(machine: Dict[str, Any]) -> str:
    """The recorded vector/matrix CPU flags, comma-separated ("no AVX2" when none of them)."""
    return ", ".join(machine["cpu_features"]) or "no AVX2"


def machine_line(machine: Dict[str, Any]) -> str:
    """One line: CPU model (family/model), usable CPUs, vector features, memory, OS."""
    family = f" ({machine['cpu_family_model']})" if machine.get("cpu_family_model") else ""
    features = cpu_flags(machine)
    return (f"{machine['cpu_model']}{family}, {machine['usable_cpus']} usable CPUs ({features}), "
            f"{machine['memory_gb']} GB RAM, {machine['os']}")


def run_line(result: Dict[str, Any]) -> str:
    """The CPU flags, the machine and the load averages of a benchmark's `result` (its "machine" and its
    "load_average" {"before", "after"}), as one sentence of its markdown."""
    load = result["load_average"]
    return (f"CPU flags: {cpu_flags(result['machine'])}. {machine_line(result['machine'])}. "
            f"Load average before/after: {load['before']} / {load['after']}.")


def markdown_table_head(first: str, columns: Sequence[str]) -> List[str]:
    """The header and rule lines of a markdown table."""
    return [f"| {first} | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]


def load_average() -> Optional[List[float]]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# ================================================================================================
# Derived figures
# ================================================================================================


def derive(raw: Dict[str, Dict[str, Dict[str, List[float]]]], workloads: Dict[str, Dict[str, Any]], specs: Sequence[Any]) -> Dict[str, Any]:
    """Summaries and ratios for every (kind, workload, implementation).

    - throughput: texts/s = texts / median seconds of one batch call;
    - latency: p50/p95 over all single-text calls;
    - every ORT row: speedup vs PyTorch (PyTorch seconds / ours, same statistic), and
      end-to-end / encoder floor of the same variant (1.0 = no overhead beyond the encoder).
    """
    spec_by_key = {s.key: s for s in specs}
    derived: Dict[str, Any] = {}
    for kind, by_workload in raw.items():
        derived[kind] = {}
        for name, by_impl in by_workload.items():
            texts = len(workloads[kind][name].texts)
            rows: Dict[str, Any] = {}
            statistic = "p50_s" if kind == "latency" else "median_s"
            for key, samples in by_impl.items():
                if not samples:
                    continue
                row = summarize(samples)
                if kind == "throughput":
                    row["texts_per_s"] = texts / row["median_s"]
                if kind == "long":
                    row["words_per_s"] = workloads[kind][name].words_mean / row["median_s"]
                rows[key] = row
            torch_row = rows.get("pytorch")
            for key, row in rows.items():
                spec = spec_by_key.get(key)
                if torch_row is not None:
                    row["speedup_vs_pytorch"] = torch_row[statistic] / row[statistic]
                    if kind == "latency":
                        row["speedup_vs_pytorch_p95"] = torch_row["p95_s"] / row["p95_s"]
                if spec is not None and spec.kind in ("ort", "peer-ort") and f"floor-{spec.precision}" in rows:
                    row["over_floor"] = row[statistic] / rows[f"floor-{spec.precision}"][statistic]
            derived[kind][name] = rows
    return derived


def check_targets(derived: Dict[str, Any], specs: Sequence[Any]) -> List[Dict[str, Any]]:
    """PASS/MISS/NOT MEASURED per target and workload (ratios of this run)."""
    checks: List[Dict[str, Any]] = []
    by_category: Dict[str, List[Any]] = {}
    for spec in specs:
        if spec.kind == "ort":
            by_category.setdefault(spec.category, []).append(spec)

    def add(target: str, workload: str, value: Optional[float], threshold: float, higher_is_better: bool, detail: str) -> None:
        if value is None:
            status = "NOT MEASURED"
        elif higher_is_better:
            status = "PASS" if value >= threshold else "MISS"
        else:
            status = "PASS" if value <= threshold else "MISS"
        checks.append({"target": target, "workload": workload, "value": value, "threshold": threshold,
                       "higher_is_better": higher_is_better, "status": status, "detail": detail})

    def ratio(kind: str, name: str, key: str, field: str) -> Optional[float]:
        return derived.get(kind, {}).get(name, {}).get(key, {}).get(field)

    for name in ("short", "medium", "mixed"):
        if name in derived.get("latency", {}):
            value = ratio("latency", name, "ort-fp32", "speedup_vs_pytorch")
            add("single-text p50 latency >= 3x better than PyTorch (ORT FP32)", name, value, TARGET_LATENCY_SPEEDUP, True,
                "PyTorch p50 / ORT FP32 p50")

    def best_of(kind: str, name: str, categories: Sequence[str]) -> Tuple[Optional[float], str]:
        measured = [(ratio(kind, name, s.key, "speedup_vs_pytorch"), s.label) for c in categories for s in by_category.get(c, [])]
        measured = [m for m in measured if m[0] is not None]
        return max(measured) if measured else (None, "not measured in this run")

    batch_workloads = ("short", "medium", "mixed")
    best_fp32_batch = {name: best_of("throughput", name, FP32_CATEGORIES) for name in batch_workloads}
    best_int8_batch = {name: best_of("throughput", name, ("int8",)) for name in batch_workloads}

    for name in ("short", "medium"):
        value, label = best_fp32_batch[name]
        goal = "" if value is None else (" (goal 2x reached)" if value >= GOAL_FP32_THROUGHPUT else " (goal 2x not reached)")
        add("FP32 batch throughput >= 1.5x PyTorch", name, value, TARGET_FP32_THROUGHPUT, True, f"best FP32 variant: {label}{goal}")

    for name in ("short", "medium"):
        value, label = best_int8_batch[name]
        add("INT8 throughput >= 3x PyTorch", name, value, TARGET_INT8_THROUGHPUT, True, label)

    row = cpu_class()
    fp32_goal, single_goal, int8_goal = CPU_CLASS_GOALS[row]
    for name in batch_workloads:
        value, label = best_fp32_batch[name]
        add(f"issue 17, {row}: ORT FP32 batches >= {fp32_goal:g}x PyTorch", name, value, fp32_goal, True, f"best FP32 variant: {label}")
    value, label = best_of("latency", "short", FP32_CATEGORIES)
    add(f"issue 17, {row}: ORT FP32 single short text >= {single_goal:g}x PyTorch", "short", value, single_goal, True,
        f"p50; best FP32 variant: {label}")
    for name in batch_workloads:
        value, label = best_int8_batch[name]
        add(f"issue 17, {row}: INT8 batches >= {int8_goal:g}x PyTorch", name, value, int8_goal, True, label)

    for kind, name, display in ROWS:
        if name in derived.get(kind, {}):
            add("end-to-end <= 1.15x encoder-only floor (ORT FP32)", display, ratio(kind, name, "ort-fp32", "over_floor"),
                TARGET_FLOOR_RATIO, False, "ORT FP32 end-to-end / FP32 encoder alone on the same batches")
    return checks


def target_lines(checks: Sequence[Dict[str, Any]]) -> List[str]:
    lines = []
    for check in checks:
        value = "n/a" if check["value"] is None else f"{check['value']:.2f}x"
        comparison = ">=" if check["higher_is_better"] else "<="
        lines.append(f"{check['status']:<12} {check['target']} [{check['workload']}]: {value} "
                     f"(needs {comparison} {check['threshold']}x; {check['detail']})")
    return lines


# ================================================================================================
# Output files
# ================================================================================================


def _ms(seconds: Optional[float]) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


def _x(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _mb(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:,.0f}"


def headline_table(results: Dict[str, Any]) -> List[str]:
    """Markdown rows: per workload, each implementation's speedup vs PyTorch and each ORT
    variant's end-to-end / floor ratio."""
    derived, specs = results["derived"], results["implementations"]
    ours = [s for s in specs if s["kind"] not in ("pytorch", "floor")]
    ort_specs = [s for s in specs if s["kind"] == "ort"]
    lines = ["| workload | " + " | ".join(f"{s['label']} speedup" for s in ours) + " | "
             + " | ".join(f"{s['label']} over floor" for s in ort_specs) + " |",
             "|" + "---|" * (1 + len(ours) + len(ort_specs))]
    for kind, name, display in ROWS:
        rows = derived.get(kind, {}).get(name)
        if not rows:
            continue
        cells = [_x(rows.get(s["key"], {}).get("speedup_vs_pytorch")) for s in ours]
        cells += [_x(rows.get(s["key"], {}).get("over_floor")) for s in ort_specs]
        lines.append(f"| {display} | " + " | ".join(cells) + " |")
    return lines


def update_readme(readme: Path, results: Dict[str, Any], results_dir: str = "results") -> bool:
    """Replace the block between the README's results markers with this run's headline.

    Args:
        results_dir: The results folder as a link from `readme`'s folder.
    """
    start_marker, end_marker = "<!-- results:start -->", "<!-- results:end -->"
    text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    if start_marker not in text or end_marker not in text:
        return False
    machine = results["machine"]
    block = [
        start_marker,
        f"Measured {results['finished']} on {machine_line(machine)}; load average before/after "
        f"{results['load_average_before']} / {results['load_average_after']}. Command: `{results['command']}`. "
        f"Full tables (absolute times, memory, export, files): [{results_dir}/results.md]({results_dir}/results.md); "
        f"plot: [{results_dir}/speedup.png]({results_dir}/speedup.png).",
        "",
        *headline_table(results),
        "",
        "```",
        *target_lines(results["targets"]),
        "```",
    ]
    if results.get("notes"):
        block += ["", *[f"- {note}" for note in results["notes"]]]
    block.append(end_marker)
    before, rest = text.split(start_marker, 1)
    _, after = rest.split(end_marker, 1)
    readme.write_text(before + "\n".join(block) + after, encoding="utf-8")
    return True


def write_markdown(path: Path, results: Dict[str, Any]) -> str:
    """results.md: machine, command, headline ratios, absolute figures, memory, export, targets."""
    derived, specs = results["derived"], results["implementations"]
    machine = results["machine"]
    lines: List[str] = []
    lines.append("# GLiNER2 benchmark: ONNX Runtime vs PyTorch\n")
    if results["config"].get("quick"):
        lines.append("> **--quick smoke test**: tiny model and few repetitions. These figures check that the script "
                     "works; they say nothing about the speed of the real model.\n")
    lines.append(f"- **Date:** {results['finished']}  ")
    lines.append(f"- **Machine:** {machine_line(machine)}  ")
    lines.append(f"- **Load average** (1/5/15 min) before: {results['load_average_before']}, after: {results['load_average_after']}  ")
    lines.append(f"- **Threads:** ONNX Runtime intra-op {results['config']['threads']}, inter-op 1; torch.set_num_threads({results['config']['threads']})  ")
    packages = machine["packages"]
    lines.append("- **Versions:** " + ", ".join(f"{k} {v}" for k, v in packages.items() if v) + f", Python {machine['python']}, git {machine['git']}  ")
    lines.append(f"- **Command:** `{results['command']}`  ")
    config = results["config"]
    lines.append(f"- **Model:** `{config['model_variant']}` checkpoint (random weights; {config['model_description']}), "
                 f"{config['tokenizer']} tokenizer ({results['pieces_per_word']:.2f} pieces per word on the medium texts)  ")
    lines.append(f"- **Repetitions:** {config['repeats']} interleaved (long document: {config['long_repeats']}); "
                 f"batch calls: {config['batch_texts']} texts, batch_size {config['batch_size']}; "
                 f"latency: {config['latency_texts']} texts x {config['repeats']} repetitions per workload\n")

    lines.append("## Headline: ratios against PyTorch in this run\n")
    lines.append("Speedup = PyTorch time / our time for the same call (higher is better). "
                 "Over floor = our end-to-end time / the encoder session alone on the same batches (1.00 = no overhead).\n")
    lines.extend(headline_table(results))
    lines.append("")

    lines.append("## Targets (issue 6)\n")
    lines.append("```")
    lines.extend(target_lines(results["targets"]))
    lines.append("```\n")

    lines.append("## Throughput (batch_extract, texts/s; median of the repetitions)\n")
    all_specs = [s for s in specs]
    lines.append("| workload | " + " | ".join(s["label"] for s in all_specs) + " |")
    lines.append("|" + "---|" * (1 + len(all_specs)))
    for name, rows in derived.get("throughput", {}).items():
        lines.append(f"| {name} | " + " | ".join(
            "-" if s["key"] not in rows else f"{rows[s['key']]['texts_per_s']:.1f} ({_ms(rows[s['key']]['median_s'])} ms)" for s in all_specs) + " |")
    lines.append("")

    lines.append("## Single-text latency (ms, p50 / p95)\n")
    lines.append("| workload | " + " | ".join(s["label"] for s in all_specs) + " |")
    lines.append("|" + "---|" * (1 + len(all_specs)))
    for name, rows in derived.get("latency", {}).items():
        lines.append(f"| {name} | " + " | ".join(
            "-" if s["key"] not in rows else f"{_ms(rows[s['key']]['p50_s'])} / {_ms(rows[s['key']]['p95_s'])}" for s in all_specs) + " |")
    lines.append("")

    lines.append("## Long document (extract_entities_long, seconds per document; median)\n")
    lines.append("| workload | " + " | ".join(s["label"] for s in all_specs) + " |")
    lines.append("|" + "---|" * (1 + len(all_specs)))
    for name, rows in derived.get("long", {}).items():
        lines.append(f"| {name} | " + " | ".join(
            "-" if s["key"] not in rows else f"{rows[s['key']]['median_s']:.2f} s" for s in all_specs) + " |")
    lines.append("")

    lines.append("## Workloads\n")
    lines.append("| workload | description | words/text | encoder tokens/text | padding | encoder batches (B x S) |")
    lines.append("|---|---|---|---|---|---|")
    for kind, name, display in ROWS:
        facts = results["workloads"].get(kind, {}).get(name)
        if not facts:
            continue
        shapes = facts.get("encoder_batches", [])
        shown = ", ".join(f"{b}x{s}" for b, s in shapes[:6]) + (" ..." if len(shapes) > 6 else "")
        tokens = facts.get("tokens_per_text_mean")
        lines.append(f"| {display} | {facts['description']} | {facts['words_mean']:.0f} | "
                     f"{'-' if tokens is None else f'{tokens:.0f}'} | {facts.get('padding_fraction', 0) * 100:.0f}% | {shown} |")
    lines.append("")

    lines.append("## Memory and load time (each in a fresh child process)\n")
    lines.append("Peak RSS covers imports, loading, one short batch, one medium batch and the long document. "
                 "ONNX Runtime models run with the runtime's default session options here (no SessionOptions passed), as a user gets them. "
                 "Load time is `from_pretrained` alone (files already in the page cache).\n")
    lines.append("| implementation | import s | load s | RSS after load MB | peak RSS MB |")
    lines.append("|---|---|---|---|---|")
    for key, probe in results.get("memory", {}).items():
        if "error" in probe:
            lines.append(f"| {probe.get('label', key)} | failed: {probe['error'][:80]} | | | |")
            continue
        lines.append(f"| {probe['label']} | {probe['import_s']:.1f} | {probe['load_s']:.1f} | "
                     f"{_mb(probe['rss_after_load_mb'])} | {_mb(probe['peak_rss_mb'])} |")
    lines.append("")

    lines.append("## Export and files\n")
    export = results["export"]
    lines.append("| step | seconds | measured |")
    lines.append("|---|---|---|")
    for name, step in export["steps"].items():
        if "seconds" in step:
            lines.append(f"| {name}{' (' + step['function'] + ')' if step.get('function') else ''} | {step['seconds']:.1f} | "
                         f"{'this run' if step.get('this_run') else 'cached, ' + step.get('when', '?')} |")
    lines.append("")
    sizes = export["sizes"]
    lines.append("| files | MB |")
    lines.append("|---|---|")
    lines.append(f"| PyTorch checkpoint (folder) | {sizes['checkpoint_bytes'] / 1e6:,.1f} |")
    for precision, size in sizes["onnx_variant_bytes"].items():
        lines.append(f"| ONNX {precision} (4 graphs) | {size / 1e6:,.1f} |")
    lines.append("")

    if results.get("notes"):
        lines.append("## Notes\n")
        lines.extend(f"- {note}" for note in results["notes"])
        lines.append("")
    text = "\n".join(lines)
    path.write_text(text, encoding="utf-8")
    return text


def write_json(path: Path, results: Dict[str, Any]) -> None:
    path.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")


def write_plot(path: Path, results: Dict[str, Any]) -> Optional[str]:
    """speedup.png: speedup vs PyTorch per workload (left) and end-to-end / floor (right)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        return f"speedup.png not written: matplotlib is not installed ({error}); `pip install .[bench]`"

    derived, specs = results["derived"], results["implementations"]
    ours = [s for s in specs if s["kind"] not in ("pytorch", "floor")]
    ort_specs = [s for s in specs if s["kind"] == "ort"]
    rows = [(kind, name, display) for kind, name, display in ROWS if name in derived.get(kind, {})]
    labels = [display.replace(" single p50", "\nsingle p50").replace(" batch", "\nbatch").replace(" document", "\ndocument") for _, _, display in rows]

    figure, (left, right) = plt.subplots(1, 2, figsize=(15, 5.5), gridspec_kw={"width_ratios": [3, 2]})
    def bars_for(axis: Any, group: Sequence[Dict[str, Any]], field: str, fmt: str) -> None:
        # A workload an implementation cannot run (peers: no mixed schema, no long text) stays empty.
        width = 0.8 / max(1, len(group))
        for i, spec in enumerate(group):
            values = [derived[k][n].get(spec["key"], {}).get(field) for k, n, _ in rows]
            heights = [float("nan") if v is None else v for v in values]
            positions = [x + (i - (len(group) - 1) / 2) * width for x in range(len(rows))]
            bars = axis.bar(positions, heights, width, label=spec["label"])
            axis.bar_label(bars, labels=["" if v is None else fmt % v for v in values], fontsize=7)

    bars_for(left, ours, "speedup_vs_pytorch", "%.1f")
    left.axhline(1.0, color="black", linewidth=1)
    left.axhline(TARGET_LATENCY_SPEEDUP, color="grey", linewidth=0.8, linestyle=":")
    left.axhline(TARGET_FP32_THROUGHPUT, color="grey", linewidth=0.8, linestyle="--")
    left.set_xticks(range(len(rows)), labels, fontsize=8)
    left.set_ylabel("speedup vs PyTorch gliner2 (x, higher is better)")
    left.set_title("Speedup over PyTorch (same run); dotted 3x, dashed 1.5x targets")
    left.legend(fontsize=8)

    bars_for(right, ort_specs, "over_floor", "%.2f")
    right.axhline(1.0, color="black", linewidth=1)
    right.axhline(TARGET_FLOOR_RATIO, color="red", linewidth=0.8, linestyle="--")
    right.set_xticks(range(len(rows)), labels, fontsize=8)
    right.set_ylabel("end-to-end / encoder alone (lower is better)")
    right.set_title("Overhead over the encoder floor; dashed 1.15x target")
    right.set_ylim(bottom=0.9)
    right.legend(fontsize=8)

    machine = results["machine"]
    quick = " [--quick smoke test: tiny model, figures not meaningful]" if results["config"].get("quick") else ""
    figure.suptitle(f"GLiNER2 ({results['config']['model_variant']}), {machine_line(machine)}, "
                    f"{results['finished']}{quick}", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return None


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z")
