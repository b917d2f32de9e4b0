"""INT8, FP16 and graph-optimized variants of an exported GLiNER2 folder, side by side with FP32.

Each function adds one variant to a folder written by `optimum-cli export onnx` and registers it in
`gliner2_onnx.json` (through `optimum_gliner2.bundle.format`), so
`ORTModelForGLiNER2.from_pretrained(folder, precision="int8")` (or `GLiNER2ONNXRuntime`) can pick it.
Only the encoder changes by default: the span, count and classifier heads are small and the variants
share the FP32 head files. An interrupted run leaves the folder loadable, without the new variant
(see `registry`).

| variant | made by | what changes |
|---|---|---|
| `int8` | our per-row graph pass to ORT's u8 x s8 MatMulIntegerToFloat (`method="per_row_integer"`, the default on x86 with VNNI and on ARM), ONNX Runtime's MatMulNBits quantizer (`method="per_row"`, the default on x86 without VNNI), or Optimum `ORTQuantizer` dynamic (`method="dynamic"`) | encoder Linear weights INT8 (per output column / per block of 32 inputs / per channel), activations per row with its own zero point / per row and block / per call, embedding table per `embeddings`; the two per-row methods quantize the `fused` encoder where it has DeBERTa attention |
| `fp16` | onnxconverter-common, `keep_io_types=True` | encoder Linear weights and embedding table FP16, the rest FP32 |
| `o1` `o2` `o3` | Optimum `ORTOptimizer` | encoder graph fused at that level (deberta-v2 and BERT use ORT's "bert" fusions) |
| `fused` | our graph pass (`fused_attention`) | DeBERTa's attention core in ORT's `com.microsoft.MultiHeadAttention`, the disentangled terms as its `attention_bias`; DeBERTa encoders only |
| `shapes` | our graph pass (`shape_folding`) | FP32 encoder with its static shape values folded (constants, computed once, constant reshape targets); standard ONNX ops only |

Modules: `registry` (the transaction: staging, installing, registering; `import_variant`), `graphs`
(graph queries shared by the variants and the agreement report), `int8`, `fp16`, `optimize`, `fused_attention`, `shape_folding`,
`all_in_one` (`add_variants`, `export_all_variants`) and `cli` (`python -m optimum_gliner2.variants`).
None imports torch; the exporters are imported only by `export_all_variants`.
"""

from optimum_gliner2.variants.all_in_one import add_variants, export_all_variants
from optimum_gliner2.variants.fp16 import convert_gliner2_to_fp16, fp16_node_names
from optimum_gliner2.variants.fused_attention import NoDebertaAttentionError, fuse_attention_gliner2
from optimum_gliner2.variants.graphs import (
    embedding_rows,
    load_without_identities,
    weight_matmul_nodes,
    word_embedding_gather,
)
from optimum_gliner2.variants.int8 import (
    DEFAULT_BLOCK_SIZE,
    DEFAULT_EMBEDDINGS,
    DEFAULT_METHOD,
    EMBEDDING_STORAGES,
    INT8_METHODS,
    QUANTIZATION_TARGETS,
    default_method,
    quantize_gliner2,
)
from optimum_gliner2.variants.optimize import OPTIMIZATION_LEVELS, optimize_gliner2
from optimum_gliner2.variants.registry import optimum_cli_quantized_files, import_variant
from optimum_gliner2.variants.shape_folding import ShapeFoldingError, fold_static_shapes

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "DEFAULT_EMBEDDINGS",
    "DEFAULT_METHOD",
    "INT8_METHODS",
    "EMBEDDING_STORAGES",
    "NoDebertaAttentionError",
    "OPTIMIZATION_LEVELS",
    "optimum_cli_quantized_files",
    "QUANTIZATION_TARGETS",
    "default_method",
    "ShapeFoldingError",
    "add_variants",
    "convert_gliner2_to_fp16",
    "embedding_rows",
    "export_all_variants",
    "fold_static_shapes",
    "fp16_node_names",
    "fuse_attention_gliner2",
    "import_variant",
    "load_without_identities",
    "optimize_gliner2",
    "quantize_gliner2",
    "weight_matmul_nodes",
    "word_embedding_gather",
]
