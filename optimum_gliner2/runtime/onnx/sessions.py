"""ONNX Runtime sessions of an exported folder, behind the backend interfaces of runtime/backend.py."""

from __future__ import annotations

import ctypes
from functools import lru_cache
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import onnxruntime as ort

from optimum_gliner2.bundle.cpu import full_range_integer_gemm_is_exact
from optimum_gliner2.bundle.format import BOUNDARY, SPAN, GLiNER2OnnxBundle
from optimum_gliner2.errors import GLiNER2LoadError
from optimum_gliner2.runtime.backend import CandidateScores, RecordScores

ProviderSpec = Union[str, Tuple[str, Dict[str, Any]]]

#: The onnxruntime package that brings each execution provider, for the error that names it.
_PROVIDER_PACKAGES = {
    "CUDAExecutionProvider": "onnxruntime-gpu",
    "TensorrtExecutionProvider": "onnxruntime-gpu",
    "OpenVINOExecutionProvider": "onnxruntime-openvino",
    "DmlExecutionProvider": "onnxruntime-directml",
    "ROCMExecutionProvider": "onnxruntime-rocm",
    "MIGraphXExecutionProvider": "onnxruntime-rocm",
    "QNNExecutionProvider": "onnxruntime-qnn",
}


def provider_name(provider: ProviderSpec) -> str:
    """The execution provider's name, whether given as a name or as a `(name, options)` pair."""
    return provider[0] if isinstance(provider, tuple) else provider


def resolve_providers(providers: Optional[Union[ProviderSpec, Sequence[ProviderSpec]]]) -> List[ProviderSpec]:
    """The providers as a list, each one available in this onnxruntime install.

    A single name (`"CPUExecutionProvider"`) or `(name, options)` pair is one provider, as in
    Optimum; `None` is the CPU. ONNX Runtime itself falls back to the CPU, with warnings only, when
    a provider is missing (e.g. CUDA with the CPU-only `onnxruntime` package): the caller asked for
    that device, so both `GLiNER2ONNXRuntime` and `ORTModelForGLiNER2` refuse instead.

    Raises:
        GLiNER2LoadError: A provider is not available, naming the package that brings it and the
            available providers.
    """
    if isinstance(providers, str) or (isinstance(providers, tuple) and len(providers) == 2 and isinstance(providers[1], dict)):
        providers = [providers]
    providers = list(providers or ["CPUExecutionProvider"])
    available = ort.get_available_providers()
    for provider in providers:
        name = provider_name(provider)
        if name in available:
            continue
        if name not in ort.get_all_providers():
            raise GLiNER2LoadError(f"{name!r} is not an ONNX Runtime execution provider; available here: {available}.")
        package = _PROVIDER_PACKAGES.get(name, "an onnxruntime build that includes it")
        raise GLiNER2LoadError(
            f"{name} is not available in this onnxruntime install (onnxruntime {ort.__version__}; available "
            f"providers: {available}). It comes with {package}: install that package in place of "
            "onnxruntime (they cannot be installed side by side), check that its drivers and libraries "
            "are found, or pass providers=['CPUExecutionProvider']."
        )
    return providers

#: Each graph's inputs and outputs: name -> (rank, what its last dimension must equal). Checked at
#: load so that a bundle whose graphs do not match its metadata fails there, not with a wrong answer.
HIDDEN, MAX_COUNT, MAX_WIDTH, DYNAMIC = "hidden_size", "max_count", "max_width", None
SHARED_GRAPH_SIGNATURES = {
    "encoder": ({"input_ids": (2, DYNAMIC), "attention_mask": (2, DYNAMIC)}, {"last_hidden_state": (3, HIDDEN)}),
    "classifier": ({"label_embeddings": (2, HIDDEN)}, {"logits": (1, DYNAMIC)}),
}
SPAN_GRAPH_SIGNATURES = {
    **SHARED_GRAPH_SIGNATURES,
    "count_embed": (
        {"prompt_embeddings": (2, HIDDEN), "field_embeddings": (3, HIDDEN), "max_instances": (1, DYNAMIC)},
        {"count_logits": (2, MAX_COUNT), "queries": (4, HIDDEN)},
    ),
    "span_scorer": ({"word_embeddings": (3, HIDDEN), "queries": (3, HIDDEN)}, {"span_logits": (4, MAX_WIDTH)}),
}
BOUNDARY_GRAPH_SIGNATURES = {
    **SHARED_GRAPH_SIGNATURES,
    "boundary_head": (
        {"text_states": (3, HIDDEN), "text_mask": (2, DYNAMIC), "query_states": (3, HIDDEN), "query_mask": (2, DYNAMIC)},
        {
            "candidates": (3, DYNAMIC),
            "candidate_mask": (2, DYNAMIC),
            "pair_logits": (3, DYNAMIC),
            "null_logits": (2, DYNAMIC),
            "count_log_rates": (2, DYNAMIC),
        },
    ),
    "relation_scorer": (
        {
            "text_states": (3, HIDDEN),
            "relation_roles": (4, HIDDEN),
            "pair_rows": (1, DYNAMIC),
            "pair_relations": (1, DYNAMIC),
            "pair_spans": (2, DYNAMIC),
        },
        {"relation_logits": (1, DYNAMIC)},
    ),
    "explicit_spans": (
        {
            "text_states": (3, HIDDEN),
            "text_mask": (2, DYNAMIC),
            "query_states": (3, HIDDEN),
            "query_mask": (2, DYNAMIC),
            "spans": (4, DYNAMIC),
            "span_mask": (3, DYNAMIC),
        },
        {"span_logits": (3, DYNAMIC), "span_outside_pool": (3, DYNAMIC)},
    ),
    # Only in exports of checkpoints with a record head (bundle/format.py OPTIONAL_GRAPHS).
    "record_head": (
        {
            "text_states": (3, HIDDEN),
            "text_mask": (2, DYNAMIC),
            "query_states": (3, HIDDEN),
            "query_mask": (2, DYNAMIC),
            "field_queries": (3, DYNAMIC),
            "field_mask": (3, DYNAMIC),
            "modes": (2, DYNAMIC),
            "anchor_fields": (2, DYNAMIC),
            "group_mask": (2, DYNAMIC),
        },
        {"object_logits": (3, DYNAMIC), "assign_logits": (5, DYNAMIC), "instance_mask": (3, DYNAMIC), "field_membership": (4, DYNAMIC)},
    ),
}


class OnnxBackend:
    """Runs an exported folder's graphs with ONNX Runtime; a subclass per architecture adds its head.

    Sessions are created once and are safe to call from several threads at the same time
    (ONNX Runtime's `InferenceSession.run` is thread-safe); nothing else here is mutable.
    """

    architecture: str
    graph_signatures: Mapping[str, Any]

    def __init__(
        self,
        bundle: GLiNER2OnnxBundle,
        providers: Optional[Union[ProviderSpec, Sequence[ProviderSpec]]] = None,
        session_options: Optional[ort.SessionOptions] = None,
        provider_options: Optional[Sequence[Dict[str, Any]]] = None,
    ):
        self.bundle = bundle
        self.hidden_size = bundle.hidden_size
        self.providers = resolve_providers(providers)
        _check_integer_gemm_is_exact_here(bundle)
        self.sessions: Dict[str, ort.InferenceSession] = {}
        session_options = _with_runtime_defaults(session_options)
        # ONNX Runtime refuses to shrink an arena that the sessions do not have.
        has_cpu_arena = session_options.enable_cpu_mem_arena and "CPUExecutionProvider" in map(provider_name, self.providers)
        self._run_options = _SHRINK_CPU_ARENA_AFTER_RUN if has_cpu_arena else None
        for graph in bundle.graph_names:
            path = bundle.graph_files[graph]
            try:
                self.sessions[graph] = ort.InferenceSession(
                    str(path), sess_options=session_options, providers=self.providers, provider_options=provider_options
                )
            except Exception as error:  # ORT raises its own exception types for corrupt files
                raise GLiNER2LoadError(f"ONNX Runtime cannot load {path}: {error}") from error
        self._check_signatures()
        self._float_type = {graph: self._input_element_type(graph) for graph in bundle.graph_names}
        _return_freed_heap_to_the_system()

    def _check_signatures(self) -> None:
        expected_sizes = {HIDDEN: self.hidden_size, MAX_COUNT: self.bundle.max_count, MAX_WIDTH: self.bundle.max_width}
        for graph, (inputs, outputs) in self.graph_signatures.items():
            session = self.sessions.get(graph)
            if session is None:  # an optional graph this export does not have
                continue
            for kind, expected, actual in (("inputs", inputs, session.get_inputs()), ("outputs", outputs, session.get_outputs())):
                found = {arg.name: arg.shape for arg in actual}
                if set(found) != set(expected):
                    raise GLiNER2LoadError(
                        f"{self.bundle.graph_files[graph].name} has {kind} {sorted(found)}, expected {sorted(expected)}."
                    )
                for name, (rank, last_dimension) in expected.items():
                    shape = found[name]
                    if len(shape) != rank:
                        raise GLiNER2LoadError(f"{graph}.{name} has rank {len(shape)}, expected {rank}.")
                    size = expected_sizes.get(last_dimension)
                    if size is not None and isinstance(shape[-1], int) and shape[-1] != size:
                        raise GLiNER2LoadError(
                            f"{graph}.{name} ends in a dimension of {shape[-1]}, but the metadata says "
                            f"{last_dimension} {size}."
                        )

    def _input_element_type(self, graph: str) -> type:
        # An FP16 graph exported with keep_io_types still takes float32; a plain FP16 graph takes float16.
        for arg in self.sessions[graph].get_inputs():
            if arg.type == "tensor(float16)":
                return np.float16
        return np.float32

    def _run(self, graph: str, feeds: Mapping[str, np.ndarray]) -> list:
        dtype = self._float_type[graph]
        feeds = {name: value.astype(dtype, copy=False) if value.dtype.kind == "f" else value for name, value in feeds.items()}
        return [
            np.asarray(out, dtype=np.float32) if out.dtype.kind == "f" else out
            for out in self.sessions[graph].run(None, feeds, self._run_options)
        ]

    def encode(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return self._run("encoder", {"input_ids": input_ids, "attention_mask": attention_mask})[0]

    def classify(self, label_embeddings: np.ndarray) -> np.ndarray:
        return self._run("classifier", {"label_embeddings": label_embeddings})[0]


class OnnxSpanBackend(OnnxBackend):
    """The graphs of a span model: encoder, count_embed, classifier, span_scorer."""

    architecture = SPAN
    graph_signatures = SPAN_GRAPH_SIGNATURES

    def __init__(self, bundle: GLiNER2OnnxBundle, **session_arguments: Any):
        super().__init__(bundle, **session_arguments)
        self.max_width = bundle.max_width
        self.max_count = bundle.max_count

    def count_and_queries(self, prompt_embeddings: np.ndarray, field_embeddings: np.ndarray, max_instances: np.ndarray):
        count_logits, queries = self._run(
            "count_embed",
            {"prompt_embeddings": prompt_embeddings, "field_embeddings": field_embeddings, "max_instances": max_instances},
        )
        return count_logits, queries

    def score_spans(self, word_embeddings: np.ndarray, queries: np.ndarray) -> np.ndarray:
        return self._run("span_scorer", {"word_embeddings": word_embeddings, "queries": queries})[0]


class OnnxBoundaryBackend(OnnxBackend):
    """The graphs of a GLiNER2.5 model: encoder, boundary_head, classifier, relation_scorer, explicit_spans."""

    architecture = BOUNDARY
    graph_signatures = BOUNDARY_GRAPH_SIGNATURES

    def __init__(self, bundle: GLiNER2OnnxBundle, **session_arguments: Any):
        super().__init__(bundle, **session_arguments)
        self.boundary_head = bundle.boundary_head

    def score_candidates(
        self, text_states: np.ndarray, text_mask: np.ndarray, query_states: np.ndarray, query_mask: np.ndarray
    ) -> CandidateScores:
        outputs = dict(
            zip(
                [arg.name for arg in self.sessions["boundary_head"].get_outputs()],
                self._run(
                    "boundary_head",
                    {"text_states": text_states, "text_mask": text_mask, "query_states": query_states, "query_mask": query_mask},
                ),
            )
        )
        return CandidateScores(**{name: outputs[name] for name in CandidateScores._fields})

    def score_explicit_spans(self, text_states, text_mask, query_states, query_mask, spans, span_mask):
        feeds = {
            "text_states": text_states,
            "text_mask": text_mask,
            "query_states": query_states,
            "query_mask": query_mask,
            "spans": spans,
            "span_mask": span_mask,
        }
        logits, outside = self._run("explicit_spans", feeds)
        return logits, outside

    @property
    def has_record_head(self) -> bool:
        """Whether the export has the record_head graph (checkpoints with a record head, exported
        since records are decoded)."""
        return "record_head" in self.sessions

    def score_records(
        self, text_states, text_mask, query_states, query_mask, field_queries, field_mask, modes, anchor_fields, group_mask
    ) -> RecordScores:
        feeds = {
            "text_states": text_states,
            "text_mask": text_mask,
            "query_states": query_states,
            "query_mask": query_mask,
            "field_queries": field_queries,
            "field_mask": field_mask,
            "modes": modes,
            "anchor_fields": anchor_fields,
            "group_mask": group_mask,
        }
        names = [arg.name for arg in self.sessions["record_head"].get_outputs()]
        outputs = dict(zip(names, self._run("record_head", feeds)))
        return RecordScores(**{name: outputs[name] for name in RecordScores._fields})

    def score_relations(
        self,
        text_states: np.ndarray,
        relation_roles: np.ndarray,
        pair_rows: np.ndarray,
        pair_relations: np.ndarray,
        pair_spans: np.ndarray,
    ) -> np.ndarray:
        feeds = {
            "text_states": text_states,
            "relation_roles": relation_roles,
            "pair_rows": pair_rows,
            "pair_relations": pair_relations,
            "pair_spans": pair_spans,
        }
        return self._run("relation_scorer", feeds)[0]


def _return_freed_heap_to_the_system() -> None:
    """Hands the heap memory that loading freed back to the OS (glibc's `malloc_trim`; elsewhere a no-op).

    ONNX Runtime parses each graph file into memory, copies its weights out and frees the parsed copy;
    glibc keeps much of that freed heap mapped, so the process's RSS after loading depended on the
    heap's layout: 1,730-1,820 MB on the full-size FP32 export (1.1 GB encoder) over four loads, against
    1,414 MB every time once trimmed. Every later peak (a batch's working memory comes on top) drops
    with it. It takes a few milliseconds, once per load.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        malloc_trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): nothing to trim this way
        return
    malloc_trim(0)


def onnx_backend(bundle: GLiNER2OnnxBundle, **session_arguments: Any) -> OnnxBackend:
    """The ONNX backend of `bundle`'s architecture.

    Args:
        bundle: A loaded bundle.
        session_arguments: `providers`, `session_options`, `provider_options` for every session.
    """
    backend_class = OnnxBoundaryBackend if bundle.architecture == BOUNDARY else OnnxSpanBackend
    return backend_class(bundle, **session_arguments)


def _check_integer_gemm_is_exact_here(bundle: GLiNER2OnnxBundle) -> None:
    """Refuse a variant whose u8 x s8 GEMM would saturate on this CPU rather than answer with drift.

    Raises:
        GLiNER2LoadError: If the variant was made with `method="per_row_integer"` and 8-bit weights and this
            is an x86 CPU without VNNI (`optimum_gliner2.bundle.cpu`).
    """
    recipe = bundle.recipe
    if recipe.get("method") != "per_row_integer":
        return
    # Recipes written before the field was recorded name the width in their "weights" line.
    bits = recipe.get("integer_gemm_weight_bits", 7 if "int7" in str(recipe.get("weights", "")) else 8)
    if bits == 8 and not full_range_integer_gemm_is_exact():
        raise GLiNER2LoadError(
            f"The {bundle.precision!r} variant of {bundle.folder} multiplies uint8 activations by 8-bit weights "
            '(method="per_row_integer"), which this CPU (x86 without VNNI) adds with saturation: its answers would '
            f"drift. Load another precision, or make an INT8 variant for this CPU: `python -m optimum_gliner2.variants "
            f"{bundle.folder} --int8` run here, or `--int8-method per_row_integer --int8-reduce-range` (7-bit weights) "
            "on any machine."
        )


ALLOW_SPINNING = "session.intra_op.allow_spinning"
USE_ENV_ALLOCATORS = "session.use_env_allocators"
ARENA_SHRINKAGE = "memory.enable_memory_arena_shrinkage"


def _arena_shrinking_run_options() -> ort.RunOptions:
    """Run options that hand the CPU arena's free regions back once a run ends, whichever graph ran.

    The arena keeps every region it grew, and a region cut for one batch shape cannot serve a larger
    one: after a batch of 8 x 512 tokens, a 3,000-word `extract_entities_long` (windows of ~600 tokens)
    grew new regions beside the old ones. Measured on the full-size FP32 export, each in a fresh process:
    peak RSS 2,563 -> 2,181 MB over the batch and 3,221 -> 2,669 MB after the long document (PyTorch
    gliner2: 2,788 and 3,102 MB); the batch took 12.30 vs 12.54 s and single texts 149-168 vs 149-150 ms
    (short) and 601-627 vs 605-620 ms (medium), within the noise of a loaded machine.

    The heads need it as much as the encoder: shrinking after encoder runs only, the span scorer's regions
    of a call's last batch stayed reserved, 450 MB after 32 texts of ~120 words, and a 3,000-word document
    run after them peaked at 3,087 MB; shrinking after every run, 2,658 MB (the document alone: 2,602 MB).
    Batches and single texts took the same time within the noise (interleaved, 7 repeats: 0.96-1.07x).
    """
    options = ort.RunOptions()
    options.add_run_config_entry(ARENA_SHRINKAGE, "cpu:0")
    return options


_SHRINK_CPU_ARENA_AFTER_RUN = _arena_shrinking_run_options()
_ARENA_EXTEND_SAME_AS_REQUESTED = 1
@lru_cache(maxsize=None)
def _share_exactly_growing_cpu_arena() -> bool:
    """Register, once per process, a CPU arena that every session of the runtime's defaults shares.

    Each session otherwise owns an arena that grows by doubling its chunks, and chunks cut for one
    batch shape stay reserved when the next shape needs larger ones. Measured on the full-size FP32
    export (benchmarks/memory.py): peak RSS 2,775 -> 2,560 MB over a batch of 8 x 512 tokens and
    3,602 -> 3,226 MB after a 3,000-word `extract_entities_long`, where PyTorch gliner2 peaks at 2,853
    and 3,218 MB. Turning the arena off instead raised the batch's peak to 4,162 MB. The arena lives
    as long as the process: a model loaded later reuses it.

    Returns:
        Whether the process has such an arena (False if ONNX Runtime refused to register it; the sessions
        then keep their own).
    """
    info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
    try:
        ort.create_and_register_allocator(info, ort.OrtArenaCfg({"arena_extend_strategy": _ARENA_EXTEND_SAME_AS_REQUESTED}))
    except Exception:  # an ONNX Runtime build without environment allocators
        return False
    return True


def _with_runtime_defaults(session_options: Optional[ort.SessionOptions]) -> ort.SessionOptions:
    """`session_options` (or new defaults) with intra-op spinning off unless the caller set it.

    A call runs four sessions one after another, each with its own thread pool; with spinning on, the
    encoder's threads keep spinning while the head graphs run and take their cores (measured on
    2 CPUs, full-size model: 290 ms -> 225 ms per single-text call).

    New defaults also turn ONNX Runtime's memory patterns off. A pattern is one arena block planned
    for one exact set of input shapes; every batch here has shapes of its own (texts, fields and
    candidates vary), and the arena kept growing with them: on the tiny fixture, 1.2 GB after the
    first batch of eight 1,300-token windows and 2.5 GB five such batches later, against a flat
    1.26 GB without patterns. Answers are the same, and the time is the same within noise (a
    pattern saves allocations only when a shape repeats). New defaults also put every session's CPU
    memory in one process-wide arena that grows by what is asked (`_share_exactly_growing_cpu_arena`).
    A caller's own SessionOptions keep their settings.
    """
    if session_options is None:
        session_options = ort.SessionOptions()
        # Errors only: ONNX Runtime warns once per FP16 node it cannot constant-fold on CPU (a dozen lines for
        # the fp16 variant, all harmless); a caller's own SessionOptions keep their log level.
        session_options.log_severity_level = 3
        session_options.enable_mem_pattern = False
        if _share_exactly_growing_cpu_arena():
            session_options.add_session_config_entry(USE_ENV_ALLOCATORS, "1")
    try:
        session_options.get_session_config_entry(ALLOW_SPINNING)
    except RuntimeError:  # not set by the caller
        session_options.add_session_config_entry(ALLOW_SPINNING, "0")
    return session_options
