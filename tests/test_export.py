"""`optimum-cli export onnx` on GLiNER2 checkpoints: every variant, the hub path, validation, bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from optimum_gliner2.bundle.format import ARCHITECTURE_GRAPHS, METADATA_FILE, GLiNER2OnnxBundle
from optimum_gliner2.errors import GLiNER2LoadError

CLI = [sys.executable, "-m", "optimum.commands.optimum_cli"]


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=600
    )


def test_every_variant_exports_with_a_plain_cli_call(exported_dirs, variant):
    """The session fixture ran `optimum-cli export onnx --model CKPT OUT` with no other flag."""
    folder = exported_dirs[variant]
    bundle = GLiNER2OnnxBundle.load(folder)
    assert set(bundle.graph_files) == set(ARCHITECTURE_GRAPHS["span"])
    metadata = bundle.metadata
    assert metadata["opset"] >= 17
    assert metadata["exporter_versions"]["gliner2"].startswith("2.1")
    shapes = {(r["graph"], r["shape"]) for r in metadata["validation"]}
    assert len(shapes) >= 12  # every graph at three shapes other than the export example
    worst = max(r["max_abs_diff"] for r in metadata["validation"])
    print(f"{variant}: max abs diff vs PyTorch over {len(shapes)} shapes = {worst:.2e}")
    assert worst < 1e-3
    # config.json is gliner2's own ExtractorConfig, loadable through AutoConfig after registration.
    from transformers import AutoConfig

    from optimum_gliner2.optimum_glue import register_gliner2_for_onnxruntime

    register_gliner2_for_onnxruntime()
    config = AutoConfig.from_pretrained(folder)
    assert config.model_type == "extractor" and config.max_width == metadata["max_width"]


def test_max_width_and_counting_layer_reach_the_metadata(exported_dirs, checkpoint_dirs, variant):
    source = json.loads((checkpoint_dirs[variant] / "config.json").read_text())
    metadata = json.loads((exported_dirs[variant] / METADATA_FILE).read_text())
    expected_width = source.get("span_head", {}).get("max_width", source.get("max_width"))
    assert metadata["max_width"] == expected_width
    assert metadata["counting_layer"] == source["counting_layer"]


def test_main_export_python_api_after_importing_the_plugin(checkpoint_dirs, tmp_path):
    script = (
        "import optimum_gliner2\n"
        "from optimum.exporters.onnx import main_export\n"
        f"main_export({str(checkpoint_dirs['deberta_lstm_v2'])!r}, output={str(tmp_path / 'out')!r})\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    GLiNER2OnnxBundle.load(tmp_path / "out")


def test_hub_id_resolves_offline_from_a_prefilled_cache(checkpoint_dirs, tmp_path):
    """`--model fastino/gliner2-multi-v1` with HF_HUB_OFFLINE=1 and the files in the HF cache."""
    cache = tmp_path / "home" / "hub"  # the default cache under HF_HOME, as users have it
    snapshot = cache / "models--fastino--gliner2-multi-v1" / "snapshots" / ("0" * 40)
    shutil.copytree(checkpoint_dirs["legacy"], snapshot)
    (cache / "models--fastino--gliner2-multi-v1" / "refs").mkdir()
    (cache / "models--fastino--gliner2-multi-v1" / "refs" / "main").write_text("0" * 40)
    completed = run_cli(
        "export", "onnx", "--model", "fastino/gliner2-multi-v1", str(tmp_path / "out"),
        env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "home")},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert GLiNER2OnnxBundle.load(tmp_path / "out").metadata["counting_layer"] == "count_lstm"


@pytest.fixture(scope="module")
def bad_checkpoints(checkpoint_dirs, tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    boundary = root / "boundary"
    shutil.copytree(checkpoint_dirs["deberta_lstm"], boundary)
    config = json.loads((boundary / "config.json").read_text())
    config["architecture"] = "boundary"
    (boundary / "config.json").write_text(json.dumps(config))
    not_gliner2 = root / "not_gliner2"
    not_gliner2.mkdir()
    (not_gliner2 / "notes.txt").write_text("not a model")
    missing = root / "missing_weights"
    shutil.copytree(checkpoint_dirs["legacy"], missing)
    (missing / "model.safetensors").unlink()
    corrupt = root / "corrupt_weights"
    shutil.copytree(checkpoint_dirs["legacy"], corrupt)
    (corrupt / "model.safetensors").write_bytes((corrupt / "model.safetensors").read_bytes()[:2048])
    a_file = root / "a_file"
    a_file.write_text("")
    return {
        "boundary": (boundary, root / "out_boundary", "boundary"),
        "not_gliner2": (not_gliner2, root / "out_not_gliner2", "no config.json"),
        "missing_weights": (missing, root / "out_missing", "does not exist"),
        "corrupt_weights": (corrupt, root / "out_corrupt", "safetensors"),
        "unwritable_output": (checkpoint_dirs["legacy"], a_file / "out", "cannot write the export"),
    }


@pytest.mark.parametrize("case", ["boundary", "not_gliner2", "missing_weights", "corrupt_weights", "unwritable_output"])
def test_bad_input_gets_a_clear_error_and_no_loadable_output(bad_checkpoints, case):
    checkpoint, output, expected = bad_checkpoints[case]
    completed = run_cli("export", "onnx", "--model", str(checkpoint), str(output))
    assert completed.returncode != 0
    last_line = completed.stderr.strip().splitlines()[-1]
    assert last_line.startswith("Error:") and expected in last_line, completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr
    with pytest.raises(GLiNER2LoadError):
        GLiNER2OnnxBundle.load(output)


def test_divergence_beyond_tolerance_fails_and_removes_the_graphs(checkpoint_dirs, tmp_path):
    """Force the plugin's validation to fail: the export exits non-zero and leaves nothing loadable."""
    script = (
        "import optimum_gliner2.exporters.validation as v\n"
        "v.VALIDATION_ATOL = v.VALIDATION_RTOL = 0.0\n"
        "import sys\n"
        "from optimum.commands.optimum_cli import main\n"
        f"sys.argv = ['optimum-cli', 'export', 'onnx', '--model', {str(checkpoint_dirs['bert'])!r}, {str(tmp_path / 'out')!r}]\n"
        "main()\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert completed.returncode == 1, completed.stderr[-2000:]
    assert "do not reproduce PyTorch" in completed.stderr
    assert not list((tmp_path / "out").glob("*.onnx"))
    assert not list(tmp_path.glob(".out.gliner2-export-*")), "the staging folder was left behind"
    with pytest.raises(GLiNER2LoadError, match="not a complete optimum-gliner2 export"):
        GLiNER2OnnxBundle.load(tmp_path / "out")


def test_cli_help_does_not_import_torch():
    script = (
        "import sys\n"
        "from optimum.commands.optimum_cli import main\n"
        "sys.argv = ['optimum-cli', 'export', 'onnx', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'transformers.modeling_utils') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "import optimum_gliner2.optimum_glue as glue\n"
        "from optimum.commands.export.onnx import ONNXExportCommand\n"
        "assert hasattr(ONNXExportCommand.run, '__gliner2_wrapped__'), 'the register hook did not load'\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
