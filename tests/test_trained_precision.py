"""Precision on a *trained* GLiNER2 (tests/support/trained_fixture.py), scored on its held-out set.

Random-weight fixtures put most scores at a threshold, so there every variant looks lossy; a trained model
shows what a user's model keeps. The figures asserted here are the ones `python -m benchmarks.precision`
publishes in the README (the same functions, tests/support/trained_quality.py).
"""

from __future__ import annotations

import numbers
import random

import numpy as np
import pytest

from optimum_gliner2 import variants
from optimum_gliner2.runtime import GLiNER2ONNXRuntime
from tests.conftest import export_with_optimum_cli
from tests.support.agreement import same_decoded
from tests.support.cpu import needs_exact_integer_gemm
from tests.support.trained_fixture import trained_checkpoint
from tests.support.trained_quality import TASK_CALLS, agreement, answer_all, entity_f1, held_out_set, task_texts


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(checkpoint, export with the default int8 (its method chosen by this CPU), int8_per_row, int8_per_row_integer
    and fp16 variants, held-out examples, texts per task)."""
    checkpoint = trained_checkpoint()
    export = tmp_path_factory.mktemp("trained") / "export"
    export_with_optimum_cli(checkpoint, export)
    variants.quantize_gliner2(export)
    variants.quantize_gliner2(export, method="per_row", variant="int8_per_row")
    variants.quantize_gliner2(export, method="per_row_integer", variant="int8_per_row_integer")
    variants.convert_gliner2_to_fp16(export)
    examples = held_out_set()
    return checkpoint, export, examples, task_texts(examples)


@pytest.fixture(scope="module")
def fp32_answers(trained):
    _, export, _, texts = trained
    return answer_all(GLiNER2ONNXRuntime.from_pretrained(export), texts)


@pytest.fixture(scope="module")
def int8_model(trained):
    return GLiNER2ONNXRuntime.from_pretrained(trained[1], precision="int8")


def test_the_fixture_is_trained_and_its_answers_are_not_trivial(trained, fp32_answers):
    _, _, examples, texts = trained
    assert entity_f1(fp32_answers["entities"], examples) >= 0.9
    # Sentiment against the generated truth, on cue words the training data never had (labels in training order).
    truth = [example.sentiment for example in examples if example.sentiment is not None]
    predicted = [result["sentiment"]["label"] for result in fp32_answers["classification"]]
    assert sum(p == t for p, t in zip(predicted, truth)) >= 0.95 * len(truth)
    assert {"positive", "negative"} <= set(predicted)
    assert sum(bool(r["relation_extraction"]["works_for"]) for r in fp32_answers["relations"]) >= len(texts["relations"]) // 2
    assert sum(bool(r["product"]) for r in fp32_answers["json"]) >= len(texts["json"]) // 2
    # Some answers are not saturated, where precision loss would show first. This recipe is confident: measured
    # 45 returned items in [0.5, 0.9) over all tasks (mostly relation arguments and product fields).
    confidences = list(_confidences(fp32_answers))
    assert sum(0.5 <= c < 0.9 for c in confidences) >= 25


def _confidences(answer):
    if isinstance(answer, dict):
        if isinstance(answer.get("confidence"), numbers.Real):
            yield answer["confidence"]
        for value in answer.values():
            yield from _confidences(value)
    elif isinstance(answer, list):
        for value in answer:
            yield from _confidences(value)


def test_fp32_export_gives_gliner2s_answers_on_the_trained_model(trained, fp32_answers):
    from gliner2 import GLiNER2

    checkpoint, _, _, texts = trained
    torch_answers = answer_all(GLiNER2.from_pretrained(str(checkpoint)), texts)
    result = agreement(torch_answers, fp32_answers)
    # Measured 720/720. Not asserted exact: this model saturates some span scores to exactly 1.0 in float32,
    # and between two such spans overlap removal follows the logits' last bits, which the CPU's kernels decide
    # (the random-fixture parity suite holds exactness with its near-tie rule).
    assert result.identical_share >= 0.995, result.describe()


@pytest.mark.parametrize(
    "precision", ["int8", "int8_per_row", pytest.param("int8_per_row_integer", marks=needs_exact_integer_gemm)]
)
def test_int8_keeps_the_trained_models_answers(trained, fp32_answers, precision):
    _, export, examples, texts = trained
    int8_answers = answer_all(GLiNER2ONNXRuntime.from_pretrained(export, precision=precision), texts)
    result = agreement(fp32_answers, int8_answers)
    # The precision issue's targets: >= 99% identical, every confident item kept, entity F1 within 0.3 pt.
    # Measured on an AVX-512 VNNI Xeon, on the recipe-3 fixture (trained with pinned kernels: the same weights on
    # every x86-64 CPU): per_row 100.0% identical (720/720), 1407/1407 confident items kept, F1 +0.00 pt;
    # per_row_integer (rows with their own zero points) 100.0%, 1409/1409, +0.00 pt. The confident bound leaves
    # room for 2 items of ~1400: this model saturates some span scores to exactly 1.0, and between two such
    # overlapping spans the survivor rests on the logits' last bits, which another CPU's INT8 kernels decide.
    assert result.identical_share >= 0.99, result.describe()
    assert result.confident_kept >= 0.998 * result.confident_total, result.describe()
    f1_loss = entity_f1(fp32_answers["entities"], examples) - entity_f1(int8_answers["entities"], examples)
    assert abs(f1_loss) <= 0.003


def test_default_int8_method_is_the_integer_gemm_where_this_cpu_runs_it_exactly(int8_model):
    assert int8_model.bundle.recipe["method"] == variants.default_method()


@pytest.mark.parametrize(
    "precision", ["int8_per_row", pytest.param("int8_per_row_integer", marks=needs_exact_integer_gemm)]
)
def test_per_row_int8_answers_do_not_depend_on_the_batch(trained, precision):
    int8_model = GLiNER2ONNXRuntime.from_pretrained(trained[1], precision=precision)
    texts = trained[3]["entities"][:96]
    call = TASK_CALLS["entities"]
    alone = call(int8_model, texts, 1)
    assert all(same_decoded(a, b) for a, b in zip(alone, call(int8_model, texts, 16)))
    shuffled = list(range(len(texts)))
    random.Random(0).shuffle(shuffled)
    in_other_batches = call(int8_model, [texts[i] for i in shuffled], 7)
    assert all(same_decoded(alone[i], in_other_batches[shuffled.index(i)]) for i in range(len(texts)))




def test_default_int8_encoder_is_small(trained):
    export = trained[1]
    sizes = {p: (export / f"encoder{'' if p == 'fp32' else '_' + p}.onnx").stat().st_size for p in ("fp32", "int8")}
    assert sizes["int8"] <= 0.40 * sizes["fp32"], sizes


def test_fp16_on_the_trained_model_is_finite_and_agrees(trained, fp32_answers):
    _, export, _, texts = trained
    fp16 = GLiNER2ONNXRuntime.from_pretrained(export, precision="fp16")
    result = agreement(fp32_answers, answer_all(fp16, texts))
    assert result.identical_share >= 0.98, result.describe()
    assert result.confident_kept == result.confident_total, result.describe()
    session = fp16.backend.sessions["encoder"]
    tokens = np.full((2, 512), 1000, dtype=np.int64)  # MiniLM's longest input
    mask = np.ones_like(tokens)
    mask[1, 256:] = 0
    hidden = session.run(None, {"input_ids": tokens, "attention_mask": mask})[0]
    assert np.isfinite(hidden).all()
