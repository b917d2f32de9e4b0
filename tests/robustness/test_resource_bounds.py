"""A 100k-word text without *_long is refused with a pointer to *_long, not killed for memory."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from optimum_gliner2.runtime import GLiNER2InputError, GLiNER2ONNXRuntime

HUGE_TEXT = " ".join(["Tim Cook leads Apple in Cupertino"] * 17_000)  # ~100k words


def test_huge_text_is_refused_and_points_to_long_methods(exported_dirs):
    model = GLiNER2ONNXRuntime.from_pretrained(exported_dirs["deberta_lstm"])
    with pytest.raises(GLiNER2InputError, match="_long"):
        model.extract_entities(HUGE_TEXT, ["person", "organization"])
    with pytest.raises(GLiNER2InputError, match="text 1 is"):
        model.batch_extract_entities(["short text.", HUGE_TEXT], ["person"])


@pytest.mark.slow
def test_huge_text_through_long_methods_stays_within_memory(exported_dirs):
    """extract_entities_long on 100k words completes with bounded memory (peak RSS of the child).

    Measured 2026-11-23 on the tiny fixture: 2.6 GB at 6k words, 5.5 GB at 100k words, mostly
    ONNX Runtime's CPU arena (1.6 GB at 6k words without it). Slow (~5 min): `make test-all`.
    """
    script = textwrap.dedent(
        f"""
        import resource
        from optimum_gliner2.runtime import GLiNER2ONNXRuntime
        model = GLiNER2ONNXRuntime.from_pretrained({str(exported_dirs['deberta_lstm'])!r})
        text = " ".join(["Tim Cook leads Apple in Cupertino"] * 17_000)
        result = model.extract_entities_long(text, ["person", "organization"], batch_size=8)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print("OK", sum(len(v) for v in result["entities"].values()), peak_mb)
        """
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.startswith("OK")
    peak_mb = float(completed.stdout.split()[-1])
    assert peak_mb < 8192, f"peak RSS {peak_mb:.0f} MB"
