"""A tampered or broken exported folder fails at load time with an error that names the problem."""

from __future__ import annotations

import json
import shutil

import pytest

from optimum_gliner2.runtime import GLiNER2LoadError, GLiNER2ONNXRuntime
from optimum_gliner2.bundle.format import METADATA_FILE


@pytest.fixture
def bundle_copy(exported_dirs, tmp_path):
    target = tmp_path / "bundle"
    shutil.copytree(exported_dirs["deberta_lstm"], target)
    return target


def _edit_metadata(folder, edit):
    path = folder / METADATA_FILE
    metadata = json.loads(path.read_text())
    edit(metadata)
    path.write_text(json.dumps(metadata))


def _load_fails(folder, match):
    with pytest.raises(GLiNER2LoadError, match=match):
        GLiNER2ONNXRuntime.from_pretrained(folder)


@pytest.mark.parametrize("name", ["../outside.onnx", "/etc/passwd", "sub/../../x.onnx"])
def test_file_names_outside_the_folder_are_refused(bundle_copy, name):
    _edit_metadata(bundle_copy, lambda m: m["variants"]["fp32"].__setitem__("encoder", name))
    _load_fails(bundle_copy, "outside|not a relative path")


def test_symlink_pointing_outside_is_refused(bundle_copy, tmp_path):
    outside = tmp_path / "elsewhere.onnx"
    shutil.copy(bundle_copy / "encoder.onnx", outside)
    (bundle_copy / "encoder.onnx").unlink()
    (bundle_copy / "encoder.onnx").symlink_to(outside)
    _load_fails(bundle_copy, "outside")


def test_truncated_graph_is_refused(bundle_copy):
    data = (bundle_copy / "span_scorer.onnx").read_bytes()
    (bundle_copy / "span_scorer.onnx").write_bytes(data[: len(data) // 2])
    _load_fails(bundle_copy, "truncated, replaced or corrupt")


def test_corrupt_graph_of_the_recorded_size_is_refused(bundle_copy):
    size = (bundle_copy / "classifier.onnx").stat().st_size
    (bundle_copy / "classifier.onnx").write_bytes(b"\x00garbage" * (size // 8) + b"\x00" * (size % 8))
    _load_fails(bundle_copy, "cannot load")


def test_missing_metadata_is_refused(bundle_copy):
    (bundle_copy / METADATA_FILE).unlink()
    _load_fails(bundle_copy, "not a complete optimum-gliner2 export")


def test_corrupt_metadata_is_refused(bundle_copy):
    (bundle_copy / METADATA_FILE).write_text("{not json")
    _load_fails(bundle_copy, "not valid JSON")


def test_wrong_max_width_is_refused(bundle_copy):
    _edit_metadata(bundle_copy, lambda m: m.__setitem__("max_width", m["max_width"] + 1))
    _load_fails(bundle_copy, "max_width")


def test_wrong_max_count_is_refused(bundle_copy):
    _edit_metadata(bundle_copy, lambda m: m.__setitem__("max_count", 7))
    _load_fails(bundle_copy, "max_count")


def test_wrong_hidden_size_is_refused(bundle_copy):
    _edit_metadata(bundle_copy, lambda m: m.__setitem__("hidden_size", 32))
    _load_fails(bundle_copy, "hidden_size 32")


def test_wrong_special_token_ids_are_refused(bundle_copy):
    def swap(metadata):
        ids = metadata["special_token_ids"]
        ids["[E]"], ids["[R]"] = ids["[R]"], ids["[E]"]

    _edit_metadata(bundle_copy, swap)
    _load_fails(bundle_copy, r"maps \[(E|R)\]")


def test_graphs_swapped_between_roles_are_refused(bundle_copy):
    _edit_metadata(bundle_copy, lambda m: m["variants"]["fp32"].__setitem__("classifier", "span_scorer.onnx"))
    _load_fails(bundle_copy, "has inputs")


def test_unknown_format_version_is_refused(bundle_copy):
    _edit_metadata(bundle_copy, lambda m: m.__setitem__("format_version", 99))
    _load_fails(bundle_copy, "format_version")


def test_load_path_uses_no_pickle_and_no_remote_code():
    """Static check: the runtime never unpickles nor enables remote code."""
    import pathlib

    import optimum_gliner2

    package = pathlib.Path(optimum_gliner2.__file__).parent
    sources = {p: p.read_text() for p in package.rglob("*.py")}
    for path, source in sources.items():
        assert "import pickle" not in source and "pickle.load" not in source, path
        assert "trust_remote_code=True" not in source, path
