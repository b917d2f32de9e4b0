"""How far a precision variant's decoded outputs are from FP32's, on the parity corpus.

tests/test_quantization.py asserts these measures and benchmarks/agreement_report.py publishes them, so
the thresholds the tests hold are the numbers the report shows.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from optimum_gliner2.bundle.format import GLiNER2OnnxBundle
from tests.support.parity import first_difference
from tests.support.parity_corpus import CASES, MIXED_LENGTH_TEXTS, SCHEMA_BUILDERS, SENTENCES, Case, run_case

#: Query/key weights are multiplied by this in a "<variant>_tempered" fixture (see `temper_attention`).
ATTENTION_TEMPERING = 0.3
BATCH_TEXTS = list(SENTENCES) + [text for text in MIXED_LENGTH_TEXTS if len(text) > 200]


def temper_attention(checkpoint: Path, factor: float = ATTENTION_TEMPERING) -> None:
    """Scale the encoder's query/key projection weights of a saved checkpoint by `factor`, in place.

    Attention logits shrink by factor^2, out of the near-one-hot regime of the random fixtures.
    """
    from safetensors.torch import load_file, save_file

    weights_file = checkpoint / "model.safetensors"
    weights = load_file(str(weights_file))
    for name in weights:
        projections = ("query_proj.weight", "key_proj.weight", "query.weight", "key.weight")  # DeBERTa-v2, BERT
        if name.startswith("encoder.") and name.endswith(projections):
            weights[name] = weights[name] * factor
    save_file(weights, str(weights_file), metadata={"format": "pt"})


def _units(case, result) -> List[Any]:
    """One entry per input text for batch methods, else the whole result."""
    if isinstance(case.inputs, tuple) and isinstance(result, list) and len(result) == len(case.inputs):
        return result
    return [result]


def _paired_floats(expected: Any, actual: Any) -> Iterator[Tuple[float, float]]:
    """(FP32, variant) confidence pairs of two results with the same structure."""
    if isinstance(expected, dict):
        for key in expected:
            yield from _paired_floats(expected[key], actual[key])
    elif isinstance(expected, (list, tuple)):
        for left, right in zip(expected, actual):
            yield from _paired_floats(left, right)
    elif isinstance(expected, float):
        yield expected, actual


def same_decoded(expected: Any, actual: Any) -> bool:
    return first_difference(expected, actual, atol=math.inf) is None


def run_corpus(model, cases: Sequence[Case] = CASES) -> Dict[str, Any]:
    """{case name: result} of the corpus cases on `model`."""
    return {case.name: run_case(model, case) for case in cases}


def corpus_agreement(reference: Dict[str, Any], model, cases: Sequence[Case] = CASES) -> Dict[str, Any]:
    """Decoded-output agreement and confidence drift of `model` against `reference` (from `run_corpus`)."""
    texts_same = texts_total = cases_same = confident_kept = confident_total = 0
    drifts: List[float] = []
    for case in cases:
        result = run_case(model, case)
        kept, total = confident_kept_counts(reference[case.name], result)
        confident_kept += kept
        confident_total += total
        expected_units, actual_units = _units(case, reference[case.name]), _units(case, result)
        case_same = True
        for expected, actual in zip(expected_units, actual_units):
            texts_total += 1
            if same_decoded(expected, actual):
                texts_same += 1
                drifts.extend(abs(a - b) for a, b in _paired_floats(expected, actual))
            else:
                case_same = False
        cases_same += case_same
    return {
        "texts_same": texts_same,
        "texts_total": texts_total,
        "cases_same": cases_same,
        "cases_total": len(cases),
        "confident_kept": confident_kept,  # items confident on either side that both sides return
        "confident_total": confident_total,
        "max_drift": max(drifts, default=0.0),
        "mean_drift": float(np.mean(drifts)) if drifts else 0.0,
    }


#: Items at or above this confidence are "confident": 0.05 above the corpus's highest threshold (0.7), so a
#: variant whose scores drift by less than 0.05 must keep every one of them, however many items straddle a
#: threshold (the fixtures put many there on purpose, which makes exact agreement a lower bound).
CONFIDENT = 0.75


def confident_kept_counts(expected: Any, actual: Any) -> Tuple[int, int]:
    """(kept, total): items either result returns at confidence >= CONFIDENT, and how many of them both return."""
    expected_items, actual_items = confident_items(expected), confident_items(actual)
    confident = {
        item for item in expected_items.keys() | actual_items.keys()
        if max(expected_items.get(item, 0.0), actual_items.get(item, 0.0)) >= CONFIDENT
    }  # fmt: skip
    return len(confident & expected_items.keys() & actual_items.keys()), len(confident)


def confident_items(result: Any, path: str = "", found: Optional[Dict[Tuple[str, str], float]] = None) -> Dict[Tuple[str, str], float]:
    """{(where, what): highest confidence} of every item in `result`.

    An item is a mapping with a float "confidence"; "what" is its other scalar content, so the same span
    or label found at a different confidence is the same item. List positions are left out of "where":
    ranking may change when scores move.
    """
    found = {} if found is None else found
    if isinstance(result, dict):
        confidence = result.get("confidence")
        if isinstance(confidence, float):
            content = {key: value for key, value in result.items() if not isinstance(value, (float, dict, list))}
            key = (path, json.dumps(content, sort_keys=True))
            found[key] = max(confidence, found.get(key, confidence))
        for key, value in result.items():
            confident_items(value, f"{path}.{key}", found)
    elif isinstance(result, (list, tuple)):
        for value in result:
            confident_items(value, f"{path}[]", found)
    return found


def batch_sensitivity(model) -> float:
    """Fraction of texts decoded identically alone and inside one padded batch with the others."""
    schema = SCHEMA_BUILDERS["mixed"](model.create_schema())
    batched = model.batch_extract(BATCH_TEXTS, schema, batch_size=len(BATCH_TEXTS), include_confidence=True)
    alone = [model.extract(text, schema, include_confidence=True) for text in BATCH_TEXTS]
    return sum(same_decoded(a, b) for a, b in zip(alone, batched)) / len(BATCH_TEXTS)


def staggered_padded_tokens(folder: Path, texts: int, length: int, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask) for the export in `folder`: random word pieces (ids below the markers); text
    i > 0 keeps only its first length * (texts - i) / texts tokens, so every row has its own padding."""
    first_marker = min(GLiNER2OnnxBundle.load(folder).special_token_ids.values())
    input_ids = np.random.default_rng(seed).integers(5, first_marker, size=(texts, length))
    attention_mask = np.ones_like(input_ids)
    for row in range(1, texts):
        attention_mask[row, max(1, length * (texts - row) // texts) :] = 0
    input_ids[attention_mask == 0] = 0
    return input_ids, attention_mask


def padded_token_batch(bundle: GLiNER2OnnxBundle, batch: int, length: int, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask): random word pieces (ids below the markers), the second row half padding."""
    first_marker = min(bundle.special_token_ids.values())
    input_ids = np.random.default_rng(seed).integers(5, first_marker, size=(batch, length))
    attention_mask = np.ones_like(input_ids)
    attention_mask[1, length // 2 :] = 0
    return input_ids, attention_mask


def assert_same_answers_as_fp32(model, folder: Path, cases: Sequence[Case] = CASES) -> None:
    """`model` (a variant of the export in `folder`) gives the FP32 export's answers on `cases`: every text the
    same, confidences within 1e-4."""
    from optimum_gliner2.runtime import GLiNER2ONNXRuntime

    reference = run_corpus(GLiNER2ONNXRuntime.from_pretrained(folder), cases)
    agreement = corpus_agreement(reference, model, cases)
    assert agreement["texts_same"] == agreement["texts_total"], agreement
    assert agreement["max_drift"] < 1e-4
