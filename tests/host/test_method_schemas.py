"""The schemas the one-task methods build equal the ones gliner2's `GLiNER2` builds for them.

`extract_json` parses field specs ("name::str::[a|b]::description"), `classify_text` reads task
configs, `extract_entities` / `extract_relations` take labels in three forms: the runtime does this
itself (runtime/api.py), and these tests compare the built schemas with gliner2's, dict and metadata.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optimum_gliner2.runtime.api import (
    classification_schema,
    entity_schema,
    json_schema,
    parse_field_spec,
    relation_schema,
)
from optimum_gliner2.runtime.schema import metadata_of_gliner2_schema

EXAMPLES = int(os.environ.get("HOST_FUZZ_EXAMPLES", "300"))
fuzz = settings(max_examples=EXAMPLES, derandomize=True, deadline=None)


@pytest.fixture(scope="module")
def gliner2_methods():
    """gliner2's `GLiNER2` class: its schema helpers need no loaded model, only `create_schema`."""
    from gliner2 import GLiNER2, Schema

    class Helpers:
        enable_records = False

        def create_schema(self):
            return Schema()

    helpers = Helpers()
    for name in ("_parse_field_spec", "_json_schema", "_classification_schema"):
        setattr(helpers, name, getattr(GLiNER2, name).__get__(helpers))
    return helpers


def _same_schema(ours, theirs) -> None:
    assert ours.build() == theirs.build()
    assert list(ours.build()) == list(theirs.build())
    assert ours.metadata() == metadata_of_gliner2_schema(theirs)


part = st.one_of(
    st.sampled_from(["str", "list", "[a|b]", "[ x | y |z]", "[]", "[only]", "a description", "", "STR", "[a|b", "list]"]),
    st.text(st.sampled_from("ab:|[] s"), max_size=8),
)
field_spec = st.builds(lambda name, parts: "::".join([name, *parts]), st.sampled_from(["name", "price", "color"]), st.lists(part, max_size=4))
dict_spec = st.fixed_dictionaries(
    {"name": st.sampled_from(["name", "price"])},
    optional={
        "dtype": st.sampled_from(["str", "list"]),
        "choices": st.lists(st.sampled_from(["red", "blue", "green"]), min_size=1, max_size=3, unique=True),
        "description": st.sampled_from(["a colour", "the price"]),
    },
)


@fuzz
@given(spec=st.one_of(field_spec, dict_spec))
def test_field_specs_parse_as_in_gliner2(gliner2_methods, spec):
    assert parse_field_spec(spec) == gliner2_methods._parse_field_spec(spec)


@fuzz
@given(
    structures=st.dictionaries(
        st.sampled_from(["product", "person", "event"]),
        st.lists(st.sampled_from(["name::str", "price", "color::[red|blue]", "size::[S|M]::list", "when::str::the date"]),
                 min_size=1, max_size=4, unique=True),
        min_size=1, max_size=3,
    )
)  # fmt: skip
def test_json_schemas_equal_gliner2s(gliner2_methods, structures):
    _same_schema(json_schema(structures), gliner2_methods._json_schema(structures))


labels = st.lists(st.sampled_from(["positive", "negative", "neutral", "mixed"]), min_size=2, max_size=4, unique=True)
task_config = st.one_of(
    labels,
    st.dictionaries(st.sampled_from(["good", "bad", "meh"]), st.sampled_from(["a description", "another"]), min_size=2),
    st.fixed_dictionaries(
        {"labels": labels},
        optional={
            "multi_label": st.booleans(),
            "cls_threshold": st.sampled_from([0.2, 0.5, 0.8]),
            "top_k": st.sampled_from([1, 2]),
            "class_act": st.sampled_from(["auto", "sigmoid", "softmax"]),
            "prompt": st.sampled_from(["How does it feel?", "Tone"]),
        },
    ),
)


@fuzz
@given(tasks=st.dictionaries(st.sampled_from(["sentiment", "topic", "tone"]), task_config, min_size=1, max_size=3))
def test_classification_schemas_equal_gliner2s(gliner2_methods, tasks):
    _same_schema(classification_schema(tasks), gliner2_methods._classification_schema(tasks))


entity_config = st.one_of(
    st.just({}),
    st.sampled_from(["a human being", "a place"]),
    st.fixed_dictionaries({}, optional={"description": st.just("a thing"), "dtype": st.sampled_from(["str", "list"]),
                                        "threshold": st.sampled_from([0.3, 0.7])}),
)  # fmt: skip
label_types = st.one_of(
    st.sampled_from(["person", "works_for"]),
    st.lists(st.sampled_from(["person", "company", "city"]), min_size=1, max_size=3, unique=True),
    st.dictionaries(st.sampled_from(["person", "company", "works_for"]), entity_config, min_size=1, max_size=3),
)


@fuzz
@given(entity_types=label_types, relation_types=label_types)
def test_label_schemas_equal_gliner2s(entity_types, relation_types):
    from gliner2 import Schema

    _same_schema(entity_schema(entity_types), Schema().entities(entity_types))
    if isinstance(relation_types, dict):  # relation configs take a description and a threshold only
        relation_types = {name: config for name, config in relation_types.items() if "dtype" not in config}
    if relation_types:
        _same_schema(relation_schema(relation_types), Schema().relations(relation_types))
