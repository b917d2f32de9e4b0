"""Register GLiNER2 with Optimum when Optimum's exporters load, without importing them here.

Optimum's exporters import torch. Importing them from `optimum_gliner2/__init__` would make the
torch-free serving core pull torch in, so a post-import hook (PEP 369 style) waits for
`optimum.exporters.onnx.__main__` to finish importing and registers then.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import threading

# main_export lives here; importing it (CLI or Python API) means an export is about to run.
TRIGGER_MODULE = "optimum.exporters.onnx.__main__"
_lock = threading.Lock()
_registered = False


def _register() -> None:
    global _registered
    with _lock:
        if _registered:
            return
        _registered = True
    from optimum_gliner2.optimum_glue import register_gliner2_with_optimum

    register_gliner2_with_optimum()


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps the real loader of TRIGGER_MODULE to register afterwards."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != TRIGGER_MODULE:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        original_exec = spec.loader.exec_module

        def exec_then_register(module):
            original_exec(module)
            _register()

        spec.loader.exec_module = exec_then_register
        return spec


def register_when_optimum_loads() -> None:
    """Register now if Optimum's exporters are loaded, otherwise as soon as they are."""
    if TRIGGER_MODULE in sys.modules:
        _register()
        return
    if not any(isinstance(finder, _RegisterAfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport())
