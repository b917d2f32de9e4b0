"""What a new user trips on in the first hour: each mistake gets an error that names the fix (issue 16).

Every row of the issue's table "Errors and options that a person trips on" that concerns loading or
calling a model has its test here, on both classes (`GLiNER2ONNXRuntime` and `ORTModelForGLiNER2`);
the torch-free import of `ORTModelForGLiNER2` is checked in tests/test_torch_free.py.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub.constants
import onnxruntime as ort
import pytest

from optimum_gliner2 import ORTModelForGLiNER2
from optimum_gliner2.errors import GLiNER2InputError, GLiNER2LoadError
from optimum_gliner2.runtime import GLiNER2ONNXRuntime, Schema
from optimum_gliner2.runtime.checks import SCHEMA_DICT_KEYS
from optimum_gliner2.runtime.onnx.model import describe_model
from optimum_gliner2.runtime.words import CharacterSplitter, WhitespaceSplitter
from tests.support.parity import assert_same_results

MODEL_CLASSES = (GLiNER2ONNXRuntime, ORTModelForGLiNER2)
TEXT = "Tim Cook is the chief executive officer of Apple Inc. and lives in Palo Alto."


@pytest.fixture(scope="module")
def export_folder(exported_dirs) -> Path:
    return exported_dirs["deberta_lstm"]


@pytest.fixture(scope="module")
def loaded_models(export_folder) -> dict:
    return {cls: cls.from_pretrained(export_folder) for cls in MODEL_CLASSES}


@pytest.fixture(params=MODEL_CLASSES, ids=lambda cls: cls.__name__)
def model_class(request):
    return request.param


@pytest.fixture
def model(loaded_models, model_class):
    """A loaded model of each class, shared by the tests that do not change it."""
    return loaded_models[model_class]


# -- a path that does not exist, a hub id that is not cached ----------------------------------


@pytest.mark.parametrize("missing", ["my-onnx/", "./my-onnx", "/no/such/folder/my-onnx"])
def test_missing_folder_is_named_as_neither_folder_nor_hub_id(model_class, missing):
    with pytest.raises(GLiNER2LoadError) as raised:
        model_class.from_pretrained(missing)
    assert str(raised.value) == f"{missing} does not exist (neither a local folder nor a hub id)."


def test_missing_folder_is_refused_before_an_export_too():
    with pytest.raises(GLiNER2LoadError, match="does not exist"):
        ORTModelForGLiNER2.from_pretrained("my-checkpoint/", export=True)


def test_uncached_hub_id_offline_names_the_id_and_offline_mode(model_class, tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(GLiNER2LoadError) as raised:
        model_class.from_pretrained("someone/gliner2-onnx-export", cache_dir=tmp_path)
    message = str(raised.value)
    assert "'someone/gliner2-onnx-export'" in message
    assert "offline" in message and "HF_HUB_OFFLINE" in message


def test_a_file_is_not_an_export_folder(model_class, tmp_path):
    a_file = tmp_path / "model.onnx"
    a_file.write_bytes(b"")
    with pytest.raises(GLiNER2LoadError, match="is a file, not an exported folder"):
        model_class.from_pretrained(a_file)


# -- quantize() ---------------------------------------------------------------------------------


@pytest.mark.parametrize("arguments", [(), ("fp16",), ("bf16",)])
def test_quantize_names_the_variant_tool_and_precision(model, export_folder, arguments):
    with pytest.raises(NotImplementedError) as raised:
        model.quantize(*arguments)
    message = str(raised.value)
    assert f"python -m optimum_gliner2.variants {export_folder} --int8" in message
    assert 'precision="int8"' in message


def test_quantize_accepts_gliner2s_arguments(model_class):
    """gliner2's span model has `quantize(self)`, its GLiNER2.5 model `quantize(self, method="fp16")`."""
    from gliner2.models.boundary.model import BoundaryExtractorModel

    theirs = inspect.signature(BoundaryExtractorModel.quantize).parameters
    ours = inspect.signature(model_class.quantize).parameters
    assert list(ours) == list(theirs)
    assert ours["method"].default == theirs["method"].default


# -- providers ----------------------------------------------------------------------------------


def test_a_provider_name_as_a_str_is_one_provider(model_class, export_folder):
    loaded = model_class.from_pretrained(export_folder, providers="CPUExecutionProvider")
    assert loaded.providers == ["CPUExecutionProvider"]
    assert loaded.extract_entities(TEXT, ["person"]) == GLiNER2ONNXRuntime.from_pretrained(export_folder).extract_entities(
        TEXT, ["person"]
    )


def test_an_unavailable_provider_is_refused_naming_the_package(model_class, export_folder, monkeypatch):
    """Both classes refuse; ONNX Runtime alone would fall back to the CPU with warnings only."""
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(GLiNER2LoadError) as raised:
        model_class.from_pretrained(export_folder, providers=["CUDAExecutionProvider"])
    message = str(raised.value)
    assert "CUDAExecutionProvider is not available" in message
    assert "onnxruntime-gpu" in message
    assert "['CPUExecutionProvider']" in message


def test_a_misspelt_provider_is_refused(model_class, export_folder):
    with pytest.raises(GLiNER2LoadError, match="'CUDA' is not an ONNX Runtime execution provider"):
        model_class.from_pretrained(export_folder, providers=["CUDA"])


# -- classification tasks -----------------------------------------------------------------------

CLASSIFY_CALLS = {
    "classify_text": lambda model, tasks: model.classify_text(TEXT, tasks),
    "batch_classify_text": lambda model, tasks: model.batch_classify_text([TEXT], tasks),
    "classify_text_long": lambda model, tasks: model.classify_text_long(TEXT, tasks),
    "batch_classify_text_long": lambda model, tasks: model.batch_classify_text_long([TEXT], tasks),
}


@pytest.mark.parametrize("method", sorted(CLASSIFY_CALLS))
def test_labels_given_as_a_str_are_refused(model, method):
    for tasks in ({"sentiment": "positive"}, {"sentiment": {"labels": "positive", "multi_label": True}}):
        with pytest.raises(GLiNER2InputError, match="labels of 'sentiment' must be a list or a dict"):
            CLASSIFY_CALLS[method](model, tasks)


@pytest.mark.parametrize("method", sorted(CLASSIFY_CALLS))
def test_tasks_given_as_a_list_are_refused(model, method):
    with pytest.raises(GLiNER2InputError, match="classification tasks must be a dict of task -> labels"):
        CLASSIFY_CALLS[method](model, ["a", "b"])


# -- misspelt schema keys -----------------------------------------------------------------------


def test_a_misspelt_schema_key_is_named_with_the_known_ones(model):
    schema = {"entities": {"person": ""}, "clasifications": [{"task": "sentiment", "labels": ["good", "bad"]}]}
    for call in (lambda: model.extract(TEXT, schema), lambda: model.batch_extract_long([TEXT], schema)):
        with pytest.raises(GLiNER2InputError) as raised:
            call()
        message = str(raised.value)
        assert "unknown key(s) ['clasifications']" in message
        assert "did you mean 'classifications'" in message
        assert all(repr(key) in message for key in SCHEMA_DICT_KEYS)


def test_every_key_a_builder_writes_is_known(model):
    schema = Schema().entities(["person"]).relations(["works_for"]).classification("tone", ["calm", "angry"])
    schema.structure("product").field("name", dtype="str", description="its name")
    assert set(schema.build()) <= set(SCHEMA_DICT_KEYS)
    assert set(model.extract(TEXT, dict(schema.build()))) == {"entities", "relation_extraction", "tone", "product"}


# -- thresholds ---------------------------------------------------------------------------------

BAD_THRESHOLDS = [1.5, -1, "0.5", True, float("nan"), None]


@pytest.mark.parametrize("threshold", BAD_THRESHOLDS, ids=repr)
def test_the_calls_threshold_must_be_a_number_in_the_unit_interval(model, threshold):
    calls = (
        lambda: model.extract_entities(TEXT, ["person"], threshold=threshold),
        lambda: model.batch_extract([TEXT], Schema().entities(["person"]), threshold=threshold),
        lambda: model.extract_relations_long(TEXT, ["works_for"], threshold=threshold),
    )
    for call in calls:
        with pytest.raises(GLiNER2InputError, match=r"^threshold is .*thresholds are numbers in \[0, 1\]"):
            call()


@pytest.mark.parametrize("threshold", [1.5, -1, "0.5", True], ids=repr)
def test_label_and_field_thresholds_must_be_numbers_in_the_unit_interval(model, threshold):
    calls = {
        "threshold of entity type 'person'": lambda: model.extract_entities(TEXT, {"person": {"threshold": threshold}}),
        "threshold of relation 'works_for'": lambda: model.extract_relations(TEXT, {"works_for": {"threshold": threshold}}),
        "cls_threshold of classification 'tone'": lambda: model.classify_text(
            TEXT, {"tone": {"labels": ["calm", "angry"], "cls_threshold": threshold}}
        ),
        "cls_threshold of classification 'mood'": lambda: model.extract(
            TEXT, {"classifications": [{"task": "mood", "labels": ["up", "down"], "cls_threshold": threshold}]}
        ),
    }
    for what, call in calls.items():
        with pytest.raises(GLiNER2InputError, match=rf"^{what} is .*thresholds are numbers in \[0, 1\]"):
            call()


def test_bool_thresholds_that_the_builder_keeps_are_refused_at_extraction(model):
    """The builder takes what gliner2's builder takes (True passes its 0..1 comparisons); extraction refuses."""
    entity = Schema().entities(["person"], threshold=True)
    field = Schema().structure("product").field("name", threshold=True)
    relation = Schema().relations({"works_for": {"threshold": True}})
    cases = {"entity type 'person'": entity, "field 'product.name'": field, "relation 'works_for'": relation}
    for what, schema in cases.items():
        with pytest.raises(GLiNER2InputError, match=rf"^threshold of {what} is True, but thresholds are numbers"):
            model.extract(TEXT, schema)


# -- texts longer than one encoder pass ---------------------------------------------------------

# 4,500 words, 3-5 tokenizer pieces each with the fixture's tokenizer: over the 8,192 tokens of one encoder pass.
LONG_DOCUMENT = " ".join([TEXT] * 300)


def test_a_text_too_long_for_one_pass_is_named_and_pointed_to_the_long_methods(model):
    with pytest.raises(GLiNER2InputError) as raised:
        model.batch_extract_entities([TEXT, LONG_DOCUMENT], ["person"])
    message = str(raised.value)
    assert message.startswith("text 1 is ") and "extract_entities_long" in message


def test_a_window_too_long_for_one_pass_names_its_document_and_words_not_its_batch_position(model):
    with pytest.raises(GLiNER2InputError) as raised:
        model.batch_extract_entities_long([TEXT, LONG_DOCUMENT], ["person"], chunk_size=4000, chunk_overlap=50)
    message = str(raised.value)
    assert message.startswith("the window of words 0-4000 of document 1 is "), message
    assert "Lower chunk_size" in message and "_long methods" not in message
    # The same documents with windows that fit answer, so the error is about the window size alone.
    answers = model.batch_extract_entities_long([TEXT, LONG_DOCUMENT], ["person"], chunk_size=200, chunk_overlap=50)
    assert len(answers) == 2


# -- repr ---------------------------------------------------------------------------------------


def test_repr_names_folder_precision_providers_architecture_and_max_width(model, model_class, export_folder):
    max_width = GLiNER2ONNXRuntime.from_pretrained(export_folder).bundle.max_width
    expected = (
        f"{model_class.__name__}(folder={str(export_folder)!r}, precision='fp32', "
        f"providers=['CPUExecutionProvider'], architecture='span', max_width={max_width})"
    )
    assert repr(model) == expected == str(model)


def test_repr_of_a_boundary_model_has_no_max_width():
    bundle = SimpleNamespace(folder=Path("gliner2.5-onnx"), precision="int8", architecture="boundary", max_width=None)
    assert describe_model("GLiNER2ONNXRuntime", bundle, ["CPUExecutionProvider"]) == (
        "GLiNER2ONNXRuntime(folder='gliner2.5-onnx', precision='int8', providers=['CPUExecutionProvider'], "
        "architecture='boundary')"
    )


# -- push_to_hub --------------------------------------------------------------------------------


class FakeHubApi:
    """Stands in for huggingface_hub.HfApi: records the calls and the files each upload holds."""

    calls: list = []

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, private=None, exist_ok=False):
        FakeHubApi.calls.append(("create_repo", repo_id, private, exist_ok, self.token))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, repo_id, folder_path):
        files = sorted(path.name for path in Path(folder_path).iterdir())
        FakeHubApi.calls.append(("upload_folder", repo_id, files))


@pytest.fixture
def hub_calls(monkeypatch) -> list:
    import optimum_gliner2.modeling_ort

    FakeHubApi.calls = []
    monkeypatch.setattr(optimum_gliner2.modeling_ort, "HfApi", FakeHubApi)
    return FakeHubApi.calls


def test_push_to_hub_takes_the_repo_id_positionally(loaded_models, export_folder, hub_calls):
    url = loaded_models[ORTModelForGLiNER2].push_to_hub("me/gliner2-onnx")
    assert url == "https://huggingface.co/me/gliner2-onnx"
    assert hub_calls[0] == ("create_repo", "me/gliner2-onnx", True, True, None)
    operation, repo_id, files = hub_calls[1]
    assert (operation, repo_id) == ("upload_folder", "me/gliner2-onnx")
    assert {"encoder.onnx", "gliner2_onnx.json", "tokenizer.json", "config.json"} <= set(files)


def test_push_to_hub_takes_optimums_keywords(loaded_models, tmp_path, hub_calls):
    model = loaded_models[ORTModelForGLiNER2]
    model.push_to_hub(repository_id="me/a", private=False, token="hf_x")
    model.save_pretrained(tmp_path / "saved", push_to_hub=True, repository_id="me/b")
    assert [call[:4] for call in hub_calls if call[0] == "create_repo"] == [
        ("create_repo", "me/a", False, True),
        ("create_repo", "me/b", True, True),
    ]
    assert hub_calls[0][4] == "hf_x"
    uploads = [call for call in hub_calls if call[0] == "upload_folder"]
    assert uploads[0][2] == uploads[1][2] == sorted(path.name for path in (tmp_path / "saved").iterdir())


def test_push_to_hub_in_optimums_positional_order_says_to_use_keywords(loaded_models, hub_calls):
    with pytest.raises(TypeError, match="push_to_hub's second argument is `private`"):
        loaded_models[ORTModelForGLiNER2].push_to_hub("saved/", "me/repo")
    with pytest.raises(TypeError, match="needs the hub repository id"):
        loaded_models[ORTModelForGLiNER2].push_to_hub()
    assert hub_calls == []


# -- word splitters -----------------------------------------------------------------------------

CJK_TEXTS = ["蒂姆·库克是苹果公司的首席执行官，住在帕洛阿尔托。", "北京是中国的首都 and Tokyo is in Japan.", "東京タワーは東京にあります。"]


def test_word_splitter_at_load_and_by_setter(model_class, export_folder):
    loaded = model_class.from_pretrained(export_folder, word_splitter="char")
    assert isinstance(loaded.word_splitter, CharacterSplitter)
    assert loaded.set_word_splitter("whitespace") is loaded
    assert isinstance(loaded.word_splitter, WhitespaceSplitter)
    assert isinstance(loaded.set_word_splitter(None).word_splitter, WhitespaceSplitter)
    with pytest.raises(ValueError, match="Unknown word_splitter 'chars'"):
        loaded.set_word_splitter("chars")


@pytest.mark.parametrize("how", ["at load", "by setter"])
def test_char_splitter_matches_gliner2_on_cjk_text(model_class, torch_models, exported_dirs, how):
    variant = "deberta_lstm"
    if how == "at load":
        ours = model_class.from_pretrained(exported_dirs[variant], word_splitter="char")
    else:
        ours = model_class.from_pretrained(exported_dirs[variant]).set_word_splitter("char")
    theirs = torch_models[variant]
    whitespace_splitter = theirs.processor.word_splitter
    theirs.set_word_splitter("char")
    try:
        labels, tasks = ["person", "organization", "location"], {"topic": ["business", "travel"]}
        schema_calls = {
            "extract_entities": lambda m: [m.extract_entities(t, labels, include_spans=True, include_confidence=True) for t in CJK_TEXTS],
            "batch_extract_entities": lambda m: m.batch_extract_entities(CJK_TEXTS, labels, include_spans=True),
            "classify_text": lambda m: [m.classify_text(t, tasks, include_confidence=True) for t in CJK_TEXTS],
            "extract_json": lambda m: [m.extract_json(t, {"place": ["name::str", "country"]}) for t in CJK_TEXTS],
            "extract_entities_long": lambda m: [
                m.extract_entities_long(t * 4, labels, chunk_size=16, chunk_overlap=4, include_spans=True) for t in CJK_TEXTS
            ],
        }
        for name, call in schema_calls.items():
            assert_same_results(call(theirs), call(ours), context=f"{how}/{name}")
    finally:
        theirs.processor.word_splitter = whitespace_splitter
    # The splitter took effect: character words give spans inside what whitespace splitting keeps whole.
    assert [w for w, _, _ in ours.word_splitter(CJK_TEXTS[1])][:3] == ["北", "京", "是"]


# -- What optimum-cli prints, and quiet FP16 loading ----------------------------------------------


def test_optimum_cli_export_ends_with_a_summary_and_no_misleading_warnings(checkpoint_dirs, tmp_path):
    import subprocess
    import sys

    output = tmp_path / "out"
    completed = subprocess.run(
        [sys.executable, "-m", "optimum.commands.optimum_cli", "export", "onnx", "--model", str(checkpoint_dirs["deberta_lstm"]), str(output)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "batch_size other than 1" not in completed.stderr
    assert "Constant folding" not in completed.stderr
    summary = completed.stdout
    assert f"exported to {output} and validated against PyTorch" in summary
    for graph in ("encoder.onnx", "count_embed.onnx", "classifier.onnx", "span_scorer.onnx"):
        assert graph in summary and "max abs diff" in summary
    assert "ORTModelForGLiNER2.from_pretrained" in summary


def test_loading_fp16_on_cpu_is_quiet(exported_dirs, tmp_path):
    import shutil
    import subprocess
    import sys

    from optimum_gliner2 import variants

    folder = tmp_path / "export"
    shutil.copytree(exported_dirs["deberta_lstm"], folder)
    variants.convert_gliner2_to_fp16(folder)
    script = (
        "from optimum_gliner2 import ORTModelForGLiNER2\n"
        f"model = ORTModelForGLiNER2.from_pretrained({str(folder)!r}, precision='fp16')\n"
        "print(model.dtype, model.precision)\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "constant fold" not in completed.stderr and "ORTParentMixin.dtype" not in completed.stderr, completed.stderr
    assert completed.stdout.strip() == "torch.float16 fp16"


def test_export_with_no_post_process_is_refused_up_front_and_leaves_nothing(checkpoint_dirs, tmp_path):
    import subprocess
    import sys

    output = tmp_path / "out"
    completed = subprocess.run(
        [sys.executable, "-m", "optimum.commands.optimum_cli", "export", "onnx", "--no-post-process",
         "--model", str(checkpoint_dirs["deberta_lstm"]), str(output)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert completed.returncode == 1
    assert "Error: --no-post-process is not supported for GLiNER2" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not output.exists() or not any(output.iterdir())
