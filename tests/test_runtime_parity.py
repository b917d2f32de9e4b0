"""The torch-free host code reproduces gliner2 exactly.

`GLiNER2Pipeline` runs on `TorchBackend`, i.e. on gliner2's own PyTorch modules, so any
difference from gliner2's `GLiNER2` comes from the ported preprocessing, batching or decoding.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from optimum_gliner2.runtime import GLiNER2InputError, GLiNER2LoadError, GLiNER2Methods, GLiNER2Pipeline
from optimum_gliner2.bundle.format import MARKER_TOKENS
from optimum_gliner2.runtime.plan import DecodeOptions, plan_schema
from optimum_gliner2.runtime.preprocess import Preprocessor
from tests.support.parity import assert_same_results, strings_in, first_difference
from tests.support.parity_corpus import (
    CASES,
    ENTITY_LABELS,
    MIXED_LENGTH_TEXTS,
    PRODUCT_STRUCTURE,
    RELATION_LABELS,
    SENTENCES,
    SCHEMA_BUILDERS,
    run_case,
)
from tests.support.torch_backend import TorchBackend, torch_pipeline


@pytest.fixture(scope="module")
def pipelines(checkpoint_dirs, torch_models) -> dict:
    """A `GLiNER2Pipeline` on each variant's PyTorch modules, built lazily."""

    class _Pipelines(dict):
        def __missing__(self, name):
            self[name] = torch_pipeline(torch_models[name], checkpoint_dirs[name])
            return self[name]

    return _Pipelines()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_corpus_case_matches_gliner2(torch_models, pipelines, variant, case):
    try:
        expected = run_case(torch_models[variant], case)
    except RuntimeError as error:
        # BERT's absolute positions stop at 512 tokens: gliner2 itself cannot run the long text.
        with pytest.raises(RuntimeError):
            run_case(pipelines[variant], case)
        pytest.skip(f"gliner2 fails on {variant}, and so does the pipeline: {error}")
    actual = run_case(pipelines[variant], case)
    assert_same_results(expected, actual, context=f"{variant}/{case.name}")


def test_corpus_is_not_trivial(torch_models):
    """Parity on empty results would prove nothing: every case extracts something."""
    model = torch_models["deberta_lstm"]
    empty = [case.name for case in CASES if not strings_in(run_case(model, case))]
    assert not empty, empty


class RecordingBackend:
    """Delegates to a backend, recording the stages called and the counts predicted."""

    def __init__(self, backend):
        self.backend = backend
        self.architecture = backend.architecture
        self.max_width = backend.max_width
        self.max_count = backend.max_count
        self.hidden_size = backend.hidden_size
        self.calls: list = []
        self.counts: list = []

    def encode(self, input_ids, attention_mask):
        self.calls.append("encode")
        return self.backend.encode(input_ids, attention_mask)

    def count_and_queries(self, prompt_embeddings, field_embeddings, max_instances):
        self.calls.append("count_and_queries")
        logits, queries = self.backend.count_and_queries(prompt_embeddings, field_embeddings, max_instances)
        self.counts.extend(np.argmax(logits, axis=-1).tolist())
        return logits, queries

    def classify(self, label_embeddings):
        self.calls.append("classify")
        return self.backend.classify(label_embeddings)

    def score_spans(self, word_embeddings, queries):
        self.calls.append("score_spans")
        return self.backend.score_spans(word_embeddings, queries)


def _recording(pipeline: GLiNER2Pipeline):
    backend = RecordingBackend(pipeline.backend)
    return GLiNER2Pipeline(backend, pipeline.engine.preprocessor.tokenizer), backend


def test_counts_match_pytorch(torch_models, pipelines, variant):
    """Predicted instance counts equal gliner2's on every call (as multisets: order differs)."""
    model = torch_models[variant]
    pipeline, backend = _recording(pipelines[variant])
    gliner2_counts: list = []
    for text in SENTENCES[:8]:
        gliner2_counts.clear()
        backend.counts.clear()
        # TorchBackend shares count_pred with the model, so hook gliner2's own call only.
        hook = model.count_pred.register_forward_hook(
            lambda module, inputs, output: gliner2_counts.extend(output.argmax(-1).tolist())
        )
        try:
            expected = model.extract(text, SCHEMA_BUILDERS["mixed"](model.create_schema()))
        finally:
            hook.remove()
        actual = pipeline.extract(text, SCHEMA_BUILDERS["mixed"](pipeline.create_schema()))
        assert sorted(backend.counts) == sorted(gliner2_counts), text
        assert_same_results(expected, actual)


def test_corpus_predicts_several_instances(pipelines):
    """The fixture checkpoints predict counts > 1, so multi-instance decoding is exercised."""
    counts = set()
    for variant in ("deberta_lstm", "deberta_lstm_v2", "deberta_moe", "bert"):
        pipeline, backend = _recording(pipelines[variant])
        pipeline.batch_extract_relations(list(SENTENCES), RELATION_LABELS)
        pipeline.batch_extract_json(list(SENTENCES), PRODUCT_STRUCTURE)
        counts.update(backend.counts)
    assert max(counts) > 1, counts


@pytest.mark.parametrize("forced_count", [0, 3])
def test_forced_counts_match_pytorch(torch_models, pipelines, forced_count):
    """Count 0 empties every span task (entities included); count 3 keeps 3 instances."""
    model = torch_models["deberta_lstm_v2"]
    pipeline = pipelines["deberta_lstm_v2"]
    bias = model.count_pred[-1].bias
    saved = bias.detach().clone()
    with torch.no_grad():
        bias.fill_(-100.0)
        bias[forced_count] = 100.0
    try:
        texts = list(SENTENCES[:4])
        expected = model.batch_extract(texts, SCHEMA_BUILDERS["mixed"](model.create_schema()))
        actual = pipeline.batch_extract(texts, SCHEMA_BUILDERS["mixed"](pipeline.create_schema()))
    finally:
        with torch.no_grad():
            bias.copy_(saved)
    assert_same_results(expected, actual)
    if forced_count == 0:
        for result in actual:
            # gliner2 empties a structure to {} (not []) when its count is 0.
            assert result["entities"] == {} and result["employment"] == {}
            assert result["relation_extraction"] == {"works_for": [], "located_in": []}
    else:
        assert max(len(result["employment"]) for result in actual) == 3


@pytest.mark.parametrize("batch_size", [1, 2, 8])
def test_batched_equals_one_at_a_time(pipelines, batch_size):
    pipeline = pipelines["deberta_lstm_v2"]
    schema = SCHEMA_BUILDERS["mixed"](pipeline.create_schema())
    batched = pipeline.batch_extract(
        list(MIXED_LENGTH_TEXTS), schema, batch_size=batch_size, include_confidence=True
    )
    single = [
        pipeline.extract(text, schema, include_confidence=True) for text in MIXED_LENGTH_TEXTS
    ]
    assert_same_results(single, batched)


def test_backend_calls_per_batch(pipelines):
    """One encode, one count call per distinct field count, one classify, one score_spans."""
    pipeline, backend = _recording(pipelines["deberta_lstm"])
    schema = SCHEMA_BUILDERS["mixed"](pipeline.create_schema())
    pipeline.batch_extract(list(SENTENCES[:5]), schema, batch_size=8)
    # Field counts in the mixed schema: entities 3, relations 2 (twice), structure 3.
    assert sorted(backend.calls) == sorted(
        ["encode", "count_and_queries", "count_and_queries", "classify", "score_spans"]
    )
    backend.calls.clear()
    pipeline.batch_extract(list(SENTENCES[:5]), schema, batch_size=2)
    assert backend.calls.count("encode") == 3 and backend.calls.count("score_spans") == 3


def test_gliner2_schema_objects_are_accepted(torch_models, pipelines):
    """A real gliner2 Schema (with validators and attribute groups) works unchanged."""
    from gliner2 import Schema

    model = torch_models["deberta_moe"]
    pipeline = pipelines["deberta_moe"]
    for builder in SCHEMA_BUILDERS.values():
        schema = builder(Schema())
        expected = model.batch_extract(list(SENTENCES[:3]), schema, include_confidence=True)
        actual = pipeline.batch_extract(list(SENTENCES[:3]), schema, include_confidence=True)
        assert_same_results(expected, actual)


@pytest.mark.parametrize("token_pooling", ["mean", "max"])
def test_mean_and_max_pooling(checkpoint_dirs, token_pooling):
    """Checkpoints pooling subwords by mean or max (gliner2's loop path), dropped words included."""
    from gliner2 import GLiNER2

    directory = checkpoint_dirs["bert"]
    model = GLiNER2.from_pretrained(str(directory))
    model.eval()
    model.processor.token_pooling = token_pooling
    pipeline = torch_pipeline(model, directory, token_pooling=token_pooling)
    texts = [SENTENCES[5], "Tim Cook \u200b works for Apple in Cupertino today.", SENTENCES[10]]
    for method, target in (
        ("batch_extract_entities", ENTITY_LABELS),
        ("batch_extract_json", PRODUCT_STRUCTURE),
    ):
        expected = getattr(model, method)(texts, target, include_spans=True)
        actual = getattr(pipeline, method)(texts, target, include_spans=True)
        assert_same_results(expected, actual, context=method)


def test_char_word_splitter(checkpoint_dirs):
    from gliner2 import GLiNER2

    directory = checkpoint_dirs["deberta_lstm"]
    model = GLiNER2.from_pretrained(str(directory), word_splitter="char")
    model.eval()
    pipeline = torch_pipeline(model, directory, word_splitter="char")
    texts = ["北京和东京是城市, 上海在中国。", SENTENCES[0]]
    options = {"include_spans": True, "threshold": 0.4}
    expected = model.batch_extract_entities(texts, ENTITY_LABELS, **options)
    actual = pipeline.batch_extract_entities(texts, ENTITY_LABELS, **options)
    assert_same_results(expected, actual)


def _schema_of(model, case):
    """The gliner2 Schema (or dict) a corpus case runs with."""
    if callable(case.target):
        return case.target(model.create_schema())
    if "entities" in case.method:
        return model.create_schema().entities(case.target)
    if "relations" in case.method:
        return model.create_schema().relations(case.target)
    if "classify" in case.method:
        return model._classification_schema(case.target)
    if "json" in case.method:
        return model._json_schema(case.target)
    return case.target


def test_input_ids_and_positions_match_gliner2_collation(torch_models, pipelines, variant):
    """Token ids, word and marker positions, words and offsets equal gliner2's collation."""
    model = torch_models[variant]
    preprocessor = pipelines[variant].engine.preprocessor
    for case in CASES:
        schema = _schema_of(model, case)
        schema_dict = schema.build() if hasattr(schema, "build") else dict(schema)
        if isinstance(schema_dict.get("entities"), list):
            schema_dict["entities"] = dict.fromkeys(schema_dict["entities"], "")
        texts = list(case.inputs) if isinstance(case.inputs, tuple) else [case.inputs]
        max_len = case.options.get("max_len")
        batch = model.processor.collate_fn_inference(
            [(text, schema_dict) for text in texts], max_len=max_len
        )
        for row, text in enumerate(texts):
            plan = plan_schema(schema, DecodeOptions())
            record = preprocessor.encode(text, plan, max_len)
            text_words = [word for word, _, _ in preprocessor.word_splitter(record.text, lower=True)]
            where = f"{case.name}[{row}]"
            length = batch.original_lengths[row]
            assert list(record.input_ids) == batch.input_ids[row, :length].tolist(), where
            word_count = batch.text_word_counts[row]
            first_positions = [start for start, _ in record.word_subwords]
            assert first_positions == batch.text_word_indices[row, :word_count].tolist(), where
            assert [list(positions) for positions in record.marker_positions] == batch.schema_special_indices[row], where
            assert list(plan.choice_prefix) + text_words[:max_len] == batch.text_tokens[row], where
            assert list(record.start_map) == batch.start_mappings[row], where
            assert list(record.end_map) == batch.end_mappings[row], where
            assert record.text == batch.original_texts[row], where
            prompts = [list(task.prompt) for task in plan.tasks]
            assert prompts == batch.schema_tokens_list[row], where
            assert [task.kind for task in plan.tasks] == batch.task_types[row], where


def test_words_without_subwords_keep_a_placeholder(pipelines):
    """BERT drops a zero-width space; the word keeps the next word's position, like gliner2."""
    plan = plan_schema({"entities": {"person": ""}}, DecodeOptions())
    record = pipelines["bert"].engine.preprocessor.encode("Tim \u200b Cook", plan)
    (start, end), (next_start, _) = record.word_subwords[1], record.word_subwords[2]
    assert start == end == next_start


MARKER_TEXTS = [
    "[E] " + SENTENCES[0],
    SENTENCES[1].replace(" ", " [SEP_TEXT] ", 1),
    "see [R] above: " + SENTENCES[2] + " [P][C][L]",
    SENTENCES[3] + " [DESCRIPTION] [SEP_STRUCT]",
]


def test_marker_strings_in_texts_match_gliner2(torch_models, pipelines, variant):
    """A marker string inside a text is data. gliner2's built-in splitters lower-case words, so
    it reads "[E]" as the characters "[", "e", "]" too: the answers must be gliner2's."""
    model = torch_models[variant]
    options = {"include_spans": True, "include_confidence": True, "threshold": 0.4}
    expected = model.batch_extract_entities(MARKER_TEXTS, ENTITY_LABELS, **options)
    assert strings_in(expected), "the marker texts must give a non-empty answer"
    assert_same_results(expected, pipelines[variant].batch_extract_entities(MARKER_TEXTS, ENTITY_LABELS, **options))
    expected = model.batch_extract(MARKER_TEXTS, SCHEMA_BUILDERS["mixed"](model.create_schema()), **options)
    actual = pipelines[variant].batch_extract(MARKER_TEXTS, SCHEMA_BUILDERS["mixed"](pipelines[variant].create_schema()), **options)
    assert_same_results(expected, actual)


def test_marker_words_of_a_case_keeping_splitter_stay_plain_text(pipelines):
    """A custom splitter that keeps case hands "[E]" to the tokenizer as it is; gliner2 would read
    it as a prompt marker (a deliberate difference): here it stays ordinary characters."""

    def case_keeping_splitter(text, lower=True):
        for match in re.finditer(r"\S+", text):
            yield match.group(), match.start(), match.end()

    preprocessor = pipelines["deberta_lstm"].engine.preprocessor
    plain = Preprocessor(preprocessor.tokenizer, case_keeping_splitter)
    plan = plan_schema({"entities": {"person": "", "city": ""}}, DecodeOptions())
    with_marker = plain.encode("Tim [E] Cook [SEP_TEXT] .", plan)
    marker_ids = {preprocessor.tokenizer.token_to_id(marker) for marker in MARKER_TOKENS}
    prompt_length = with_marker.word_subwords[0][0]
    assert not marker_ids & set(with_marker.input_ids[prompt_length:])
    assert with_marker.marker_positions == plain.encode("Tim x Cook y .", plan).marker_positions
    tokenizer = preprocessor.tokenizer
    for (start, end), word in zip(with_marker.word_subwords[1::2], ["[E]", "[SEP_TEXT]"]):
        # The ordinary path, spelled out with the tokenizer's own components: normalize,
        # pre-tokenize, then the subword model, with no added-token matching in front.
        normalized = tokenizer.normalizer.normalize_str(word) if tokenizer.normalizer else word
        pieces = tokenizer.pre_tokenizer.pre_tokenize_str(normalized)
        ordinary_ids = [token.id for piece, _ in pieces for token in tokenizer.model.tokenize(piece)]
        assert list(with_marker.input_ids[start:end]) == ordinary_ids, word


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------

BAD_INPUTS = [
    (lambda p: p.extract_entities(None, ["person"]), "must be a str"),
    (lambda p: p.extract_entities(42, ["person"]), "must be a str"),
    (lambda p: p.extract_entities("", ["person"]), "empty or whitespace"),
    (lambda p: p.extract_entities(" \n\t", ["person"]), "empty or whitespace"),
    (lambda p: p.batch_extract_entities(["fine.", ""], ["person"]), r"texts\[1\] is empty"),
    (lambda p: p.batch_extract_entities("one text", ["person"]), "list of str"),
    (lambda p: p.extract_entities("Tim Cook", []), "label list is empty"),
    (lambda p: p.extract_entities("Tim Cook", ["person", "person"]), "duplicate"),
    (lambda p: p.extract_entities("Tim Cook", ["person", ""]), "non-empty strings"),
    (lambda p: p.extract_entities("Tim Cook", ["per[SEP_TEXT]son"]), "marker"),
    (lambda p: p.extract_entities("Tim Cook", {"person": "a [P] human"}), "marker"),
    (lambda p: p.extract_relations("Tim Cook", []), "label list is empty"),
    (lambda p: p.extract_relations("Tim Cook", ["works_for", "works_for"]), "duplicate"),
    (lambda p: p.classify_text("Tim Cook", {"sentiment": []}), "label list is empty"),
    (lambda p: p.classify_text("Tim Cook", {"sentiment": ["good", "good"]}), "duplicate"),
    (lambda p: p.classify_text("Tim Cook", {}), "defines no task"),
    (lambda p: p.extract_json("Tim Cook", {"person": []}), "label list is empty"),
    (lambda p: p.extract_json("Tim Cook", {"person": ["name", "name::str"]}), "duplicate"),
    (lambda p: p.extract_json("Tim Cook", {"person": ["mood::[happy|happy]"]}), "duplicate"),
    (lambda p: p.extract("Tim Cook", p.create_schema()), "defines no task"),
    (lambda p: p.extract("Tim Cook", ["person"]), "gliner2 Schema or a dict"),
    (lambda p: p.extract("Tim Cook", {"entities": ["a", "a"]}), "duplicate"),
    (lambda p: p.batch_extract(["a.", "b."], [{"entities": ["x"]}]), "Schema count"),
    (lambda p: p.batch_extract(["a."], {"entities": ["x"]}, batch_size=0), "batch_size"),
    (lambda p: p.extract_entities("Tim Cook", ["person"], max_len=0), "max_len"),
    (lambda p: p.extract_entities("Tim", ["person"], overlap_policy="sideways"), "overlap_policy"),
    (lambda p: p.extract_entities_long("", ["person"]), "empty or whitespace"),
]


@pytest.mark.parametrize("call, message", BAD_INPUTS, ids=[m for _, m in BAD_INPUTS])
def test_bad_input_raises_clear_error(pipelines, call, message):
    with pytest.raises(ValueError, match=message) as raised:
        call(pipelines["deberta_lstm"])
    if "overlap_policy" not in message:
        assert isinstance(raised.value, GLiNER2InputError)


def test_public_methods_have_gliner2_signatures():
    """Same parameter names, kinds, order and defaults as gliner2's GLiNER2."""
    from gliner2 import GLiNER2

    methods = [name for name in vars(GLiNER2Methods) if not name.startswith("_")]
    methods.remove("word_splitter")
    assert len(methods) == 23

    def parameters(function) -> list:
        return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]

    for name in methods:
        assert parameters(getattr(GLiNER2Pipeline, name)) == parameters(getattr(GLiNER2, name)), name


def test_hidden_states_is_torch_only(pipelines):
    with pytest.raises(TypeError, match="torch-only"):
        pipelines["deberta_lstm"].batch_extract(["Tim."], {"entities": ["x"]}, hidden_states=[1])


def test_empty_text_list_gives_empty_results(pipelines):
    assert pipelines["deberta_lstm"].batch_extract_entities([], ["person"]) == []
    assert pipelines["deberta_lstm"].batch_extract_entities_long([], ["person"]) == []


def test_tokenizer_without_marker_tokens_is_refused(torch_models):
    from tokenizers import Tokenizer, models

    plain_tokenizer = Tokenizer(models.WordLevel({"a": 0}, unk_token="a"))
    with pytest.raises(GLiNER2LoadError, match="marker tokens"):
        GLiNER2Pipeline(TorchBackend(torch_models["deberta_lstm"]), plain_tokenizer)


def test_unknown_token_pooling_is_refused(pipelines):
    pipeline = pipelines["deberta_lstm"]
    with pytest.raises(GLiNER2InputError, match="token_pooling"):
        GLiNER2Pipeline(pipeline.backend, pipeline.engine.preprocessor.tokenizer, token_pooling="cls")


def test_schema_without_task_has_no_tasks():
    with pytest.raises(GLiNER2InputError, match="defines no task"):
        plan_schema({"entities": {}, "relations": [], "json_structures": [{"empty": {}}]}, DecodeOptions())


def test_runtime_imports_neither_torch_nor_transformers_nor_gliner2(checkpoint_dirs):
    """The pipeline runs with torch, transformers and gliner2 made unimportable."""
    tokenizer_file = Path(checkpoint_dirs["deberta_lstm"]) / "tokenizer.json"
    script = textwrap.dedent(
        f"""
        import sys
        for blocked in ("torch", "transformers", "gliner2"):
            sys.modules[blocked] = None
        import numpy as np
        from tokenizers import Tokenizer
        from optimum_gliner2.runtime import GLiNER2Pipeline

        class RandomBackend:
            architecture, max_width, max_count, hidden_size = "span", 8, 20, 16
            def __init__(self):
                self.rng = np.random.default_rng(0)
            def encode(self, ids, mask):
                return self.rng.standard_normal(ids.shape + (16,)).astype(np.float32)
            def count_and_queries(self, prompts, fields, max_instances):
                n, m, h = fields.shape
                logits = np.zeros((n, 20), np.float32); logits[:, 2] = 1
                return logits, self.rng.standard_normal((n, 2, m, h)).astype(np.float32)
            def classify(self, labels):
                return self.rng.standard_normal(len(labels)).astype(np.float32)
            def score_spans(self, words, queries):
                b, l, _ = words.shape
                return self.rng.standard_normal((b, queries.shape[1], l, 8)).astype(np.float32)

        tokenizer = Tokenizer.from_file({str(tokenizer_file)!r})
        pipeline = GLiNER2Pipeline(RandomBackend(), tokenizer)
        schema = (pipeline.create_schema().entities(["person"]).relations(["works_for"])
                  .classification("sentiment", ["good", "bad"]))
        print(pipeline.extract("Tim Cook works for Apple.", schema))
        loaded = [name for name in ("torch", "transformers", "gliner2") if sys.modules.get(name)]
        assert not loaded, loaded
        """
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    assert "sentiment" in completed.stdout


def test_first_difference_reports_the_path():
    expected = {"entities": {"person": [{"text": "Tim", "confidence": 0.5}]}}

    def with_person(text, confidence):
        return {"entities": {"person": [{"text": text, "confidence": confidence}]}}

    assert first_difference(expected, with_person("Tim", 0.50001)) is None
    path = "$.entities.person[0]"
    assert first_difference(expected, with_person("Tom", 0.5)).startswith(f"{path}.text")
    assert first_difference(expected, with_person("Tim", 0.6)).startswith(f"{path}.confidence")
    assert first_difference([1.0], [np.float32(1.0)]).startswith("$[0]: expected float")
    assert first_difference((1, 2), [1, 2]).startswith("$: expected tuple")
    assert first_difference({"a": 1, "b": 2}, {"b": 2, "a": 1}).startswith("$: keys")
    # Items ranked by confidence may swap only when their confidences tie within atol.
    ranked = [{"text": "a", "confidence": 0.7}, {"text": "b", "confidence": 0.70001}]
    assert first_difference(ranked, ranked[::-1]) is None
    spread = [{"text": "a", "confidence": 0.7}, {"text": "b", "confidence": 0.6}]
    assert first_difference(spread, spread[::-1]).startswith("$[0].text")
    assert first_difference(["a", "b"], ["b", "a"]).startswith("$[0]")
