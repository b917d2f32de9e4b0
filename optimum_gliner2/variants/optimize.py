"""Graph-optimized encoder variants (`o1`, `o2`, `o3`) made with Optimum's `ORTOptimizer`.

`optimum-cli onnxruntime optimize` cannot do this on an export: it reads `num_attention_heads` from
config.json, which is gliner2's ExtractorConfig and has none (see `_encoder_config`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from optimum_gliner2.bundle.format import read_metadata
from optimum_gliner2.variants.registry import VariantStaging, fp32_graph_paths, prepare_folder

OPTIMIZATION_LEVELS = ("O1", "O2", "O3")


def _encoder_config(folder: Path):
    """A transformers config of the encoder family, enough for ORTOptimizer.

    The folder's config.json is gliner2's ExtractorConfig, which has neither num_attention_heads nor
    hidden_size. ORT's "bert" fusions read both from the graph when given 0, so only the family is needed.
    """
    from transformers import AutoConfig

    encoder_model_type = read_metadata(folder)["encoder_model_type"]
    return AutoConfig.for_model(encoder_model_type, hidden_size=0, num_attention_heads=0)


def optimize_gliner2(
    folder: os.PathLike | str,
    level: str = "O2",
    *,
    variant: Optional[str] = None,
    output_dir: Optional[os.PathLike | str] = None,
) -> Path:
    """Add a graph-optimized encoder variant made with Optimum's `ORTOptimizer`.

    Levels (Optimum's): `"O1"` basic ONNX Runtime rewrites; `"O2"` adds the transformer fusions
    (SkipLayerNorm, BiasGelu, attention where the pattern matches: BERT yes, DeBERTa's disentangled
    attention no); `"O3"` adds the GELU approximation, which changes numbers slightly.

    Args:
        folder: A folder written by `optimum-cli export onnx`.
        level: `"O1"`, `"O2"` or `"O3"`.
        variant: Name under which the variant is registered; defaults to the level in lower case (`"o2"`).
        output_dir: Write into a copy of `folder` at this new path instead of modifying `folder`.

    Returns:
        The folder that now holds the variant.
    """
    from optimum.onnxruntime import ORTOptimizer
    from optimum.onnxruntime.configuration import AutoOptimizationConfig

    if level not in OPTIMIZATION_LEVELS:
        raise ValueError(f"level must be one of {OPTIMIZATION_LEVELS}, got {level!r}.")
    folder = prepare_folder(folder, output_dir)
    variant = variant or level.lower()
    with VariantStaging(folder, variant) as staging:
        encoder = fp32_graph_paths(folder)["encoder"]
        optimizer = ORTOptimizer([encoder], config=_encoder_config(folder))
        # Without ORT's symbolic shape inference: on a full-size encoder it peaks above 16 GB (4 GB without),
        # and the "bert" fusions GLiNER2 encoders get are the same (checked on DeBERTa-v2 and BERT).
        config = getattr(AutoOptimizationConfig, level)(disable_shape_inference=True)
        optimizer.optimize(config, save_dir=staging.path, file_suffix=staging.variant)
        produced = staging.path / f"{encoder.stem}_{variant}.onnx"
        if produced.name != staging.file_name("encoder"):
            os.replace(produced, staging.path / staging.file_name("encoder"))
        fused = ORTOptimizer.get_fused_operators(staging.path / staging.file_name("encoder"))
        staging.install(["encoder"], {"tool": "optimum.onnxruntime.ORTOptimizer", "level": level, "fused": fused})
    return folder
