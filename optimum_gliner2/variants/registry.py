"""The variant transaction: prepare the folder, stage the new graphs, move them into place, register.

Crash safety: a variant's graphs are written to a staging folder inside the export and moved into
place before the metadata names them; the metadata is written last, atomically, by
`optimum_gliner2.bundle.format`. A run that is interrupted leaves the folder loadable, without the
new variant. Re-making an existing variant first unregisters it, so the metadata never vouches for a
file being rewritten.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional

from optimum_gliner2.bundle.format import (
    DEFAULT_PRECISION,
    GLiNER2OnnxBundle,
    exported_graph_files,
    external_data_files,
    read_metadata,
    with_variant,
    without_variant,
    write_metadata,
)

logger = logging.getLogger(__name__)

#: Prefix of the staging folders inside an export; a killed run may leave one, which nothing references.
STAGING_PREFIX = ".staging-"


def optimum_cli_quantized_files(folder: Path, quantized_dir: Path) -> Dict[str, Path]:
    """{graph: file} that `optimum-cli onnxruntime quantize --onnx_model folder -o quantized_dir` writes
    for each graph of the export in `folder` (it names each `<graph>_quantized.onnx`)."""
    return {graph: Path(quantized_dir) / f"{graph}_quantized.onnx" for graph in read_metadata(folder)["graphs"]}


def prepare_folder(folder: os.PathLike | str, output_dir: Optional[os.PathLike | str]) -> Path:
    """The folder to modify: `folder` itself, or a fresh copy at `output_dir`; checked loadable.

    Raises:
        GLiNER2LoadError: If `folder` is not a complete, untampered export.
        FileExistsError: If `output_dir` exists and is not empty.
    """
    folder = Path(folder)
    GLiNER2OnnxBundle.load(folder)  # refuses incomplete or tampered exports before anything is written
    if output_dir is None:
        return folder
    output_dir = Path(output_dir)
    if output_dir.exists() and any(output_dir.iterdir()):
        raise FileExistsError(f"{output_dir} exists and is not empty; pass a new folder to copy the export into.")
    shutil.copytree(folder, output_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns(f"{STAGING_PREFIX}*"))
    return output_dir


def fp32_graph_paths(folder: Path) -> Dict[str, Path]:
    """{graph: path} of the exported (FP32) graphs of `folder`, the input of every variant."""
    graphs = exported_graph_files(read_metadata(folder))
    return {graph: folder / file for graph, file in graphs.items()}


class VariantStaging:
    """A staging folder inside the export: tools write there, `install` moves the results into place.

    Staging inside the export keeps the final moves on one file system, where `os.replace` is atomic.
    Used as a context manager, it removes the staging folder whatever happens.
    """

    def __init__(self, folder: Path, variant: str):
        if variant == DEFAULT_PRECISION:
            # `with_variant` refuses it too, but only after the (long) work; fail before any.
            raise ValueError(f"{DEFAULT_PRECISION!r} is the exported model itself; choose another variant name.")
        self.folder = folder
        self.variant = variant
        self.path = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{variant}-", dir=folder))

    def __enter__(self) -> "VariantStaging":
        return self

    def __exit__(self, *exc_info) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def file_name(self, graph: str) -> str:
        """The file name of this variant's `graph`, in the staging folder and in the export."""
        return f"{graph}_{self.variant}.onnx"

    def install(self, new_graphs: Iterable[str], recipe: Mapping[str, Any]) -> None:
        """Move the staged graphs of `new_graphs` into the folder and register the variant.

        Graphs not in `new_graphs` reuse the FP32 files.
        """
        if self.variant in read_metadata(self.folder)["variants"]:
            # Unregister first: the files about to be replaced must never be vouched for mid-rewrite.
            write_metadata(self.folder, without_variant(read_metadata(self.folder), self.variant))
        graph_files = {graph: self.file_name(graph) for graph in new_graphs}
        for name in graph_files.values():
            for staged in [self.path / name, *external_data_files(self.path, name)]:
                os.replace(staged, self.folder / staged.name)
        metadata = with_variant(read_metadata(self.folder), self.folder, self.variant, graph_files, recipe)
        write_metadata(self.folder, metadata)
        registered = metadata["variants"][self.variant]
        logger.info("Registered the %r variant in %s: %s", self.variant, self.folder, registered)


def import_variant(
    folder: os.PathLike | str,
    variant: str,
    graph_files: Mapping[str, os.PathLike | str],
    recipe: Optional[Mapping[str, Any]] = None,
) -> Path:
    """Register ONNX graphs made by another tool as a variant of an export, in place.

    Makes e.g. the output of `optimum-cli onnxruntime quantize --onnx_model OUT -o OUT_Q --avx2`
    loadable with `precision=variant` (that command writes no `gliner2_onnx.json`, so OUT_Q alone is
    not a GLiNER2 export). Graphs not in `graph_files` reuse the FP32 files.

    Args:
        folder: A folder written by `optimum-cli export onnx`.
        variant: Name under which the variant is registered.
        graph_files: Graph name (one of the export's `graphs`, e.g. `"encoder"`) -> ONNX file
            (without external data).
        recipe: How the graphs were made, stored in the metadata for the record.

    Returns:
        The folder.

    Raises:
        ValueError: If `graph_files` names a graph GLiNER2 exports do not have, or `variant` is `"fp32"`.
    """
    if not graph_files:
        raise ValueError(f"import_variant({variant!r}) got no graph files: nothing to register.")
    folder = prepare_folder(folder, None)
    known = read_metadata(folder)["graphs"]
    unknown = set(graph_files) - set(known)
    if unknown:
        # Checked before copying: an unknown graph's file would otherwise be moved into the folder.
        raise ValueError(f"Unknown graph names {sorted(unknown)}; this export has {known}.")
    with VariantStaging(folder, variant) as staging:
        for graph, path in graph_files.items():
            shutil.copyfile(path, staging.path / staging.file_name(graph))
        sources = {graph: str(path) for graph, path in graph_files.items()}
        staging.install(list(graph_files), {"tool": "imported", "sources": sources, **(recipe or {})})
    return folder
