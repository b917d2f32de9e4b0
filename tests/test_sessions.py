"""Session options the runtime chooses, and that a caller's choices win."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from optimum_gliner2.runtime import GLiNER2ONNXRuntime
from optimum_gliner2.runtime.onnx.sessions import ALLOW_SPINNING, ARENA_SHRINKAGE, USE_ENV_ALLOCATORS


def _config_entries(model: GLiNER2ONNXRuntime, key: str) -> set:
    entries = set()
    for session in model.backend.sessions.values():
        try:
            entries.add(session.get_session_options().get_session_config_entry(key))
        except RuntimeError:  # not set
            entries.add(None)
    return entries


def _spinning(model: GLiNER2ONNXRuntime) -> set:
    return _config_entries(model, ALLOW_SPINNING)


def test_spinning_is_off_by_default(exported_dirs):
    assert _spinning(GLiNER2ONNXRuntime.from_pretrained(exported_dirs["deberta_lstm"])) == {"0"}


def test_default_sessions_share_the_process_cpu_arena_and_a_callers_keep_their_own(exported_dirs):
    folder = exported_dirs["deberta_lstm"]
    assert _config_entries(GLiNER2ONNXRuntime.from_pretrained(folder), USE_ENV_ALLOCATORS) == {"1"}
    assert _config_entries(GLiNER2ONNXRuntime.from_pretrained(folder, session_options=ort.SessionOptions()), USE_ENV_ALLOCATORS) == {None}


def test_every_run_hands_the_cpu_arenas_free_regions_back(exported_dirs):
    model = GLiNER2ONNXRuntime.from_pretrained(exported_dirs["deberta_lstm"])
    seen = {}
    for graph, session in model.backend.sessions.items():
        run = session.run

        def recording_run(outputs, feeds, run_options=None, graph=graph, run=run):
            seen[graph] = None if run_options is None else run_options.get_run_config_entry(ARENA_SHRINKAGE)
            return run(outputs, feeds, run_options)

        session.run = recording_run
    text = "Tim Cook is the chief executive officer of Apple Inc."
    model.extract_entities(text, ["person", "company"])
    model.classify_text(text, {"tone": ["formal", "casual"]})
    # A head's regions left reserved after a call add to the next call's peak, as the encoder's would.
    assert seen == {graph: "cpu:0" for graph in model.backend.sessions}


def test_caller_session_options_without_a_cpu_arena_run_without_shrinking_it(exported_dirs):
    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = False  # ONNX Runtime raises when asked to shrink an arena it does not have
    model = GLiNER2ONNXRuntime.from_pretrained(exported_dirs["deberta_lstm"], session_options=options)
    text = "Tim Cook is the chief executive officer of Apple Inc."
    assert model.extract_entities(text, ["person", "company"]) == GLiNER2ONNXRuntime.from_pretrained(
        exported_dirs["deberta_lstm"]
    ).extract_entities(text, ["person", "company"])


def test_caller_session_options_are_kept(exported_dirs):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.add_session_config_entry(ALLOW_SPINNING, "1")
    model = GLiNER2ONNXRuntime.from_pretrained(exported_dirs["deberta_lstm"], session_options=options)
    assert _spinning(model) == {"1"}
    assert {session.get_session_options().intra_op_num_threads for session in model.backend.sessions.values()} == {1}
    text = "Tim Cook is the chief executive officer of Apple Inc."
    assert model.extract_entities(text, ["person", "company"]) == GLiNER2ONNXRuntime.from_pretrained(
        exported_dirs["deberta_lstm"]
    ).extract_entities(text, ["person", "company"])


def test_count_embed_runs_only_the_steps_the_host_reads(exported_dirs, variant):
    model = GLiNER2ONNXRuntime.from_pretrained(exported_dirs[variant])
    backend, hidden = model.backend, model.backend.hidden_size
    rng = np.random.default_rng(0)
    prompts = rng.standard_normal((3, hidden)).astype(np.float32) * 2
    fields = rng.standard_normal((3, 4, hidden)).astype(np.float32)
    everything = np.full(3, backend.max_count, dtype=np.int64)
    logits, all_needed = backend.count_and_queries(prompts, fields, everything)
    counts = logits.argmax(-1)
    assert counts.max() > 1, "fixture predicts no multi-instance count: the check below would be trivial"
    assert all_needed.shape == (3, max(1, counts.max()), 4, hidden)
    # Entity tasks read instance 0 only: one GRU step, and it is the first step of the longer run.
    _, first_only = backend.count_and_queries(prompts, fields, np.ones(3, dtype=np.int64))
    assert first_only.shape == (3, 1, 4, hidden)
    np.testing.assert_allclose(first_only[:, 0], all_needed[:, 0], atol=1e-5)
    # The step count is the largest that any task reads.
    mixed = np.array([1, 1, backend.max_count], dtype=np.int64)
    assert backend.count_and_queries(prompts, fields, mixed)[1].shape[1] == max(1, counts[2])
