"""Ray Data plumbing around `GLiNER2Stage`: the map step with its resources, reading documents,
and writing results so that a re-run replaces the previous output instead of adding to it."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Type, Union

from optimum_gliner2.ray.stage import ERROR_COLUMN, GLiNER2Stage, Providers, check_schema, uses_gpu
from optimum_gliner2.runtime.checks import check_positive
from optimum_gliner2.runtime.schema import Schema

#: A file in every output folder this package writes: what made it, and how many rows and errors.
#: A folder without it is never replaced.
OUTPUT_MANIFEST = "_gliner2_ray.json"
logger = logging.getLogger(__name__)

#: File suffixes of each input format `read_documents` knows.
INPUT_SUFFIXES: Dict[str, tuple] = {
    "parquet": (".parquet", ".pq"),
    "json": (".jsonl", ".json", ".ndjson"),
    "text": (".txt",),
}
#: How often a batch is retried when its actor dies (a node lost, a worker killed for memory).
#: Finite: a document that crashes the process every time must not keep the job alive forever.
DEFAULT_MAX_TASK_RETRIES = 3


def import_ray() -> Any:
    """`ray` with Ray Data, or an ImportError naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"optimum_gliner2.ray needs Ray Data ({error}); install it with: pip install \"optimum-gliner2[ray]\""
        ) from error
    return ray


def extract_dataset(
    dataset: Any,
    model: Union[str, os.PathLike],
    schema: Union[Schema, Mapping[str, Any]],
    *,
    num_actors: int = 1,
    cpus_per_actor: float = 1,
    gpus_per_actor: Optional[float] = None,
    rows_per_batch: int = 64,
    max_task_retries: int = DEFAULT_MAX_TASK_RETRIES,
    stage_class: Type[GLiNER2Stage] = GLiNER2Stage,
    **stage_options: Any,
) -> Any:
    """`dataset` with GLiNER2's answers added to every row (lazily: nothing runs until it is consumed).

    Args:
        dataset (`ray.data.Dataset`):
            Rows with a text column (`text_column`, default `"text"`).
        model (`str` or `os.PathLike`):
            An exported folder or hub id, as every worker sees it (shared storage on a cluster).
        schema (`Schema` or `dict`):
            The schema of every document; checked here, before any actor starts.
        num_actors (`int`, defaults to 1):
            Actors, each holding one copy of the model.
        cpus_per_actor (`float`, defaults to 1):
            CPUs Ray reserves for each actor (less where the actors would take every CPU of the
            cluster, see `actor_cpu_reservation`); also its ONNX Runtime threads unless `stage_options`
            sets `intra_op_threads`.
        gpus_per_actor (`float`, *optional*):
            GPUs per actor; 1 when None and the providers include CUDA or TensorRT, else 0.
        rows_per_batch (`int`, defaults to 64):
            Rows per stage call (Ray Data's `batch_size`); the encoder takes `batch_size` of them at a time.
        max_task_retries (`int`, defaults to 3):
            Retries of a batch whose actor died; the actor itself is restarted without limit.
        stage_class (`type`, defaults to `GLiNER2Stage`):
            The stage, or a subclass of it (e.g. one that adds columns).
        stage_options:
            Keyword arguments of the stage: `text_column`, `precision`, `providers`, `batch_size`,
            `threshold`, `include_confidence`, `include_spans`, `long_document_words`, ...

    Returns:
        `ray.data.Dataset`: every input column, plus `gliner2` and `gliner2_error`.

    Raises:
        GLiNER2InputError: A bad schema or option.
    """
    ray = import_ray()
    if not ray.is_initialized():  # Ray Data would start it on the first run; the CPU count is needed now
        ray.init()
    check_positive(num_actors, "num_actors")
    check_positive(rows_per_batch, "rows_per_batch")
    decode_options = ("threshold", "include_confidence", "include_spans", "overlap_policy")
    check_schema(schema, **{name: stage_options[name] for name in decode_options if name in stage_options})
    providers: Optional[Providers] = stage_options.get("providers")
    if gpus_per_actor is None:
        gpus_per_actor = 1 if uses_gpu(providers) else 0
    stage_options.setdefault("intra_op_threads", max(1, round(cpus_per_actor)))
    return dataset.map_batches(
        stage_class,
        fn_constructor_kwargs={"model": os.fspath(model), "schema": schema, **stage_options},
        batch_format="pyarrow",
        batch_size=rows_per_batch,
        compute=ray.data.ActorPoolStrategy(size=num_actors),
        num_cpus=actor_cpu_reservation(num_actors, cpus_per_actor, ray.cluster_resources().get("CPU", 0)),
        num_gpus=gpus_per_actor,
        max_restarts=-1,
        max_task_retries=max_task_retries,
    )


def actor_cpu_reservation(num_actors: int, cpus_per_actor: float, cluster_cpus: float) -> float:
    """The CPUs each actor reserves in Ray: `cpus_per_actor`, or less so that one CPU stays free.

    Ray Data lists, reads and writes files in tasks of one CPU each. When the actors reserve every CPU
    of the cluster, those tasks never start and the job waits forever, so the actors' reservation is
    lowered to share `cluster_cpus - 1` between them. A reservation is only Ray's bookkeeping: each
    actor still runs its ONNX Runtime threads.
    """
    if cluster_cpus - num_actors * cpus_per_actor >= 1:
        return cpus_per_actor
    shared = max(0.0, (cluster_cpus - 1) / num_actors)
    logger.warning(
        "%d actors x %g CPUs would leave Ray Data no CPU to read and write files on this %g-CPU cluster; "
        "each actor reserves %.2f CPUs instead (its threads are unchanged)",
        num_actors, cpus_per_actor, cluster_cpus, shared,
    )  # fmt: skip
    return shared


def input_format(paths: Sequence[Union[str, os.PathLike]]) -> str:
    """The one format (`"parquet"`, `"json"` or `"text"`) of `paths`, from their file suffixes.

    A local folder's format is that of the files in it; a remote URI (`s3://...`) must end with a
    known suffix, or the format must be given explicitly.

    Raises:
        ValueError: A local path that does not exist, an unknown suffix, or several formats.
    """
    suffixes = set()
    for path in paths:
        text = os.fspath(path)
        local = Path(text)
        if "://" not in text and not local.exists():
            raise ValueError(f"input {text} does not exist")
        if local.is_dir():
            suffixes.update(child.suffix.lower() for child in local.rglob("*") if child.is_file() and not child.name.startswith((".", "_")))
        else:
            suffixes.add(Path(text).suffix.lower())
    formats = {name for name, known in INPUT_SUFFIXES.items() if suffixes & set(known)}
    unknown = sorted(suffix for suffix in suffixes if not any(suffix in known for known in INPUT_SUFFIXES.values()))
    if unknown or len(formats) != 1:
        known = ", ".join(f"{name}: {' '.join(endings)}" for name, endings in INPUT_SUFFIXES.items())
        found = sorted(suffixes) or ["no files"]
        raise ValueError(f"cannot tell one input format from {found}; give --input-format, or inputs ending in ({known})")
    return formats.pop()


def read_documents(paths: Sequence[Union[str, os.PathLike]], file_format: Optional[str] = None) -> Any:
    """A `ray.data.Dataset` of the documents in `paths` (files or folders, all of one format).

    Parquet and JSON Lines keep their columns; text files give one row per line, in a `text` column.

    Raises:
        ValueError: See `input_format`.
    """
    ray = import_ray()
    file_format = file_format or input_format(paths)
    sources = [os.fspath(path) for path in paths]
    extensions = [suffix.lstrip(".") for suffix in INPUT_SUFFIXES[file_format]]
    if file_format == "parquet":
        return ray.data.read_parquet(sources, file_extensions=extensions)
    if file_format == "json":
        return ray.data.read_json(sources, file_extensions=extensions)
    return ray.data.read_text(sources, file_extensions=extensions)


def write_results(dataset: Any, output: Union[str, os.PathLike], manifest: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Write `dataset` as Parquet into the folder `output`, replacing what a previous run wrote there.

    The files go to a hidden sibling folder first, which replaces `output` only once every file is
    written: an interrupted run leaves the previous output as it was, and a re-run never adds rows to
    it. `output` must be on storage that the driver and every worker see at the same path.

    Args:
        dataset (`ray.data.Dataset`): What to write (this runs the pipeline).
        output (`str` or `os.PathLike`): The output folder.
        manifest (`dict`, *optional*): More entries for the folder's `_gliner2_ray.json`.

    Returns:
        The manifest written: `rows`, `errors` (rows with a `gliner2_error`), `seconds`, and `manifest`'s entries.

    Raises:
        FileExistsError: `output` exists and is a file, or a non-empty folder that this package did not write.
    """
    output = Path(output).absolute()
    refuse_foreign_output(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    for leftover in output.parent.glob(f".{output.name}.*-*"):  # from a run that was killed
        shutil.rmtree(leftover, ignore_errors=True)
    token = uuid.uuid4().hex[:12]
    staging = output.parent / f".{output.name}.partial-{token}"
    started = time.perf_counter()
    dataset.write_parquet(str(staging))
    staging.mkdir(exist_ok=True)  # an empty dataset writes no file
    written = {**(manifest or {}), **count_results(staging), "seconds": round(time.perf_counter() - started, 2)}
    (staging / OUTPUT_MANIFEST).write_text(json.dumps(written, indent=2, default=str), encoding="utf-8")
    replaced = output.parent / f".{output.name}.replaced-{token}"
    if output.exists():
        output.rename(replaced)
    staging.rename(output)
    shutil.rmtree(replaced, ignore_errors=True)
    return written


def refuse_foreign_output(output: Path) -> None:
    """Refuse to replace a file, or a non-empty folder without this package's manifest."""
    if output.is_file():
        raise FileExistsError(f"output {output} is a file; give a folder")
    if output.is_dir() and any(output.iterdir()) and not (output / OUTPUT_MANIFEST).is_file():
        raise FileExistsError(
            f"output {output} is a non-empty folder that optimum_gliner2.ray did not write (no {OUTPUT_MANIFEST}); "
            "give a new or empty folder, so that no one's files are replaced"
        )


def count_results(folder: Path) -> Dict[str, int]:
    """Rows and rows with an error in the Parquet files of `folder`."""
    import pyarrow.parquet as pq

    rows = errors = 0
    for path in sorted(folder.glob("*.parquet")):
        table = pq.read_table(path, columns=[ERROR_COLUMN])
        rows += table.num_rows
        errors += table.num_rows - table.column(ERROR_COLUMN).null_count
    return {"rows": rows, "errors": errors}

