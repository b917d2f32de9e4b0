"""`python -m optimum_gliner2.ray`: GLiNER2 over a corpus with Ray Data, on this machine or a cluster.

    python -m optimum_gliner2.ray --input docs/ --text-column text --schema schema.json \\
        --model gliner2-multi-onnx/ --output results/ [--num-actors N] [--batch-size B] [--address auto]

Without `--address`, it joins the Ray cluster this machine belongs to (RAY_ADDRESS, or one started
with `ray start`) or starts a local one. The output folder holds Parquet files with every input
column plus `gliner2` (JSON) and `gliner2_error`, and `_gliner2_ray.json`; running the command again
replaces it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, List, Optional, Sequence

from optimum_gliner2.bundle.format import GLiNER2OnnxBundle
from optimum_gliner2.errors import GLiNER2InputError, GLiNER2LoadError
from optimum_gliner2.ray.dataset import (
    DEFAULT_MAX_TASK_RETRIES,
    INPUT_SUFFIXES,
    extract_dataset,
    import_ray,
    read_documents,
    refuse_foreign_output,
    write_results,
)
from optimum_gliner2.runtime.checks import check_model_location
from optimum_gliner2.runtime.schema import Schema


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m optimum_gliner2.ray", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--input", nargs="+", required=True, help="Parquet, JSON Lines or text files or folders (one format)")
    parser.add_argument("--input-format", choices=sorted(INPUT_SUFFIXES), help="default: from the file suffixes")
    parser.add_argument("--text-column", default="text", help="column holding the documents (default: text)")
    parser.add_argument("--schema", type=Path, required=True, help="JSON file of the schema, in Schema.from_dict's form")
    parser.add_argument("--model", required=True, help="exported folder (visible to every worker) or hub id")
    parser.add_argument("--output", type=Path, required=True, help="output folder (replaced by each run)")
    parser.add_argument("--num-actors", type=int, default=1, help="actors, each with one copy of the model (default 1)")
    parser.add_argument("--cpus-per-actor", type=float, default=1, help="CPUs and ONNX Runtime threads per actor (default 1)")
    parser.add_argument("--gpus-per-actor", type=float, default=None, help="default: 1 with CUDA/TensorRT providers, else 0")
    parser.add_argument("--batch-size", type=int, default=64, help="rows per stage call (default 64)")
    parser.add_argument("--encoder-batch-size", type=int, default=8, help="texts per encoder call (default 8)")
    parser.add_argument("--address", default=None, help="Ray cluster address, e.g. auto (default: join or start one)")
    parser.add_argument("--precision", default=None, help="variant of the export, e.g. int8 or fp16 (default fp32)")
    parser.add_argument("--providers", nargs="+", default=None, help="ONNX Runtime providers, e.g. CUDAExecutionProvider")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--include-confidence", action="store_true")
    parser.add_argument("--include-spans", action="store_true")
    parser.add_argument(
        "--long-document-words", type=int, default=None,
        help="documents with more words go through batch_extract_long (default: none; over-long ones get an error)",
    )  # fmt: skip
    parser.add_argument("--chunk-size", type=int, default=384, help="words per chunk of long documents (default 384)")
    parser.add_argument("--chunk-overlap", type=int, default=64, help="words shared by adjacent chunks (default 64)")
    parser.add_argument("--max-task-retries", type=int, default=DEFAULT_MAX_TASK_RETRIES, help="retries of a batch whose actor died")
    return parser.parse_args(argv)


def load_schema(path: Path) -> Schema:
    """The schema in `path` (JSON in the form of `Schema.from_dict`, i.e. of gliner2's `Schema.to_dict`)."""
    try:
        return Schema.from_json(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise GLiNER2InputError(f"cannot read the schema file {path}: {error}") from error
    except (ValueError, TypeError) as error:
        raise GLiNER2InputError(f"the schema file {path} is not a valid schema: {error}") from error


def run(args: argparse.Namespace) -> dict:
    """Check the arguments, run the job and write the output; returns the output's manifest."""
    schema = load_schema(args.schema)
    folder = check_model_location(args.model)
    if folder is not None:  # a hub id is downloaded by each actor; a folder can be checked now
        GLiNER2OnnxBundle.load(folder, precision=args.precision)
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]+:/", str(args.output)):  # Path turns "s3://b" into "s3:/b"
        raise GLiNER2InputError(
            f"--output {args.output} must be a folder path (local, or shared storage mounted on every node): the "
            "output is replaced by renaming folders; for object storage call extract_dataset(...).write_parquet(uri)"
        )
    output = args.output.absolute()
    for source in args.input:
        if "://" not in source and output in (Path(source).absolute(), *Path(source).absolute().parents):
            raise GLiNER2InputError(f"the output folder {output} contains the input {source}; choose another output")
    refuse_foreign_output(output)

    ray = import_ray()
    ray.init(address=args.address, log_to_driver=True)
    try:
        documents = read_documents(args.input, args.input_format)
        results = extract_dataset(
            documents,
            args.model,
            schema,
            num_actors=args.num_actors,
            cpus_per_actor=args.cpus_per_actor,
            gpus_per_actor=args.gpus_per_actor,
            rows_per_batch=args.batch_size,
            max_task_retries=args.max_task_retries,
            text_column=args.text_column,
            precision=args.precision,
            providers=args.providers,
            batch_size=args.encoder_batch_size,
            threshold=args.threshold,
            include_confidence=args.include_confidence,
            include_spans=args.include_spans,
            long_document_words=args.long_document_words,
            chunk_size=args.chunk_size,
            chunk_overlap=args.chunk_overlap,
        )
        manifest = {
            "input": list(args.input),
            "text_column": args.text_column,
            "model": args.model,
            "precision": args.precision or "fp32",
            "schema": schema.to_dict(),
            "num_actors": args.num_actors,
        }
        return write_results(results, output, manifest)
    finally:
        ray.shutdown()


def main(argv: Optional[List[str]] = None) -> Any:
    args = parse_args(argv)
    try:
        manifest = run(args)
    except (GLiNER2InputError, GLiNER2LoadError, FileExistsError, ValueError, ImportError) as error:
        print(f"Error: {error}", file=sys.stderr)
        sys.exit(1)
    summary = {key: manifest[key] for key in ("rows", "errors", "seconds")}
    print(f"wrote {args.output}: {json.dumps(summary)}")
    return manifest


if __name__ == "__main__":
    main()
