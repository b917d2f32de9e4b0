"""Export side (needs torch): checkpoint loading, exportable wrappers, ONNX configs, model patcher,
validation against PyTorch, and publishing the finished folder."""

from optimum_gliner2.errors import GLiNER2ExportError
from optimum_gliner2.exporters.loading import GLINER2_TASK, GLiNER2ForOnnxExport
from optimum_gliner2.exporters.modeling import split_into_submodels
from optimum_gliner2.exporters.model_configs import (
    GLiNER2BoundaryHeadOnnxConfig,
    GLiNER2ClassifierOnnxConfig,
    GLiNER2CountEmbedOnnxConfig,
    GLiNER2EncoderOnnxConfig,
    GLiNER2SpanScorerOnnxConfig,
    get_submodels_and_onnx_configs,
)

__all__ = [
    "GLINER2_TASK",
    "GLiNER2BoundaryHeadOnnxConfig",
    "GLiNER2ClassifierOnnxConfig",
    "GLiNER2CountEmbedOnnxConfig",
    "GLiNER2EncoderOnnxConfig",
    "GLiNER2ExportError",
    "GLiNER2ForOnnxExport",
    "GLiNER2SpanScorerOnnxConfig",
    "export_gliner2",
    "get_submodels_and_onnx_configs",
    "split_into_submodels",
]


def export_gliner2(model_name_or_path, output, **kwargs):
    """Export a GLiNER2 checkpoint (span or boundary; local directory or hub id) to `output` with Optimum's main_export.

    Equivalent to `optimum-cli export onnx --model <model_name_or_path> <output>`; keyword arguments
    go to `optimum.exporters.onnx.main_export`.
    """
    from optimum.exporters.onnx import main_export

    return main_export(model_name_or_path, output, **kwargs)
