"""An interrupted export leaves nothing loadable; exporting over an existing export replaces it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from optimum_gliner2.runtime import GLiNER2LoadError, GLiNER2ONNXRuntime
from optimum_gliner2.bundle.format import GLiNER2OnnxBundle

CLI = [sys.executable, "-m", "optimum.commands.optimum_cli", "export", "onnx", "--model"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill"])
def test_interrupted_export_leaves_nothing_loadable(checkpoint_dirs, tmp_path, sig):
    output = tmp_path / "out"
    process = subprocess.Popen(
        [*CLI, str(checkpoint_dirs["deberta_lstm"]), str(output)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # A shell without job control starts background commands with SIGINT ignored, and children
        # inherit that (Python then installs no KeyboardInterrupt handler): give the export the
        # Ctrl-C of an interactive terminal whatever this test runner inherited.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 300
    # Interrupt as soon as the first graph is being written into the staging folder.
    while time.time() < deadline and not list(tmp_path.glob(".out.gliner2-export-*/*.onnx")):
        if process.poll() is not None:
            pytest.fail("the export finished before it could be interrupted")
        time.sleep(0.05)
    process.send_signal(sig)
    returncode = process.wait(timeout=120)
    assert returncode != 0, "the export finished although it was interrupted"
    with pytest.raises(GLiNER2LoadError):
        GLiNER2OnnxBundle.load(output)


def test_exporting_over_an_existing_export_replaces_it(checkpoint_dirs, exported_dirs, tmp_path):
    import shutil

    output = tmp_path / "out"
    shutil.copytree(exported_dirs["bert"], output)
    (output / "user_notes.txt").write_text("kept")
    completed = subprocess.run([*CLI, str(checkpoint_dirs["deberta_lstm_v2"]), str(output)], capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-2000:]
    bundle = GLiNER2OnnxBundle.load(output)
    assert bundle.metadata["counting_layer"] == "count_lstm_v2"
    assert (output / "user_notes.txt").read_text() == "kept"
    reference = GLiNER2ONNXRuntime.from_pretrained(exported_dirs["deberta_lstm_v2"])
    replaced = GLiNER2ONNXRuntime.from_pretrained(output)
    text = "Tim Cook is the chief executive officer of Apple Inc. and lives in Palo Alto."
    assert replaced.extract_entities(text, ["person", "location"]) == reference.extract_entities(text, ["person", "location"])
