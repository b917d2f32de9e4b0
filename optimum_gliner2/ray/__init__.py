"""GLiNER2 over a corpus with Ray Data (`pip install "optimum-gliner2[ray]"`).

`GLiNER2Stage` is a callable class for `Dataset.map_batches` that runs the torch-free ONNX runtime in
each actor; `extract_dataset` applies it with the right resources and fault tolerance;
`python -m optimum_gliner2.ray` runs a whole job from files to a Parquet folder. See docs/ray.md.

Importing this package does not import Ray; `extract_dataset` and the command do.
"""

from optimum_gliner2.ray.dataset import OUTPUT_MANIFEST, extract_dataset, read_documents, write_results
from optimum_gliner2.ray.stage import ERROR_COLUMN, RESULT_COLUMN, GLiNER2Stage, check_schema

__all__ = [
    "ERROR_COLUMN",
    "GLiNER2Stage",
    "OUTPUT_MANIFEST",
    "RESULT_COLUMN",
    "check_schema",
    "extract_dataset",
    "read_documents",
    "write_results",
]
