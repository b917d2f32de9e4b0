"""The command line: `python -m optimum_gliner2.variants OUT [--model CKPT] --int8 --fp16 --optimize O2 --fused-attention --fold-shapes`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Optional, Sequence

from optimum_gliner2.bundle.format import GLiNER2OnnxBundle
from optimum_gliner2.variants.all_in_one import add_variants, export_all_variants
from optimum_gliner2.variants.fused_attention import NoDebertaAttentionError
from optimum_gliner2.variants.int8 import DEFAULT_EMBEDDINGS, DEFAULT_METHOD, EMBEDDING_STORAGES, INT8_METHODS
from optimum_gliner2.variants.optimize import OPTIMIZATION_LEVELS
from optimum_gliner2.variants.registry import optimum_cli_quantized_files, import_variant


def main(argv: Optional[Sequence[str]] = None) -> None:
    """`python -m optimum_gliner2.variants OUT [--model CKPT] --int8 --fp16 --optimize O2 --fused-attention --fold-shapes`.

    Args:
        argv: The arguments, without the program name; defaults to `sys.argv[1:]`.
    """
    parser = argparse.ArgumentParser(
        prog="python -m optimum_gliner2.variants",
        description="Add INT8 / FP16 / optimized variants to a GLiNER2 ONNX export (in place).",
    )
    parser.add_argument("folder", type=Path, help="The export folder (written by optimum-cli export onnx).")
    parser.add_argument("--model", help="Export this GLiNER2 checkpoint into FOLDER first.")
    parser.add_argument("--int8", action="store_true", help="Add the 'int8' variant.")
    parser.add_argument("--fp16", action="store_true", help="Add the 'fp16' variant.")
    parser.add_argument("--optimize", choices=OPTIMIZATION_LEVELS, help="Add an optimized variant ('o1', 'o2', 'o3').")
    parser.add_argument("--fused-attention", action="store_true",
                        help="Add the 'fused' variant: DeBERTa attention in ONNX Runtime's fused MultiHeadAttention "
                             "(DeBERTa-v2/v3 encoders only; BERT-family encoders get ORT's fusion from --optimize O2).")  # fmt: skip
    parser.add_argument("--fold-shapes", action="store_true",
                        help="Add the 'shapes' variant: the FP32 encoder with its static shape values folded "
                             "(fewer Shape/Gather/Concat ops per call; standard ONNX ops only).")  # fmt: skip
    parser.add_argument("--int8-method", choices=INT8_METHODS, default=DEFAULT_METHOD,
                        help="How --int8 quantizes the Linear layers (default: per_row_integer on x86 CPUs with VNNI "
                             "and on ARM, per_row elsewhere; both batch-independent).")
    parser.add_argument("--int8-reduce-range", action="store_true",
                        help="With --int8-method per_row_integer: 7-bit weights, exact on AVX2 CPUs without VNNI "
                             "(costs answers on VNNI CPUs; see the README).")  # fmt: skip
    parser.add_argument("--int8-plain-attention", action="store_true",
                        help="Quantize the exported encoder as it is, rather than the fused-attention encoder that "
                             "--int8 quantizes by default where the encoder has DeBERTa attention.")  # fmt: skip
    parser.add_argument("--embeddings", choices=EMBEDDING_STORAGES, default=DEFAULT_EMBEDDINGS,
                        help=f"Embedding-table storage of the INT8 variant (default {DEFAULT_EMBEDDINGS}).")
    parser.add_argument("--import-optimum-cli", type=Path, metavar="OUT_Q",
                        help="Register the *_quantized.onnx graphs `optimum-cli onnxruntime quantize` wrote to OUT_Q "
                             "as a variant of FOLDER (named by --variant-name).")  # fmt: skip
    parser.add_argument("--variant-name", default="int8_optimum_cli",
                        help="Name of the variant --import-optimum-cli registers (default int8_optimum_cli).")
    args = parser.parse_args(argv)
    if not (args.int8 or args.fp16 or args.optimize or args.fused_attention or args.fold_shapes or args.model or args.import_optimum_cli):
        parser.error("nothing to do: pass --int8, --fp16, --optimize, --fused-attention, --fold-shapes, --import-optimum-cli and/or --model.")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    variants = dict(
        int8=args.int8,
        fp16=args.fp16,
        optimize=args.optimize,
        fused_attention=args.fused_attention,
        fold_shapes=args.fold_shapes,
        embeddings=args.embeddings,
        int8_method=args.int8_method,
        int8_reduce_range=args.int8_reduce_range,
        int8_fused_attention=False if args.int8_plain_attention else None,
    )
    try:
        if args.model:
            export_all_variants(args.model, args.folder, **variants)
        else:
            add_variants(args.folder, **variants)
    except NoDebertaAttentionError as error:
        parser.exit(1, f"Error: {error}\n")
    if args.import_optimum_cli:
        files = optimum_cli_quantized_files(args.folder, args.import_optimum_cli)
        found = {graph: path for graph, path in files.items() if path.is_file()}
        if not found:
            parser.error(
                f"--import-optimum-cli: {args.import_optimum_cli} holds none of "
                f"{sorted(path.name for path in files.values())}; point it at the -o folder of "
                f"`optimum-cli onnxruntime quantize --onnx_model {args.folder} -o OUT_Q`."
            )
        import_variant(args.folder, args.variant_name, found)
    precisions = GLiNER2OnnxBundle.load(args.folder).precisions
    print(f"{args.folder}: variants {', '.join(precisions)}")
