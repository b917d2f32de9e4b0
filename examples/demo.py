"""Demo: build a small GLiNER2 checkpoint offline, export it with `optimum-cli`, run it on ONNX Runtime.

Run with `make demo`, or `python -m examples.demo` from the repository root. The checkpoint has random
weights (the hub is out of reach), so the extracted spans are not meaningful; what the demo shows is that
the ONNX model gives gliner2's answers.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.checkpoint_factory import build_checkpoint

TEXT = "Tim Cook is the chief executive officer of Apple Inc. and lives in Palo Alto."
LABELS = ["person", "organization", "location"]


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="gliner2-demo-"))
    try:
        checkpoint = build_checkpoint("deberta_lstm", work / "checkpoint")
        print(f"built a GLiNER2 checkpoint at {checkpoint}")

        from gliner2 import GLiNER2

        torch_model = GLiNER2.from_pretrained(str(checkpoint))
        reference = torch_model.extract_entities(TEXT, LABELS, include_confidence=True)
        print("gliner2 (PyTorch):", reference)

        exported = work / "onnx"
        command = [sys.executable, "-m", "optimum.commands.optimum_cli", "export", "onnx", "--model", str(checkpoint), str(exported)]
        cli = shutil.which("optimum-cli", path=str(Path(sys.executable).parent))
        if cli:
            command = [cli, "export", "onnx", "--model", str(checkpoint), str(exported)]
        print("$", " ".join(command))
        subprocess.run(command, check=True)

        from optimum_gliner2 import ORTModelForGLiNER2

        ort_model = ORTModelForGLiNER2.from_pretrained(exported)
        result = ort_model.extract_entities(TEXT, LABELS, include_confidence=True)
        print("optimum-gliner2 (ONNX Runtime):", result)
        same = _same(reference, result)
        print("same answers as PyTorch:", same)
        return 0 if same else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _same(expected, actual, tolerance: float = 1e-4) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and expected.keys() == actual.keys() and all(
            _same(expected[k], actual[k], tolerance) for k in expected
        )
    if isinstance(expected, (list, tuple)):
        return len(expected) == len(actual) and all(_same(e, a, tolerance) for e, a in zip(expected, actual))
    if isinstance(expected, float):
        return abs(expected - actual) <= tolerance
    return expected == actual


if __name__ == "__main__":
    raise SystemExit(main())
