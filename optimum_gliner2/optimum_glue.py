"""Every touch of Optimum internals lives here (tests/test_optimum_glue.py pins each one).

What GLiNER2 needs from Optimum and which part is official:
- `TasksManager.create_register("onnx")` registers the ONNX config (official).
- A library entry so that `TasksManager.get_model_from_task` loads GLiNER2 checkpoints:
  `_LIBRARY_TO_TASKS_TO_MODEL_LOADER_MAP` and `_LIBRARY_TO_SUPPORTED_MODEL_TYPES` (internal).
- `infer_library_from_model` calls any config.json with an `architecture` key "timm" (gliner2 2.1
  writes one) and `infer_task_from_model` refuses local folders: both are wrapped to recognise
  GLiNER2 first and defer to Optimum otherwise (internal).
- Several ONNX files from one `main_export` call: `optimum.exporters.onnx.convert`'s
  `_get_submodels_and_onnx_configs` is wrapped the same way (internal, the most fragile).
- Atomic exports: `main_export`'s call of `onnx_export_from_model` is wrapped to write into a staging
  folder that is published only after validation (internal).
- `AutoConfig`, `NormalizedConfigManager` and `ORTConfigManager` entries let ORTOptimizer and
  ORTQuantizer accept the exported folder (internal tables).
- `optimum-cli onnxruntime optimize|quantize` on an export: their `run` is wrapped to make the output
  folder loadable (they write graphs and Optimum's configs, not GLiNER2's metadata) (internal).
"""

from __future__ import annotations

import functools
import importlib
import os
import threading
from typing import Any

GLINER2_LIBRARY = "optimum_gliner2"
GLINER2_MODEL_TYPE = "extractor"  # gliner2's ExtractorConfig.model_type, written to config.json
_lock = threading.Lock()
_done = False

#: The Optimum internals this module touches, as (module, attribute) pairs; the glue test pins them.
OPTIMUM_INTERNALS = (
    ("optimum.exporters.tasks", "TasksManager._LIBRARY_TO_TASKS_TO_MODEL_LOADER_MAP"),
    ("optimum.exporters.tasks", "TasksManager._LIBRARY_TO_SUPPORTED_MODEL_TYPES"),
    ("optimum.exporters.tasks", "TasksManager.create_register"),
    ("optimum.exporters.tasks", "TasksManager.infer_library_from_model"),
    ("optimum.exporters.tasks", "TasksManager.infer_task_from_model"),
    ("optimum.exporters.onnx.convert", "_get_submodels_and_onnx_configs"),
    ("optimum.exporters.onnx.__main__", "onnx_export_from_model"),
    ("optimum.utils.normalized_config", "NormalizedConfigManager._conf"),
    ("optimum.onnxruntime.utils", "ORTConfigManager._conf"),
    ("optimum.commands.export.onnx", "ONNXExportCommand.run"),
    ("optimum.commands.onnxruntime.optimize", "ONNXRuntimeOptimizeCommand.run"),
    ("optimum.commands.onnxruntime.quantize", "ONNXRuntimeQuantizeCommand.run"),
)


def _is_gliner2_model(model: Any) -> bool:
    # Span models have a count head, boundary (GLiNER2.5) models a boundary head.
    config = getattr(model, "config", None)
    return getattr(config, "model_type", None) == GLINER2_MODEL_TYPE and (
        hasattr(model, "count_embed") or hasattr(model, "boundary_head")
    )


def _is_gliner2_checkpoint(model_name_or_path: Any, **hub_kwargs: Any) -> bool:
    if not isinstance(model_name_or_path, (str,)) and not hasattr(model_name_or_path, "__fspath__"):
        return False
    from optimum_gliner2.exporters.loading import is_gliner2_config, read_checkpoint_config

    keys = ("subfolder", "revision", "cache_dir", "token")
    return is_gliner2_config(read_checkpoint_config(model_name_or_path, **{k: hub_kwargs.get(k) for k in keys}))


def _wrap_infer_library(original):
    @functools.wraps(original)
    def infer_library_from_model(model, subfolder="", revision=None, cache_dir=None, token=None, **kwargs):
        if _is_gliner2_model(model) or _is_gliner2_checkpoint(
            model, subfolder=subfolder, revision=revision, cache_dir=cache_dir, token=token
        ):
            return GLINER2_LIBRARY
        call = dict(subfolder=subfolder, revision=revision, token=token, **kwargs)
        if cache_dir is not None:
            call["cache_dir"] = cache_dir
        try:
            return original(model, **call)
        except ValueError as error:
            if isinstance(model, str) and os.path.isdir(model):
                from optimum_gliner2.errors import GLiNER2ExportError

                raise GLiNER2ExportError(
                    f"{model} is not a checkpoint Optimum can export: it has no config.json "
                    "(a GLiNER2 checkpoint has one with model_type 'extractor', next to model.safetensors)."
                ) from error
            raise

    infer_library_from_model.__gliner2_wrapped__ = original
    return infer_library_from_model


def _wrap_infer_task(original):
    from optimum_gliner2.exporters.loading import GLINER2_TASK

    @functools.wraps(original)
    def infer_task_from_model(model, subfolder="", revision=None, cache_dir=None, token=None, library_name=None, **kwargs):
        if library_name == GLINER2_LIBRARY or _is_gliner2_model(model) or _is_gliner2_checkpoint(
            model, subfolder=subfolder, revision=revision, cache_dir=cache_dir, token=token
        ):
            return GLINER2_TASK
        call = dict(subfolder=subfolder, revision=revision, token=token, library_name=library_name, **kwargs)
        if cache_dir is not None:
            call["cache_dir"] = cache_dir
        return original(model, **call)

    infer_task_from_model.__gliner2_wrapped__ = original
    return infer_task_from_model


def _wrap_get_submodels(original):
    @functools.wraps(original)
    def _get_submodels_and_onnx_configs(model, task, *args, **kwargs):
        if not _is_gliner2_model(model):
            return original(model, task, *args, **kwargs)
        from optimum_gliner2.exporters.model_configs import get_submodels_and_onnx_configs

        return get_submodels_and_onnx_configs(
            model, task, float_dtype=kwargs.get("float_dtype", "fp32"), preprocessors=kwargs.get("preprocessors")
        )

    _get_submodels_and_onnx_configs.__gliner2_wrapped__ = original
    return _get_submodels_and_onnx_configs


def _wrap_export_from_model(original):
    @functools.wraps(original)
    def onnx_export_from_model(model, output, *args, **kwargs):
        # An export is written into a staging folder and published only once validated, so an
        # interrupted or failed export never leaves (or half-replaces) a loadable folder.
        if not _is_gliner2_model(model):
            return original(model, output, *args, **kwargs)
        if kwargs.get("no_post_process"):
            from optimum_gliner2.errors import GLiNER2ExportError

            # Post-processing is where a GLiNER2 export is validated and gets its metadata; without it the
            # graphs would be left unchecked and unloadable.
            raise GLiNER2ExportError(
                "--no-post-process is not supported for GLiNER2: post-processing validates the graphs against "
                "PyTorch and writes the metadata that makes the folder loadable. Export without it."
            )
        import shutil
        from pathlib import Path

        from optimum_gliner2.bundle.format import publish
        from optimum_gliner2.exporters.publishing import staging_folder_for

        output = Path(output)
        output.mkdir(parents=True, exist_ok=True)  # fail early, naming the user's path, if it cannot be written
        staging = staging_folder_for(output)
        shutil.rmtree(staging, ignore_errors=True)
        try:
            result = original(model, staging, *args, **kwargs)
            publish(staging, output)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return result

    onnx_export_from_model.__gliner2_wrapped__ = original
    return onnx_export_from_model


def register_gliner2_with_optimum() -> None:
    """Make Optimum's exporters, ORTOptimizer and ORTQuantizer accept GLiNER2. Idempotent."""
    global _done
    with _lock:
        if _done:
            return
        _done = True
    import optimum.exporters.onnx.convert as onnx_convert
    onnx_main = importlib.import_module("optimum.exporters.onnx.__main__")
    from optimum.exporters.tasks import TasksManager

    from optimum_gliner2.exporters.loading import GLINER2_TASK
    from optimum_gliner2.exporters.model_configs import GLiNER2EncoderOnnxConfig

    TasksManager._LIBRARY_TO_TASKS_TO_MODEL_LOADER_MAP[GLINER2_LIBRARY] = {GLINER2_TASK: "GLiNER2ForOnnxExport"}
    TasksManager._LIBRARY_TO_SUPPORTED_MODEL_TYPES.setdefault(GLINER2_LIBRARY, {})
    TasksManager.create_register("onnx")(GLINER2_MODEL_TYPE, GLINER2_TASK, library_name=GLINER2_LIBRARY)(
        GLiNER2EncoderOnnxConfig
    )
    TasksManager.infer_library_from_model = staticmethod(_wrap_infer_library(TasksManager.infer_library_from_model))
    TasksManager.infer_task_from_model = staticmethod(_wrap_infer_task(TasksManager.infer_task_from_model))
    onnx_convert._get_submodels_and_onnx_configs = _wrap_get_submodels(onnx_convert._get_submodels_and_onnx_configs)
    onnx_main.onnx_export_from_model = _wrap_export_from_model(onnx_main.onnx_export_from_model)
    register_gliner2_for_onnxruntime()


def register_gliner2_for_onnxruntime() -> None:
    """AutoConfig, NormalizedConfigManager and ORTConfigManager entries for the exported config.json."""
    from gliner2 import ExtractorConfig
    from optimum.utils.normalized_config import NormalizedConfigManager, NormalizedTextConfig
    from transformers import AutoConfig

    try:
        AutoConfig.register(GLINER2_MODEL_TYPE, ExtractorConfig)
    except ValueError:
        pass  # already registered (gliner2 may do it itself in a later release)
    NormalizedConfigManager._conf[GLINER2_MODEL_TYPE] = _normalized_extractor_config(NormalizedTextConfig)
    try:
        from optimum.onnxruntime.utils import ORTConfigManager
    except ImportError:  # optimum-onnx installed without onnxruntime
        return
    # ORT's transformer optimizer fuses the encoder graph by its encoder family (deberta-v2 -> bert).
    ORTConfigManager._conf.setdefault(GLINER2_MODEL_TYPE, "bert")


def _normalized_extractor_config(text_config_class):
    """Optimum's normalized view of gliner2's ExtractorConfig, for ORTOptimizer.

    ExtractorConfig describes the heads, not the encoder: it has no `num_attention_heads` or `hidden_size`,
    and ORTOptimizer passes both to ONNX Runtime's `optimize_model`. 0 tells ONNX Runtime to read them from
    the graph, which is right for every encoder family a GLiNER2 checkpoint can have.
    """

    class NormalizedExtractorConfig(text_config_class):
        num_attention_heads = 0
        hidden_size = 0

    return NormalizedExtractorConfig


def _gliner2_error_in_chain(error: BaseException):
    from optimum_gliner2.errors import GLiNER2ExportError

    while error is not None:
        if isinstance(error, GLiNER2ExportError):
            return error
        error = error.__cause__ or error.__context__
    return None


def install_cli_error_reporting() -> None:
    """Make `optimum-cli export onnx` print GLiNER2 export errors as one clear line and exit 1.

    Called from the `optimum.commands.register` hook at CLI start-up; imports no torch.
    """
    from optimum.commands.export.onnx import ONNXExportCommand

    original_run = ONNXExportCommand.run
    if getattr(original_run, "__gliner2_wrapped__", None):
        return

    @functools.wraps(original_run)
    def run(self):
        try:
            result = original_run(self)
        except Exception as error:
            gliner2_error = _gliner2_error_in_chain(error)
            if gliner2_error is None and isinstance(error, OSError) and error.filename:
                gliner2_error = f"cannot write the export to {error.filename}: {error.strerror}"
            if gliner2_error is None:
                raise
            import sys

            print(f"Error: {gliner2_error}", file=sys.stderr)
            raise SystemExit(1) from error
        _print_export_summary(getattr(self.args, "output", None))
        return result

    run.__gliner2_wrapped__ = original_run
    ONNXExportCommand.run = run


def _print_export_summary(output) -> None:
    """After a GLiNER2 export: its graphs and sizes, the worst validation difference of each, and what next."""
    from pathlib import Path

    from optimum_gliner2.bundle.format import METADATA_FILE, read_metadata

    if output is None or not (Path(output) / METADATA_FILE).is_file():
        return
    folder = Path(output)
    metadata = read_metadata(folder)
    worst: dict = {}
    for record in metadata.get("validation", []):
        worst[record["graph"]] = max(worst.get(record["graph"], 0.0), record["max_abs_diff"])
    shapes = len(metadata.get("validation", []))
    print(f"\nGLiNER2 ({metadata['architecture']}) exported to {folder} and validated against PyTorch at {shapes} shapes:")
    for graph, name in metadata["variants"]["fp32"].items():
        size = metadata["files"][name]["size"] + sum(metadata["files"][name].get("external_data", {}).values())
        print(f"  {name:<24} {size / 1e6:9.1f} MB   max abs diff {worst.get(graph, float('nan')):.1e}")
    print(
        "Next: ORTModelForGLiNER2.from_pretrained(" + repr(str(folder)) + ") (or GLiNER2ONNXRuntime without torch); "
        f"variants: python -m optimum_gliner2.variants {folder} --int8 --fp16"
    )


#: The variant name each `optimum-cli onnxruntime quantize` preset gives (`precision=` at load).
_QUANTIZE_PRESETS = ("arm64", "avx2", "avx512", "avx512_vnni", "ppc64le")


def _optimize_command_variant(args) -> str:
    levels = [level for level in ("O1", "O2", "O3", "O4") if getattr(args, level, False)]
    return levels[0].lower() if levels else "optimized"


def _quantize_command_variant(args) -> str:
    presets = [preset for preset in _QUANTIZE_PRESETS if getattr(args, preset, False)]
    return f"int8_{presets[0]}" if presets else "quantized"


def _wrap_onnxruntime_command(command_class, command: str, suffix: str, variant_of) -> None:
    original_run = command_class.run
    if getattr(original_run, "__gliner2_wrapped__", None):
        return

    @functools.wraps(original_run)
    def run(self):
        from pathlib import Path

        from optimum_gliner2.bundle.format import METADATA_FILE, register_command_output

        result = original_run(self)
        source, output = Path(self.args.onnx_model), Path(self.args.output)
        if (source / METADATA_FILE).is_file():
            variant = variant_of(self.args)
            recipe = {"tool": f"optimum-cli onnxruntime {command}", "suffix": suffix}
            register_command_output(source, output, variant, suffix, recipe)
            print(f"{output}: a GLiNER2 folder whose default variant is {variant!r} (the {suffix} graphs).")
        return result

    run.__gliner2_wrapped__ = original_run
    command_class.run = run


def install_onnxruntime_command_hooks() -> None:
    """Make `optimum-cli onnxruntime optimize|quantize --onnx_model EXPORT -o OUT` leave a loadable OUT.

    Those commands write `<graph>_optimized.onnx` / `<graph>_quantized.onnx` and Optimum's configs; for a GLiNER2
    export the wrapper adds the GLiNER2 metadata, with the command's graphs as OUT's default variant. Called
    from the `optimum.commands.register` hook at CLI start-up; imports no torch.
    """
    from optimum.commands.onnxruntime.optimize import ONNXRuntimeOptimizeCommand
    from optimum.commands.onnxruntime.quantize import ONNXRuntimeQuantizeCommand

    _wrap_onnxruntime_command(ONNXRuntimeOptimizeCommand, "optimize", "optimized", _optimize_command_variant)
    _wrap_onnxruntime_command(ONNXRuntimeQuantizeCommand, "quantize", "quantized", _quantize_command_variant)
