"""The exported ONNX model gives gliner2's answers: every corpus case on every fixture variant.

Decoded texts, labels and offsets must be equal; confidences within 1e-4 (tests/support/parity.py).
"""

from __future__ import annotations

import pytest

from optimum_gliner2.runtime import GLiNER2ONNXRuntime
from tests.support.parity import assert_same_results
from tests.support.parity_corpus import CASES, MIXED_LENGTH_TEXTS, PRODUCT_STRUCTURE, run_case


@pytest.fixture(scope="module")
def onnx_models(exported_dirs) -> dict:
    class _Models(dict):
        def __missing__(self, name):
            self[name] = GLiNER2ONNXRuntime.from_pretrained(exported_dirs[name])
            return self[name]

    return _Models()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_onnx_matches_gliner2(torch_models, onnx_models, variant, case):
    try:
        expected = run_case(torch_models[variant], case)
    except RuntimeError as error:
        # BERT's absolute positions stop at 512 tokens: gliner2 itself cannot run the long text.
        with pytest.raises(Exception):
            run_case(onnx_models[variant], case)
        pytest.skip(f"gliner2 fails on {variant}, and so does ONNX Runtime: {error}")
    actual = run_case(onnx_models[variant], case)
    assert_same_results(expected, actual, context=f"{variant}/{case.name}")


def test_ort_model_for_gliner2_matches_gliner2(torch_models, exported_dirs):
    """The Optimum-facing class runs the same runtime: spot-check it on a mixed batch."""
    from optimum_gliner2 import ORTModelForGLiNER2

    model = ORTModelForGLiNER2.from_pretrained(exported_dirs["deberta_lstm_v2"])
    texts = list(MIXED_LENGTH_TEXTS)
    expected = torch_models["deberta_lstm_v2"].batch_extract_json(texts, PRODUCT_STRUCTURE, batch_size=3, include_spans=True)
    actual = model.batch_extract_json(texts, PRODUCT_STRUCTURE, batch_size=3, include_spans=True)
    assert_same_results(expected, actual)


def test_batched_equals_single_calls(onnx_models):
    model = onnx_models["deberta_moe"]
    texts = list(MIXED_LENGTH_TEXTS)
    labels = ["person", "organization", "location", "date"]
    batched = model.batch_extract_entities(texts, labels, batch_size=4, include_confidence=True)
    single = [model.extract_entities(text, labels, include_confidence=True) for text in texts]
    assert_same_results(single, batched, atol=1e-5)
