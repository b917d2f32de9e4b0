"""GLiNER2.5 (boundary) models give gliner2's answers: entities, classification and relations, batched and long.

Three layers, each against gliner2 2.1's own BoundaryExtractor:
- the host code alone (preprocessing, batching, candidate selection, decoding) on gliner2's PyTorch
  modules (tests/support/torch_backend.py TorchBoundaryBackend);
- the exported ONNX bundle end to end, as a user runs it;
- candidate selection against gliner2's `_group_scored_candidates` on random scores, adaptive
  threshold included (the fixtures use the published head, where it is off); relation pair
  proposals against its `TypedRelationPairGenerator` and edge clean-up against its
  `_deduplicate_relation_edges`, on random inputs with ties.

Decoded texts, labels and offsets must be equal; confidences within 1e-4 (tests/support/parity.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from optimum_gliner2.errors import GLiNER2InputError
from tests.support.parity import assert_same_results, strings_in
from tests.support.parity_corpus import (
    BOUNDARY_CASES,
    BOUNDARY_REFUSED_CALLS,
    ENTITY_LABELS,
    MIXED_LENGTH_TEXTS,
    POOL_LIMIT_TEXTS,
    RELATION_LABELS,
    SENTENCES,
    Case,
    run_case,
)
from tests.support.torch_backend import TorchBoundaryBackend

CASE_IDS = [case.name for case in BOUNDARY_CASES]


def _expected_or_skip(model, case: Case, other, variant: str):
    try:
        return run_case(model, case)
    except RuntimeError as error:
        # BERT's absolute positions stop at 512 tokens: gliner2 itself cannot run the long text.
        with pytest.raises(Exception):
            run_case(other, case)
        pytest.skip(f"gliner2 fails on {variant}, and so do we: {error}")


@pytest.mark.parametrize("case", BOUNDARY_CASES, ids=CASE_IDS)
def test_host_code_matches_gliner2(boundary_models, boundary_host_pipelines, boundary_variant, case):
    expected = _expected_or_skip(boundary_models[boundary_variant], case, boundary_host_pipelines[boundary_variant], boundary_variant)
    assert_same_results(expected, run_case(boundary_host_pipelines[boundary_variant], case), context=f"{boundary_variant}/{case.name}")


@pytest.mark.parametrize("case", BOUNDARY_CASES, ids=CASE_IDS)
def test_onnx_matches_gliner2(boundary_models, boundary_onnx_models, boundary_variant, case):
    expected = _expected_or_skip(boundary_models[boundary_variant], case, boundary_onnx_models[boundary_variant], boundary_variant)
    assert_same_results(expected, run_case(boundary_onnx_models[boundary_variant], case), context=f"{boundary_variant}/{case.name}")


def test_parity_compares_real_answers(boundary_models, boundary_variant):
    """gliner2's answers on the corpus are non-empty, label-dependent and threshold-dependent."""
    model = boundary_models[boundary_variant]
    entity_cases = [case for case in BOUNDARY_CASES if case.method.startswith(("extract_entities", "batch_extract_entities"))]
    empty = []
    for case in entity_cases:
        try:
            if not strings_in(run_case(model, case)):
                empty.append(case.name)
        except RuntimeError:  # BERT's 512 positions: gliner2 cannot run the long text (skipped in parity)
            continue
    assert len(empty) <= len(entity_cases) * 0.3, f"{len(empty)}/{len(entity_cases)} entity cases are empty: {empty}"
    by_labels = [model.extract_entities(SENTENCES[1], [label]) for label in ENTITY_LABELS]
    assert len({repr(result["entities"][label]) for result, label in zip(by_labels, ENTITY_LABELS)}) > 1
    policies = [case for case in BOUNDARY_CASES if case.name.startswith("boundary_overlap_")]
    assert len({repr(run_case(model, case)) for case in policies}) >= 4, "overlap policies must differ"
    low = model.batch_extract_entities(list(SENTENCES), ENTITY_LABELS, threshold=0.3)
    high = model.batch_extract_entities(list(SENTENCES), ENTITY_LABELS, threshold=0.7)
    assert sum(map(len, map(strings_in, low))) > sum(map(len, map(strings_in, high)))


def _relation_counts(result) -> dict:
    return {name: len(found) for name, found in result["relation_extraction"].items()}


def test_relation_parity_compares_real_answers(boundary_models, boundary_variant):
    """gliner2's relations on the corpus: several per text and per type, label- and threshold-dependent."""
    model = boundary_models[boundary_variant]
    default = [_relation_counts(result) for result in model.batch_extract_relations(list(SENTENCES), RELATION_LABELS)]
    assert max(max(counts.values()) for counts in default) > 1, "some relation type must have several edges"
    assert sum(sum(counts.values()) > 0 for counts in default) >= len(SENTENCES) // 3
    low = model.batch_extract_relations(list(SENTENCES), RELATION_LABELS, threshold=0.3)
    high = model.batch_extract_relations(list(SENTENCES), RELATION_LABELS, threshold=0.7)
    assert sum(map(len, map(strings_in, low))) > sum(map(len, map(strings_in, high)))
    by_type = [
        [result["relation_extraction"][label] for result in model.batch_extract_relations(list(SENTENCES[:6]), [label])]
        for label in RELATION_LABELS
    ]
    assert len({repr(found) for found in by_type}) > 1


def test_abstention_fires_and_does_not(boundary_models, boundary_host_pipelines, boundary_variant):
    """The corpus runs gliner2's abstention both ways, so parity covers it."""
    backend = boundary_host_pipelines[boundary_variant].backend
    assert isinstance(backend, TorchBoundaryBackend)
    seen = []
    original = backend.score_candidates

    def recording(*arguments):
        scores = original(*arguments)
        query_mask = arguments[3].astype(bool)
        probabilities = 1.0 / (1.0 + np.exp(-scores.null_logits[query_mask].astype(np.float64)))
        seen.extend((probabilities > backend.boundary_head["abstention_threshold"]).tolist())
        return scores

    backend.score_candidates = recording
    try:
        boundary_host_pipelines[boundary_variant].batch_extract_entities(list(SENTENCES), ENTITY_LABELS)
    finally:
        del backend.score_candidates
    assert 0 < sum(seen) < len(seen), f"{sum(seen)} of {len(seen)} queries abstain"


def test_spans_outside_the_pool_raise_gliner2s_error(boundary_host_pipelines):
    """gliner2 raises ValueError when explicit spans do not fit the pool; so does the runtime, when
    the backend reports it (the graph's span_outside_pool; tests/test_boundary_export.py)."""
    from tests.support.parity_corpus import _attribute_schema

    pipeline = boundary_host_pipelines["boundary"]
    backend = pipeline.backend
    original = backend.score_explicit_spans

    def overflowing(*arguments):
        logits, outside = original(*arguments)
        return logits, np.ones_like(outside)

    backend.score_explicit_spans = overflowing
    try:
        with pytest.raises(ValueError, match=r"explicit spans exceed the shared candidate pool \(pool_size=192\)"):
            pipeline.batch_extract(list(SENTENCES[:4]), _attribute_schema(pipeline.create_schema()), threshold=0.3)
    finally:
        del backend.score_explicit_spans


def test_batched_equals_single_calls(boundary_onnx_models, boundary_variant):
    model = boundary_onnx_models[boundary_variant]
    texts = [*MIXED_LENGTH_TEXTS, *POOL_LIMIT_TEXTS]
    batched = model.batch_extract_entities(texts, ENTITY_LABELS, batch_size=5, include_confidence=True, include_spans=True)
    single = [model.extract_entities(text, ENTITY_LABELS, include_confidence=True, include_spans=True) for text in texts]
    assert_same_results(single, batched, atol=1e-5)
    assert any(strings_in(result) for result in single)


def test_record_calls_need_the_record_head_graph(boundary_onnx_models, monkeypatch):
    """An export made before records were decoded has no record_head graph: a record schema is
    refused with one line naming the fix, instead of answered wrongly."""
    model = boundary_onnx_models["boundary"]
    monkeypatch.delitem(model.engine.heads.backend.sessions, "record_head")
    for method, target in BOUNDARY_REFUSED_CALLS:
        target = target(model.create_schema()) if callable(target) else target
        with pytest.raises(GLiNER2InputError, match="no record_head graph") as raised:
            getattr(model, method)(SENTENCES[1], target)
        assert "\n" not in str(raised.value)


def test_bundle_records_the_architecture(boundary_exported_dirs, boundary_onnx_models):
    model = boundary_onnx_models["boundary"]
    assert model.bundle.architecture == "boundary"
    assert set(model.bundle.graph_files) == {"encoder", "boundary_head", "classifier", "relation_scorer", "explicit_spans", "record_head"}
    assert model.engine.heads.default_overlap_policy == "disallow"


# -- candidate selection against gliner2's own function ---------------------------------------


@pytest.mark.parametrize("adaptive", [False, True])
@pytest.mark.parametrize("seed", range(20))
def test_candidate_selection_matches_gliner2(seed, adaptive):
    """`BoundaryHeads._kept_candidates` keeps gliner2's candidates, in gliner2's order."""
    import torch
    from gliner2.models.boundary.model import _group_scored_candidates
    from gliner2.models.outputs import CandidateTensorBatch

    from optimum_gliner2.runtime.boundary import BoundaryHeads

    rng = np.random.default_rng(seed)
    queries, pool = int(rng.integers(1, 5)), int(rng.integers(1, 40))
    candidates = np.sort(rng.integers(0, 30, size=(1, pool, 2)), axis=-1)
    candidates[..., 1] += 1
    candidate_mask = rng.random((1, pool)) < 0.8
    # Rounded logits make exact ties, which ranking must break as gliner2 does.
    pair_logits = np.round(rng.normal(0, 1.5, size=(1, queries, pool)), 1).astype(np.float32)
    count_log_rates = rng.normal(1.0, 1.0, size=(1, queries)).astype(np.float32)
    thresholds = rng.choice([0.3, 0.5, 0.7], size=(1, queries)).astype(np.float32)

    probabilities = torch.sigmoid(torch.from_numpy(pair_logits))
    grouped = _group_scored_candidates(
        CandidateTensorBatch(
            indices=torch.from_numpy(candidates).unsqueeze(1).expand(1, queries, pool, 2),
            proposal_logits=None,
            pair_logits=torch.from_numpy(pair_logits),
            valid_mask=torch.from_numpy(candidate_mask).unsqueeze(1).expand(1, queries, pool),
            query_mask=torch.ones((1, queries), dtype=torch.bool),
        ),
        threshold=torch.from_numpy(thresholds),
        probabilities=probabilities,
        count_log_rates=torch.from_numpy(count_log_rates),
        adaptive_threshold=adaptive,
    )

    class Settings:
        architecture = "boundary"
        boundary_head = {
            "pair_temperature": 1.0, "classification_temperature": 1.0, "abstention_threshold": 0.5,
            "overlap_policy": "flat", "adaptive_threshold": adaptive, "pool_size": 192, "min_words": 1,
            **RELATION_SETTINGS,
        }  # fmt: skip

    heads = BoundaryHeads(Settings())
    for query in range(queries):
        ours = heads._kept_candidates(
            candidates[0], candidate_mask[0], probabilities[0, query].numpy(), float(thresholds[0, query]), count_log_rates[0, query]
        )
        theirs = grouped[0][query]
        assert [(start, end) for _, start, end in theirs] == [(c.start, c.end) for c in ours]
        assert [score for score, _, _ in theirs] == [c.probability for c in ours]


RELATION_SETTINGS = {
    "relation_temperature": 1.0, "relation_heads_per_type": 32, "relation_tails_per_type": 32,
    "relation_pair_cap": 128, "relation_argument_proposal_threshold": 0.0, "enable_records": True,
}  # fmt: skip


@pytest.mark.parametrize("seed", range(25))
def test_relation_pair_proposals_match_gliner2(seed):
    """`propose_pairs` proposes gliner2's pairs, in its order, with its argument probabilities."""
    import torch
    from gliner2.models.base import QueryLayout
    from gliner2.models.boundary.relations import RelationProposalSettings, RelationTypeSpec, TypedRelationPairGenerator
    from gliner2.models.outputs import CandidateTensorBatch

    from optimum_gliner2.runtime.decode import sigmoid
    from optimum_gliner2.runtime.relations import RelationSettings, propose_pairs

    rng = np.random.default_rng(seed)
    queries, pool = int(rng.integers(2, 6)), int(rng.integers(1, 60))
    # Distinct spans, as in a deduplicated pool.
    keys = rng.choice(40 * 40, size=pool, replace=False)
    candidates = np.stack((keys // 40, keys // 40 + 1 + keys % 40), axis=-1)
    candidate_mask = rng.random(pool) < 0.85
    # Rounded logits make exact ties in probabilities and in their products.
    pair_logits = np.round(rng.normal(0, 1.5, size=(queries, pool)), 1).astype(np.float32)
    settings = RelationSettings(int(rng.integers(1, 12)), int(rng.integers(1, 12)), int(rng.integers(1, 40)),
                                float(rng.choice([0.0, 0.3, 0.5])), 1.0)  # fmt: skip
    head, tail = (int(q) for q in rng.choice(queries, size=2, replace=False))

    generator = TypedRelationPairGenerator(
        RelationProposalSettings(settings.heads_per_type, settings.tails_per_type, settings.pair_cap, settings.argument_threshold)
    )
    theirs = generator.generate(
        CandidateTensorBatch(
            indices=torch.from_numpy(candidates).unsqueeze(0).unsqueeze(0).expand(1, queries, pool, 2),
            proposal_logits=None,
            pair_logits=torch.from_numpy(pair_logits).unsqueeze(0),
            valid_mask=torch.from_numpy(candidate_mask).unsqueeze(0).unsqueeze(0).expand(1, queries, pool),
            query_mask=torch.ones((1, queries), dtype=torch.bool),
        ),
        [QueryLayout(queries=())],
        [RelationTypeSpec("r", head_query_ids=(head,), tail_query_ids=(tail,))],
    )
    ours = propose_pairs(candidates, candidate_mask, pair_logits[head], pair_logits[tail], settings, sigmoid)
    expected = list(zip(theirs.head_start.tolist(), theirs.head_end.tolist(), theirs.tail_start.tolist(), theirs.tail_end.tolist()))
    assert [(*pair.head, *pair.tail) for pair in ours] == expected
    assert np.allclose([pair.head_probability for pair in ours], theirs.head_prob.numpy(), atol=1e-7)
    assert np.allclose([pair.tail_probability for pair in ours], theirs.tail_prob.numpy(), atol=1e-7)


@pytest.mark.parametrize("seed", range(40))
def test_relation_edge_clean_up_matches_gliner2(seed):
    """`clean_edges` keeps gliner2's edges, in its order, on overlapping and repeated mentions."""
    from gliner2.models.boundary.engine import BoundaryExtractor

    from optimum_gliner2.runtime.relations import Edge, clean_edges

    rng = np.random.default_rng(seed)
    words = ["Tim", "Cook", "Apple", "apple", "Inc", "Palo", "Alto", "CEO"]
    text_mentions = []
    for _ in range(int(rng.integers(1, 8))):
        start = int(rng.integers(0, 30))
        length = int(rng.integers(1, 3))
        text = " ".join(rng.choice(words, size=length))
        text_mentions.append((text, start, start + int(rng.integers(1, 12)), float(np.float32(rng.random()))))
    edges = [
        Edge(float(np.float32(np.round(rng.random(), 2))), text_mentions[rng.integers(len(text_mentions))],
             text_mentions[rng.integers(len(text_mentions))])
        for _ in range(int(rng.integers(0, 10)))
    ]  # fmt: skip
    theirs = BoundaryExtractor._deduplicate_relation_edges(
        [{"score": edge.score, "head": edge.head, "tail": edge.tail} for edge in edges]
    )
    assert [(edge.score, edge.head, edge.tail) for edge in clean_edges(edges)] == [
        (edge["score"], edge["head"], edge["tail"]) for edge in theirs
    ]


def test_ort_model_for_gliner2_exports_and_runs_boundary(boundary_models, boundary_checkpoint_dirs, tmp_path):
    """`ORTModelForGLiNER2.from_pretrained(checkpoint, export=True)` takes a GLiNER2.5 checkpoint as it is,
    and save_pretrained / from_pretrained round-trips it with no new argument."""
    from optimum_gliner2 import ORTModelForGLiNER2

    from tests.support.parity_corpus import _entities_and_classifications

    model = ORTModelForGLiNER2.from_pretrained(boundary_checkpoint_dirs["boundary_seed1"], export=True)
    assert model.runtime.bundle.architecture == "boundary"
    model.save_pretrained(tmp_path / "saved")
    reloaded = ORTModelForGLiNER2.from_pretrained(tmp_path / "saved")
    texts = [*MIXED_LENGTH_TEXTS, *POOL_LIMIT_TEXTS[:3]]
    gliner2_model = boundary_models["boundary_seed1"]
    expected = gliner2_model.batch_extract(texts, _entities_and_classifications(gliner2_model.create_schema()), batch_size=3, include_confidence=True)
    for ours in (model, reloaded):
        actual = ours.batch_extract(texts, _entities_and_classifications(ours.create_schema()), batch_size=3, include_confidence=True)
        assert_same_results(expected, actual)
    assert any(strings_in(result) for result in expected)
