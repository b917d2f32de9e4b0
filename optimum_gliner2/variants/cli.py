"""The command line: `python -m optimum_gliner2.variants OUT [--model CKPT] --int8 --fp16 --optimize O2`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Optional, Sequence

from optimum_gliner2.bundle.format import GLiNER2OnnxBundle
from optimum_gliner2.variants.all_in_one import add_variants, export_all_variants
from optimum_gliner2.variants.int8 import DEFAULT_EMBEDDINGS, EMBEDDING_STORAGES
from optimum_gliner2.variants.optimize import OPTIMIZATION_LEVELS
from optimum_gliner2.variants.registry import optimum_cli_quantized_files, import_variant


def main(argv: Optional[Sequence[str]] = None) -> None:
    """`python -m optimum_gliner2.variants OUT [--model CKPT] --int8 --fp16 --optimize O2`.

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
    parser.add_argument("--embeddings", choices=EMBEDDING_STORAGES, default=DEFAULT_EMBEDDINGS,
                        help=f"Embedding-table storage of the INT8 variant (default {DEFAULT_EMBEDDINGS}).")
    parser.add_argument("--import-optimum-cli", type=Path, metavar="OUT_Q",
                        help="Register the *_quantized.onnx graphs `optimum-cli onnxruntime quantize` wrote to OUT_Q "
                             "as the variant 'int8_optimum_cli'.")  # fmt: skip
    args = parser.parse_args(argv)
    if not (args.int8 or args.fp16 or args.optimize or args.model or args.import_optimum_cli):
        parser.error("nothing to do: pass --int8, --fp16, --optimize, --import-optimum-cli and/or --model.")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    variants = dict(int8=args.int8, fp16=args.fp16, optimize=args.optimize, embeddings=args.embeddings)
    if args.model:
        export_all_variants(args.model, args.folder, **variants)
    else:
        add_variants(args.folder, **variants)
    if args.import_optimum_cli:
        files = optimum_cli_quantized_files(args.folder, args.import_optimum_cli)
        import_variant(args.folder, "int8_optimum_cli", {g: p for g, p in files.items() if p.is_file()})
    precisions = GLiNER2OnnxBundle.load(args.folder).precisions
    print(f"{args.folder}: variants {', '.join(precisions)}")
