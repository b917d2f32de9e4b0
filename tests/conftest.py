"""Session-scoped fixtures: GLiNER2 checkpoints built offline, and their PyTorch models."""

from __future__ import annotations

import os
import sys

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.support.checkpoint_factory import BOUNDARY_TEST_VARIANTS, TEST_VARIANTS, build_checkpoint  # noqa: E402


@pytest.fixture(scope="session")
def checkpoint_dirs(tmp_path_factory) -> dict:
    """Every test variant built once per session: {variant: checkpoint directory}."""
    root = tmp_path_factory.mktemp("checkpoints")
    return {name: build_checkpoint(name, root / name) for name in TEST_VARIANTS}


@pytest.fixture(scope="session")
def torch_models(checkpoint_dirs) -> dict:
    """gliner2's own PyTorch model for each variant, loaded lazily and cached."""
    from gliner2 import GLiNER2

    cache: dict = {}

    class _Models(dict):
        def __missing__(self, name):
            model = GLiNER2.from_pretrained(str(checkpoint_dirs[name]))
            model.eval()
            self[name] = model
            return model

    return _Models(cache)


@pytest.fixture(params=TEST_VARIANTS)
def variant(request) -> str:
    return request.param


def export_with_optimum_cli(checkpoint, output, *options: str) -> None:
    """A plain `optimum-cli export onnx [options] --model <checkpoint> <output>`, as a user runs it."""
    import subprocess

    completed = subprocess.run(
        [sys.executable, "-m", "optimum.commands.optimum_cli", "export", "onnx", *options, "--model", str(checkpoint), str(output)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"optimum-cli export of {checkpoint} failed:\n{completed.stderr[-4000:]}")


@pytest.fixture(scope="session")
def exported_dirs(checkpoint_dirs, tmp_path_factory) -> dict:
    """Each test variant exported with a plain `optimum-cli export onnx` call, once per session, when
    a test first asks for it (a run of a few test files exports only the variants they use)."""
    root = tmp_path_factory.mktemp("exported")

    class _Exports(dict):
        def __missing__(self, name):
            export_with_optimum_cli(checkpoint_dirs[name], root / name)
            self[name] = root / name
            return self[name]

    return _Exports()


# -- GLiNER2.5 (boundary) fixtures ------------------------------------------------------------


@pytest.fixture(scope="session")
def boundary_checkpoint_dirs(tmp_path_factory) -> dict:
    """Every GLiNER2.5 test variant built once per session: {variant: checkpoint directory}."""
    root = tmp_path_factory.mktemp("boundary_checkpoints")
    return {name: build_checkpoint(name, root / name) for name in BOUNDARY_TEST_VARIANTS}


@pytest.fixture(scope="session")
def boundary_models(boundary_checkpoint_dirs) -> dict:
    """gliner2's own GLiNER2.5 model (AutoExtractor -> BoundaryExtractor) per variant, loaded lazily."""
    from gliner2.auto import AutoExtractor

    class _Models(dict):
        def __missing__(self, name):
            model = AutoExtractor.from_pretrained(str(boundary_checkpoint_dirs[name]))
            model.eval()
            self[name] = model
            return model

    return _Models()


@pytest.fixture(params=BOUNDARY_TEST_VARIANTS)
def boundary_variant(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def boundary_exported_dirs(boundary_checkpoint_dirs, tmp_path_factory) -> dict:
    """Every GLiNER2.5 test variant exported once per session with a plain `optimum-cli export onnx`."""
    root = tmp_path_factory.mktemp("boundary_exported")
    exported = {}
    for name, checkpoint in boundary_checkpoint_dirs.items():
        export_with_optimum_cli(checkpoint, root / name)
        exported[name] = root / name
    return exported


@pytest.fixture(scope="session")
def boundary_host_pipelines(boundary_models, boundary_checkpoint_dirs) -> dict:
    """Our host code on gliner2's own modules for each GLiNER2.5 test variant, built when first asked for."""
    from tests.support.torch_backend import torch_pipeline

    class _Pipelines(dict):
        def __missing__(self, name):
            self[name] = torch_pipeline(boundary_models[name], boundary_checkpoint_dirs[name])
            return self[name]

    return _Pipelines()


@pytest.fixture(scope="session")
def boundary_onnx_models(boundary_exported_dirs) -> dict:
    """The ONNX runtime of each GLiNER2.5 test variant, loaded once, when a test first asks for it."""
    from optimum_gliner2.runtime import GLiNER2ONNXRuntime

    class _Models(dict):
        def __missing__(self, name):
            self[name] = GLiNER2ONNXRuntime.from_pretrained(boundary_exported_dirs[name])
            return self[name]

    return _Models()
