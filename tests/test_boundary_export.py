"""Exporting GLiNER2.5 (boundary) checkpoints: a plain `optimum-cli export onnx`, the three graphs
against gliner2's own modules, refused settings, patch hygiene and TracerWarnings.

The session fixtures (tests/conftest.py) build the boundary variants and export each with a plain
optimum-cli call; the in-process exports below use the smallest variant.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import torch

from optimum_gliner2.bundle.format import BOUNDARY_HEAD_KEYS, METADATA_FILE, GLiNER2OnnxBundle, graph_names
from optimum_gliner2.errors import GLiNER2ExportError, GLiNER2LoadError
from optimum_gliner2.exporters.validation import (
    BOUNDARY_HEAD_CASES,
    EXPLICIT_SPAN_CASES,
    RELATION_SCORER_CASES,
    boundary_head_case,
    explicit_spans_case,
)
from tests.support.checkpoint_factory import BOUNDARY_POOL_LIMIT_TEXT, CORPUS

CLI = [sys.executable, "-m", "optimum.commands.optimum_cli", "export", "onnx", "--model"]
OUTPUT_NAMES = ("candidates", "candidate_mask", "pair_logits", "null_logits", "count_log_rates")


def _session(folder, graph: str) -> ort.InferenceSession:
    return ort.InferenceSession(str(folder / f"{graph}.onnx"), providers=["CPUExecutionProvider"])


def _run_head(session, text_states, text_mask, query_states, query_mask) -> dict:
    feeds = {
        "text_states": text_states.numpy(),
        "text_mask": text_mask.long().numpy(),
        "query_states": query_states.numpy(),
        "query_mask": query_mask.long().numpy(),
    }
    return dict(zip(OUTPUT_NAMES, session.run(list(OUTPUT_NAMES), feeds)))


def _assert_head_matches(output, actual: dict) -> None:
    """ONNX Runtime's boundary_head outputs against gliner2's BoundaryHead.forward output."""
    candidates = output.candidates
    np.testing.assert_array_equal(actual["candidates"], candidates.indices[:, 0].numpy())
    np.testing.assert_array_equal(actual["candidate_mask"], candidates.valid_mask[:, 0].numpy())
    for name, expected in (
        ("pair_logits", candidates.pair_logits),
        ("null_logits", output.null_logits),
        ("count_log_rates", output.count_log_rates),
    ):
        np.testing.assert_allclose(actual[name], expected.numpy(), atol=1e-4, rtol=1e-4, err_msg=name)


# -- the plain CLI export ------------------------------------------------------------------------


def test_plain_cli_export_writes_a_boundary_bundle(boundary_exported_dirs, boundary_checkpoint_dirs, boundary_variant):
    """The session fixture ran `optimum-cli export onnx --model CKPT OUT` with no other flag."""
    folder = boundary_exported_dirs[boundary_variant]
    bundle = GLiNER2OnnxBundle.load(folder)
    assert bundle.architecture == "boundary"
    assert bundle.metadata["graphs"] == list(graph_names("boundary", has_record_head=True))
    source = json.loads((boundary_checkpoint_dirs[boundary_variant] / "config.json").read_text())["boundary_head"]
    head = bundle.boundary_head
    assert set(head) == set(BOUNDARY_HEAD_KEYS)
    for key in ("pair_temperature", "classification_temperature", "abstention_threshold", "overlap_policy",
                "adaptive_threshold", "pool_size", "relation_temperature", "relation_heads_per_type",
                "relation_tails_per_type", "relation_pair_cap", "relation_argument_proposal_threshold",
                "enable_records"):  # fmt: skip
        assert head[key] == source[key], key
    assert head["min_words"] == 1  # the pool graph is exact down to one word: no host padding
    assert bundle.token_pooling == "first" and bundle.hidden_size > 0


def test_boundary_graph_signatures(boundary_exported_dirs):
    folder = boundary_exported_dirs["boundary"]
    pool_size = GLiNER2OnnxBundle.load(folder).boundary_head["pool_size"]
    session = _session(folder, "boundary_head")
    inputs = {node.name: (node.type, node.shape) for node in session.get_inputs()}
    outputs = {node.name: (node.type, node.shape) for node in session.get_outputs()}
    assert list(inputs) == ["text_states", "text_mask", "query_states", "query_mask"]
    assert inputs["text_states"][0] == "tensor(float)" and inputs["text_states"][1][:2] == ["batch_size", "num_words"]
    assert inputs["text_mask"] == ("tensor(int64)", ["batch_size", "num_words"])
    assert inputs["query_mask"] == ("tensor(int64)", ["batch_size", "num_queries"])
    assert outputs == {
        "candidates": ("tensor(int64)", ["batch_size", pool_size, 2]),
        "candidate_mask": ("tensor(bool)", ["batch_size", pool_size]),
        "pair_logits": ("tensor(float)", ["batch_size", "num_queries", pool_size]),
        "null_logits": ("tensor(float)", ["batch_size", "num_queries"]),
        "count_log_rates": ("tensor(float)", ["batch_size", "num_queries"]),
    }


def test_validation_report_covers_every_dynamic_axis(boundary_exported_dirs, boundary_variant):
    records = GLiNER2OnnxBundle.load(boundary_exported_dirs[boundary_variant]).metadata["validation"]
    head_records = [record for record in records if record["graph"] == "boundary_head"]
    assert {record["shape"] for record in head_records}.__len__() == len(BOUNDARY_HEAD_CASES)
    assert len(head_records) == len(BOUNDARY_HEAD_CASES) * len(OUTPUT_NAMES)
    batches = {len(words) for words, _ in BOUNDARY_HEAD_CASES}
    lengths = {length for words, _ in BOUNDARY_HEAD_CASES for length in words}
    queries = {count for _, count in BOUNDARY_HEAD_CASES}
    assert len(batches) >= 3 and len(queries) >= 3 and {1, 2} <= lengths and max(lengths) >= 40
    assert any("192 of 192 filled" in record["shape"] for record in head_records), "no case fills the pool"
    for record in head_records:
        if record["output"] in ("candidates", "candidate_mask"):
            assert record["max_abs_diff"] == 0.0, record
    assert {record["graph"] for record in records} == set(graph_names("boundary", has_record_head=True))
    assert max(record["max_abs_diff"] for record in records) < 1e-3


# -- ONNX Runtime against gliner2's modules ----------------------------------------------------------


@pytest.fixture(scope="module")
def boundary_model(boundary_models):
    return boundary_models["boundary"]


@pytest.fixture(scope="module")
def head_session(boundary_exported_dirs):
    return _session(boundary_exported_dirs["boundary"], "boundary_head")


@pytest.mark.parametrize("word_counts,queries", [((1,), 1), ((1,), 4), ((3, 1), 2), ((45,), 6), ((64, 7, 1), 3), ((250,), 5)])
def test_boundary_head_matches_gliner2_on_random_states(boundary_model, head_session, word_counts, queries):
    head = boundary_model.boundary_head
    generator = torch.Generator().manual_seed(sum(word_counts) * 10 + queries)
    with torch.inference_mode():
        feeds, _ = boundary_head_case(head, boundary_model.hidden_size, word_counts, queries, generator)
        reference = head(
            feeds["text_states"], feeds["text_mask"].bool(), feeds["query_states"], feeds["query_mask"].bool(),
            return_candidates=True,
        )  # fmt: skip
    actual = _run_head(head_session, feeds["text_states"], feeds["text_mask"], feeds["query_states"], feeds["query_mask"])
    _assert_head_matches(reference, actual)
    if max(word_counts) >= 45:
        assert actual["candidate_mask"][int(np.argmax(word_counts))].all(), "the pool should be full"


def test_boundary_head_matches_gliner2_inside_extraction(boundary_model, head_session):
    """The states gliner2 itself feeds its head (1-word text, sentences, a pool-filling text), batched.

    gliner2 appends "." to a text without final punctuation, so "Apple" has two words and "!" one."""
    calls = []
    hook = boundary_model.boundary_head.register_forward_hook(lambda _module, args, output: calls.append((args, output)))
    try:
        texts = ["Apple", *[line for line in CORPUS.strip().splitlines() if line.strip()][:6], BOUNDARY_POOL_LIMIT_TEXT]
        boundary_model.batch_extract_entities(texts, ["person", "company", "location", "date"], batch_size=3)
        boundary_model.extract_entities("!", ["company"])
    finally:
        hook.remove()
    assert len(calls) == 4
    lengths = set()
    for (text_states, text_mask, query_states, query_mask), output in calls:
        lengths.update(text_mask.sum(-1).tolist())
        _assert_head_matches(output, _run_head(head_session, text_states, text_mask, query_states, query_mask))
    assert 1 in lengths and max(lengths) > 100


def test_relation_scorer_signature_and_validation(boundary_exported_dirs):
    folder = boundary_exported_dirs["boundary"]
    session = _session(folder, "relation_scorer")
    inputs = {node.name: (node.type, node.shape) for node in session.get_inputs()}
    assert inputs["text_states"][1][:2] == ["batch_size", "num_words"]
    assert inputs["relation_roles"][1][:3] == ["batch_size", "num_relations", 2]
    assert inputs["pair_spans"] == ("tensor(int64)", ["num_pairs", 4])
    assert {node.name: node.shape for node in session.get_outputs()} == {"relation_logits": ["num_pairs"]}
    records = [r for r in GLiNER2OnnxBundle.load(folder).metadata["validation"] if r["graph"] == "relation_scorer"]
    assert len(records) == len(RELATION_SCORER_CASES) >= 3
    assert max(record["max_abs_diff"] for record in records) < 1e-4


def test_explicit_spans_signature_and_validation(boundary_exported_dirs):
    folder = boundary_exported_dirs["boundary"]
    session = _session(folder, "explicit_spans")
    inputs = {node.name: node.shape for node in session.get_inputs()}
    assert inputs["spans"] == ["batch_size", "num_queries", "num_spans", 2]
    assert inputs["span_mask"] == ["batch_size", "num_queries", "num_spans"]
    outputs = {node.name: (node.type, node.shape) for node in session.get_outputs()}
    assert outputs["span_logits"] == ("tensor(float)", ["batch_size", "num_queries", "num_spans"])
    assert outputs["span_outside_pool"] == ("tensor(bool)", ["batch_size", "num_queries", "num_spans"])
    records = [r for r in GLiNER2OnnxBundle.load(folder).metadata["validation"] if r["graph"] == "explicit_spans"]
    assert len({record["shape"] for record in records}) == len(EXPLICIT_SPAN_CASES) >= 3


@pytest.mark.parametrize("word_counts,queries,spans", [((1,), 2, 1), ((9, 2), 3, 3), ((150,), 4, 8)])
def test_explicit_spans_match_gliner2_and_report_spans_outside_the_pool(boundary_model, boundary_exported_dirs, word_counts, queries, spans):
    session = _session(boundary_exported_dirs["boundary"], "explicit_spans")
    generator = torch.Generator().manual_seed(sum(word_counts) + queries * 7 + spans)
    with torch.inference_mode():
        feeds, references = explicit_spans_case(boundary_model.boundary_head, boundary_model.hidden_size, word_counts, queries, spans, generator)
    logits, outside = session.run(["span_logits", "span_outside_pool"], {k: v.numpy() for k, v in feeds.items()})
    np.testing.assert_allclose(logits, references["span_logits"][0].numpy(), atol=1e-4, rtol=1e-4)
    assert not outside.any()
    if max(word_counts) > 100:
        # 200 distinct spans cannot all fit a 192-slot pool: gliner2 raises, the graph says which.
        starts = torch.arange(200) % (word_counts[0] - 3)
        many = torch.stack((starts, starts + 1 + torch.arange(200) // (word_counts[0] - 3)), dim=-1).view(1, 1, 200, 2)
        one_query = {
            "text_states": feeds["text_states"], "text_mask": feeds["text_mask"],
            "query_states": feeds["query_states"][:, :1], "query_mask": feeds["query_mask"][:, :1],
        }  # fmt: skip
        with pytest.raises(ValueError, match="explicit spans exceed the shared candidate pool"), torch.inference_mode():
            boundary_model.boundary_head.score_explicit_spans(
                one_query["text_states"], one_query["text_mask"].bool(), one_query["query_states"], one_query["query_mask"].bool(), many
            )
        mask = torch.ones(1, 1, 200, dtype=torch.long)
        _, outside = session.run(None, {**{k: v.numpy() for k, v in one_query.items()}, "spans": many.numpy(), "span_mask": mask.numpy()})
        assert outside.sum() == 200 - 192


def test_relation_scorer_matches_gliner2_inside_extraction(boundary_model, boundary_exported_dirs):
    """The pairs gliner2 itself scores (batches of mixed lengths, so padded word axes), through ONNX."""
    session = _session(boundary_exported_dirs["boundary"], "relation_scorer")
    calls = []
    hook = boundary_model.relation_scorer.register_forward_hook(lambda _module, args, output: calls.append((args, output)))
    try:
        texts = ["Apple", *[line for line in CORPUS.strip().splitlines() if line.strip()][:5], BOUNDARY_POOL_LIMIT_TEXT]
        boundary_model.batch_extract_relations(texts, ["works_for", "located_in", "founded"], batch_size=3)
    finally:
        hook.remove()
    assert len(calls) == len(texts)
    hidden = boundary_model.hidden_size
    for (text_states, relation_queries, _candidates, pairs), output in calls:
        # The directional relation query is the head marker's state, then the tail's.
        roles = relation_queries.reshape(*relation_queries.shape[:2], 2, hidden)
        spans = torch.stack((pairs.head_start, pairs.head_end, pairs.tail_start, pairs.tail_end), dim=-1)
        feeds = {
            "text_states": text_states.numpy(),
            "relation_roles": roles.numpy(),
            "pair_rows": pairs.batch_index.numpy(),
            "pair_relations": pairs.relation_index.numpy(),
            "pair_spans": spans.numpy(),
        }
        (logits,) = session.run(None, feeds)
        np.testing.assert_allclose(logits, output.numpy(), atol=1e-4, rtol=1e-4)
        assert len(logits) > 3


def test_encoder_and_classifier_match_gliner2(boundary_model, boundary_exported_dirs):
    folder = boundary_exported_dirs["boundary"]
    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(0, boundary_model.encoder.config.vocab_size, (2, 23), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 15:] = 0
    labels = torch.randn(4, boundary_model.hidden_size, generator=generator)
    with torch.inference_mode():
        hidden = boundary_model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        logits = boundary_model.classifier(labels).squeeze(-1)
    (onnx_hidden,) = _session(folder, "encoder").run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
    (onnx_logits,) = _session(folder, "classifier").run(None, {"label_embeddings": labels.numpy()})
    keep = mask.bool().numpy()
    np.testing.assert_allclose(onnx_hidden[keep], hidden.numpy()[keep], atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(onnx_logits, logits.numpy(), atol=1e-4, rtol=1e-4)


# -- refused settings, patches, TracerWarnings -------------------------------------------------------


def _with_head_settings(checkpoint, folder, **settings):
    shutil.copytree(checkpoint, folder)
    config = json.loads((folder / "config.json").read_text())
    config["boundary_head"].update(settings)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


REFUSED_SETTINGS = {
    "per_query_pool": ({"candidate_pool": "per_query"}, "candidate_pool='per_query'"),
    "soft_max_content": ({"content_soft_max_pool": True}, "content_soft_max_pool=True"),
    "query_attention": ({"query_attention_layers": 1}, "query_attention_layers=1"),
    "adaptive_without_count_head": ({"adaptive_threshold": True, "enable_count_head": False}, "adaptive_threshold"),
    "no_relations": ({"enable_relations": False}, "enable_relations=False"),
}


@pytest.mark.parametrize("case", sorted(REFUSED_SETTINGS))
def test_unexportable_settings_are_refused_before_loading(boundary_checkpoint_dirs, tmp_path, case):
    from optimum_gliner2.exporters.loading import GLiNER2ForOnnxExport

    settings, named = REFUSED_SETTINGS[case]
    checkpoint = _with_head_settings(boundary_checkpoint_dirs["boundary"], tmp_path / "ckpt", **settings)
    with pytest.raises(GLiNER2ExportError, match="cannot be exported exactly") as raised:
        GLiNER2ForOnnxExport.from_pretrained(checkpoint)
    assert named in str(raised.value) and "\n" not in str(raised.value)


def test_cli_refusal_is_one_line_and_leaves_nothing_loadable(boundary_checkpoint_dirs, tmp_path):
    checkpoint = _with_head_settings(boundary_checkpoint_dirs["boundary"], tmp_path / "ckpt", candidate_pool="per_query")
    completed = subprocess.run([*CLI, str(checkpoint), str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 1
    last_line = completed.stderr.strip().splitlines()[-1]
    assert last_line.startswith("Error:") and "candidate_pool='per_query'" in last_line, completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr
    with pytest.raises(GLiNER2LoadError):
        GLiNER2OnnxBundle.load(tmp_path / "out")


def _patch_targets():
    from gliner2.layers import SpanMarkerV0
    from gliner2.models.boundary import encoding
    from gliner2.models.boundary.encoding import BoundaryAttentionBlock
    from gliner2.models.boundary.pool import DocumentCandidatePool, SharedPoolScorer
    from transformers.models.deberta_v2.modeling_deberta_v2 import DisentangledSelfAttention

    targets = [
        (encoding, "shift_left_with_bos"), (encoding, "shift_right_with_eos"),
        (BoundaryAttentionBlock, "forward"), (DocumentCandidatePool, "forward"), (SharedPoolScorer, "forward"),
        (SpanMarkerV0, "score_queries"), (torch.nn.TransformerEncoderLayer, "forward"),
        (DisentangledSelfAttention, "disentangled_attention_bias"),
    ]  # fmt: skip
    return {f"{getattr(owner, '__name__', owner)}.{name}": vars(owner)[name] for owner, name in targets}


def test_export_restores_every_patch_and_warning_filter(boundary_checkpoint_dirs, tmp_path):
    import warnings

    from optimum.exporters.onnx import main_export

    import optimum_gliner2  # noqa: F401  (registers GLiNER2 with Optimum)

    before, filters_before = _patch_targets(), list(warnings.filters)
    main_export(str(boundary_checkpoint_dirs["boundary"]), output=str(tmp_path / "out"))
    assert _patch_targets() == before
    assert warnings.filters == filters_before
    assert GLiNER2OnnxBundle.load(tmp_path / "out").architecture == "boundary"


def test_a_tracer_warning_fails_the_export(boundary_checkpoint_dirs, tmp_path, monkeypatch):
    """A rewrite that turns a traced size into a Python number (a silent bake) must fail the export."""
    from optimum.exporters.onnx import main_export

    import optimum_gliner2  # noqa: F401
    from optimum_gliner2.exporters import modeling

    original_forward = modeling.GLiNER2ClassifierForExport.forward

    def baking_forward(self, label_embeddings):
        outputs = original_forward(self, label_embeddings)
        return {"logits": outputs["logits"] * float(label_embeddings.shape[0] > 0)}  # bakes the label count

    monkeypatch.setattr(modeling.GLiNER2ClassifierForExport, "forward", baking_forward)
    before = _patch_targets()
    with pytest.raises(GLiNER2ExportError, match="TracerWarning") as raised:
        main_export(str(boundary_checkpoint_dirs["boundary"]), output=str(tmp_path / "out"))
    assert "test_boundary_export.py" in str(raised.value)  # names the line that baked
    assert _patch_targets() == before
    with pytest.raises(GLiNER2LoadError):
        GLiNER2OnnxBundle.load(tmp_path / "out")
    assert not list(tmp_path.glob(".out.gliner2-export-*")), "the staging folder was left behind"


def test_metadata_file_is_written_last(boundary_exported_dirs):
    folder = boundary_exported_dirs["boundary"]
    metadata = json.loads((folder / METADATA_FILE).read_text())
    assert set(metadata["variants"]["fp32"]) == set(graph_names("boundary", has_record_head=True))
    assert all((folder / name).is_file() for name in metadata["files"])
