"""Pins every Optimum internal that optimum_gliner2/optimum_glue.py touches.

If an Optimum upgrade renames, moves or reshapes one of them, this file fails first and says which.
"""

from __future__ import annotations

import importlib
import inspect

import pytest

from optimum_gliner2.optimum_glue import OPTIMUM_INTERNALS, register_gliner2_with_optimum


def _resolve(module_name: str, dotted: str):
    target = importlib.import_module(module_name)
    for part in dotted.split("."):
        target = getattr(target, part)
    return getattr(target, "__gliner2_wrapped__", target)


@pytest.mark.parametrize("module_name,attribute", OPTIMUM_INTERNALS)
def test_internal_exists(module_name, attribute):
    assert _resolve(module_name, attribute) is not None


EXPECTED_PARAMETERS = {
    ("optimum.exporters.tasks", "TasksManager.infer_library_from_model"): ["model", "subfolder", "revision", "cache_dir", "token"],
    ("optimum.exporters.tasks", "TasksManager.infer_task_from_model"): ["model", "subfolder", "revision", "cache_dir", "token", "library_name"],
    ("optimum.exporters.tasks", "TasksManager.create_register"): ["backend", "overwrite_existing"],
    ("optimum.exporters.onnx.__main__", "onnx_export_from_model"): [
        "model", "output", "opset", "optimize", "monolith", "no_post_process", "atol", "do_validation",
        "model_kwargs", "custom_onnx_configs", "fn_get_submodels", "_variant", "preprocessors", "device",
        "no_dynamic_axes", "task", "use_subprocess", "do_constant_folding", "slim", "kwargs_shapes",
    ],
    ("optimum.exporters.onnx.convert", "_get_submodels_and_onnx_configs"): [
        "model", "task", "monolith", "custom_onnx_configs", "custom_architecture", "_variant", "library_name",
        "int_dtype", "float_dtype", "fn_get_submodels", "preprocessors", "model_kwargs",
    ],
    ("optimum.commands.export.onnx", "ONNXExportCommand.run"): ["self"],
}


@pytest.mark.parametrize("key", sorted(EXPECTED_PARAMETERS))
def test_internal_signature(key):
    parameters = [p for p in inspect.signature(_resolve(*key)).parameters if p != "cls"]
    assert parameters == EXPECTED_PARAMETERS[key], f"{key[1]} changed its signature: {parameters}"


def test_tables_keep_their_shape():
    from optimum.exporters.tasks import TasksManager
    from optimum.onnxruntime.utils import ORTConfigManager
    from optimum.utils.normalized_config import NormalizedConfigManager

    assert isinstance(TasksManager._LIBRARY_TO_TASKS_TO_MODEL_LOADER_MAP, dict)
    assert isinstance(TasksManager._LIBRARY_TO_SUPPORTED_MODEL_TYPES, dict)
    assert isinstance(NormalizedConfigManager._conf, dict) and isinstance(ORTConfigManager._conf, dict)
    assert ORTConfigManager._conf.get("deberta-v2") == "bert"


def test_registration_is_effective_and_idempotent():
    from optimum.exporters.onnx import convert
    from optimum.exporters.tasks import TasksManager

    register_gliner2_with_optimum()
    register_gliner2_with_optimum()
    assert "optimum_gliner2" in TasksManager._LIBRARY_TO_TASKS_TO_MODEL_LOADER_MAP
    assert "extractor" in TasksManager._LIBRARY_TO_SUPPORTED_MODEL_TYPES["optimum_gliner2"]
    assert "information-extraction" in TasksManager.get_all_tasks()
    # Wrapped once, not twice.
    assert not hasattr(convert._get_submodels_and_onnx_configs.__gliner2_wrapped__, "__gliner2_wrapped__")
    # Non-GLiNER2 inputs still reach Optimum's own code.
    assert TasksManager.infer_library_from_model.__gliner2_wrapped__ is not None


def test_both_gliner2_architectures_are_recognised_as_loaded_models():
    from types import SimpleNamespace

    from optimum_gliner2.optimum_glue import _is_gliner2_model

    config = SimpleNamespace(model_type="extractor")
    assert _is_gliner2_model(SimpleNamespace(config=config, count_embed=object()))  # span (gliner2-*-v1)
    assert _is_gliner2_model(SimpleNamespace(config=config, boundary_head=object()))  # boundary (GLiNER2.5)
    assert not _is_gliner2_model(SimpleNamespace(config=config))
    assert not _is_gliner2_model(SimpleNamespace(config=SimpleNamespace(model_type="bert"), boundary_head=object()))
