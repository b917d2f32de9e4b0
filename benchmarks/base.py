"""What every benchmark module shares: paths, logging, the prepared model, and the implementation
interface that `models.py` (our runtime, PyTorch gliner2, encoder floors) and `peers.py` (peer ONNX
ports) implement and `run.py` loads, so that neither of those two modules imports the other.

Each measured implementation is an adapter with the same three calls (`run_batch`, `run_single`,
`run_long`) so that the timing loops in `measure.py` treat them alike.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from benchmarks.workloads import Workload

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
CACHE_ROOT = BENCH_DIR / ".cache"
THREADS = 2


def log(message: str) -> None:
    """Progress to stderr (stdout of child modes carries their JSON result)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Prepared:
    """Paths and preparation figures of one benchmark model.

    Attributes:
        cache_dir: `benchmarks/.cache/<name>/`.
        checkpoint: gliner2 checkpoint directory (PyTorch reference).
        onnx_dir: `optimum-cli export onnx` output, with any precision variants added in place.
        steps: Step name -> {"seconds": float, "when": str, "this_run": bool, ...} (export, variants).
        notes: Lines for the report (variants not measured and why, etc.).
    """

    cache_dir: Path
    checkpoint: Path
    onnx_dir: Path
    steps: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)

    @property
    def metadata(self) -> Dict[str, Any]:
        return json.loads((self.onnx_dir / "gliner2_onnx.json").read_text(encoding="utf-8"))

    def variants(self) -> Dict[str, Dict[str, str]]:
        """Precision -> {graph: file} from the export metadata."""
        return dict(self.metadata.get("variants", {}))


@dataclass
class ImplSpec:
    """What an implementation is, before it is loaded.

    Attributes:
        key: Identifier in results.json and in `--rss-probe KEY`.
        label: Name in the tables and the plot.
        kind: "pytorch", "ort", "floor", "peer".
        precision: ORT variant name for "ort"/"floor".
        category: "fp32", "fp32-optimized", "int8", ... (for the targets).
    """

    key: str
    label: str
    kind: str
    precision: Optional[str] = None
    category: str = ""


def shown_path(folder: Path) -> str:
    """`folder` as results show it: relative to the repository, so that tracked files name no machine's paths."""
    try:
        return str(folder.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return folder.name


def ort_session_options(threads: int = THREADS):
    """Same threading for every ORT session: `threads` intra-op threads (default 2, the machine's cores), 1 inter-op."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return options


class Implementation:
    """A loaded implementation: the same three calls for every kind."""

    spec: ImplSpec
    load_seconds: float = 0.0

    def supports(self, kind: str, workload: Workload) -> bool:
        """Whether this implementation can run the workload (peers lack schemas and chunking)."""
        return True

    def run_batch(self, workload: Workload, batch_size: int) -> Any:
        raise NotImplementedError

    def run_single(self, workload: Workload, index: int) -> Any:
        raise NotImplementedError

    def run_long(self, workload: Workload, batch_size: int) -> Any:
        raise NotImplementedError
