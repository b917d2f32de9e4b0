"""The GLiNER2.5 (boundary) fixture checkpoints give non-trivial outputs in gliner2 itself.

A parity test against a fixture whose entities are all empty, whose abstention never fires or
whose classes are uniform proves nothing, so each property is checked here through gliner2's own
classes, once per test variant.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.support.checkpoint_factory import (
    BOUNDARY_HEAD_V1,
    BOUNDARY_POOL_LIMIT_TEXT,
    BOUNDARY_TEST_VARIANTS,
    BOUNDARY_VARIANTS,
    TEST_VARIANTS,
    build_checkpoint,
)

TEXTS = [
    "Apple released the iPhone 15 in Cupertino, California on September 12, 2023.",
    "Tim Cook is the chief executive officer of Apple Inc. and lives in Palo Alto.",
    "Barack Obama was born in Honolulu, Hawaii and served as president of the United States.",
    "Microsoft acquired GitHub for 7.5 billion dollars in 2018, said Satya Nadella in Redmond.",
    "Elon Musk founded SpaceX in 2002 and later became chief executive of Tesla Motors in Austin.",
    "Angela Merkel met Emmanuel Macron in Berlin to discuss the European Union budget for 2024.",
    "Shipping was slow and the package arrived damaged, very disappointed with the service.",
    "Marie Curie won the Nobel Prize in Physics in 1903 and in Chemistry in 1911 in Stockholm.",
]
ENTITY_LABELS = ["person", "organization", "location", "date"]
# Head dims the tiny variants may shrink; every other published key must be kept as is.
SHRINKABLE = {"boundary_dim", "pair_dim", "content_dim", "record_dim"}


@pytest.fixture(scope="module")
def boundary_dirs(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("boundary_checkpoints")
    return {name: build_checkpoint(name, root / name) for name in BOUNDARY_TEST_VARIANTS}


@pytest.fixture(scope="module")
def boundary_models(boundary_dirs) -> dict:
    from gliner2.auto import AutoExtractor

    models = {}
    for name, directory in boundary_dirs.items():
        model = AutoExtractor.from_pretrained(str(directory))
        model.eval()
        models[name] = model
    return models


@pytest.fixture(params=BOUNDARY_TEST_VARIANTS)
def variant(request) -> str:
    return request.param


def _capture(module, run):
    """Run `run()` and return what `module` returned on each call."""
    outputs = []
    hook = module.register_forward_hook(lambda _module, _inputs, output: outputs.append(output))
    try:
        run()
    finally:
        hook.remove()
    return outputs


def _spans(results) -> list:
    return [
        (index, label, entity["text"] if isinstance(entity, dict) else entity)
        for index, result in enumerate(results)
        for label, entities in result["entities"].items()
        for entity in entities
    ]


def test_variant_lists_are_separate():
    assert set(BOUNDARY_TEST_VARIANTS) <= set(BOUNDARY_VARIANTS)
    assert "boundary_full" in BOUNDARY_VARIANTS and "boundary_full" not in BOUNDARY_TEST_VARIANTS
    assert not set(BOUNDARY_VARIANTS) & set(TEST_VARIANTS)


def test_loads_as_a_boundary_model_with_the_published_head(boundary_dirs, boundary_models, variant):
    from gliner2.models.boundary.engine import BoundaryExtractor

    config = json.loads((boundary_dirs[variant] / "config.json").read_text())
    assert config["architecture"] == "boundary"
    assert config["token_pooling"] == "first"
    head = config["boundary_head"]
    for key, value in BOUNDARY_HEAD_V1.items():
        if key not in SHRINKABLE:
            assert head[key] == value, key
    assert (head["pool_size"], head["pool_boundary_top_k"], head["min_pool_per_query"]) == (192, 32, 8)
    model = boundary_models[variant]
    assert isinstance(model, BoundaryExtractor)
    assert model.boundary_settings.candidate_pool == "shared"


def test_entities_are_non_empty_label_and_threshold_dependent(boundary_models, variant):
    model = boundary_models[variant]
    results = model.batch_extract_entities(TEXTS, ENTITY_LABELS, include_confidence=True, batch_size=8)
    non_empty = sum(any(result["entities"].values()) for result in results)
    assert non_empty >= len(TEXTS) // 2, f"only {non_empty}/{len(TEXTS)} texts have an entity"

    per_label = {label: set() for label in ENTITY_LABELS}
    for i, label, text in _spans(results):
        per_label[label].add((i, text))
    assert len({frozenset(spans) for spans in per_label.values()}) > 1, "every label finds the same spans"

    confidences = [e["confidence"] for r in results for ents in r["entities"].values() for e in ents]
    assert min(confidences) < 0.6 < max(confidences), "confidences do not spread above the threshold"

    loose = model.batch_extract_entities(TEXTS, ENTITY_LABELS, threshold=0.3, include_confidence=True)
    strict = model.batch_extract_entities(TEXTS, ENTITY_LABELS, threshold=0.7)
    loose_confidences = [e["confidence"] for r in loose for ents in r["entities"].values() for e in ents]
    assert any(c < 0.5 for c in loose_confidences), "no span scores just below 0.5"
    assert len(_spans(strict)) < len(_spans(results)) < len(_spans(loose))


def test_abstention_fires_for_some_queries_and_not_others(boundary_models, variant):
    import torch

    model = boundary_models[variant]
    threshold = model.boundary_settings.abstention_threshold
    fired = held = 0
    for text in TEXTS:
        result = {}

        def run():
            # A near-zero extraction threshold: only abstention can empty a label.
            result.update(model.extract_entities(text, ENTITY_LABELS, threshold=0.01))

        (output,) = _capture(model.boundary_head, run)
        null = torch.sigmoid(output.null_logits[0]).tolist()
        assert len(null) == len(ENTITY_LABELS)
        for label, probability in zip(ENTITY_LABELS, null):
            if probability > threshold:
                fired += 1
                assert result["entities"][label] == [], f"{label} abstained yet returned spans"
            else:
                held += 1
                assert result["entities"][label], f"{label} did not abstain yet found nothing at 0.01"
    total = fired + held
    assert 0.1 * total <= fired <= 0.6 * total, f"abstention fired on {fired}/{total} queries"


def test_classification_is_label_dependent(boundary_models, variant):
    model = boundary_models[variant]
    tasks = {"sentiment": ["positive", "negative", "neutral"], "topic": ["sports", "politics", "technology"]}
    results = model.batch_classify_text(TEXTS, tasks, include_confidence=True)
    confidences = {round(r[task]["confidence"], 3) for r in results for task in tasks}
    assert len(confidences) > 4, "classification confidences do not depend on the input"
    assert max(confidences) > 0.6, "single-label classification is close to uniform"
    predicted = {(task, r[task]["label"]) for r in results for task in tasks}
    assert len(predicted) > len(tasks), "every text gets the same class"

    labels = ["sports", "politics", "technology", "business"]
    multi = {"topic": {"labels": labels, "multi_label": True}}
    chosen = [
        frozenset(item["label"] for item in model.classify_text(text, multi, include_confidence=True)["topic"])
        for text in TEXTS
    ]
    assert len(set(chosen)) > 1, "multi-label picks the same labels for every text"
    assert any(0 < len(labels_) < len(labels) for labels_ in chosen), "multi-label is all or nothing"


@pytest.mark.parametrize("text", ["Apple", "Tim Cook"])
def test_one_and_two_word_texts(boundary_models, variant, text):
    model = boundary_models[variant]
    # More labels than elsewhere: with only four, every query of one short text can abstain.
    labels = ENTITY_LABELS + ["product", "money", "event"]
    entities = model.extract_entities(text, labels, threshold=0.01, include_spans=True)["entities"]
    assert list(entities) == labels
    assert any(entities.values()), "a short text finds nothing even at threshold 0.01"
    # gliner2 appends "." to unterminated text, and spans may land on it.
    extended = text + "."
    for spans in entities.values():
        for span in spans:
            assert extended[span["start"] : span["end"]] == span["text"]
    sentiment = model.classify_text(text, {"sentiment": ["positive", "negative"]})["sentiment"]
    assert sentiment in ("positive", "negative")


def test_pool_limit_text_overflows_the_shared_pool(boundary_models, variant):
    """BOUNDARY_POOL_LIMIT_TEXT has more boundaries than top-k and more pairs than pool slots."""
    import torch

    model = boundary_models[variant]
    settings = model.boundary_settings
    marginals, outputs = [], []
    hooks = [
        model.boundary_head.boundary_query_head.register_forward_hook(lambda _m, _i, out: marginals.append(out)),
        model.boundary_head.register_forward_hook(lambda _m, inputs, out: outputs.append((inputs, out))),
    ]
    try:
        model.extract_entities(BOUNDARY_POOL_LIMIT_TEXT, ENTITY_LABELS)
    finally:
        for hook in hooks:
            hook.remove()
    ((inputs, output),), (marginal,) = outputs, marginals
    words = int(inputs[1].sum())
    assert words + 1 > settings.pool_boundary_top_k
    # The pool pairs the union's top-k starts with its top-k ends (end after start).
    query_mask = output.candidates.query_mask[0]
    union_start = marginal.start_logits[0][query_mask].amax(0)[: words + 1]
    union_end = marginal.end_logits[0][query_mask].amax(0)[: words + 1]
    starts = torch.topk(union_start, settings.pool_boundary_top_k).indices
    ends = torch.topk(union_end, settings.pool_boundary_top_k).indices
    pairs = int((ends.unsqueeze(0) > starts.unsqueeze(1)).sum())
    assert pairs > settings.pool_size, pairs
    assert output.candidates.valid_mask[0].sum(-1).tolist() == [settings.pool_size] * len(ENTITY_LABELS)


def test_builds_are_deterministic_per_seed(boundary_dirs, tmp_path):
    def digest(directory):
        return hashlib.sha256((directory / "model.safetensors").read_bytes()).hexdigest()

    rebuilt = build_checkpoint("boundary", tmp_path / "again")
    assert digest(rebuilt) == digest(boundary_dirs["boundary"])
    digests = {digest(boundary_dirs[name]) for name in ("boundary", "boundary_seed1", "boundary_seed2")}
    assert len(digests) == 3


@pytest.mark.slow
def test_full_size_boundary_builds_and_loads(tmp_path):
    from gliner2.auto import AutoExtractor
    from gliner2.models.boundary.engine import BoundaryExtractor

    directory = build_checkpoint("boundary_full", tmp_path / "boundary_full")
    config = json.loads((directory / "config.json").read_text())
    for key, value in BOUNDARY_HEAD_V1.items():
        assert config["boundary_head"][key] == value, key
    encoder = json.loads((directory / "encoder_config" / "config.json").read_text())
    assert (encoder["hidden_size"], encoder["num_hidden_layers"], encoder["num_attention_heads"]) == (768, 12, 12)
    assert encoder["intermediate_size"] == 3072 and encoder["vocab_size"] > 250_000
    model = AutoExtractor.from_pretrained(str(directory))
    assert isinstance(model, BoundaryExtractor)
