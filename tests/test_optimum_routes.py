"""Optimum's own tools on a GLiNER2 export, used the way an Optimum user would use them.

- ORTQuantizer and ORTOptimizer, from Python on the export folder and on an ORTModelForGLiNER2 instance,
  saving into the folder: the output loads with `from_pretrained(folder, file_name=...)`.
- `optimum-cli onnxruntime quantize|optimize --onnx_model EXPORT -o OUT`: OUT loads by itself.
- `optimum-cli export onnx --optimize O2`: an export whose FP32 graphs are the optimized ones, validated.
- Importing Optimum's output as a variant fails loudly when there is nothing to import.
- From the hub, loading one precision fetches that precision's graphs only.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from optimum.onnxruntime import ORTOptimizer, ORTQuantizer
from optimum.onnxruntime.configuration import AutoOptimizationConfig, AutoQuantizationConfig

from optimum_gliner2 import ORTModelForGLiNER2, variants
from optimum_gliner2.bundle.format import METADATA_FILE
from optimum_gliner2.runtime import GLiNER2LoadError, GLiNER2ONNXRuntime
from optimum_gliner2.variants.cli import main as variants_command
from tests.conftest import export_with_optimum_cli
from tests.support.agreement import corpus_agreement, run_corpus
from tests.support.parity_corpus import CASES

CASES_SUBSET = CASES[::6]
TEXT = "Tim Cook is the chief executive officer of Apple Inc. and lives in Palo Alto."
LABELS = ["person", "organization", "location"]


@pytest.fixture
def export(exported_dirs, tmp_path) -> Path:
    folder = tmp_path / "export"
    shutil.copytree(exported_dirs["deberta_lstm"], folder)
    return folder


@pytest.fixture(scope="module")
def fp32_answers(exported_dirs):
    return run_corpus(GLiNER2ONNXRuntime.from_pretrained(exported_dirs["deberta_lstm"]), CASES_SUBSET)


def _optimum_cli(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "optimum.commands.optimum_cli", *arguments], capture_output=True, text=True, timeout=600
    )


def _assert_same_answers(fp32_answers, model) -> None:
    result = corpus_agreement(fp32_answers, model, CASES_SUBSET)
    assert result["texts_same"] == result["texts_total"], result
    assert result["max_drift"] < 1e-4, result


def _graph_file_names(model) -> dict:
    return {graph: path.name for graph, path in model.runtime.bundle.graph_files.items()}


def test_ortquantizer_output_saved_into_the_export_loads_with_file_name(export):
    config = AutoQuantizationConfig.avx2(is_static=False, per_channel=True)
    ORTQuantizer.from_pretrained(export, file_name="encoder.onnx").quantize(save_dir=export, quantization_config=config)

    model = ORTModelForGLiNER2.from_pretrained(export, file_name="encoder_quantized.onnx")

    assert model.precision == "quantized"
    assert _graph_file_names(model) == {
        "encoder": "encoder_quantized.onnx",
        "count_embed": "count_embed.onnx",
        "classifier": "classifier.onnx",
        "span_scorer": "span_scorer.onnx",
    }
    assert Path(model.runtime.backend.sessions["encoder"]._model_path).name == "encoder_quantized.onnx"
    assert model.extract_entities(TEXT, LABELS)["entities"].keys() == set(LABELS)
    # The torch-free class takes the same argument.
    assert GLiNER2ONNXRuntime.from_pretrained(export, file_name="encoder_quantized.onnx").precision == "quantized"


def test_ortoptimizer_on_the_export_folder_gives_fp32_answers(export, fp32_answers):
    ORTOptimizer.from_pretrained(export, file_names=["encoder.onnx"]).optimize(AutoOptimizationConfig.O2(), save_dir=export)

    model = ORTModelForGLiNER2.from_pretrained(export, file_name="encoder_optimized.onnx")

    assert model.precision == "optimized"
    assert _graph_file_names(model)["encoder"] == "encoder_optimized.onnx"
    _assert_same_answers(fp32_answers, model.runtime)


def test_optimum_tools_take_an_ortmodel_instance(export, fp32_answers):
    model = ORTModelForGLiNER2.from_pretrained(export)
    assert model.path == export / "encoder.onnx"

    ORTOptimizer.from_pretrained(model).optimize(AutoOptimizationConfig.O2(), save_dir=model.model_save_dir)
    quantizer = ORTQuantizer.from_pretrained(model)
    quantizer.quantize(save_dir=model.model_save_dir, quantization_config=AutoQuantizationConfig.avx2(is_static=False))

    optimized = ORTModelForGLiNER2.from_pretrained(export, file_name="encoder_optimized.onnx")
    _assert_same_answers(fp32_answers, optimized.runtime)
    assert ORTModelForGLiNER2.from_pretrained(export, file_name="encoder_quantized.onnx").precision == "quantized"


def test_a_file_name_that_is_no_graph_is_refused_by_name(export):
    with pytest.raises(GLiNER2LoadError, match="encoder_typo.onnx"):
        ORTModelForGLiNER2.from_pretrained(export, file_name="encoder_typo.onnx")
    (export / "notes_quantized.onnx").write_bytes(b"")
    with pytest.raises(GLiNER2LoadError, match="<graph>_<suffix>.onnx"):
        GLiNER2ONNXRuntime.from_pretrained(export, file_name="notes_quantized.onnx")


def test_optimum_cli_onnxruntime_outputs_load_by_themselves(export, tmp_path, fp32_answers):
    optimized, quantized = tmp_path / "o2", tmp_path / "int8"
    for command, output in ((["optimize", "-O2"], optimized), (["quantize", "--avx2"], quantized)):
        completed = _optimum_cli("onnxruntime", command[0], "--onnx_model", str(export), command[1], "-o", str(output))
        assert completed.returncode == 0, completed.stderr[-3000:]
        assert (output / METADATA_FILE).is_file()

    o2 = ORTModelForGLiNER2.from_pretrained(optimized)
    assert o2.precision == "o2"
    assert set(_graph_file_names(o2).values()) == {f"{graph}_optimized.onnx" for graph in o2.runtime.bundle.graph_names}
    _assert_same_answers(fp32_answers, o2.runtime)

    int8 = GLiNER2ONNXRuntime.from_pretrained(quantized)
    assert int8.precision == "int8_avx2"
    # The command quantizes with ORT's defaults, the embedding table with one scale for the whole table.
    encoder = onnx.load(str(quantized / "encoder_quantized.onnx"))
    assert "DequantizeLinear" in [node.op_type for node in encoder.graph.node]
    assert int8.extract_entities(TEXT, LABELS)["entities"].keys() == set(LABELS)
    # Such a folder holds no FP32 graphs to make variants from, and says so.
    with pytest.raises(GLiNER2LoadError, match="original export"):
        variants.quantize_gliner2(quantized)


def test_export_with_optimize_o2_is_validated_and_says_so(checkpoint_dirs, tmp_path, fp32_answers):
    folder = tmp_path / "optimized_export"
    export_with_optimum_cli(checkpoint_dirs["deberta_lstm"], folder, "--optimize", "O2")

    metadata = json.loads((folder / METADATA_FILE).read_text())
    assert metadata["graph_optimization"]["optimization_level"] == 2
    assert metadata["validation"]  # the optimized graphs were checked against PyTorch
    model = GLiNER2ONNXRuntime.from_pretrained(folder)
    assert model.precision == "fp32"
    _assert_same_answers(fp32_answers, model)


def test_importing_optimum_output_fails_loudly_when_it_finds_nothing(export, tmp_path, capsys):
    before = (export / METADATA_FILE).read_text()
    with pytest.raises(SystemExit):
        variants_command([str(export), "--import-optimum-cli", str(tmp_path / "no_such_folder")])
    assert "holds none of" in capsys.readouterr().err
    assert (export / METADATA_FILE).read_text() == before  # nothing registered

    quantized = tmp_path / "quantized"
    completed = _optimum_cli("onnxruntime", "quantize", "--onnx_model", str(export), "--avx2", "-o", str(quantized))
    assert completed.returncode == 0, completed.stderr[-3000:]
    variants_command([str(export), "--import-optimum-cli", str(quantized), "--variant-name", "int8_cli"])
    assert GLiNER2ONNXRuntime.from_pretrained(export, precision="int8_cli").precision == "int8_cli"


class _FakeHub:
    """`huggingface_hub.snapshot_download` over a local folder, recording which files each call fetched.

    The filtering is huggingface_hub's own (`filter_repo_objects`), as in the real download.
    """

    def __init__(self, repository: Path, cache: Path):
        self.repository, self.cache, self.fetched = repository, cache, []

    def __call__(self, repo_id, *, allow_patterns=None, **_):
        from huggingface_hub.utils import filter_repo_objects

        names = [p.relative_to(self.repository).as_posix() for p in self.repository.rglob("*") if p.is_file()]
        for name in filter_repo_objects(names, allow_patterns=allow_patterns):
            target = self.cache / name
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(self.repository / name, target)
                self.fetched.append(name)
        return str(self.cache)


def test_loading_one_precision_from_the_hub_fetches_only_its_graphs(export, tmp_path, monkeypatch):
    import huggingface_hub

    variants.quantize_gliner2(export)
    variants.convert_gliner2_to_fp16(export)
    hub = _FakeHub(export, tmp_path / "cache")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub)

    model = GLiNER2ONNXRuntime.from_pretrained("someone/gliner2-onnx", precision="int8")

    graphs = {name for name in hub.fetched if name.endswith(".onnx")}
    assert graphs == {"encoder_int8.onnx", "count_embed.onnx", "classifier.onnx", "span_scorer.onnx"}
    assert {METADATA_FILE, "tokenizer.json"} <= set(hub.fetched)
    assert model.precision == "int8"
    assert model.extract_entities(TEXT, LABELS)["entities"].keys() == set(LABELS)

    ORTQuantizer.from_pretrained(export, file_name="encoder.onnx").quantize(
        save_dir=export, quantization_config=AutoQuantizationConfig.avx2(is_static=False)
    )
    hub.fetched.clear()
    ORTModelForGLiNER2.from_pretrained("someone/gliner2-onnx", file_name="encoder_quantized.onnx")
    assert [name for name in hub.fetched if fnmatch.fnmatch(name, "*.onnx")] == ["encoder_quantized.onnx"]
