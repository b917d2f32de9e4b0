"""Differential fuzzing: random texts and schemas through gliner2 (PyTorch) and the ONNX runtime.

Where gliner2 answers, the runtime must give the same answer (texts, labels, offsets equal;
confidences within 1e-4); where gliner2 raises, the runtime must raise too. The one excuse is a
near-tie that float rounding flips: the answers may differ only when the host code on gliner2's own
modules gives gliner2's exact answer, and either every ONNX stage agrees with those modules to 1e-4
(`divergence_beyond_float_noise`) or gliner2 in float64 gives exactly our answer (`float_noise_excuse`);
such cases show as a hypothesis event. Texts may hold gliner2's
marker strings: they are data, compared against gliner2 like any word. CI runs a bounded,
derandomized 200 examples on a span fixture and 100 on a GLiNER2.5 (boundary) fixture;
`FUZZ_EXAMPLES=5000 make test-all` (or pytest on this file) runs more (half as many on boundary).
Long runs can be split into shards, one per core: `FUZZ_THREADS=1` gives each shard's PyTorch and ONNX
Runtime one thread, and `--hypothesis-seed=N` a stream of examples of its own.
"""

from __future__ import annotations

import copy
import os
from typing import Optional, Tuple

import numpy as np

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from optimum_gliner2.bundle.format import MARKER_TOKENS
from optimum_gliner2.runtime import GLiNER2InputError, GLiNER2ONNXRuntime, GLiNER2Pipeline
from tests.support.parity import first_difference
from tests.support.torch_backend import (HOST_CODE_DIFFERS, RecordingBackend, TorchBackend, divergence_beyond_float_noise,
                                         gliner2_without_token_boundaries_crash)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
THREADS = int(os.environ.get("FUZZ_THREADS", "0"))  # 0: the libraries' defaults
WORDS = ["Apple", "Tim", "Cook", "Paris", "2023", "iPhone", "email", "help@example.com", "https://x.org/a?b=1",
         "@handle", "co-founder", "北京", "東京", "🙂", "naïve", "İstanbul", "straße", "$29.99", "#12345"]
# Near misses of gliner2's marker tokens: they must be treated as ordinary text by both models.
MARKER_LOOKALIKES = ["[E ]", "[e]", "[SEP_TEXT", "SEP_TEXT]", "［E］", "[Px]", "(E)", "[ P ]", "[EXAMPLES]", "L]"]
LABELS = ["person", "organization", "location", "date", "product", "money", "city", "e-mail", "CEO", "über"]

word = st.one_of(
    st.sampled_from(WORDS),
    st.sampled_from(MARKER_LOOKALIKES),
    # Texts are data: gliner2's splitters lower-case words, so it reads a marker inside a text as
    # plain characters, and the runtime must give its answer.
    st.sampled_from(MARKER_TOKENS),
    st.text(st.characters(categories=["L", "N", "P", "S", "M"]), min_size=1, max_size=12),
    st.text(st.sampled_from("!?.,;:-_()'\""), min_size=1, max_size=6),
    st.text(st.sampled_from("ab"), min_size=30, max_size=80),  # very long words
)
separator = st.sampled_from([" ", " ", " ", "  ", "\n", "\t", " \u00a0", "\r\n"])


@st.composite
def texts(draw):
    words = draw(st.lists(word, min_size=1, max_size=40))
    seps = draw(st.lists(separator, min_size=len(words), max_size=len(words)))
    text = "".join(w + s for w, s in zip(words, seps))
    return text if text.strip() else "x" + text


label = st.one_of(st.sampled_from(LABELS), st.text(st.characters(categories=["L"]), min_size=1, max_size=10))
threshold = st.sampled_from([0.3, 0.4, 0.5, 0.6, 0.7])


RECORD_MODES = ["natural", "latent", "anchorless"]
CARDINALITIES = [None, "optional_one", "required_one", "zero_or_more", "one_or_more"]


@st.composite
def schema_specs(draw, records: bool = False) -> dict:
    """Every random choice of a schema, drawn once so both models build the same schema; with
    `records`, possibly a structure with a record mode (GLiNER2.5 checkpoints with a record head)."""
    spec = {"entities": draw(st.lists(label, min_size=1, max_size=5, unique_by=str.lower))}
    if draw(st.booleans()):
        spec["entities"] = {name: draw(st.sampled_from(["", "a named thing", "where it is"])) for name in spec["entities"]}
    if draw(st.booleans()):
        spec["topic"] = (draw(st.lists(label, min_size=2, max_size=4, unique_by=str.lower)), draw(st.booleans()))
    if draw(st.booleans()):
        spec["relations"] = draw(st.lists(st.sampled_from(["works_for", "born_in", "located_in"]), min_size=1, max_size=2, unique=True))
    if draw(st.booleans()):
        spec["item"] = (draw(st.lists(label, min_size=2, max_size=3, unique_by=str.lower)), draw(threshold))
    if records and draw(st.booleans()):
        fields = [(draw(st.sampled_from(["str", "list"])), draw(st.sampled_from(CARDINALITIES)), draw(st.booleans())) for _ in range(3)]
        spec["deal"] = (draw(st.sampled_from(RECORD_MODES)), fields, draw(st.lists(label, min_size=2, max_size=3, unique_by=str.lower)))
    return spec


def build_schema(schema, spec: dict):
    schema = schema.entities(spec["entities"])
    if "topic" in spec:
        labels, multi_label = spec["topic"]
        schema = schema.classification("topic", labels, multi_label=multi_label)
    if "relations" in spec:
        schema = schema.relations(spec["relations"])
    if "item" in spec:
        choices, details_threshold = spec["item"]
        structure = schema.structure("item").field("name", dtype="str").field("kind", dtype="str", choices=choices)
        schema = structure.field("details", threshold=details_threshold)
    if "deal" in spec:
        mode, fields, choices = spec["deal"]
        structure = schema.structure("deal", mode=mode)
        for index, (dtype, cardinality, exclusive) in enumerate(fields):
            # The last field is a choice field: its choice words join the prompt's prefix.
            options = {"choices": choices} if index == len(fields) - 1 else {}
            structure = structure.field(f"part{index}", dtype=dtype, cardinality=cardinality, exclusive=exclusive, **options)
        schema = structure
    return schema


def _run(model, texts, spec, threshold, include):
    return model.batch_extract(texts, build_schema(model.create_schema(), spec), threshold=threshold, batch_size=3,
                               include_confidence=include, include_spans=include)


def _check_against_gliner2(torch_model, onnx_model, batch, spec, threshold, include):
    try:
        expected = _run(torch_model, batch, spec, threshold, include)
    except Exception as torch_error:  # gliner2 refuses: so must we
        try:
            _run(onnx_model, batch, spec, threshold, include)
        except Exception:
            return
        raise AssertionError(f"gliner2 raised {torch_error!r} but the ONNX runtime answered")
    try:
        actual = _run(onnx_model, batch, spec, threshold, include)
    except GLiNER2InputError as error:
        raise AssertionError(f"the ONNX runtime refused input gliner2 accepts: {error}") from error
    difference = first_difference(expected, actual)
    if difference is not None:
        call = lambda model, texts=batch: _run(model, texts, spec, threshold, include)  # noqa: E731
        excuse, cause = float_noise_excuse(torch_model, onnx_model, call, expected, actual)
        if excuse is not None:
            event(excuse)
            return
        difference = f"{difference}\n{cause}"
    assert difference is None, f"{difference}\ntexts={batch!r}"


def float_noise_excuse(torch_model, onnx_model, call, expected, actual) -> Tuple[Optional[str], Optional[str]]:
    """(excuse, None) when an answer that differs from gliner2's is float noise, else (None, the cause).

    Two excuses, both requiring that our host code on gliner2's own float32 modules gives gliner2's answer:
    - a near-tie: every ONNX stage agrees with gliner2's modules to float precision
      (`divergence_beyond_float_noise`), so only rounding can part the answers;
    - gliner2's own float32 answer sits on a near-tie that its rounding decides: gliner2 in float64, on the
      same batch, gives exactly our answer. This covers what the first cannot see: the pool's candidate
      order flipped by a proposal-score tie, a record assignment whose optimum two solutions share, and a
      text's answer moving with the padding of its batch.
    """
    cause = divergence_beyond_float_noise(torch_model, onnx_model, call, expected)
    if cause is None:
        return "answer flipped by a float near-tie", None
    if cause.startswith(HOST_CODE_DIFFERS):
        return None, cause
    in_float64 = copy.deepcopy(torch_model).double()
    if first_difference(call(in_float64), actual) is None:
        return "gliner2's float32 answer sits on a near-tie; ours is its float64 answer", None
    return None, f"{cause}; gliner2 in float64 does not give our answer either"


_FUZZ_SETTINGS = dict(deadline=None, derandomize=EXAMPLES <= 200, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
_FUZZ_INPUTS = dict(batch=st.lists(texts(), min_size=1, max_size=4), spec=schema_specs(), threshold=threshold, include=st.booleans())


@settings(max_examples=EXAMPLES, **_FUZZ_SETTINGS)
@given(**_FUZZ_INPUTS)
def test_onnx_runtime_never_diverges_from_gliner2(fuzz_models, batch, spec, threshold, include):
    _check_against_gliner2(*fuzz_models, batch, spec, threshold, include)


@settings(max_examples=max(1, EXAMPLES // 2), **_FUZZ_SETTINGS)
@given(**{**_FUZZ_INPUTS, "spec": schema_specs(records=True)})
def test_boundary_onnx_runtime_never_diverges_from_gliner2(boundary_fuzz_models, batch, spec, threshold, include):
    """The same on a GLiNER2.5 fixture: entities, classification, relations and structures with
    choice fields (no record mode) and records of every mode all run through the boundary decoders.

    gliner2 is run without its token-boundaries crash on records (tests/support/torch_backend.py):
    there the runtime answers by design."""
    with gliner2_without_token_boundaries_crash():
        _check_against_gliner2(*boundary_fuzz_models, batch, spec, threshold, include)


def _onnx_runtime(folder) -> GLiNER2ONNXRuntime:
    if not THREADS:
        return GLiNER2ONNXRuntime.from_pretrained(folder)
    import onnxruntime
    import torch

    torch.set_num_threads(THREADS)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    options.enable_mem_pattern = False  # as the runtime's own defaults
    return GLiNER2ONNXRuntime.from_pretrained(folder, session_options=options)


@pytest.fixture(scope="module")
def fuzz_models(torch_models, exported_dirs):
    return torch_models["deberta_lstm_v2"], _onnx_runtime(exported_dirs["deberta_lstm_v2"])


@pytest.fixture(scope="module")
def boundary_fuzz_models(boundary_models, boundary_exported_dirs):
    return boundary_models["boundary"], _onnx_runtime(boundary_exported_dirs["boundary"])


# Found by the fuzz at 10,000 examples: gliner2 answers ";;" (91-93) first, the runtime "{ÀoÀ Ü;;" (84-92).
NEAR_TIE_TEXT = ("aaaababaaaaaababbbaaaaabaabbaabbbbaaaaabbbbbbbbaaababbbbbbbaababbababaaabbaaaba "
                 "YÀ1À{ÀoÀ Ü;;;'d\"6\U0001eef0 北京 6;;\"_' ⑫ ")
NEAR_TIE_SPEC = {"entities": ["JrJ"], "relations": ["located_in", "born_in"], "item": (["organization", "money", "J"], 0.3)}


def _near_tie_call(model):
    return _run(model, [NEAR_TIE_TEXT], NEAR_TIE_SPEC, 0.5, True)


def test_reported_divergence_is_a_float_near_tie(fuzz_models):
    """The host code (choice-prefix words, word splitting, offsets) gives gliner2's answer on
    gliner2's modules (texts and offsets equal, confidences within 1e-6); the answers part only because two overlapping spans tie to float precision."""
    torch_model, onnx_model = fuzz_models
    expected = _near_tie_call(torch_model)
    assert len(expected[0]["entities"]["JrJ"]) > 5
    recorder = RecordingBackend(TorchBackend(torch_model))
    on_gliner2_modules = _near_tie_call(GLiNER2Pipeline(recorder, onnx_model.engine.preprocessor.tokenizer))
    assert first_difference(expected, on_gliner2_modules, atol=1e-6) is None
    probabilities = 1 / (1 + np.exp(-[array for stage, array in recorder.outputs if stage == "score_spans"][-1][0]))
    assert _overlapping_near_ties(probabilities, threshold=0.5, within=1e-6), "the case no longer sits on a tie"
    assert divergence_beyond_float_noise(torch_model, onnx_model, _near_tie_call, expected) is None


def _overlapping_near_ties(probabilities: np.ndarray, threshold: float, within: float) -> list:
    """(query, span, span) of two overlapping spans above `threshold` whose scores differ by < `within`;
    `probabilities` is [query, start word, width - 1]."""
    ties = []
    for query, scores in enumerate(probabilities):
        spans = [(start, start + width, scores[start, width]) for start, width in np.argwhere(scores > threshold)]
        for index, (start, end, score) in enumerate(spans):
            for other_start, other_end, other_score in spans[index + 1:]:
                if start <= other_end and other_start <= end and abs(score - other_score) < within:
                    ties.append((query, (start, end), (other_start, other_end)))
    return ties


class _NudgedBackend(RecordingBackend):
    """An ONNX backend whose span scores move by 1e-2: a graph bug the float-noise excuse must not cover."""

    def __getattr__(self, name):
        attribute = getattr(self._backend, name)
        return (lambda *args: attribute(*args) + 1e-2) if name == "score_spans" else attribute


def test_float_noise_excuse_catches_host_and_graph_differences(fuzz_models):
    torch_model, onnx_model = fuzz_models
    expected = _near_tie_call(torch_model)
    moved = copy.deepcopy(expected)
    moved[0]["entities"]["JrJ"][0]["start"] += 1
    assert "host code" in divergence_beyond_float_noise(torch_model, onnx_model, _near_tie_call, moved)
    nudged = GLiNER2Pipeline(_NudgedBackend(onnx_model.engine.backend), onnx_model.engine.preprocessor.tokenizer)
    assert "score_spans differs" in divergence_beyond_float_noise(torch_model, nudged, _near_tie_call, expected)


# Found by the GLiNER2.5 fuzz at 10,000 examples (seed 2): in this batch of 3 (with the longer third text),
# gliner2 decodes 182 `deal` records for the second text; alone, or in float64, it decodes 183, as the runtime
# does alone and in any batch.
BATCH_NOISE_TEXTS = [
    "Apple Apple  Apple Apple\nApple\tApple\r\nApple\n",
    "abaabbbbbaababbaaabbbaabaabababaaababbaaaaaabbabbaababbaaabbbabbaab ))); email\r\n?\t:').?(\r\n",
    "[EXAMPLE]\tco-founder [E]\t_(!(\r\n[SEP_TEXT\r\nè \xa0straße\tbababbbaabaabbbaaababbaabbbbbaabbaaabbabbbbaaabbbabaaaabbabaaabbbb "
    "straße\t[SEP_TEXT] \xa0¬  abababaabbbbbabbbbbaaaaabbabaaaabaaabababababbbabbaaabbbabbabbbaababbbbaaa [ P ]\tApple ",
]
BATCH_NOISE_SPEC = {
    "entities": ["Ż", "person"], "relations": ["works_for", "born_in"], "item": (["𤎉ęÄªUţŠøĻk", "e-mail"], 0.4),
    "deal": ("latent", [("str", "one_or_more", False), ("list", "one_or_more", True), ("str", "optional_one", False)],
             ["ㅠ𨽶ĸþćĕŧ秋", "Ŀcç𖦴ƊçfÂq", "YřĪżśŉ"]),
}  # fmt: skip

# Found by the GLiNER2.5 fuzz at 2,000 examples: one text, alone. gliner2 (float32) gives record 82 of `deal`
# 6 `part1` values, the runtime 9, as gliner2 in float64 does. Two pool candidates swap places on a
# proposal-score tie, and the joint assignment of the exclusive field `part0` over ~190 instances has two
# optima that rounding tells apart; with the ONNX outputs put back in gliner2's candidate order the runtime
# still answers 9, and its pair and object logits agree with gliner2's modules to 2e-5 once candidates are aligned.
ASSIGNMENT_TIE_TEXTS = ["Tim Cook\r\nstraße  [EXAMPLE]\r\n[ P ]  ®𩑖å³\r\n5·þ \xa0[DESCRIPTION]\nv헃𫨣ć [SEP_STRUCT]\n"]
ASSIGNMENT_TIE_SPEC = {
    "entities": {"money": ""}, "relations": ["born_in", "works_for"], "item": (["ĵYĝ", "P𰠵fđ", "rPg𠄓"], 0.6),
    "deal": ("latent", [("str", None, True), ("list", None, False), ("list", None, False)], ["𢮶Š𫓇", "location", "JFµ𬲢"]),
}  # fmt: skip

_REPORTED_FLOAT64_CASES = {
    "batch_noise": (BATCH_NOISE_TEXTS, BATCH_NOISE_SPEC, 0.4, 1),
    "assignment_tie": (ASSIGNMENT_TIE_TEXTS, ASSIGNMENT_TIE_SPEC, 0.3, 0),
}


@pytest.mark.parametrize("case", sorted(_REPORTED_FLOAT64_CASES))
def test_float64_excuse_holds_on_the_reported_cases_and_nowhere_else(boundary_fuzz_models, case):
    torch_model, onnx_model = boundary_fuzz_models
    texts, spec, threshold, row = _REPORTED_FLOAT64_CASES[case]
    call = lambda model, texts=texts: _run(model, texts, spec, threshold, False)  # noqa: E731
    with gliner2_without_token_boundaries_crash():
        ours, expected = call(onnx_model), call(torch_model)
        assert len(ours[row]["deal"]) > 100
        assert ours[row] == call(onnx_model, [texts[row]])[0]  # the runtime answers alike alone and in the batch
        # Whatever the CPU, ours is gliner2's float64 answer. Whether gliner2's float32 answer differs from it
        # depends on the CPU's GEMM kernels (it does on the AVX-512 Xeon where both cases were found).
        assert first_difference(call(copy.deepcopy(torch_model).double()), ours) is None
        if first_difference(expected, ours) is None:
            pytest.skip("gliner2's float32 answer on this CPU is already ours: no excuse to check")
        assert float_noise_excuse(torch_model, onnx_model, call, expected, ours)[0] is not None
        # One record fewer is neither gliner2's float32 answer nor its float64 one: no excuse for it.
        fewer = copy.deepcopy(ours)
        fewer[row]["deal"].pop()
        excuse, cause = float_noise_excuse(torch_model, onnx_model, call, expected, fewer)
        assert excuse is None and "float64 does not give our answer" in cause
