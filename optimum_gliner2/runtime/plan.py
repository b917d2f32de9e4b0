"""The typed plan of an extraction call: every task of a schema, resolved once, with the call's options.

gliner2 carries a schema through its pipeline as a dict plus a metadata dict, and looks thresholds,
dtypes, validators, choices and classification configs up again while decoding each text. Here a
schema is read once per call into a `SchemaPlan`; preprocessing and decoding read only the plan.

A schema reaches the plan in one of three forms, as gliner2 accepts them:
- our `Schema` builder (runtime/schema.py),
- gliner2's own `Schema` builder, read by `metadata_of_gliner2_schema`,
- a dict in the form `Schema.build()` returns (entities may be a list of names), without metadata.

The prompt of each task follows gliner2's processor in inference mode:

    ( [P] prompt ( M f1 M f2 ... ) )      M = [C] structure field, [E] entity, [R] relation role, [L] label

tasks ordered structures, entities, relations, classifications. JSON choice fields also put words
before the text, `( parent: field ( a | b ) , ... )`, whose width-0 span scores pick the choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Mapping, Sequence
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from optimum_gliner2.bundle.format import MARKER_TOKENS
from optimum_gliner2.errors import GLiNER2InputError
from optimum_gliner2.runtime.checks import check_names, check_schema_dict, check_threshold
from optimum_gliner2.runtime.overlap import normalize_overlap_policy
from optimum_gliner2.runtime.schema import Schema, SchemaMetadata, SpanOptions, StructureBuilder, metadata_of_gliner2_schema

SEP_STRUCT, SEP_TEXT, P_TOKEN, C_TOKEN, E_TOKEN, R_TOKEN, L_TOKEN, EXAMPLE_TOKEN, OUTPUT_TOKEN, DESC_TOKEN = MARKER_TOKENS
#: Markers that introduce a span-task field (structure field, entity type, relation role).
FIELD_MARKERS = (C_TOKEN, E_TOKEN, R_TOKEN)

STRUCTURES, ENTITIES, RELATIONS, CLASSIFICATIONS = "json_structures", "entities", "relations", "classifications"


@dataclass(frozen=True)
class DecodeOptions:
    """Per-call options of `batch_extract` that shape decoding.

    Attributes:
        threshold: Span threshold where the schema sets none.
        include_confidence: Keep confidences in the payload.
        include_spans: Keep character offsets in the payload.
        overlap_policy: Canonical overlap policy, or None for the span architecture's greedy default.
    """

    threshold: float = 0.5
    include_confidence: bool = False
    include_spans: bool = False
    overlap_policy: Optional[str] = None

    @classmethod
    def create(
        cls, threshold: float, include_confidence: bool, include_spans: bool, overlap_policy: Optional[str]
    ) -> "DecodeOptions":
        """Options with the overlap policy normalized (an unknown one raises gliner2's ValueError).

        Raises:
            GLiNER2InputError: `threshold` is not a number in [0, 1].
        """
        check_threshold(threshold, "threshold")
        policy = None if overlap_policy is None else normalize_overlap_policy(overlap_policy)
        return cls(threshold, include_confidence, include_spans, policy)


class FieldPlan(NamedTuple):
    """One span field of a task, as decoding reads it.

    Attributes:
        name: Field, entity type or relation role.
        index: Its row among the task's field queries (prompt order).
        threshold: The threshold in force (the schema's, else the call's).
        dtype: "list" keeps every span, anything else the best one.
        validators: Regex validators a span's text must all pass.
        choices: For JSON choice fields, each choice with the position of its word in the choice
            prefix; choices whose word is not found there are left out, as gliner2 skips them.
        builder_choices: The choices came from a schema builder. GLiNER2.5 models read choices
            from the builder's metadata only: a dict schema's choice field decodes as a span field.
    """

    name: str
    index: int
    threshold: float
    dtype: str = "list"
    validators: Tuple[Any, ...] = ()
    choices: Optional[Tuple[Tuple[str, int], ...]] = None
    builder_choices: bool = False


@dataclass(frozen=True)
class AttributeGroupPlan:
    """An entity attribute group whose labels appear among the entity task's fields."""

    name: str
    labels: Tuple[str, ...]
    indices: Tuple[int, ...]
    multi_label: bool
    threshold: float
    applies_to: Optional[Any]


@dataclass(frozen=True)
class ClassificationPlan:
    """The classification config gliner2 resolves for a task's prompt."""

    result_key: str
    labels: Tuple[str, ...]
    multi_label: bool
    cls_threshold: float
    top_k: Optional[int]
    sigmoid: bool


@dataclass(frozen=True)
class RelationPlan:
    """How GLiNER2.5 (boundary) models name and threshold a relation task.

    Unlike span models, they key a relation declared with a description by its plain name, and
    apply that name's threshold.
    """

    relation_type: str
    threshold: float


class RecordFieldPlan(NamedTuple):
    """One field of a record (a structure with a record mode), as gliner2 compiles it.

    Attributes:
        name: Field name.
        query: Its row among the task's field queries (prompt order).
        cardinality: "optional_one", "required_one" (scalars), "zero_or_more" or "one_or_more" (lists).
        exclusive: A mention bound to this field in one record cannot bind to it in another.
        dtype: The builder's dtype, None without builder metadata ("str" also makes the field scalar
            when formatted).
        threshold: The field's own threshold, None where the schema sets none.
        validators: Regex validators a value's text must all pass.
        choices: The builder's choices (every one, found in the prefix or not); None otherwise.
    """

    name: str
    query: int
    cardinality: str
    exclusive: bool = False
    dtype: Optional[str] = None
    threshold: Optional[float] = None
    validators: Tuple[Any, ...] = ()
    choices: Optional[Tuple[str, ...]] = None

    @property
    def is_scalar(self) -> bool:
        """One value per record at most."""
        return self.cardinality in ("optional_one", "required_one")

    @property
    def allows_absent(self) -> bool:
        """The field may stay empty in a record."""
        return self.cardinality in ("optional_one", "zero_or_more")


@dataclass(frozen=True)
class RecordPlan:
    """How a structure with a record mode forms its records.

    Attributes:
        mode: "natural" (one record per anchor mention), "latent" (a learned selector picks the seed
            mentions) or "anchorless" (learned instance queries).
        fields: Every field, in prompt order (gliner2's order of record fields).
        anchor: For "natural", the position in `fields` of the anchor field.
    """

    mode: str
    fields: Tuple[RecordFieldPlan, ...]
    anchor: Optional[int] = None


@dataclass(frozen=True)
class TaskPlan:
    """One task of the schema.

    Attributes:
        kind: gliner2's task type: "json_structures", "entities", "relations" or "classifications".
        name: Result key: the prompt without the descriptions appended to it.
        prompt: The prompt tokens, each tokenized on its own.
        field_names: Span fields in prompt order (empty for classifications).
        decoder: How decoding reads the task; gliner2 dispatches on the name before the kind, so any
            span task named "entities" decodes as entities.
        fields: The fields decoding visits, in output order, with their options.
        classification: The resolved config of a classification task (None when gliner2 finds none).
        attribute_groups: Entity attribute groups (decoder "entities_with_attributes").
        relation: Name and threshold of a relation task as boundary models read them.
        record_mode: A structure's record mode ("natural", "latent", "anchorless"), None without.
        record: How that structure forms its records (set with `record_mode`).
    """

    kind: str
    name: str
    prompt: Tuple[str, ...]
    field_names: Tuple[str, ...]
    decoder: str
    fields: Tuple[FieldPlan, ...] = ()
    classification: Optional[ClassificationPlan] = None
    attribute_groups: Tuple[AttributeGroupPlan, ...] = ()
    relation: Optional[RelationPlan] = None
    record_mode: Optional[str] = None
    record: Optional[RecordPlan] = None

    @property
    def is_classification(self) -> bool:
        return self.kind == CLASSIFICATIONS

    @property
    def reads_instances(self) -> Optional[int]:
        """How many instances decoding reads: entities only the first, other span tasks all (None)."""
        return 1 if self.kind == ENTITIES else None


@dataclass(frozen=True)
class SchemaPlan:
    """A schema read once for one call.

    Attributes:
        tasks: Tasks in model order.
        choice_prefix: Words put before the text for JSON choice fields.
        options: The call's decoding options.
        requested_relations: Relation names the payload always lists (builder schemas).
        classification_tasks: Task names formatted as classifications.
        scalar_entity_labels: Entity types with a non-list dtype (merged to one value across chunks).
    """

    tasks: Tuple[TaskPlan, ...]
    choice_prefix: Tuple[str, ...]
    options: DecodeOptions
    requested_relations: Tuple[str, ...] = ()
    classification_tasks: Tuple[str, ...] = ()
    scalar_entity_labels: frozenset = frozenset()


def plan_schemas(schemas: Sequence[Any], options: DecodeOptions) -> List[SchemaPlan]:
    """One plan per schema, each distinct schema object read once.

    Raises:
        GLiNER2InputError: A schema that is not a builder or a dict, holds marker tokens, empty or
            duplicate labels, or defines no task.
    """
    plans: Dict[int, SchemaPlan] = {}
    for schema in schemas:
        if id(schema) not in plans:
            plans[id(schema)] = plan_schema(schema, options)
    return [plans[id(schema)] for schema in schemas]


def plan_schema(schema: Any, options: DecodeOptions) -> SchemaPlan:
    """Read one schema (builder or dict) into a plan; see `plan_schemas`."""
    schema_dict, metadata = _schema_dict_and_metadata(schema)
    check_schema_dict(schema_dict)
    _check_thresholds(metadata)
    choices_by_field = _choice_fields(schema_dict)
    choice_prefix = _choice_prefix(schema_dict)
    tasks = tuple(
        _task_plan(kind, prompt, schema_dict, metadata, choices_by_field, choice_prefix, options.threshold)
        for kind, prompt in _prompts(schema_dict)
    )
    if not tasks:
        raise GLiNER2InputError(
            "the schema defines no task: give entities, relations, structure fields or classifications"
        )
    return SchemaPlan(
        tasks=tasks,
        choice_prefix=tuple(choice_prefix),
        options=options,
        requested_relations=tuple(metadata.relation_order),
        classification_tasks=tuple(item["task"] for item in schema_dict.get("classifications", [])),
        scalar_entity_labels=frozenset(
            name for name, entity in metadata.entity_options.items() if entity.dtype != "list"
        ),
    )


def _check_thresholds(metadata: SchemaMetadata) -> None:
    """Every threshold a schema sets is a number in [0, 1] (see `checks.check_threshold`).

    The builders take what gliner2's builder takes (a bool passes its comparisons); the plan is
    where the runtime is stricter.
    """
    for name, options in metadata.entity_options.items():
        if options.threshold is not None:
            check_threshold(options.threshold, f"threshold of entity type {name!r}")
    for key, options in metadata.field_options.items():
        if options.threshold is not None:
            check_threshold(options.threshold, f"threshold of field {key!r}")
    for name, threshold in metadata.relation_thresholds.items():
        if threshold is not None:
            check_threshold(threshold, f"threshold of relation {name!r}")
    for name, group in metadata.attribute_groups.items():
        check_threshold(group.threshold, f"threshold of attribute group {name!r}")


def _schema_dict_and_metadata(schema: Any) -> Tuple[Mapping[str, Any], SchemaMetadata]:
    if isinstance(schema, (Schema, StructureBuilder)):  # a chain may end on a structure's builder
        return schema.build(), schema.metadata()
    if hasattr(schema, "build"):  # gliner2's own builder (or a compatible one)
        return schema.build(), metadata_of_gliner2_schema(schema)
    if isinstance(schema, Mapping):
        schema_dict = dict(schema)
        entities = schema_dict.get("entities")
        if isinstance(entities, list):
            check_names(entities, "schema entities")
            schema_dict["entities"] = dict.fromkeys(entities, "")
        entity_order = tuple(schema_dict["entities"]) if isinstance(schema_dict.get("entities"), dict) else ()
        return schema_dict, SchemaMetadata(entity_order=entity_order)
    raise GLiNER2InputError(f"a schema must be a gliner2 Schema or a dict, got {type(schema).__name__}")


# ---------------------------------------------------------------------------------------------
# Prompts
# ---------------------------------------------------------------------------------------------


def _prompt(
    parent: str,
    fields: Sequence[str],
    marker: str,
    instruction: Optional[str] = None,
    examples: Optional[Sequence[Tuple[str, Any]]] = None,
    descriptions: Optional[Mapping[str, str]] = None,
) -> Tuple[str, ...]:
    """`( [P] prompt ( M f1 M f2 ... ) )`; inference renders every description and example given."""
    text = f"{parent}: {instruction}" if instruction else parent
    for label, description in (descriptions or {}).items():
        if label in fields:
            text += f" {DESC_TOKEN} {label}: {description}"
    for example_input, example_output in examples or ():
        if example_output in fields:
            rendered = example_output if isinstance(example_output, str) else ", ".join(example_output)
            text += f" {EXAMPLE_TOKEN} {example_input} {OUTPUT_TOKEN} {rendered}"
    tokens = ["(", P_TOKEN, text, "("]
    for field_name in fields:
        tokens += [marker, field_name]
    return tuple(tokens + [")", ")"])


def _by_parent(items: Sequence[Mapping[str, Any]]) -> Dict[str, list]:
    groups: Dict[str, list] = {}
    for item in items:
        for parent, fields in item.items():
            groups.setdefault(parent, []).append(fields)
    return groups


def _prompts(schema: Mapping[str, Any]) -> List[Tuple[str, Tuple[str, ...]]]:
    """(kind, prompt tokens) of every task, in gliner2's order."""
    prompts = []
    json_descriptions = schema.get("json_descriptions", {})
    for parent, occurrences in _by_parent(schema.get("json_structures", [])).items():
        # A structure declared twice merges its fields in declaration order.
        fields = list(dict.fromkeys(name for occurrence in occurrences for name in occurrence))
        if fields:
            prompts.append((STRUCTURES, _prompt(parent, fields, C_TOKEN, descriptions=json_descriptions.get(parent, {}))))
    entity_fields = list(schema.get("entities", {}))
    if entity_fields:
        prompts.append((ENTITIES, _prompt("entities", entity_fields, E_TOKEN, descriptions=schema.get("entity_descriptions", {}))))
    relation_descriptions = schema.get("relation_descriptions", {})
    for parent, occurrences in _by_parent(schema.get("relations", [])).items():
        prompts.append((RELATIONS, _prompt(parent, list(occurrences[0]), R_TOKEN, instruction=relation_descriptions.get(parent))))
    for item in schema.get("classifications", []):
        prompt = _prompt(
            item["task"],
            list(item["labels"]),
            L_TOKEN,
            instruction=item.get("prompt"),
            examples=item.get("examples"),
            descriptions=item.get("label_descriptions") or {},
        )
        prompts.append((CLASSIFICATIONS, prompt))
    return prompts


def _choice_fields(schema: Mapping[str, Any]) -> Dict[str, List[str]]:
    """`{"parent.field": choices}` of the JSON choice fields (a later declaration wins)."""
    fields = {}
    for structure in schema.get("json_structures", []):
        for parent, parent_fields in structure.items():
            for field_name, value in parent_fields.items():
                if isinstance(value, dict) and "choices" in value:
                    fields[f"{parent}.{field_name}"] = value["choices"]
    return fields


def _choice_prefix(schema: Mapping[str, Any]) -> List[str]:
    """`( parent: field ( a | b ) , field ( c | d ) )` for each structure with choice fields."""
    prefix: List[str] = []
    for structure in schema.get("json_structures", []):
        for parent, fields in structure.items():
            inner: List[str] = []
            for field_name, value in fields.items():
                if isinstance(value, dict) and "value" in value and "choices" in value:
                    choice_words = [word for choice in value["choices"] for word in ("|", choice)][1:]
                    inner += [field_name, "(", *choice_words, ")", ","]
            if inner:
                prefix += ["(", f"{parent}:", *inner[:-1], ")"]
    return prefix


def _field_names(prompt: Sequence[str]) -> Tuple[str, ...]:
    return tuple(prompt[index + 1] for index in range(len(prompt) - 1) if prompt[index] in FIELD_MARKERS)


# ---------------------------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------------------------


def _task_plan(
    kind: str,
    prompt: Tuple[str, ...],
    schema: Mapping[str, Any],
    metadata: SchemaMetadata,
    choices_by_field: Mapping[str, List[str]],
    choice_prefix: Sequence[str],
    default_threshold: float,
) -> TaskPlan:
    name = prompt[2].split(f" {DESC_TOKEN} ")[0]
    if kind == CLASSIFICATIONS:
        config = _classification_config(prompt[2], schema.get("classifications", []))
        return TaskPlan(kind, name, prompt, (), "classification", classification=config)

    field_names = _field_names(prompt)

    def field(field_name: str, options: Optional[SpanOptions], choices: Optional[Tuple] = None) -> FieldPlan:
        index = field_names.index(field_name)
        if options is None:
            return FieldPlan(field_name, index, default_threshold, choices=choices)
        threshold = default_threshold if options.threshold is None else options.threshold
        return FieldPlan(field_name, index, threshold, options.dtype, tuple(options.validators), choices, choices is not None)

    if name == "entities":
        with_attributes = bool(metadata.attribute_groups)
        names = [n for n in field_names if not (with_attributes and n in metadata.attribute_labels)]
        # gliner2 visits entity types in the builder's order (a dict's key order), not the prompt's.
        fields = tuple(field(n, metadata.entity_options.get(n)) for n in metadata.entity_order if n in names)
        if not with_attributes:
            return TaskPlan(kind, name, prompt, field_names, "entities", fields)
        return TaskPlan(
            kind, name, prompt, field_names, "entities_with_attributes", fields,
            attribute_groups=_attribute_groups(metadata, field_names),
        )  # fmt: skip

    order = [n for n in metadata.field_orders.get(name, field_names) if n in field_names]
    if kind == RELATIONS:
        # The relation's own threshold applies to both roles; a relation with a description is
        # keyed "name: description" and so (as in gliner2) falls back to the call's threshold.
        threshold = metadata.relation_thresholds.get(name)
        threshold = default_threshold if threshold is None else threshold
        fields = tuple(FieldPlan(n, field_names.index(n), threshold) for n in order)
        return TaskPlan(kind, name, prompt, field_names, "relations", fields, relation=_relation_plan(name, schema, metadata, default_threshold))

    fields = []
    for field_name in order:
        key = f"{name}.{field_name}"
        choices = None
        if key in choices_by_field:
            choices = tuple(
                (choice, position)
                for choice in choices_by_field[key]
                for position in [position_in_prefix(choice, choice_prefix)]
                if position >= 0
            )
        fields.append(field(field_name, metadata.field_options.get(key), choices))
    records = schema.get("record_metadata")
    record = records.get(name) if isinstance(records, Mapping) else None
    record_mode = record.get("mode") if isinstance(record, Mapping) else None
    record_plan = None
    if record_mode is not None:
        record_plan = _record_plan(name, record, field_names, metadata, choices_by_field)
    return TaskPlan(kind, name, prompt, field_names, "structures", tuple(fields), record_mode=record_mode, record=record_plan)


#: gliner2's default cardinality of a record field: the anchor is required, other fields are lists
#: (its inference never passes the dtypes that would make "str" fields scalar by default).
_ANCHOR_CARDINALITY, _DEFAULT_CARDINALITY = "required_one", "zero_or_more"


def _record_plan(
    name: str,
    record: Mapping[str, Any],
    field_names: Sequence[str],
    metadata: SchemaMetadata,
    choices_by_field: Mapping[str, List[str]],
) -> RecordPlan:
    """The record fields of structure `name` in prompt order, as gliner2's compile_record_specs sets them."""
    mode = record["mode"]
    anchor_name = record.get("anchor") if mode == "natural" else None
    if mode == "natural" and anchor_name not in field_names:
        raise GLiNER2InputError(
            f"structure {name!r} has mode 'natural' but its anchor {anchor_name!r} is not one of its fields {list(field_names)}"
        )
    configured = record.get("fields") or {}
    fields = []
    for query, field_name in enumerate(field_names):
        options = metadata.field_options.get(f"{name}.{field_name}")
        field_config = configured.get(field_name) or {}
        cardinality = field_config.get("cardinality") or (_ANCHOR_CARDINALITY if field_name == anchor_name else _DEFAULT_CARDINALITY)
        choices = choices_by_field.get(f"{name}.{field_name}") if options is not None else None
        fields.append(
            RecordFieldPlan(
                field_name,
                query,
                cardinality,
                bool(field_config.get("exclusive", False)),
                options.dtype if options is not None else None,
                options.threshold if options is not None else None,
                tuple(options.validators) if options is not None else (),
                tuple(choices) if choices else None,
            )
        )
    anchor = field_names.index(anchor_name) if anchor_name is not None else None
    return RecordPlan(mode, tuple(fields), anchor)


def _relation_plan(name: str, schema: Mapping[str, Any], metadata: SchemaMetadata, default_threshold: float) -> RelationPlan:
    """The relation's plain name when `name` is its "name: description" prompt, and its threshold."""
    aliases = {f"{relation}: {description}": relation for relation, description in schema.get("relation_descriptions", {}).items()}
    relation_type = aliases.get(name, name)
    threshold = metadata.relation_thresholds.get(relation_type)
    return RelationPlan(relation_type, default_threshold if threshold is None else threshold)


def position_in_prefix(choice: str, prefix: Sequence[str]) -> int:
    """The first prefix word equal to the choice, ignoring case (gliner2's lookup), or -1."""
    wanted = choice.lower()
    return next((index for index, word in enumerate(prefix) if word.lower() == wanted), -1)


def _attribute_groups(metadata: SchemaMetadata, field_names: Sequence[str]) -> Tuple[AttributeGroupPlan, ...]:
    groups = []
    for group_name, group in metadata.attribute_groups.items():
        present = [
            (label, field_names.index(metadata.attribute_prompt_labels.get(label, label)))
            for label in group.labels
            if metadata.attribute_prompt_labels.get(label, label) in field_names
        ]
        if present:
            labels, indices = zip(*present)
            # applies_to is kept as given: gliner2 tests membership with `in`, so a str means substrings.
            groups.append(AttributeGroupPlan(group_name, labels, indices, group.multi_label, group.threshold, group.applies_to))
    return tuple(groups)


def _classification_config(prompt: str, configs: Sequence[Mapping[str, Any]]) -> Optional[ClassificationPlan]:
    """The config whose task name starts the prompt (the longest such name; gliner2's resolution)."""
    best = None
    for config in configs:
        task = config.get("task", "")
        rest = prompt[len(task) :]
        if task and prompt.startswith(task) and (rest == "" or rest[0] in (":", " ")):
            if best is None or len(task) > len(best.get("task", "")):
                best = config
    if best is None:
        best = next((config for config in configs if prompt.startswith(config.get("task", ""))), None)
    if best is None:
        return None
    activation = best.get("class_act", "auto")
    multi_label = best.get("multi_label", False)
    return ClassificationPlan(
        result_key=best["task"],
        labels=tuple(best["labels"]),
        multi_label=multi_label,
        cls_threshold=best.get("cls_threshold", 0.5),
        top_k=best.get("top_k"),
        sigmoid=activation == "sigmoid" or (activation != "softmax" and bool(multi_label)),
    )
