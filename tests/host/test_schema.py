"""Differential tests: `optimum_gliner2.runtime.schema` against the installed gliner2's builder.

Random sequences of builder calls, random `from_dict` inputs and random regex validators are
applied to our implementation and to gliner2's (gliner2 2.1, `gliner2.inference.schema`). The
prompt dictionaries (types and key order included), the decoding metadata, `to_dict()` and the
exception types must agree. The deliberate differences are pinned by their own tests at the end.

Example counts are small enough for CI (the tests take a few seconds); set HOST_FUZZ_EXAMPLES to
run every property with that many examples instead.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import gliner2
from gliner2.inference import schema as gliner2_schema
from optimum_gliner2.runtime import schema as our_schema
from optimum_gliner2.runtime.schema import SchemaMetadata, metadata_of_gliner2_schema

_FUZZ_OVERRIDE = int(os.environ.get("HOST_FUZZ_EXAMPLES") or 0)


def fuzz_settings(default_examples: int) -> settings:
    return settings(
        max_examples=_FUZZ_OVERRIDE or default_examples,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# ---------------------------------------------------------------------------------------------
# The two implementations, and test inputs materialised separately for each
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Library:
    name: str
    Schema: Any
    RegexValidator: Any
    AttributeGroup: Any


OURS = Library("ours", our_schema.Schema, our_schema.RegexValidator, our_schema.AttributeGroup)
THEIRS = Library(
    "gliner2", gliner2.Schema, gliner2_schema.RegexValidator, gliner2_schema.AttributeGroup
)


@dataclasses.dataclass(frozen=True)
class ValidatorSpec:
    pattern: str
    mode: str = "full"
    exclude: bool = False


@dataclasses.dataclass(frozen=True)
class GroupSpec:
    """An AttributeGroup's keyword arguments; `plain=True` passes a dict instead (a wrong type)."""

    kwargs: Tuple[Tuple[str, Any], ...]
    plain: bool = False


def materialise(spec: Any, library: Library) -> Any:
    """Fresh objects for one library, so that the two sides never share a list."""
    if isinstance(spec, ValidatorSpec):
        return library.RegexValidator(spec.pattern, mode=spec.mode, exclude=spec.exclude)
    if isinstance(spec, GroupSpec):
        kwargs = {key: materialise(value, library) for key, value in spec.kwargs}
        return kwargs if spec.plain else library.AttributeGroup(**kwargs)
    if isinstance(spec, list):
        return [materialise(item, library) for item in spec]
    if isinstance(spec, tuple):
        return tuple(materialise(item, library) for item in spec)
    if isinstance(spec, dict):
        return {key: materialise(value, library) for key, value in spec.items()}
    return spec


# ---------------------------------------------------------------------------------------------
# Comparison helpers
# ---------------------------------------------------------------------------------------------


def canonical(value: Any) -> Any:
    """A form whose equality means: same types, same values, same key order at every level."""
    if isinstance(value, dict):  # OrderedDict (gliner2) and dict (ours) alike
        return ("dict", tuple((canonical(key), canonical(item)) for key, item in value.items()))
    if isinstance(value, list):
        return ("list", tuple(canonical(item) for item in value))
    if isinstance(value, tuple):
        return ("tuple", tuple(canonical(item) for item in value))
    if isinstance(value, float) and math.isnan(value):
        return ("float", "nan")
    return (type(value).__name__, value)


def validator_key(validator: Any) -> Tuple[Any, ...]:
    return ("validator", validator.pattern, validator.mode, validator.exclude, validator.flags)


def options_key(options: Any) -> Tuple[Any, ...]:
    validators = tuple(validator_key(validator) for validator in options.validators)
    return canonical(options.dtype), canonical(options.threshold), validators


def group_key(group: Any) -> Tuple[Any, ...]:
    names = ("labels", "multi_label", "threshold", "applies_to", "qualify_labels")
    return tuple(canonical(getattr(group, name)) for name in names)


def comparable_metadata(metadata: SchemaMetadata) -> Dict[str, Any]:
    """SchemaMetadata field by field; validators and groups as tuples (their classes differ)."""
    assert isinstance(metadata, SchemaMetadata)
    return {
        "entity_order": canonical(metadata.entity_order),
        "entity_options": {k: options_key(v) for k, v in metadata.entity_options.items()},
        "field_orders": {k: canonical(v) for k, v in metadata.field_orders.items()},
        "field_options": {k: options_key(v) for k, v in metadata.field_options.items()},
        "relation_order": canonical(metadata.relation_order),
        "relation_thresholds": {k: canonical(v) for k, v in metadata.relation_thresholds.items()},
        "attribute_groups": {k: group_key(v) for k, v in metadata.attribute_groups.items()},
        "attribute_prompt_labels": dict(metadata.attribute_prompt_labels),
        "attribute_labels": metadata.attribute_labels,
    }


def assert_same_metadata(ours: SchemaMetadata, theirs: SchemaMetadata) -> None:
    mine, reference = comparable_metadata(ours), comparable_metadata(theirs)
    assert set(mine) == {f.name for f in dataclasses.fields(SchemaMetadata)}
    for name in mine:
        assert mine[name] == reference[name], f"SchemaMetadata.{name} differs"


def finish_gliner2(schema: Any) -> None:
    """What our `metadata()` does before reading: finish gliner2's open structure."""
    if schema._active_builder:
        schema._active_builder._auto_finish()
        schema._active_builder = None


def outcome(call: Callable[[], Any]) -> Tuple[str, Any]:
    try:
        return ("ok", call())
    except Exception as error:  # noqa: BLE001 - the exception type is what is compared
        return ("raised", type(error))


def assert_same_outcome(ours: Tuple[str, Any], theirs: Tuple[str, Any], what: str) -> None:
    if "raised" in (ours[0], theirs[0]):
        assert ours == theirs, f"{what}: ours {ours}, gliner2 {theirs}"
    else:
        assert ours[1] == theirs[1], f"{what} differs"


# ---------------------------------------------------------------------------------------------
# Random builder call sequences
# ---------------------------------------------------------------------------------------------


def usually(good: Any, bad: Any) -> st.SearchStrategy:
    """`good` five times in six, `bad` otherwise (a list is sampled from)."""
    good = st.sampled_from(good) if isinstance(good, list) else good
    bad = st.sampled_from(bad) if isinstance(bad, list) else bad
    return st.integers(0, 5).flatmap(lambda roll: bad if roll == 5 else good)


def optional_kwargs(**strategies: Any) -> st.SearchStrategy[Dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=strategies)


NAMES = usually(["person", "company", "a", "b", "Émile"], ["", " ", "text", "x y"])
ENTITY_NAMES = usually(NAMES, [5, "pos"])
LABELS = usually(["pos", "neg", "neutral", "a"], ["", " ", "person"])
ATTRIBUTE_LABELS = usually(["pos", "neg", "up", "down", "hot", "cold"], ["", " ", "person", "a"])
GROUP_NAMES = usually(["tone", "mood", "g"], ["text", "confidence", "start", "end", "", 0, 5])
# No booleans: gliner2 stores True as a threshold, to_dict writes it, and its from_dict coerces
# it to 1.0 where ours rejects it (a documented difference, pinned below).
THRESHOLDS = usually([None, 0, 0.0, 0.3, 1, 1.0], [-0.1, 1.5, float("nan"), "0.5"])
DTYPES = usually(["list", "str"], ["other"])
DESCRIPTIONS = st.sampled_from([None, "", "some description"])
TEXT_DESCRIPTIONS = st.sampled_from(["", "some description"])
VALIDATORS = st.builds(
    ValidatorSpec,
    pattern=st.sampled_from([r"\d+", "a.*", "[A-Z]", "^x$"]),
    mode=st.sampled_from(["full", "partial"]),
    exclude=st.booleans(),
)
VALIDATOR_LISTS = st.one_of(st.none(), st.lists(VALIDATORS, max_size=2), st.just(()))

ENTITY_CONFIGS = st.one_of(
    TEXT_DESCRIPTIONS,
    optional_kwargs(
        description=DESCRIPTIONS, dtype=DTYPES, threshold=THRESHOLDS, validators=VALIDATOR_LISTS
    ),
    st.sampled_from([None, 5, ["x"]]),
)
ENTITY_TYPES = usually(
    st.one_of(
        ENTITY_NAMES,
        st.lists(ENTITY_NAMES, max_size=4),
        st.dictionaries(ENTITY_NAMES, ENTITY_CONFIGS, max_size=4),
    ),
    [("person",), 5, None, [["unhashable"]]],
)
RELATION_CONFIGS = st.one_of(
    TEXT_DESCRIPTIONS,
    optional_kwargs(description=DESCRIPTIONS, threshold=THRESHOLDS),
    st.sampled_from([None, 5]),
)
RELATION_TYPES = usually(
    st.one_of(
        NAMES, st.lists(NAMES, max_size=3), st.dictionaries(NAMES, RELATION_CONFIGS, max_size=3)
    ),
    [("works_for",), 5],
)
CLASS_LABELS = usually(
    st.one_of(st.lists(LABELS, max_size=4), st.dictionaries(LABELS, DESCRIPTIONS, max_size=4)),
    ["ab", None],
)
CLASS_OPTIONS = st.builds(
    lambda options, extras: {**options, **extras},
    optional_kwargs(
        multi_label=st.sampled_from([True, False, 1]),
        cls_threshold=usually([0.5, 0, 1, 0.2], [1.5, -1.0, float("nan"), None]),
        top_k=usually([None, 1, 3], [0, -2, 2.5, "3"]),
    ),
    optional_kwargs(  # **kwargs, including one that collides with a key the builder sets itself
        class_act=st.sampled_from(["auto", "sigmoid", "softmax", "bad", None]),
        prompt=st.sampled_from(["Pick one", "", None]),
        examples=st.one_of(
            st.lists(
                st.tuples(LABELS, LABELS) | st.lists(LABELS, min_size=2, max_size=2), max_size=2
            ),
            st.none(),
        ),
        label_descriptions=st.dictionaries(LABELS, LABELS, max_size=2),
        custom_option=st.integers(0, 3),
    ),
)
GROUP_SPECS = st.builds(
    lambda kwargs, plain: GroupSpec(tuple(kwargs.items()), plain),
    st.fixed_dictionaries(
        {
            "labels": usually(
                st.lists(ATTRIBUTE_LABELS, min_size=1, max_size=2), ["ab", ("pos", "neg"), []]
            )
        },
        optional={
            "multi_label": st.sampled_from([True, False, 1]),
            "threshold": usually([0.5, 0, 1.0, 0.7], [1.5, -0.1, None]),
            "applies_to": usually(
                st.one_of(st.none(), st.none(), st.lists(NAMES, max_size=1)), ["person", ["zz"]]
            ),
            "qualify_labels": st.booleans(),
        },
    ),
    usually([False], [True]),
)
FIELD_KWARGS = optional_kwargs(
    dtype=DTYPES,
    choices=st.sampled_from([None, [], ["x"], ["x", "y"], ("x",)]),
    description=DESCRIPTIONS,
    threshold=THRESHOLDS,
    validators=VALIDATOR_LISTS,
    cardinality=usually(
        [None, "optional_one", "required_one", "zero_or_more", "one_or_more"], ["weird"]
    ),
    exclusive=st.sampled_from([False, True, 0, 1]),
)
# A bad record (an unknown mode, a natural structure without its anchor field) keeps failing on
# every later call, so it is kept rare.
STRUCTURE_KWARGS = optional_kwargs(
    mode=usually([None, None, None, "latent", "anchorless", "natural"], ["bogus"]),
    anchor=usually([None, None, None, None, ""], ["name", "zz"]),
    occurrence_policy=usually(
        [None, "all", "first", "error_on_ambiguous", "latent_all"], ["bogus"]
    ),
)

# An operation is (method, via, args, kwargs). `via` picks the receiver of a schema method: the
# schema (None) or one of the builders handed out so far (forwarded by its __getattr__); for
# "field" it picks the builder, stale ones included.
VIA = st.one_of(st.none(), st.none(), st.integers(0, 5))
ENTITIES_CALLS = st.tuples(
    st.just("entities"),
    VIA,
    st.tuples(ENTITY_TYPES),
    optional_kwargs(dtype=DTYPES, threshold=THRESHOLDS, validators=VALIDATOR_LISTS),
)
ATTRIBUTE_CALLS = st.tuples(
    st.just("entity_attributes"),
    VIA,
    st.tuples(
        usually(st.dictionaries(GROUP_NAMES, GROUP_SPECS, min_size=1, max_size=2), [None, {}])
    ),
    st.just({}),
)
STRUCTURE_WITH_FIELDS = st.tuples(
    st.just("structure_with_fields"),
    st.none(),
    st.tuples(
        st.sampled_from(["product", "event"]),
        st.lists(
            st.tuples(st.sampled_from(["name", "price", "date"]), FIELD_KWARGS),
            min_size=1,
            max_size=3,
        ),
    ),
    optional_kwargs(
        mode=st.sampled_from([None, "natural", "latent", "anchorless"]),
        anchor=st.sampled_from([None, "price"]),
    ),
)
OPERATIONS = st.one_of(
    ENTITIES_CALLS,
    st.tuples(
        st.just("relations"), VIA, st.tuples(RELATION_TYPES), optional_kwargs(threshold=THRESHOLDS)
    ),
    st.tuples(
        st.just("classification"),
        VIA,
        st.tuples(st.sampled_from(["sentiment", "topic", ""]), CLASS_LABELS),
        CLASS_OPTIONS,
    ),
    st.tuples(
        st.just("structure"),
        VIA,
        st.tuples(st.sampled_from(["product", "event", "a", "x y"])),
        STRUCTURE_KWARGS,
    ),
    STRUCTURE_WITH_FIELDS,
    st.tuples(
        st.just("field"),
        st.integers(0, 5),
        st.tuples(st.sampled_from(["name", "price", "date", "a"])),
        FIELD_KWARGS,
    ),
    ATTRIBUTE_CALLS,
    ATTRIBUTE_CALLS,
    st.tuples(st.sampled_from(["build", "to_dict", "metadata"]), VIA, st.just(()), st.just({})),
)
# Half of the sequences start by declaring entity types, so that entity_attributes() gets going.
FIRST_ENTITIES = st.tuples(
    st.just("entities"),
    st.none(),
    st.tuples(st.lists(st.sampled_from(["person", "company", "a"]), min_size=1)),
    st.just({}),
)
SEQUENCES = st.builds(
    lambda first, rest: first + rest,
    st.one_of(st.just([]), st.lists(FIRST_ENTITIES, min_size=1, max_size=1)),
    st.lists(OPERATIONS, max_size=12),
)


class Session:
    """One library's schema and the structure builders handed out so far."""

    def __init__(self, library: Library):
        self.library = library
        self.schema = library.Schema()
        self.builders: List[Any] = []

    def receiver(self, via: Optional[int]) -> Any:
        if via is None or not self.builders:
            return self.schema
        return self.builders[via % len(self.builders)]

    def metadata(self, receiver: Any) -> SchemaMetadata:
        if self.library is OURS:
            return receiver.metadata()
        if receiver is not self.schema:
            receiver._auto_finish()  # what our builder's forwarding does first
        finish_gliner2(self.schema)
        return metadata_of_gliner2_schema(self.schema)

    def apply(self, operation: Tuple[Any, ...]) -> Tuple[str, Any]:
        kind, via, args_spec, kwargs_spec = operation
        args = materialise(list(args_spec), self.library)
        kwargs = materialise(dict(kwargs_spec), self.library)

        def call() -> Any:
            if kind == "field":
                if not self.builders:
                    return "no builder yet"
                builder = self.builders[via % len(self.builders)]
                return builder.field(*args, **kwargs) is builder
            if kind == "structure_with_fields":
                name, fields = args
                builder = self.schema.structure(name, **kwargs)
                self.builders.append(builder)
                for field_name, field_kwargs in fields:
                    builder = builder.field(field_name, **field_kwargs)
                return type(builder).__name__
            receiver = self.receiver(via)
            if kind == "metadata":
                return comparable_metadata(self.metadata(receiver))
            result = getattr(receiver, kind)(*args, **kwargs)
            if kind == "structure":
                self.builders.append(result)
                return type(result).__name__
            if kind in ("build", "to_dict"):
                return canonical(result)
            return result is self.schema

        return outcome(call)


@fuzz_settings(200)
@given(SEQUENCES)
def test_builder_call_sequences_match_gliner2(operations):
    ours, theirs = Session(OURS), Session(THEIRS)
    for step, operation in enumerate(operations):
        result = ours.apply(operation)
        assert_same_outcome(result, theirs.apply(operation), f"step {step} {operation[0]}")
        event(f"{operation[0]}: {result[1].__name__ if result[0] == 'raised' else 'ok'}")
    for kind in ("build", "to_dict", "metadata"):
        operation = (kind, None, (), {})
        result = ours.apply(operation)
        assert_same_outcome(result, theirs.apply(operation), f"final {kind}()")
    event(f"final state: {'invalid' if result[0] == 'raised' else 'valid'}")

    # to_dict -> from_dict round trip (valid or not, both must agree).
    ours_dict, theirs_dict = outcome(ours.schema.to_dict), outcome(theirs.schema.to_dict)
    assert canonical(ours_dict) == canonical(theirs_dict)
    if ours_dict[0] == "ok":
        assert_same_from_dict(ours_dict[1])


def test_builder_chaining_matches_gliner2():
    def chains(library: Library) -> List[Any]:
        S, V = library.Schema, library.RegexValidator
        return [
            S().structure("a").field("x").field("y").entities(["p"]).structure("b").field("z"),
            S().structure("a").field("x").entities(["p"]).structure("b").field("z").relations("r"),
            S()
            .entities({"p": "a person"})
            .structure("a", mode="natural")
            .field("x", cardinality="required_one")
            .field("y", exclusive=True)
            .classification("c", ["u", "v"], prompt="Pick")
            .structure("a")
            .field("w"),
            S()
            .structure("s")
            .field("v", validators=[V(r"\d+")], threshold=0.4)
            .structure("t", mode="latent")
            .field("q", choices=["m", "n"], description="which"),
        ]

    for index, (mine, reference) in enumerate(zip(chains(OURS), chains(THEIRS))):
        assert canonical(mine.build()) == canonical(reference.build()), f"chain {index}"
        assert canonical(mine.to_dict()) == canonical(reference.to_dict()), f"chain {index}"
        owner = mine if isinstance(mine, OURS.Schema) else mine.schema
        gliner2_owner = reference if isinstance(reference, THEIRS.Schema) else reference.schema
        assert_same_metadata(owner.metadata(), metadata_of_gliner2_schema(gliner2_owner))

    def exact_chain(library: Library) -> Any:
        schema = library.Schema()
        return schema.structure("a").field("x").field("y").entities(["p"]).structure("b").field("z")

    assert canonical(exact_chain(OURS).build()) == canonical(exact_chain(THEIRS).build())
    assert canonical(exact_chain(OURS).to_dict()) == canonical(exact_chain(THEIRS).to_dict())


def test_builder_quirks_match_gliner2():
    """gliner2's quirks, spelled out (the fuzzer reaches them too, but rarely)."""

    def failing_finish(library: Library) -> Any:
        # An invalid record stays open: every later call retries the finish, re-adding the entry.
        schema = library.Schema()
        schema.structure("s", mode="natural", anchor="missing").field("a", description="d")
        results = [outcome(lambda: schema.entities("x")), outcome(schema.build)]
        return canonical(results), canonical(schema.schema)

    def reused_names(library: Library) -> Any:
        schema = library.Schema()
        schema.structure("s").field("a", description="first", choices=["u"]).field("a")
        schema.structure("s").field("b").field("b", threshold=0.3)  # second entry, new order
        stale = schema.structure("t", mode="latent").field("a", exclusive=True)
        schema.entities(["e"])
        # Reaches the prompt (shared dict) but neither its description nor its record options.
        stale.field("late", description="lost", cardinality="required_one")
        described = schema.structure("u").field("a", description="kept")
        schema.relations("r")
        described.field("late", description="kept too: the descriptions dict is shared")
        schema.entity_attributes({"tone": library.AttributeGroup(["pos", "neg"])})
        schema.entity_attributes({"mood": library.AttributeGroup(["up"], qualify_labels=True)})
        schema.classification("c", ["u", "v"], label_descriptions={"u": "kw"}, top_k=2, extra=1)
        schema.relations(["r", "r"]).relations({"r": {"threshold": 0.2, "description": "again"}})
        return canonical(schema.build()), canonical(schema.to_dict())

    def attribute_access_finishes(library: Library) -> Any:
        # Reading a schema attribute through the builder finishes the structure, called or not.
        schema = library.Schema()
        builder = schema.structure("s").field("a")
        before = canonical(schema.schema)
        builder.build  # noqa: B018 - the attribute access is the point
        return before, canonical(schema.schema), outcome(lambda: builder.no_such_attribute)

    assert attribute_access_finishes(OURS) == attribute_access_finishes(THEIRS)
    assert failing_finish(OURS) == failing_finish(THEIRS)
    assert reused_names(OURS) == reused_names(THEIRS)


def test_builder_bool_thresholds_match_gliner2():
    """Booleans pass gliner2's 0..1 comparisons; they are kept out of the fuzzer's round trip."""

    def run(library: Library) -> Any:
        schema = library.Schema().entities(["a"], threshold=True)
        schema.classification("c", ["u", "v"], cls_threshold=False, top_k=True)
        schema.structure("s").field("f", threshold=True)
        return canonical(schema.build()), canonical(schema.to_dict())

    assert run(OURS) == run(THEIRS)


# ---------------------------------------------------------------------------------------------
# from_dict / from_json
# ---------------------------------------------------------------------------------------------

# Values that are wrong for most slots. None of them is coerced differently by pydantic (lax
# mode) and by us: no booleans in numeric slots, no numeric or boolean strings, no bytes.
WRONG = st.sampled_from([None, 7, 2.5, "zzz", [], {}, ["a"], {"k": "v"}, -1, 0, 1, [["a", "b"]]])


def mostly(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """`strategy` nine times in ten, a wrong value otherwise."""
    return st.integers(0, 9).flatmap(lambda roll: WRONG if roll == 9 else strategy)


def json_object(required: Dict[str, Any], optional: Dict[str, Any]) -> st.SearchStrategy:
    """An object with these keys, now and then with an unknown key too."""

    def add_unknown_key(value: Dict[str, Any], roll: int) -> Dict[str, Any]:
        return {**value, "bogus": 1} if roll == 14 else value

    objects = st.fixed_dictionaries(required, optional=optional)
    return st.builds(add_unknown_key, objects, st.integers(0, 14))


# Free-form inputs: every slot may hold a wrong value.
J_TEXT = st.sampled_from(["a", "b", "person", "x y", " ", "", "é"])
J_THRESHOLD = st.sampled_from([0, 1, 0.0, 0.25, 1.0, -0.5, 1.5, float("nan"), float("inf"), None])
J_FLAG = st.sampled_from([True, False, 0, 1, 1.0, 2, None])
J_DTYPE = st.sampled_from(["str", "list", "STR", None])
J_ENTITY_VALUE = mostly(
    J_TEXT
    | json_object(
        {}, {"description": J_TEXT | st.none(), "dtype": J_DTYPE, "threshold": J_THRESHOLD}
    )
)
J_RELATION_VALUE = mostly(
    J_TEXT | json_object({}, {"description": J_TEXT | st.none(), "threshold": J_THRESHOLD})
)
J_CARDINALITIES = ["optional_one", "required_one", "zero_or_more", "one_or_more", "many", None]
J_FIELD = st.just({"dtype": "str"}) | json_object(  # the first one lacks its name
    {"name": mostly(J_TEXT)},
    {
        "dtype": J_DTYPE,
        "choices": mostly(st.lists(J_TEXT, max_size=3)) | st.none(),
        "description": mostly(J_TEXT) | st.none(),
        "threshold": J_THRESHOLD,
        "cardinality": st.sampled_from(J_CARDINALITIES),
        "exclusive": J_FLAG,
    },
)
J_STRUCTURE = json_object(
    {"fields": mostly(st.lists(J_FIELD, max_size=3))},
    {
        "mode": st.sampled_from(["natural", "latent", "anchorless", "bogus", None]),
        "anchor": st.sampled_from(["a", "b", "", "zz", None]) | WRONG,
        "occurrence_policy": st.sampled_from(
            ["all", "first", "error_on_ambiguous", "latent_all", "some", None]
        ),
    },
)
J_LABELS = st.lists(J_TEXT, max_size=4) | st.dictionaries(J_TEXT, mostly(J_TEXT), max_size=4)
J_CLASSIFICATION = json_object(
    {"task": mostly(st.sampled_from(["sentiment", "topic", "", " "])), "labels": mostly(J_LABELS)},
    {
        "multi_label": J_FLAG,
        "cls_threshold": J_THRESHOLD,
        "top_k": st.sampled_from([None, 0, 1, 2, 2.0, 2.5, -1, float("inf"), float("nan")]),
        "class_act": st.sampled_from(["auto", "sigmoid", "softmax", "relu", None]),
        "prompt": mostly(J_TEXT) | st.none(),
        "examples": mostly(st.lists(st.lists(J_TEXT, min_size=1, max_size=3), max_size=2))
        | st.none(),
    },
)
J_GROUP = json_object(
    {"labels": mostly(st.lists(st.sampled_from(["pos", "neg", "a", "person", " "]), max_size=3))},
    {
        "multi_label": J_FLAG,
        "threshold": J_THRESHOLD,
        "applies_to": mostly(st.lists(st.sampled_from(["a", "person", "zz"]), max_size=2))
        | st.none(),
        "qualify_labels": J_FLAG,
    },
)
J_SCHEMA = json_object(
    {},
    {
        "entities": mostly(
            st.lists(J_TEXT, max_size=4) | st.dictionaries(J_TEXT, J_ENTITY_VALUE, max_size=4)
        ),
        "structures": mostly(st.dictionaries(J_TEXT, J_STRUCTURE, max_size=3)),
        "classifications": mostly(st.lists(J_CLASSIFICATION, max_size=3)),
        "relations": mostly(
            st.lists(J_TEXT, max_size=3) | st.dictionaries(J_TEXT, J_RELATION_VALUE, max_size=3)
        ),
        "entity_attributes": mostly(
            st.dictionaries(st.sampled_from(["tone", "g", "text", ""]), J_GROUP, max_size=2)
        ),
    },
)

# Valid inputs (as far as the pydantic models go; the builder may still object), then at most
# one mutation at a random place: a wrong value, a removed key or item, an unknown key.
V_NAME = st.sampled_from(["a", "b", "person", "x y", "é"])
V_THRESHOLD = st.sampled_from([0, 1, 0.0, 0.25, 1.0])
V_FLAG = st.sampled_from([True, False, 0, 1])
V_FIELD = st.fixed_dictionaries(
    {"name": V_NAME},
    optional={
        "dtype": st.sampled_from(["str", "list"]),
        "choices": st.lists(V_NAME, min_size=1, max_size=2) | st.none(),
        "description": V_NAME | st.none(),
        "threshold": V_THRESHOLD | st.none(),
        "cardinality": st.sampled_from(J_CARDINALITIES[:4] + [None]),
        "exclusive": V_FLAG,
    },
)
V_STRUCTURE = st.fixed_dictionaries(
    {"fields": st.lists(V_FIELD, min_size=1, max_size=3)},
    optional={
        "mode": st.sampled_from(["natural", "latent", "anchorless", None]),
        "occurrence_policy": st.sampled_from(
            ["all", "first", "error_on_ambiguous", "latent_all", None]
        ),
    },
)
V_LABELS = st.lists(V_NAME, min_size=2, max_size=3, unique=True) | st.dictionaries(
    V_NAME, V_NAME, min_size=2, max_size=3
)
V_CLASSIFICATION = st.fixed_dictionaries(
    {"labels": V_LABELS},
    optional={
        "multi_label": V_FLAG,
        "cls_threshold": V_THRESHOLD,
        "top_k": st.sampled_from([None, 1, 2, 2.0]),
        "class_act": st.sampled_from(["auto", "sigmoid", "softmax", None]),
        "prompt": V_NAME | st.none(),
        "examples": st.lists(st.lists(V_NAME, min_size=2, max_size=2), max_size=2) | st.none(),
    },
)
V_CLASSIFICATIONS = st.lists(
    st.tuples(st.sampled_from(["sentiment", "topic", "t"]), V_CLASSIFICATION),
    min_size=1,
    max_size=2,
    unique_by=lambda item: item[0],
).map(lambda items: [{"task": task, **rest} for task, rest in items])
V_GROUP = st.fixed_dictionaries(
    {
        "labels": st.lists(
            st.sampled_from(["pos", "neg", "up", "down"]), min_size=1, max_size=2, unique=True
        )
    },
    optional={
        "multi_label": V_FLAG,
        "threshold": V_THRESHOLD,
        "applies_to": st.lists(st.sampled_from(["a", "person"]), max_size=1) | st.none(),
        "qualify_labels": V_FLAG,
    },
)
V_ENTITY_OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "description": V_NAME | st.none(),
        "dtype": st.sampled_from(["str", "list", None]),
        "threshold": V_THRESHOLD | st.none(),
    },
)
V_RELATION_OPTIONS = st.fixed_dictionaries(
    {}, optional={"description": V_NAME | st.none(), "threshold": V_THRESHOLD | st.none()}
)
V_SCHEMA = st.fixed_dictionaries(
    {},
    optional={
        "entities": st.lists(V_NAME, min_size=1, max_size=3, unique=True)
        | st.dictionaries(V_NAME, V_NAME | V_ENTITY_OPTIONS, min_size=1, max_size=3),
        "structures": st.dictionaries(
            st.sampled_from(["product", "event"]), V_STRUCTURE, min_size=1, max_size=2
        ),
        "classifications": V_CLASSIFICATIONS,
        "relations": st.lists(V_NAME, min_size=1, max_size=2, unique=True)
        | st.dictionaries(V_NAME, V_NAME | V_RELATION_OPTIONS, min_size=1, max_size=2),
        "entity_attributes": st.dictionaries(
            st.sampled_from(["tone", "mood"]), V_GROUP, max_size=2
        ),
    },
)
MUTANT_VALUES = WRONG | st.sampled_from(["", " ", 2, 1.5, -0.1, float("nan"), "bogus", "list"])


def places_in(value: Any, path: Tuple[Any, ...] = ()) -> List[Tuple[Any, ...]]:
    """Paths to every value inside a JSON-like value (the root excluded)."""
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        items = []
    places = []
    for key, item in items:
        places.append(path + (key,))
        places.extend(places_in(item, path + (key,)))
    return places


@st.composite
def mutated_schemas(draw: Any) -> Any:
    data = json.loads(json.dumps(draw(V_SCHEMA)))  # a deep copy
    places = places_in(data)
    if draw(st.integers(0, 2)) == 0 or not places:
        return data
    *parent_path, key = draw(st.sampled_from(places))
    parent = data
    for step in parent_path:
        parent = parent[step]
    action = draw(st.sampled_from(["replace", "replace", "delete", "unknown key"]))
    if action == "replace":
        parent[key] = draw(MUTANT_VALUES)
    elif action == "delete":
        del parent[key]
    elif isinstance(parent[key], dict):
        parent[key]["unknown"] = 1
    return data


def from_dict_outcome(library: Library, data: Any, loader: str = "from_dict") -> Tuple[str, Any]:
    def load() -> Any:
        schema = getattr(library.Schema, loader)(data)
        built = canonical(schema.build())
        if library is OURS:
            metadata = comparable_metadata(schema.metadata())
        else:
            metadata = comparable_metadata(metadata_of_gliner2_schema(schema))
        return built, metadata, canonical(schema.to_dict())

    result = outcome(load)
    if result[0] == "raised" and issubclass(result[1], ValueError):
        return ("raised", ValueError)  # pydantic's ValidationError is a ValueError
    return result


def assert_same_from_dict(data: Any) -> Tuple[str, Any]:
    ours, theirs = from_dict_outcome(OURS, data), from_dict_outcome(THEIRS, data)

    def summary(result: Tuple[str, Any]) -> Any:
        return result if result[0] == "raised" else "ok"

    assert ours == theirs, f"from_dict({data!r}): ours {summary(ours)}, gliner2 {summary(theirs)}"
    return ours


@fuzz_settings(400)
@given(st.one_of(J_SCHEMA, mutated_schemas(), mutated_schemas()))
def test_from_dict_matches_gliner2(data):
    result = assert_same_from_dict(data)
    event(f"from_dict: {'valid' if result[0] == 'ok' else 'invalid'}")
    if result[0] == "ok":
        # Round trips through to_dict, and through JSON text.
        assert_same_from_dict(OURS.Schema.from_dict(data).to_dict())
        text = json.dumps(data)
        ours = from_dict_outcome(OURS, text, "from_json")
        assert ours == from_dict_outcome(THEIRS, text, "from_json")


def _structure(fields: List[Dict[str, Any]], **options: Any) -> Dict[str, Any]:
    return {"structures": {"s": {"fields": fields, **options}}}


def _classification(**task: Any) -> Dict[str, Any]:
    return {"classifications": [{"task": "t", **task}]}


FROM_DICT_CASES = [
    {"entities": ["company", "person"], "relations": ["works_for"]},
    {"entities": {"a": {"description": "", "dtype": "list", "threshold": 1}}},
    {
        "entities": {"a": {"description": None, "dtype": None}},
        "relations": {"r": {"description": None}},
    },
    {"entities": ("a", "b")},
    {"entities": None, "relations": ["r"]},
    {"entities": ["a"], "entity_attributes": {}},
    {"entities": ["a"], "entity_attributes": None},
    {
        "entities": ["a"],
        "entity_attributes": {
            "g": {"labels": ["x"], "applies_to": [], "threshold": 1, "multi_label": 1}
        },
    },
    {"entities": ["a"], "entity_attributes": {"g": {"labels": ["a"]}}},
    {"entities": ["a"], "entity_attributes": {"": {"labels": ["x"]}}},
    {"entities": ["a"], "entity_attributes": {"end": {"labels": ["x"]}}},
    {"entities": ["a"], "entity_attributes": {"confidence": {"labels": ["x"]}}},
    {"entity_attributes": {"g": {"labels": ["x"]}}, "relations": ["r"]},
    _structure([{"name": "a"}, {"name": "a"}]),
    _structure(({"name": "a"},), mode="natural", anchor=None, occurrence_policy="first"),
    _structure([{"name": "a"}], mode="natural", anchor=""),
    _structure([{"name": "a"}], mode="latent", anchor=""),
    _structure([{"name": "a"}], mode="latent", anchor="a"),
    _structure([{"name": "a"}], anchor="zz"),
    _structure(
        [
            {
                "name": "a",
                "exclusive": 1,
                "cardinality": "required_one",
                "threshold": 0,
                "description": "",
                "choices": ["x", "x"],
            }
        ],
        mode="latent",
    ),
    _structure([{"name": "a", "choices": []}]),
    _structure([]),
    {"structures": {" ": {"fields": [{"name": "a"}]}}},
    _classification(labels={"a": "A", "b": ""}, examples=[["x", "a"], ("y", "b")]),
    _classification(labels=["a", "b"], examples=[], prompt="", top_k=2.0),
    _classification(labels=["a", "b"], class_act=None, prompt=None, examples=None),
    _classification(labels={"a": "A"}),
    _classification(labels=["a", "a"]),
    _classification(labels=["a", " "]),
    _classification(labels={"a": "x", "": "y"}),
    _classification(labels=["a", "b"], multi_label=2),
    _classification(labels=["a", "b"], multi_label=1.0, top_k=2.5),
    _classification(labels=["a", "b"], examples=[["x", "a", "c"]]),
    {"classifications": [{"task": "t", "labels": ["a", "b"]}, {"task": "t", "labels": ["c", "d"]}]},
    {"classifications": []},
    {},
    {"relations": {"r": {"threshold": 0}, "q": "desc", "p": {}}},
    {"relations": {"r": ""}},
    {"relations": ["r", " "]},
    # An unknown key at every level.
    {"entities": ["a"], "extra": 1},
    {"entities": {"a": {"description": "d", "extra": 1}}},
    {"relations": {"r": {"threshold": 0.5, "extra": 1}}},
    {"entities": ["a"], "entity_attributes": {"g": {"labels": ["x"], "extra": 1}}},
    _structure([{"name": "a"}], extra=1),
    _structure([{"name": "a", "extra": 1}]),
    _classification(labels=["a", "b"], extra=1),
]


@pytest.mark.parametrize("data", FROM_DICT_CASES, ids=range(len(FROM_DICT_CASES)))
def test_from_dict_cases_match_gliner2(data):
    assert_same_from_dict(data)


def test_from_dict_rejects_non_mappings_as_gliner2_does():
    for data in ([], "entities", None, {1: ["a"]}):
        ours, theirs = from_dict_outcome(OURS, data), from_dict_outcome(THEIRS, data)
        assert ours == theirs == ("raised", TypeError)
    for text in ("[1]", "{", '{"entities": []}'):
        ours = from_dict_outcome(OURS, text, "from_json")
        assert ours == from_dict_outcome(THEIRS, text, "from_json")


def test_from_dict_error_messages_name_the_problem():
    cases = {
        "bogus": {"entities": ["a"], "bogus": 1},
        "entities['a'].threshold": {"entities": {"a": {"threshold": 1.5}}},
        "structures['s'].fields[0].dtype": _structure([{"name": "x", "dtype": "int"}]),
        "classifications[0].labels": _classification(labels=["only"]),
        "structures['s'].anchor": _structure([{"name": "x"}], mode="natural", anchor="y"),
    }
    for where, data in cases.items():
        with pytest.raises(ValueError, match=re.escape(where)):
            OURS.Schema.from_dict(data)


# ---------------------------------------------------------------------------------------------
# RegexValidator
# ---------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Possible nested set:FutureWarning")
@fuzz_settings(300)
@given(
    pattern=st.text(alphabet="ab.*+?()[]|^$\\dAZ", max_size=6),
    precompile=st.booleans(),
    mode=st.sampled_from(["full", "partial", "bogus", "FULL"]),
    exclude=st.booleans(),
    flags=st.sampled_from([re.IGNORECASE, 0, re.MULTILINE | re.DOTALL, re.LOCALE]),
    texts=st.lists(st.text(alphabet="abAB1 \n.", max_size=6), min_size=1, max_size=4),
)
def test_regex_validator_matches_gliner2(pattern, precompile, mode, exclude, flags, texts):
    if precompile:
        try:
            pattern = re.compile(pattern)
        except re.error:
            pass

    def build(library: Library) -> Any:
        return library.RegexValidator(pattern, mode=mode, exclude=exclude, flags=flags)

    ours, theirs = outcome(lambda: build(OURS)), outcome(lambda: build(THEIRS))
    assert ours[0] == theirs[0]
    if ours[0] == "raised":
        assert ours == theirs
        return
    for text in texts:
        expected = theirs[1].validate(text)
        assert ours[1].validate(text) == expected == ours[1](text) == theirs[1](text)


def test_regex_validator_argument_errors_match_gliner2():
    bad_arguments = [
        ((5,), {}),
        (("a",), {"mode": ["full"]}),
        (("(",), {}),
        (("a",), {"flags": "x"}),
    ]
    for args, kwargs in bad_arguments:
        ours = outcome(lambda: OURS.RegexValidator(*args, **kwargs))
        assert ours[0] == "raised", (args, kwargs)
        assert ours == outcome(lambda: THEIRS.RegexValidator(*args, **kwargs)), (args, kwargs)
    for text in (5, None):
        ours = outcome(lambda: OURS.RegexValidator("a").validate(text))
        assert ours == outcome(lambda: THEIRS.RegexValidator("a").validate(text))


# ---------------------------------------------------------------------------------------------
# metadata_of_gliner2_schema, API surface, module hygiene
# ---------------------------------------------------------------------------------------------


def test_metadata_of_gliner2_schema_names_a_missing_attribute():
    schema = THEIRS.Schema().entities(["a"])
    del schema._entity_attribute_labels
    with pytest.raises(TypeError, match="_entity_attribute_labels"):
        metadata_of_gliner2_schema(schema)
    with pytest.raises(TypeError, match="_field_metadata"):
        metadata_of_gliner2_schema(object())
    ours = OURS.Schema().entities(["a"], threshold=0.3)
    assert metadata_of_gliner2_schema(ours) == ours.metadata()


def test_metadata_converts_attribute_groups_and_is_a_snapshot():
    tone = {"tone": THEIRS.AttributeGroup(["pos", "neg"])}
    converted = metadata_of_gliner2_schema(THEIRS.Schema().entities(["a"]).entity_attributes(tone))
    ours = OURS.Schema().entities(["a"])
    ours.entity_attributes({"tone": OURS.AttributeGroup(["pos", "neg"])})
    assert type(converted.attribute_groups["tone"]) is our_schema.AttributeGroup
    assert converted.attribute_groups == ours.metadata().attribute_groups
    snapshot = ours.metadata()
    ours.entities(["b"])
    assert snapshot.entity_order == ("a",)
    assert ours.metadata().entity_order == ("a", "b")


def test_schema_metadata_has_the_specified_fields():
    names = [f.name for f in dataclasses.fields(SchemaMetadata)]
    assert names == [
        "entity_order",
        "entity_options",
        "field_orders",
        "field_options",
        "relation_order",
        "relation_thresholds",
        "attribute_groups",
        "attribute_prompt_labels",
        "attribute_labels",
    ]
    span_options = [f.name for f in dataclasses.fields(our_schema.SpanOptions)]
    assert span_options == ["dtype", "threshold", "validators"]


def test_public_signatures_mirror_gliner2():
    def shape(function: Any) -> List[Tuple[str, Any, Any]]:
        parameters = inspect.signature(function).parameters.values()
        return [(p.name, p.kind, p.default) for p in parameters]

    schema_methods = ["__init__", "entities", "relations", "classification", "structure"]
    schema_methods += ["entity_attributes", "build", "to_dict", "from_dict", "from_json"]
    pairs = [
        (OURS.RegexValidator, THEIRS.RegexValidator),
        (OURS.AttributeGroup, THEIRS.AttributeGroup),
        (OURS.RegexValidator.validate, THEIRS.RegexValidator.validate),
        *[(getattr(OURS.Schema, name), getattr(THEIRS.Schema, name)) for name in schema_methods],
        *[
            (getattr(our_schema.StructureBuilder, name), getattr(gliner2.StructureBuilder, name))
            for name in ("__init__", "field")
        ],
    ]
    for mine, reference in pairs:
        assert shape(mine) == shape(reference), mine
    classes = [
        (OURS.Schema, THEIRS.Schema),
        (our_schema.StructureBuilder, gliner2.StructureBuilder),
    ]
    for mine, reference in classes:
        public = {name for name in dir(reference) if not name.startswith("_")}
        assert public <= set(dir(mine))


def test_module_imports_only_the_standard_library():
    tree = ast.parse(Path(our_schema.__file__).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import"
            imported.add(node.module.split(".")[0])
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)


# ---------------------------------------------------------------------------------------------
# The documented differences
# ---------------------------------------------------------------------------------------------


def test_documented_difference_from_dict_is_stricter_about_types():
    """gliner2 (pydantic, lax mode) coerces these; ours rejects them (see Schema.from_dict)."""
    for data in (
        {"entities": {"a": {"threshold": "0.5"}}},
        {"entities": {"a": {"threshold": True}}},
        _classification(labels=["a", "b"], multi_label="yes"),
        _classification(labels=["a", "b"], top_k=True),
        _classification(labels=["a", "b"], top_k="3"),
        {"entities": ["a", b"b"]},
    ):
        assert from_dict_outcome(THEIRS, data)[0] == "ok"
        assert from_dict_outcome(OURS, data) == ("raised", ValueError)


def test_documented_difference_type_errors_where_gliner2_trips_later():
    """Where gliner2 raises AttributeError (or nothing until decoding), ours raises TypeError."""
    for library, expected in ((THEIRS, AttributeError), (OURS, TypeError)):
        schema = library.Schema().entities(["a"])
        not_a_dict = [("g", library.AttributeGroup(["x"]))]
        assert outcome(lambda: schema.entity_attributes(not_a_dict)) == ("raised", expected)
        number_label = {"g": library.AttributeGroup([5])}
        assert outcome(lambda: schema.entity_attributes(number_label)) == ("raised", expected)
    validator = OURS.RegexValidator("a")
    assert outcome(lambda: THEIRS.Schema().entities(["a"], validators=validator))[0] == "ok"
    rejected = outcome(lambda: OURS.Schema().entities(["a"], validators=validator))
    assert rejected == ("raised", TypeError)
    builder = OURS.Schema().structure("s")
    rejected = outcome(lambda: builder.field("f", validators=["not a validator"]))
    assert rejected == ("raised", TypeError)


def test_documented_difference_regex_validator_is_frozen():
    validator = OURS.RegexValidator("a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        validator.exclude = True
    assert hash(validator) == hash(OURS.RegexValidator("a"))
    assert validator == OURS.RegexValidator("a") != OURS.RegexValidator("a", exclude=True)
