"""Several variants in one call, and export plus variants in one call."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from optimum_gliner2.variants.fp16 import convert_gliner2_to_fp16
from optimum_gliner2.variants.fused_attention import fuse_attention_gliner2
from optimum_gliner2.variants.int8 import DEFAULT_EMBEDDINGS, DEFAULT_METHOD, quantize_gliner2
from optimum_gliner2.variants.optimize import optimize_gliner2
from optimum_gliner2.variants.shape_folding import fold_static_shapes


def add_variants(
    folder: os.PathLike | str,
    *,
    int8: bool = True,
    fp16: bool = True,
    optimize: Optional[str] = None,
    fused_attention: bool = False,
    fold_shapes: bool = False,
    embeddings: str = DEFAULT_EMBEDDINGS,
    int8_method: Optional[str] = DEFAULT_METHOD,
    int8_reduce_range: bool = False,
    int8_fused_attention: Optional[bool] = None,
) -> Path:
    """Add the INT8, FP16, optimized, fused-attention and/or folded-shapes variants to an exported folder, in place.

    Args:
        folder: A folder written by `optimum-cli export onnx`.
        int8: Add the `"int8"` variant (`quantize_gliner2`).
        fp16: Add the `"fp16"` variant (`convert_gliner2_to_fp16`).
        optimize: Also add an optimized variant at this level (`"O1"`, `"O2"`, `"O3"`; `optimize_gliner2`).
        fused_attention: Also add the `"fused"` variant (`fuse_attention_gliner2`; DeBERTa encoders only, it
            raises `NoDebertaAttentionError` on others, after the variants before it were added).
        fold_shapes: Also add the `"shapes"` variant (`fold_static_shapes`: the FP32 encoder with its static
            shape values folded).
        embeddings: Embedding-table storage of the INT8 variant.
        int8_method: How the INT8 variant quantizes the Linear layers (`quantize_gliner2`'s `method`; None: by
            this CPU, `default_method()`).
        int8_reduce_range: 7-bit weights for `int8_method="per_row_integer"` (`quantize_gliner2`'s `reduce_range`).
        int8_fused_attention: Whether the INT8 variant quantizes the fused-attention encoder (`quantize_gliner2`'s
            `fused_attention`; None: where the encoder has DeBERTa attention).

    Returns:
        The folder.
    """
    folder = Path(folder)
    if int8:
        quantize_gliner2(
            folder, embeddings=embeddings, method=int8_method, reduce_range=int8_reduce_range,
            fused_attention=int8_fused_attention,
        )  # fmt: skip
    if fp16:
        convert_gliner2_to_fp16(folder)
    if optimize:
        optimize_gliner2(folder, optimize)
    if fold_shapes:
        fold_static_shapes(folder)
    if fused_attention:
        fuse_attention_gliner2(folder)
    return folder


def export_all_variants(model_name_or_path: os.PathLike | str, output: os.PathLike | str, **variants: Any) -> Path:
    """Export a GLiNER2 checkpoint to ONNX (as `optimum-cli export onnx` does), then add variants.

    Args:
        model_name_or_path: A GLiNER2 checkpoint folder or hub id.
        output: The export folder to write.
        variants: Keyword arguments of `add_variants` (by default INT8 and FP16).

    Returns:
        The export folder, holding `"fp32"` and the requested variants.
    """
    # Imported here: the exporters pull in torch, which making variants of an existing export never needs.
    from optimum.exporters.onnx import main_export

    from optimum_gliner2.optimum_glue import register_gliner2_with_optimum

    register_gliner2_with_optimum()
    main_export(model_name_or_path=str(model_name_or_path), output=str(output))
    return add_variants(output, **variants)
