"""The fixture checkpoints give non-trivial outputs in gliner2 itself, so parity tests mean something."""

from __future__ import annotations

import json


from tests.support.checkpoint_factory import LEGACY_CONFIG_KEYS

TEXTS = [
    "Apple released the iPhone 15 in Cupertino, California on September 12, 2023.",
    "Tim Cook is the chief executive officer of Apple Inc. and lives in Palo Alto.",
    "Barack Obama was born in Honolulu, Hawaii and served as president of the United States.",
    "Shipping was slow and the package arrived damaged, very disappointed with the service.",
]
ENTITY_LABELS = ["person", "organization", "location", "date"]


def test_checkpoint_layout(checkpoint_dirs, variant):
    directory = checkpoint_dirs[variant]
    config = json.loads((directory / "config.json").read_text())
    assert (directory / "model.safetensors").is_file()
    assert (directory / "encoder_config" / "config.json").is_file()
    assert (directory / "tokenizer.json").is_file()
    if variant == "legacy":
        assert sorted(config) == sorted(LEGACY_CONFIG_KEYS)
        assert "architecture" not in config
    else:
        assert config["architecture"] == "span"


def test_entities_are_non_empty_and_label_dependent(torch_models, variant):
    model = torch_models[variant]
    results = model.batch_extract_entities(TEXTS, ENTITY_LABELS, include_confidence=True)
    found = [r["entities"] for r in results]
    all_spans = [(label, e["text"]) for r in found for label, ents in r.items() for e in ents]
    assert all_spans, "no entity at all"
    per_label = {label: {t for lab, t in all_spans if lab == label} for label in ENTITY_LABELS}
    assert len({frozenset(v) for v in per_label.values()}) > 1, "every label finds the same spans"
    confidences = [e["confidence"] for r in found for ents in r.values() for e in ents]
    assert min(confidences) < 0.65 and max(confidences) > 0.5, "scores do not straddle the threshold"
    # Raising the threshold must drop some spans: outputs depend on it.
    strict = model.batch_extract_entities(TEXTS, ENTITY_LABELS, threshold=0.7)
    assert sum(len(v) for r in strict for v in r["entities"].values()) < len(all_spans)


def test_classification_is_label_dependent(torch_models, variant):
    model = torch_models[variant]
    tasks = {"sentiment": ["positive", "negative", "neutral"], "topic": ["sports", "politics", "technology"]}
    results = model.batch_classify_text(TEXTS, tasks, include_confidence=True)
    confidences = {round(r[task]["confidence"], 4) for r in results for task in tasks}
    assert len(confidences) > 2, "classification confidences do not depend on the input"
    swapped = model.classify_text(TEXTS[0], {"sentiment": ["neutral", "negative", "positive"]}, include_confidence=True)
    assert swapped["sentiment"]["confidence"] > 0.0


def test_relations_and_json_are_non_empty(torch_models, variant):
    model = torch_models[variant]
    relations = model.batch_extract_relations(TEXTS, ["works_for", "born_in", "located_in"])
    pairs = [p for r in relations for ps in r["relation_extraction"].values() for p in ps]
    assert pairs, "no relation extracted"
    structures = {"product": ["name::str", "price", "color::[red|blue|green]::str"]}
    records = [r["product"] for r in model.batch_extract_json(TEXTS, structures)]
    assert any(records), "no JSON record extracted"


def test_counts_cover_zero_one_and_many(torch_models):
    """Across variants and prompts, the count head predicts 0, 1 and >1 instances."""
    import torch

    seen = set()
    for variant in ("deberta_lstm", "deberta_lstm_v2", "deberta_moe", "bert"):
        model = torch_models[variant]
        for text in TEXTS:
            relations = model.extract_relations(text, ["works_for", "born_in", "located_in", "ceo_of"])
            seen.update(len(v) for v in relations["relation_extraction"].values())
    assert 0 in seen and any(count > 1 for count in seen), seen
    assert torch.is_grad_enabled()  # gliner2 inference must not leave grad mode switched off
