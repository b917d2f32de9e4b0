"""GLiNER2's schema builder without torch, transformers, pydantic or gliner2.

A schema says what to extract: entity types, relation types, classification tasks and
structures (records made of fields), plus attribute groups decoded on entity spans. This module
offers the same public API as gliner2's `Schema` (gliner2 2.1, `gliner2.inference.schema`) and
produces the same prompt dictionary from the same calls, key order included, because the prompt
the model sees is built by walking that dictionary.

Beyond the dictionary, decoding needs what the builder remembers about each label (its dtype,
threshold and regex validators, the declared orders, the entity attribute groups). gliner2's
runtime reads that from the builder's private attributes; here it is a `SchemaMetadata` value,
returned by `Schema.metadata()` for our builder and by `metadata_of_gliner2_schema()` for a
gliner2 builder.

Only the standard library is imported, so a serving image needs neither gliner2 nor pydantic.
`tests/host/test_schema.py` checks every behaviour below against the installed gliner2.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AttributeGroup",
    "CLASSIFICATION_ACTIVATIONS",
    "FIELD_CARDINALITIES",
    "OCCURRENCE_POLICIES",
    "RECORD_MODES",
    "RegexValidator",
    "Schema",
    "SchemaMetadata",
    "SpanOptions",
    "StructureBuilder",
    "metadata_of_gliner2_schema",
]

#: Record formation modes a structure may declare (`Schema.structure(mode=...)`).
RECORD_MODES: tuple[str, ...] = ("natural", "latent", "anchorless")
#: How repeated surfaces are handled in record mode (`Schema.structure(occurrence_policy=...)`).
OCCURRENCE_POLICIES: tuple[str, ...] = ("all", "first", "error_on_ambiguous", "latent_all")
#: Field cardinalities `Schema.from_dict` accepts (the builder stores any value unchecked).
FIELD_CARDINALITIES: tuple[str, ...] = (
    "optional_one",
    "required_one",
    "zero_or_more",
    "one_or_more",
)
#: Activation overrides `Schema.from_dict` accepts for a classification's `class_act`.
CLASSIFICATION_ACTIVATIONS: tuple[str, ...] = ("auto", "sigmoid", "softmax")

# Value dtypes `Schema.from_dict` accepts ("list": every mention, "str": the best one).
_SPAN_DTYPES: tuple[str, ...] = ("str", "list")
# Attribute values are returned next to these keys of an entity item, so a group may not use them.
_RESERVED_GROUP_NAMES = frozenset({"text", "confidence", "start", "end"})
# A set, not a tuple: an unhashable mode then raises TypeError exactly as in gliner2.
_REGEX_MODES = frozenset({"full", "partial"})
_SCHEMA_SECTIONS: tuple[str, ...] = ("entities", "structures", "classifications", "relations")


# =============================================================================
# Validators and attribute groups
# =============================================================================


@dataclass(frozen=True)
class RegexValidator:
    """Keeps or drops an extracted span depending on whether a regular expression matches it.

    Args:
        pattern: The regular expression, as text or already compiled (then `flags` is ignored).
        mode: `"full"` requires the whole span to match, `"partial"` any part of it.
        exclude: Invert the decision: keep the spans that do *not* match.
        flags: `re` flags used to compile a textual pattern.

    Raises:
        ValueError: `mode` is neither `"full"` nor `"partial"`, or `pattern` is not a valid regex.

    Unlike gliner2's (mutable) dataclass, this one is frozen, so validators are hashable and
    `SpanOptions` stays immutable; the constructor and `validate` behave the same.
    """

    pattern: str | re.Pattern[str]
    mode: str = "full"
    exclude: bool = False
    flags: int = re.IGNORECASE
    _compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in _REGEX_MODES:
            raise ValueError(f"RegexValidator mode must be 'full' or 'partial', got {self.mode!r}")
        if isinstance(self.pattern, re.Pattern):
            compiled = self.pattern
        else:
            try:
                compiled = re.compile(self.pattern, self.flags)
            except re.error as error:
                message = f"RegexValidator got an invalid regex {self.pattern!r}: {error}"
                raise ValueError(message) from error
        object.__setattr__(self, "_compiled", compiled)

    def validate(self, text: str) -> bool:
        """Whether a span with this text survives the validator.

        Args:
            text: The span's text.

        Returns:
            `True` to keep the span.
        """
        if self.mode == "full":
            found = self._compiled.fullmatch(text)
        else:
            found = self._compiled.search(text)
        return (found is None) if self.exclude else (found is not None)

    def __call__(self, text: str) -> bool:
        return self.validate(text)


@dataclass
class AttributeGroup:
    """Labels decoded as an attribute of every extracted entity span.

    Args:
        labels: The values this attribute can take.
        multi_label: Score each value independently (sigmoid) and keep those above `threshold`,
            instead of picking the single best value (softmax).
        threshold: Cutoff for multi-label groups, in [0, 1].
        applies_to: Entity types the group applies to; `None` means all of them.
        qualify_labels: Show values to the model as `"group: value"` to disambiguate them;
            results still use the bare values.
    """

    labels: list[str]
    multi_label: bool = False
    threshold: float = 0.5
    applies_to: list[str] | None = None
    qualify_labels: bool = False


# =============================================================================
# Metadata handed to the runtime
# =============================================================================


@dataclass(frozen=True)
class SpanOptions:
    """Decoding options of one entity type or structure field."""

    dtype: str = "list"
    threshold: float | None = None
    validators: tuple[RegexValidator, ...] = ()


@dataclass(frozen=True)
class SchemaMetadata:
    """What a schema builder knows beyond the dict build() returns.

    This is everything gliner2's runtime reads from a builder while decoding; the rest (relation
    descriptions, classification task names, field choices, record metadata) is in the dict.

    Args:
        entity_order: Content entity types in declaration order (attribute labels excluded);
            results are reported in this order.
        entity_options: Options by entity name, attribute labels included (as gliner2 stores
            them, with the defaults).
        field_orders: Structure or relation name -> declared field order (`("head", "tail")` for
            a relation). A structure field declared twice appears twice.
        field_options: `"structure.field"` -> options of that field.
        relation_order: Relation types in declaration order.
        relation_thresholds: Relation name -> its own threshold, `None` for the call's default.
        attribute_groups: Group name -> attribute group.
        attribute_prompt_labels: Attribute value -> the label the prompt shows for it.
        attribute_labels: Every attribute label of the prompt (to tell them from content types).
    """

    entity_order: tuple[str, ...] = ()
    entity_options: Mapping[str, SpanOptions] = field(default_factory=dict)
    field_orders: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    field_options: Mapping[str, SpanOptions] = field(default_factory=dict)
    relation_order: tuple[str, ...] = ()
    relation_thresholds: Mapping[str, float | None] = field(default_factory=dict)
    attribute_groups: Mapping[str, AttributeGroup] = field(default_factory=dict)
    attribute_prompt_labels: Mapping[str, str] = field(default_factory=dict)
    attribute_labels: frozenset[str] = frozenset()


def _copy_group(group: Any) -> AttributeGroup:
    """A fresh `AttributeGroup` with the fields of `group` (ours or gliner2's), lists copied."""

    def copied(value: Any) -> Any:
        return list(value) if isinstance(value, list) else value

    return AttributeGroup(
        labels=copied(group.labels),
        multi_label=group.multi_label,
        threshold=group.threshold,
        applies_to=copied(group.applies_to),
        qualify_labels=group.qualify_labels,
    )


def _span_options_from_dict(entry: Mapping[str, Any], what: str) -> SpanOptions:
    """`SpanOptions` from one entry of gliner2's `_entity_metadata` or `_field_metadata`."""
    return SpanOptions(
        dtype=entry.get("dtype", "list"),
        threshold=entry.get("threshold"),
        validators=_validator_tuple(entry.get("validators"), what),
    )


# The private attributes of a gliner2 `Schema` that gliner2's runtime
# (`_build_schema_dicts_and_metadata`) reads while decoding.
_GLINER2_PRIVATE_STATE: tuple[str, ...] = (
    "_field_metadata",
    "_entity_metadata",
    "_relation_metadata",
    "_field_orders",
    "_entity_order",
    "_relation_order",
    "_entity_attribute_groups",
    "_entity_attribute_prompt_labels",
    "_entity_attribute_labels",
)


def metadata_of_gliner2_schema(schema: Any) -> SchemaMetadata:
    """Decoding metadata of a gliner2 `Schema` builder, read without importing gliner2.

    This is the single place where the private state of a gliner2 builder is read: the attributes
    gliner2's own runtime reads in `_build_schema_dicts_and_metadata` (`_field_metadata`,
    `_entity_metadata`, `_relation_metadata`, `_field_orders`, `_entity_order`, `_relation_order`,
    `_entity_attribute_groups`, `_entity_attribute_prompt_labels`, `_entity_attribute_labels`).
    Validators are kept as the objects the builder holds (the runtime only calls their
    `validate`); attribute groups are converted field by field into our `AttributeGroup`.

    Call it after `schema.build()`, as gliner2's runtime does: an unfinished structure stores its
    field order only when it is finished, and reading here changes nothing. One of our own
    `Schema` objects is answered with its `metadata()`.

    Args:
        schema: A `gliner2.Schema` (duck-typed).

    Returns:
        The schema's `SchemaMetadata`.

    Raises:
        TypeError: `schema` lacks one of those attributes (it is not a gliner2 builder, or
            gliner2 changed its internals); the message names the attribute.
    """
    if isinstance(schema, Schema):
        return schema.metadata()
    state: dict[str, Any] = {}
    for name in _GLINER2_PRIVATE_STATE:
        try:
            state[name] = getattr(schema, name)
        except AttributeError:
            raise TypeError(
                f"{type(schema).__name__} object has no attribute {name!r}: it is not a gliner2 "
                "Schema, or its gliner2 version stores builder state differently than gliner2 2.1"
            ) from None
    entity_options = {
        name: _span_options_from_dict(entry, f"entity type {name!r}")
        for name, entry in state["_entity_metadata"].items()
    }
    field_options = {
        key: _span_options_from_dict(entry, f"field {key!r}")
        for key, entry in state["_field_metadata"].items()
    }
    relation_thresholds = {
        name: entry.get("threshold") for name, entry in state["_relation_metadata"].items()
    }
    groups = state["_entity_attribute_groups"]
    return SchemaMetadata(
        entity_order=tuple(state["_entity_order"]),
        entity_options=entity_options,
        field_orders={name: tuple(order) for name, order in state["_field_orders"].items()},
        field_options=field_options,
        relation_order=tuple(state["_relation_order"]),
        relation_thresholds=relation_thresholds,
        attribute_groups={name: _copy_group(group) for name, group in groups.items()},
        attribute_prompt_labels=dict(state["_entity_attribute_prompt_labels"]),
        attribute_labels=frozenset(state["_entity_attribute_labels"]),
    )


# =============================================================================
# Builder argument checks
# =============================================================================


def _require_unit_interval(value: Any, what: str) -> None:
    """Raise unless `0 <= value <= 1` (the comparison gliner2 makes, so NaN fails too)."""
    try:
        inside = 0 <= value <= 1
    except TypeError:
        raise TypeError(f"{what} must be a number between 0 and 1, got {value!r}") from None
    if not inside:
        raise ValueError(f"{what} must be between 0 and 1, got {value!r}")


def _validator_tuple(validators: Any, what: str) -> tuple[RegexValidator, ...]:
    """The validators as a tuple; each must offer `validate(text)`.

    gliner2 stores whatever it is given and fails only while decoding; we reject a non-iterable
    or an item without `validate` when the label is declared.
    """
    if not validators:
        return ()
    try:
        items = tuple(validators)
    except TypeError:
        message = f"validators of {what} must be a list of RegexValidator, got {validators!r}"
        raise TypeError(message) from None
    for item in items:
        if not callable(getattr(item, "validate", None)):
            raise TypeError(f"validators of {what} must be RegexValidator objects, got {item!r}")
    return items


def _named_configs(types: Any, argument: str) -> dict[Any, dict[str, Any]]:
    """Entity or relation types as `{name: config}`.

    A name alone gets `{}`, a text value becomes `{"description": text}`, a dict value is used as
    is and any other value counts as `{}`. Repeated names in a list collapse to one.
    """
    if isinstance(types, str):
        return {types: {}}
    if isinstance(types, list):
        return {name: {} for name in types}
    if isinstance(types, dict):
        configs: dict[Any, dict[str, Any]] = {}
        for name, config in types.items():
            if isinstance(config, str):
                configs[name] = {"description": config}
            elif isinstance(config, dict):
                configs[name] = config
            else:
                configs[name] = {}
        return configs
    raise ValueError(
        f"{argument} must be a name, a list of names or a dict of name -> description or config, "
        f"got {type(types).__name__}"
    )


def _check_attribute_groups(groups: Mapping[Any, Any], content_entities: set[Any]) -> None:
    """Check attribute groups in gliner2's order, so the first problem raises the same error."""
    owner_of_label: dict[Any, Any] = {}
    for group_name, group in groups.items():
        if not isinstance(group, AttributeGroup):
            raise TypeError(
                f"attribute group {group_name!r} must be an AttributeGroup, "
                f"got {type(group).__name__}"
            )
        if not group_name or group_name in _RESERVED_GROUP_NAMES:
            raise ValueError(
                f"attribute group name {group_name!r} is not allowed: it must be non-empty and "
                f"not one of {sorted(_RESERVED_GROUP_NAMES)}"
            )
        if not group.labels:
            raise ValueError(f"attribute group {group_name!r} has no labels")
        if not 0.0 <= group.threshold <= 1.0:
            raise ValueError(
                f"attribute group {group_name!r} threshold must be between 0 and 1, "
                f"got {group.threshold!r}"
            )
        if group.applies_to is not None:
            undeclared = set(group.applies_to) - content_entities
            if undeclared:
                raise ValueError(
                    f"attribute group {group_name!r} applies to entity types that were not "
                    f"declared: {sorted(undeclared)}"
                )
        labels_of_group: set[str] = set()
        for label in group.labels:
            # gliner2 would fail with AttributeError on a non-text label; we name the problem.
            if label and not isinstance(label, str):
                raise TypeError(
                    f"attribute group {group_name!r} has a label that is not a string: {label!r}"
                )
            if not label or not label.strip():
                raise ValueError(f"attribute group {group_name!r} has an empty label")
            if label in labels_of_group:
                raise ValueError(f"attribute group {group_name!r} lists the label {label!r} twice")
            labels_of_group.add(label)
            if label in owner_of_label:
                raise ValueError(
                    f"label {label!r} is in two attribute groups: "
                    f"{owner_of_label[label]!r} and {group_name!r}"
                )
            owner_of_label[label] = group_name


# =============================================================================
# Builders
# =============================================================================


class StructureBuilder:
    """Declares the fields of one structure; returned by `Schema.structure`.

    `field()` returns the builder, so fields chain. Any other `Schema` method called on the
    builder (`entities`, `structure`, `build`, ...) first finishes the structure and then runs on
    the schema, as gliner2's `StructureBuilder.__getattr__` does.

    Args:
        schema: The schema that receives the structure.
        parent: The structure's name.
        mode: Record formation mode (one of `RECORD_MODES`), or `None` for plain structures.
        anchor: Anchor field of a `"natural"` structure (default: the first declared field).
        occurrence_policy: One of `OCCURRENCE_POLICIES`, or `None`.

    The attributes `schema`, `parent`, `fields`, `descriptions` and `field_order` are named as in
    gliner2; `fields`, `descriptions` and `field_order` are shared with the schema once the
    structure is finished, so (as in gliner2) a field added later to a finished builder still
    reaches the built schema.
    """

    def __init__(
        self,
        schema: Schema,
        parent: str,
        *,
        mode: str | None = None,
        anchor: str | None = None,
        occurrence_policy: str | None = None,
    ) -> None:
        self.schema = schema
        self.parent = parent
        self.fields: dict[str, Any] = {}
        self.descriptions: dict[str, str] = {}
        self.field_order: list[str] = []
        self._record_mode = mode
        self._record_anchor = anchor
        self._record_policy = occurrence_policy
        self._record_fields: dict[str, dict[str, Any]] = {}
        self._closed = False

    def field(
        self,
        name: str,
        dtype: str = "list",
        choices: list[str] | None = None,
        description: str | None = None,
        threshold: float | None = None,
        validators: list[RegexValidator] | None = None,
        cardinality: str | None = None,
        exclusive: bool = False,
    ) -> StructureBuilder:
        """Add a field to the structure.

        Args:
            name: Field name. Declaring it again overwrites its prompt entry and options but
                lists it twice in the field order (gliner2 does the same).
            dtype: `"list"` for every value, `"str"` for the best one.
            choices: Allowed values; the field is then classified rather than extracted.
            description: Text shown to the model for this field.
            threshold: The field's own threshold in [0, 1].
            validators: Regex validators the extracted values must pass.
            cardinality: Record cardinality (`FIELD_CARDINALITIES`); used only with a `mode`.
            exclusive: A mention bound to this field cannot bind elsewhere; used only with a `mode`.

        Returns:
            This builder, for chaining.

        Raises:
            ValueError: `threshold` is outside [0, 1].
            TypeError: `threshold` is not a number, or `validators` are not validators.
        """
        # A non-empty choice list turns the field's prompt slot into a choices placeholder.
        placeholder: Any = {"value": "", "choices": choices} if choices else ""
        self.fields[name] = placeholder
        self.field_order.append(name)
        if description:
            self.descriptions[name] = description
        record_options: dict[str, Any] = {}
        if cardinality is not None:
            record_options["cardinality"] = cardinality
        if exclusive:
            record_options["exclusive"] = True
        if record_options:
            self._record_fields[name] = record_options
        # Checked last, as in gliner2: a rejected threshold leaves the field declared above.
        self.schema._declare_field(self.parent, name, dtype, threshold, choices, validators)
        return self

    def _finish(self) -> None:
        """Hand the structure to the schema (once; a failed record check is retried next time)."""
        if self._closed:
            return
        owner = self.schema
        # Repeating a structure name adds another prompt entry and replaces the field order.
        owner._declared_field_orders[self.parent] = self.field_order
        owner.schema["json_structures"].append({self.parent: self.fields})
        if self.descriptions:
            owner.schema.setdefault("json_descriptions", {})[self.parent] = self.descriptions
        if self._record_mode is not None:
            owner._declare_record(
                self.parent,
                self.field_order,
                mode=self._record_mode,
                anchor=self._record_anchor,
                occurrence_policy=self._record_policy,
                fields=dict(self._record_fields),
            )
        self._closed = True

    def __getattr__(self, name: str) -> Any:
        # Reached only for names the builder lacks. A name the schema has finishes this
        # structure and resolves on the schema: that is what lets a chain continue with
        # `.entities(...)`, `.structure(...)` or `.build()`.
        owner = self.__dict__.get("schema")
        if owner is not None and hasattr(owner, name):
            self._finish()
            return getattr(owner, name)
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")


class Schema:
    """Builds the schema of an extraction: entities, relations, classifications and structures.

    Every method returns the schema (or, for `structure`, a `StructureBuilder` that chains back),
    and `build()` returns the dictionary the model's prompt is made from, equal to gliner2's for
    the same calls. `metadata()` returns the per-label options decoding needs.

    Attributes:
        schema: The dictionary `build()` returns, filled in as methods are called.

    Example:

    ```python
    >>> schema = (
    ...     Schema()
    ...     .entities({"person": "a human being", "company": {"threshold": 0.6}})
    ...     .classification("sentiment", ["positive", "negative", "neutral"])
    ...     .structure("product")
    ...     .field("name", dtype="str")
    ...     .field("price", validators=[RegexValidator(r"\\$?\\d+(\\.\\d+)?")])
    ...     .relations(["works_for"])
    ... )
    >>> schema.build()["entities"]
    {'person': '', 'company': ''}
    >>> schema.metadata().entity_options["company"].threshold
    0.6
    >>> Schema.from_dict(schema.to_dict()).build() == schema.build()
    True

    ```
    """

    def __init__(self) -> None:
        # Key order matters: the prompt is assembled by walking this dict.
        self.schema: dict[str, Any] = dict(
            json_structures=[],
            classifications=[],
            entities={},
            relations=[],
            json_descriptions={},
            entity_descriptions={},
            relation_descriptions={},
        )
        self._declared_entities: list[str] = []
        self._entity_options: dict[str, SpanOptions] = {}
        self._declared_field_orders: dict[str, list[str]] = {}
        self._field_options: dict[str, SpanOptions] = {}
        self._field_choices: dict[str, Any] = {}
        self._declared_relations: list[str] = []
        self._relation_thresholds: dict[str, float | None] = {}
        self._records: dict[str, dict[str, Any]] = {}
        self._attribute_groups: dict[Any, AttributeGroup] = {}
        self._attribute_prompt_labels: dict[str, str] = {}
        self._attribute_labels: set[str] = set()
        self._open_structure: StructureBuilder | None = None

    # -- internal bookkeeping -------------------------------------------------

    def _close_open_structure(self) -> None:
        # On failure the structure stays open and the next call tries to finish it again
        # (re-adding its prompt entry), exactly as gliner2 behaves.
        if self._open_structure is not None:
            self._open_structure._finish()
            self._open_structure = None

    def _declare_field(
        self, parent: str, name: str, dtype: Any, threshold: Any, choices: Any, validators: Any
    ) -> None:
        key = f"{parent}.{name}"
        if threshold is not None:
            _require_unit_interval(threshold, f"threshold of field {key!r}")
        options = SpanOptions(dtype, threshold, _validator_tuple(validators, f"field {key!r}"))
        self._field_options[key] = options
        self._field_choices[key] = choices

    def _declare_entity(self, name: Any, dtype: Any, threshold: Any, validators: Any) -> None:
        if threshold is not None:
            _require_unit_interval(threshold, f"threshold of entity type {name!r}")
        checked = _validator_tuple(validators, f"entity type {name!r}")
        self._entity_options[name] = SpanOptions(dtype, threshold, checked)

    def _declare_record(
        self,
        parent: str,
        field_order: list[str],
        *,
        mode: Any,
        anchor: Any,
        occurrence_policy: Any,
        fields: dict[str, dict[str, Any]],
    ) -> None:
        where = f"structure {parent!r}"
        if mode not in RECORD_MODES:
            raise ValueError(f"{where}: mode must be one of {RECORD_MODES}, got {mode!r}")
        if mode == "natural":
            if not anchor:
                # The anchor defaults to the first field in declaration order.
                if not field_order:
                    raise ValueError(f"{where}: mode='natural' needs at least one field")
                anchor = field_order[0]
            if anchor not in field_order:
                raise ValueError(f"{where}: anchor {anchor!r} is not one of its fields")
        elif anchor:
            raise ValueError(f"{where}: only mode='natural' takes an anchor, got mode={mode!r}")
        if occurrence_policy is not None and occurrence_policy not in OCCURRENCE_POLICIES:
            raise ValueError(
                f"{where}: occurrence_policy must be one of {OCCURRENCE_POLICIES}, "
                f"got {occurrence_policy!r}"
            )
        record: dict[str, Any] = {"mode": mode}
        if anchor is not None:
            record["anchor"] = anchor
        if occurrence_policy is not None:
            record["occurrence_policy"] = occurrence_policy
        if fields:
            record["fields"] = fields
        self._records[parent] = record

    # -- builder API ----------------------------------------------------------

    def structure(
        self,
        name: str,
        *,
        mode: str | None = None,
        anchor: str | None = None,
        occurrence_policy: str | None = None,
    ) -> StructureBuilder:
        """Start a structure; declare its fields on the returned builder.

        Args:
            name: Structure name. Using it again adds a second prompt entry and replaces the
                declared field order (gliner2 does the same).
            mode: Record formation mode: `"natural"`, `"latent"` or `"anchorless"`; `None`
                keeps plain structure decoding.
            anchor: Anchor field for `"natural"` (default: the first field); other modes must
                not set one.
            occurrence_policy: One of `OCCURRENCE_POLICIES`.

        Returns:
            The structure's `StructureBuilder`. The record options are checked when it is
            finished (by the next schema call or `build()`), raising `ValueError` then.
        """
        self._close_open_structure()
        self._open_structure = StructureBuilder(
            self, name, mode=mode, anchor=anchor, occurrence_policy=occurrence_policy
        )
        return self._open_structure

    def classification(
        self,
        task: str,
        labels: list[str] | dict[str, str],
        multi_label: bool = False,
        cls_threshold: float = 0.5,
        top_k: int | None = None,
        **kwargs: Any,
    ) -> Schema:
        """Add a classification task.

        Args:
            task: Task name.
            labels: Label names, or a dict of label name -> description.
            multi_label: Allow more than one label.
            cls_threshold: Selection cutoff for multi-label tasks, in [0, 1].
            top_k: Keep at most this many labels, most probable first.
            **kwargs: Extra task options stored with the task (`class_act`, `prompt`,
                `examples`).

        Returns:
            This schema, for chaining.

        Raises:
            ValueError: `cls_threshold` is outside [0, 1] or `top_k` is below 1.
            TypeError: `cls_threshold` or `top_k` is not a number.
        """
        self._close_open_structure()
        _require_unit_interval(cls_threshold, f"cls_threshold of classification {task!r}")
        try:
            top_k_too_small = top_k is not None and top_k < 1
        except TypeError:
            message = f"top_k of classification {task!r} must be an integer, got {top_k!r}"
            raise TypeError(message) from None
        if top_k_too_small:
            raise ValueError(f"top_k of classification {task!r} must be at least 1, got {top_k!r}")

        descriptions = labels if isinstance(labels, dict) else None
        task_config: dict[str, Any] = {
            "task": task,
            "labels": list(labels.keys()) if descriptions is not None else labels,
            "multi_label": multi_label,
            "cls_threshold": cls_threshold,
        }
        task_config.update(kwargs)
        if top_k is not None:
            task_config["top_k"] = top_k
        if descriptions:
            task_config["label_descriptions"] = descriptions
        self.schema["classifications"].append(task_config)
        return self

    def entities(
        self,
        entity_types: str | list[str] | dict[str, str | dict[str, Any]],
        dtype: str = "list",
        threshold: float | None = None,
        validators: list[RegexValidator] | None = None,
    ) -> Schema:
        """Add entity types to extract.

        Args:
            entity_types: A name, a list of names, or a dict of name -> description or config
                dict (keys `description`, `dtype`, `threshold`, `validators`, each overriding
                the argument of the same name).
            dtype: `"list"` for every mention, `"str"` for the best one.
            threshold: Threshold of these types in [0, 1]; `None` uses the extraction default.
            validators: Regex validators mentions must pass.

        Returns:
            This schema, for chaining.

        Raises:
            ValueError: `entity_types` has another shape, or a threshold is outside [0, 1].
            TypeError: A threshold is not a number, or validators are not validators.
        """
        self._close_open_structure()
        for name, config in _named_configs(entity_types, "entity_types").items():
            self.schema["entities"][name] = ""
            if name not in self._declared_entities:
                self._declared_entities.append(name)
            # Options of a config dict win over the arguments (even an explicit None).
            own_dtype = config.get("dtype", dtype)
            own_threshold = config.get("threshold", threshold)
            own_validators = config.get("validators", validators)
            self._declare_entity(name, own_dtype, own_threshold, own_validators)
            if "description" in config:  # stored even when empty or None, as gliner2 does
                self.schema["entity_descriptions"][name] = config["description"]
        return self

    def entity_attributes(self, groups: dict[str, AttributeGroup]) -> Schema:
        """Decode attribute groups on the extracted entity spans.

        The attribute labels join the prompt's entity list (sorted, after the entity types) but
        are not reported as entity types. Calling this again replaces the previous groups.

        Args:
            groups: Group name -> `AttributeGroup`.

        Returns:
            This schema, for chaining.

        Raises:
            ValueError: No entity type was declared yet; a group name is empty or reserved
                (`text`, `confidence`, `start`, `end`); a group has no labels, an empty or
                repeated label, a threshold outside [0, 1] or an unknown `applies_to` type;
                a label is in two groups or equals an entity type (use `qualify_labels=True`).
            TypeError: `groups` is not a mapping, a group is not an `AttributeGroup`, or a
                label is not a string.
        """
        self._close_open_structure()
        if not self._declared_entities:
            raise ValueError("entity_attributes() needs entity types: call entities() first")
        groups = groups or {}
        if not isinstance(groups, Mapping):
            # gliner2 fails with AttributeError here; a TypeError says what is wrong.
            raise TypeError(
                "entity_attributes() takes a dict of group name -> AttributeGroup, "
                f"got {type(groups).__name__}"
            )
        content_entities = set(self._declared_entities)
        _check_attribute_groups(groups, content_entities)

        prompt_labels: dict[str, str] = {}
        for group_name, group in groups.items():
            for label in group.labels:
                prompt_labels[label] = f"{group_name}: {label}" if group.qualify_labels else label
        new_labels = set(prompt_labels.values())
        clashes = new_labels & content_entities
        if clashes:
            raise ValueError(
                f"attribute labels {sorted(clashes)} are also entity types; "
                "set qualify_labels=True on their groups"
            )

        # Forget the previous configuration's labels (unless they are entity types by now).
        for label in self._attribute_labels:
            if label not in content_entities:
                self.schema["entities"].pop(label, None)
                self._entity_options.pop(label, None)
        for label in sorted(new_labels):
            self.schema["entities"].setdefault(label, "")
            self._declare_entity(label, "list", None, None)

        self._attribute_groups = dict(groups)
        self._attribute_prompt_labels = prompt_labels
        self._attribute_labels = new_labels
        return self

    def relations(
        self,
        relation_types: str | list[str] | dict[str, str | dict[str, Any]],
        threshold: float | None = None,
    ) -> Schema:
        """Add relation types (each extracted as head/tail pairs).

        Args:
            relation_types: A name, a list of names, or a dict of name -> description or config
                dict (keys `description`, `threshold`).
            threshold: Threshold of these relations in [0, 1]; `None` uses the extraction default.

        Returns:
            This schema, for chaining.

        Raises:
            ValueError: `relation_types` has another shape, or a threshold is outside [0, 1].
            TypeError: A threshold is not a number.
        """
        self._close_open_structure()
        for name, config in _named_configs(relation_types, "relation_types").items():
            # Every call adds a prompt entry, even for a relation declared before.
            self.schema["relations"].append({name: {"head": "", "tail": ""}})
            if name not in self._declared_relations:
                self._declared_relations.append(name)
            self._declared_field_orders[name] = ["head", "tail"]
            own_threshold = config.get("threshold", threshold)
            if own_threshold is not None:
                _require_unit_interval(own_threshold, f"threshold of relation {name!r}")
            self._relation_thresholds[name] = own_threshold
            description = config.get("description")
            if description:
                self.schema["relation_descriptions"][name] = description
        return self

    def build(self) -> dict[str, Any]:
        """Finish the open structure and return the schema dictionary.

        Returns:
            The `schema` attribute itself (not a copy), with `record_metadata` added after the
            other keys when a structure declared a record mode.

        Raises:
            ValueError: The open structure's record options are invalid.
        """
        self._close_open_structure()
        if self._records:
            self.schema["record_metadata"] = self._records
        return self.schema

    def metadata(self) -> SchemaMetadata:
        """Finish the open structure and return a snapshot of the decoding metadata.

        Returns:
            The schema's `SchemaMetadata`.

        Raises:
            ValueError: The open structure's record options are invalid.
        """
        self._close_open_structure()
        return SchemaMetadata(
            entity_order=tuple(self._declared_entities),
            entity_options=dict(self._entity_options),
            field_orders={k: tuple(order) for k, order in self._declared_field_orders.items()},
            field_options=dict(self._field_options),
            relation_order=tuple(self._declared_relations),
            relation_thresholds=dict(self._relation_thresholds),
            attribute_groups={name: _copy_group(g) for name, g in self._attribute_groups.items()},
            attribute_prompt_labels=dict(self._attribute_prompt_labels),
            attribute_labels=frozenset(self._attribute_labels),
        )

    # -- dictionary form --------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The schema as a plain dictionary that `from_dict` accepts.

        Only non-default options are written, and lists of names replace dicts when no name has
        options.

        Returns:
            A dict with any of the keys `entities`, `entity_attributes`, `structures`,
            `classifications` and `relations`.

        Raises:
            ValueError: The open structure's record options are invalid.
        """
        self._close_open_structure()
        result: dict[str, Any] = {}
        if self._declared_entities:
            result["entities"] = self._entities_as_dict()
        if self._attribute_groups:
            result["entity_attributes"] = {
                name: _attribute_group_as_dict(group)
                for name, group in self._attribute_groups.items()
            }
        if self.schema["json_structures"]:
            result["structures"] = self._structures_as_dict()
        if self.schema["classifications"]:
            tasks = self.schema["classifications"]
            result["classifications"] = [_classification_as_dict(task) for task in tasks]
        if self.schema["relations"]:
            result["relations"] = self._relations_as_dict()
        return result

    def _entities_as_dict(self) -> list[str] | dict[str, Any]:
        configs: dict[str, dict[str, Any]] = {}
        for name in self._declared_entities:
            config: dict[str, Any] = {}
            description = self.schema["entity_descriptions"].get(name)
            if description:
                config["description"] = description
            options = self._entity_options.get(name, SpanOptions())
            if options.dtype != "list":
                config["dtype"] = options.dtype
            if options.threshold is not None:
                config["threshold"] = options.threshold
            configs[name] = config
        if not any(configs.values()):
            return list(self._declared_entities)
        # An entity with only a description is written as that description.
        return {
            name: config["description"] if set(config) == {"description"} else config
            for name, config in configs.items()
        }

    def _structures_as_dict(self) -> dict[str, Any]:
        structures: dict[str, Any] = {}
        for entry in self.schema["json_structures"]:
            for name, prompt_fields in entry.items():
                record = self._records.get(name, {})
                record_fields = record.get("fields", {})
                descriptions = self.schema.get("json_descriptions", {}).get(name, {})
                fields = []
                # The latest declared order of this name applies to every prompt entry of it.
                for field_name in self._declared_field_orders.get(name, []):
                    if field_name not in prompt_fields:
                        continue
                    key = f"{name}.{field_name}"
                    options = self._field_options.get(key, SpanOptions())
                    field_dict: dict[str, Any] = {"name": field_name}
                    if options.dtype != "list":
                        field_dict["dtype"] = options.dtype
                    choices = self._field_choices.get(key)
                    if choices:
                        field_dict["choices"] = choices
                    if descriptions.get(field_name):
                        field_dict["description"] = descriptions[field_name]
                    if options.threshold is not None:
                        field_dict["threshold"] = options.threshold
                    field_record = record_fields.get(field_name, {})
                    if field_record.get("cardinality") is not None:
                        field_dict["cardinality"] = field_record["cardinality"]
                    if field_record.get("exclusive"):
                        field_dict["exclusive"] = True
                    fields.append(field_dict)
                structure: dict[str, Any] = {"fields": fields}
                if record:
                    structure["mode"] = record["mode"]
                    for option in ("anchor", "occurrence_policy"):
                        if record.get(option) is not None:
                            structure[option] = record[option]
                structures[name] = structure
        return structures

    def _relations_as_dict(self) -> list[str] | dict[str, Any]:
        # The fallback only matters if `schema["relations"]` was filled in by hand.
        order = self._declared_relations or [next(iter(r)) for r in self.schema["relations"]]
        configs: dict[str, dict[str, Any]] = {}
        for name in order:
            config: dict[str, Any] = {}
            description = self.schema["relation_descriptions"].get(name)
            if description:
                config["description"] = description
            if self._relation_thresholds.get(name) is not None:
                config["threshold"] = self._relation_thresholds[name]
            configs[name] = config
        # Unlike entities, a description-only relation keeps its {"description": ...} form.
        return configs if any(configs.values()) else list(order)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        """Build a schema from its dictionary form (see `to_dict`).

        The input is checked as strictly as gliner2 checks it: unknown keys, empty sections,
        repeated names, thresholds outside [0, 1], unknown dtypes/modes/policies, fewer than two
        classification labels, an anchor that is not a field (or on a non-natural structure),
        `entity_attributes` without `entities` and an input without any section are rejected.
        Integers are accepted for thresholds (as floats) and integral floats for `top_k`, and
        0/1 for booleans, as gliner2 accepts them.

        Deliberate difference: gliner2 (pydantic, lax mode) also coerces numeric strings
        (`"0.5"`), boolean strings (`"yes"`), booleans as numbers, bytes as text and sets or
        other iterables as lists; this method rejects them with a `ValueError` (lists may be
        given as lists or tuples).

        Args:
            data: A dict with any of the keys `entities`, `entity_attributes`, `structures`,
                `classifications` and `relations`.

        Returns:
            The schema, built by replaying the builder calls in that order.

        Raises:
            ValueError: The input is invalid; the message names the offending key and value.
            TypeError: `data` is not a mapping with string keys.

        Example:

        ```python
        >>> schema = Schema.from_dict({
        ...     "entities": ["company", "person"],
        ...     "structures": {"product": {"fields": [{"name": "name", "dtype": "str"}]}},
        ...     "classifications": [{"task": "sentiment", "labels": ["positive", "negative"]}],
        ...     "relations": ["works_for"],
        ... })

        ```
        """
        plan = _read_schema_dict(data)
        schema = cls()
        if plan["entities"] is not None:
            schema.entities(plan["entities"])
            if plan["entity_attributes"] is not None:
                groups = plan["entity_attributes"].items()
                schema.entity_attributes({name: AttributeGroup(**kw) for name, kw in groups})
        for name, spec in (plan["structures"] or {}).items():
            builder = schema.structure(name, **spec["record"])
            for field_options in spec["fields"]:
                builder.field(**field_options)
            builder._finish()
        for task in plan["classifications"] or []:
            schema.classification(**task)
        if plan["relations"] is not None:
            schema.relations(plan["relations"])
        return schema

    @classmethod
    def from_json(cls, json_str: str) -> Schema:
        """Build a schema from the JSON text of its dictionary form.

        Args:
            json_str: JSON text of a dict that `from_dict` accepts.

        Returns:
            The schema.

        Raises:
            json.JSONDecodeError: The text is not JSON (a `ValueError`).
            ValueError: The schema is invalid.
            TypeError: The JSON document is not an object.
        """
        return cls.from_dict(json.loads(json_str))


def _attribute_group_as_dict(group: AttributeGroup) -> dict[str, Any]:
    written: dict[str, Any] = {"labels": list(group.labels)}
    if group.multi_label:
        written["multi_label"] = True
    if group.threshold != 0.5:
        written["threshold"] = group.threshold
    if group.applies_to is not None:
        written["applies_to"] = list(group.applies_to)
    if group.qualify_labels:
        written["qualify_labels"] = True
    return written


def _classification_as_dict(task_config: Mapping[str, Any]) -> dict[str, Any]:
    descriptions = task_config.get("label_descriptions")
    written: dict[str, Any] = {
        "task": task_config["task"],
        "labels": dict(descriptions) if descriptions else list(task_config["labels"]),
    }
    if task_config.get("multi_label", False):
        written["multi_label"] = True
    if task_config.get("cls_threshold", 0.5) != 0.5:
        written["cls_threshold"] = task_config["cls_threshold"]
    for option in ("top_k", "class_act", "prompt"):
        if task_config.get(option) is not None:
            written[option] = task_config[option]
    if task_config.get("examples"):
        written["examples"] = [list(pair) for pair in task_config["examples"]]
    return written


# =============================================================================
# from_dict input checks (what gliner2 delegates to pydantic models)
# =============================================================================


def _invalid(path: str, problem: str) -> ValueError:
    return ValueError(f"invalid schema: {path}: {problem}")


def _is_number(value: Any) -> bool:
    # bool is an int subclass, but JSON keeps the two apart and so do we.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _read_object(
    value: Any, path: str, known: Sequence[str], required: Sequence[str] = ()
) -> dict[str, Any]:
    """A JSON object with only `known` keys, all `required` ones present."""
    if not isinstance(value, Mapping):
        raise _invalid(path, f"expected an object, got {value!r}")
    for key in value:
        if not isinstance(key, str):
            raise _invalid(path, f"keys must be strings, got {key!r}")
        if key not in known:
            raise _invalid(path, f"unknown key {key!r} (allowed: {', '.join(known)})")
    for key in required:
        if key not in value:
            raise _invalid(path, f"missing required key {key!r}")
    return dict(value)


def _read_list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise _invalid(path, f"expected a list, got {value!r}")
    return list(value)


def _read_text(value: Any, path: str, *, non_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise _invalid(path, f"expected a string, got {value!r}")
    if non_empty and not value:
        raise _invalid(path, "must not be empty")
    return value


def _read_optional_text(value: Any, path: str) -> str | None:
    return None if value is None else _read_text(value, path)


def _read_texts(value: Any, path: str) -> list[str]:
    items = _read_list(value, path)
    return [_read_text(item, f"{path}[{index}]") for index, item in enumerate(items)]


def _read_flag(value: Any, path: str) -> bool:
    # gliner2 also takes 0 and 1 (ints or floats) for booleans.
    if isinstance(value, bool):
        return value
    if _is_number(value) and value in (0, 1):
        return bool(value)
    raise _invalid(path, f"expected true or false, got {value!r}")


def _read_unit_float(value: Any, path: str) -> float:
    if not _is_number(value):
        raise _invalid(path, f"expected a number between 0 and 1, got {value!r}")
    if not 0 <= value <= 1:
        raise _invalid(path, f"must be between 0 and 1, got {value!r}")
    return float(value)


def _read_optional_unit_float(value: Any, path: str) -> float | None:
    return None if value is None else _read_unit_float(value, path)


def _read_choice(value: Any, path: str, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise _invalid(path, f"must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def _read_optional_choice(value: Any, path: str, allowed: Sequence[str]) -> str | None:
    return None if value is None else _read_choice(value, path, allowed)


def _read_top_k(value: Any, path: str) -> int | None:
    if value is None:
        return None
    # An integral float (2.0) counts as an integer, as in gliner2.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _invalid(path, f"expected an integer, got {value!r}")
    if value < 1:
        raise _invalid(path, f"must be at least 1, got {value!r}")
    return value


def _check_names(names: Iterable[str], path: str, kind: str) -> None:
    """Names must be non-blank and unique."""
    seen: set[str] = set()
    for name in names:
        if not name.strip():
            raise _invalid(path, f"{kind} names must not be blank, got {name!r}")
        if name in seen:
            raise _invalid(path, f"{kind} name {name!r} appears twice")
        seen.add(name)


def _read_type_options(value: Any, path: str, option_keys: tuple[str, ...]) -> dict[str, Any]:
    """The options object of one entity or relation type, reduced to its non-null options."""
    options = _read_object(value, path, option_keys)
    read = {
        "description": _read_optional_text(options.get("description"), f"{path}.description"),
        "dtype": _read_optional_choice(options.get("dtype"), f"{path}.dtype", _SPAN_DTYPES),
        "threshold": _read_optional_unit_float(options.get("threshold"), f"{path}.threshold"),
    }
    # In `option_keys` order, as gliner2 dumps its validated options for the builder.
    return {key: read[key] for key in option_keys if read[key] is not None}


def _read_named_types(
    value: Any, path: str, kind: str, option_keys: tuple[str, ...]
) -> list[str] | dict[str, Any]:
    """Entity or relation types: a list of names, or name -> description or options object."""
    if isinstance(value, Mapping):
        types: dict[str, Any] = {}
        for name, config in value.items():
            if not isinstance(name, str):
                raise _invalid(path, f"{kind} names must be strings, got {name!r}")
            if isinstance(config, str):
                types[name] = config
            else:
                types[name] = _read_type_options(config, f"{path}[{name!r}]", option_keys)
        if not types:
            raise _invalid(path, "the dict must not be empty")
    elif isinstance(value, (list, tuple)):
        types = _read_texts(value, path)
        if not types:
            raise _invalid(path, "the list must not be empty")
    else:
        expected = "a list of names or a dict of name -> description or options"
        raise _invalid(path, f"expected {expected}, got {value!r}")
    _check_names(types, path, kind)
    return types


def _read_attribute_group(value: Any, path: str) -> dict[str, Any]:
    known = ("labels", "multi_label", "threshold", "applies_to", "qualify_labels")
    group = _read_object(value, path, known, required=("labels",))
    labels = _read_texts(group["labels"], f"{path}.labels")
    if not labels:
        raise _invalid(f"{path}.labels", "must list at least one label")
    applies_to = group.get("applies_to")
    return {
        "labels": labels,
        "multi_label": _read_flag(group.get("multi_label", False), f"{path}.multi_label"),
        "threshold": _read_unit_float(group.get("threshold", 0.5), f"{path}.threshold"),
        "applies_to": None if applies_to is None else _read_texts(applies_to, f"{path}.applies_to"),
        "qualify_labels": _read_flag(group.get("qualify_labels", False), f"{path}.qualify_labels"),
    }


def _read_attribute_groups(value: Any, path: str) -> dict[str, dict[str, Any]]:
    # Group names and labels are checked by `Schema.entity_attributes` during the replay.
    if not isinstance(value, Mapping):
        raise _invalid(path, f"expected a dict of group name -> attribute group, got {value!r}")
    groups: dict[str, dict[str, Any]] = {}
    for name, group in value.items():
        if not isinstance(name, str):
            raise _invalid(path, f"group names must be strings, got {name!r}")
        groups[name] = _read_attribute_group(group, f"{path}[{name!r}]")
    return groups


_FIELD_KEYS = ("name", "dtype", "choices", "description", "threshold", "cardinality", "exclusive")


def _read_field(value: Any, path: str) -> dict[str, Any]:
    spec = _read_object(value, path, _FIELD_KEYS, required=("name",))
    choices = spec.get("choices")
    if choices is not None:
        choices = _read_texts(choices, f"{path}.choices")
        if not choices:
            raise _invalid(f"{path}.choices", "must list at least one choice")
    return {
        "name": _read_text(spec["name"], f"{path}.name", non_empty=True),
        "dtype": _read_choice(spec.get("dtype", "list"), f"{path}.dtype", _SPAN_DTYPES),
        "choices": choices,
        "description": _read_optional_text(spec.get("description"), f"{path}.description"),
        "threshold": _read_optional_unit_float(spec.get("threshold"), f"{path}.threshold"),
        "cardinality": _read_optional_choice(
            spec.get("cardinality"), f"{path}.cardinality", FIELD_CARDINALITIES
        ),
        "exclusive": _read_flag(spec.get("exclusive", False), f"{path}.exclusive"),
    }


def _read_structure(value: Any, path: str) -> dict[str, Any]:
    known = ("fields", "mode", "anchor", "occurrence_policy")
    spec = _read_object(value, path, known, required=("fields",))
    fields = [
        _read_field(item, f"{path}.fields[{index}]")
        for index, item in enumerate(_read_list(spec["fields"], f"{path}.fields"))
    ]
    if not fields:
        raise _invalid(f"{path}.fields", "must list at least one field")
    mode = _read_optional_choice(spec.get("mode"), f"{path}.mode", RECORD_MODES)
    anchor = _read_optional_text(spec.get("anchor"), f"{path}.anchor")
    policy = _read_optional_choice(
        spec.get("occurrence_policy"), f"{path}.occurrence_policy", OCCURRENCE_POLICIES
    )
    if mode == "natural":
        if not anchor:
            anchor = fields[0]["name"]
        if anchor not in {item["name"] for item in fields}:
            raise _invalid(f"{path}.anchor", f"{anchor!r} is not one of the structure's fields")
    elif mode is not None and anchor:
        raise _invalid(f"{path}.anchor", f"only mode 'natural' takes an anchor, got mode {mode!r}")
    record = {"mode": mode, "anchor": anchor, "occurrence_policy": policy}
    return {"fields": fields, "record": record}


def _read_structures(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _invalid(path, f"expected a dict of structure name -> structure, got {value!r}")
    structures: dict[str, Any] = {}
    for name, spec in value.items():
        if not isinstance(name, str):
            raise _invalid(path, f"structure names must be strings, got {name!r}")
        structures[name] = _read_structure(spec, f"{path}[{name!r}]")
    if not structures:
        raise _invalid(path, "the dict must not be empty")
    if any(not name.strip() for name in structures):
        raise _invalid(path, "structure names must not be blank")
    return structures


def _read_labels(value: Any, path: str) -> list[str] | dict[str, str]:
    if isinstance(value, Mapping):
        labels: list[str] | dict[str, str] = {}
        for label, description in value.items():
            if not isinstance(label, str):
                raise _invalid(path, f"labels must be strings, got {label!r}")
            labels[label] = _read_text(description, f"{path}[{label!r}]")
    elif isinstance(value, (list, tuple)):
        labels = _read_texts(value, path)
    else:
        expected = "a list of labels or a dict of label -> description"
        raise _invalid(path, f"expected {expected}, got {value!r}")
    if len(labels) < 2:
        raise _invalid(path, f"a classification needs at least two labels, got {len(labels)}")
    if len(set(labels)) != len(labels):
        raise _invalid(path, "labels must be unique")
    if any(not label.strip() for label in labels):
        raise _invalid(path, "labels must not be blank")
    return labels


def _read_examples(value: Any, path: str) -> list[tuple[str, str]] | None:
    if value is None:
        return None
    examples = []
    for index, pair in enumerate(_read_list(value, path)):
        where = f"{path}[{index}]"
        items = _read_list(pair, where)
        if len(items) != 2:
            raise _invalid(where, f"an example is an [input, label] pair, got {pair!r}")
        # Tuples, as gliner2's validation yields them (they reach build()).
        examples.append((_read_text(items[0], f"{where}[0]"), _read_text(items[1], f"{where}[1]")))
    return examples


def _read_classification(value: Any, path: str) -> dict[str, Any]:
    known = (
        "task",
        "labels",
        "multi_label",
        "cls_threshold",
        "top_k",
        "class_act",
        "prompt",
        "examples",
    )
    spec = _read_object(value, path, known, required=("task", "labels"))
    task = {
        "task": _read_text(spec["task"], f"{path}.task", non_empty=True),
        "labels": _read_labels(spec["labels"], f"{path}.labels"),
        "multi_label": _read_flag(spec.get("multi_label", False), f"{path}.multi_label"),
        "cls_threshold": _read_unit_float(spec.get("cls_threshold", 0.5), f"{path}.cls_threshold"),
        "top_k": _read_top_k(spec.get("top_k"), f"{path}.top_k"),
    }
    # Extra options reach the builder only when set, in this order.
    extras = {
        "class_act": _read_optional_choice(
            spec.get("class_act"), f"{path}.class_act", CLASSIFICATION_ACTIVATIONS
        ),
        "prompt": _read_optional_text(spec.get("prompt"), f"{path}.prompt"),
        "examples": _read_examples(spec.get("examples"), f"{path}.examples"),
    }
    task.update((key, item) for key, item in extras.items() if item is not None)
    return task


def _read_classifications(value: Any, path: str) -> list[dict[str, Any]]:
    items = _read_list(value, path)
    tasks = [_read_classification(item, f"{path}[{index}]") for index, item in enumerate(items)]
    if not tasks:
        raise _invalid(path, "the list must not be empty")
    names = [task["task"] for task in tasks]
    if len(set(names)) != len(names):
        raise _invalid(path, "task names must be unique")
    return tasks


def _read_schema_dict(data: Any) -> dict[str, Any]:
    """Check a `from_dict` input and return its sections normalised for the builder calls.

    Sections set to `None` count as absent, like omitted ones.
    """
    # gliner2 unpacks `data` as keyword arguments, which raises TypeError for these two.
    if not isinstance(data, Mapping):
        raise TypeError(f"Schema.from_dict() takes a dict, got {type(data).__name__}")
    if any(not isinstance(key, str) for key in data):
        raise TypeError(f"Schema.from_dict() takes a dict with string keys, got {list(data)!r}")
    known = (*_SCHEMA_SECTIONS, "entity_attributes")
    for key in data:
        if key not in known:
            raise _invalid(key, f"unknown key (allowed: {', '.join(known)})")

    def section(key: str, read: Any) -> Any:
        value = data.get(key)
        return None if value is None else read(value, key)

    def entity_types(value: Any, path: str) -> Any:
        return _read_named_types(value, path, "entity", ("description", "dtype", "threshold"))

    def relation_types(value: Any, path: str) -> Any:
        return _read_named_types(value, path, "relation", ("description", "threshold"))

    plan = {
        "entities": section("entities", entity_types),
        "structures": section("structures", _read_structures),
        "classifications": section("classifications", _read_classifications),
        "relations": section("relations", relation_types),
        "entity_attributes": section("entity_attributes", _read_attribute_groups),
    }
    if all(plan[key] is None for key in _SCHEMA_SECTIONS):
        raise _invalid("schema", f"at least one of {', '.join(_SCHEMA_SECTIONS)} must be given")
    if plan["entity_attributes"] is not None and plan["entities"] is None:
        raise _invalid("entity_attributes", "needs 'entities'")
    return plan
