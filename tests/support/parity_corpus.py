"""A corpus of extraction calls for parity tests of any object with gliner2's public API.

`CASES` covers every public method of gliner2's `GLiNER2` and the options that change decoding;
`run_case(model, case)` runs one case on gliner2's `GLiNER2`, on `GLiNER2Pipeline`, or on any
other implementation of that API (e.g. the ONNX runtime), so the same corpus checks them all.

Schemas that need the builder are written as functions of an empty schema: `run_case` passes
`model.create_schema()`, so every implementation builds with its own `Schema` class.
"""

from __future__ import annotations

import copy
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Tuple, Union

from optimum_gliner2.runtime.schema import RegexValidator

SENTENCES = (
    "Apple released the iPhone 15 in Cupertino, California on September 12, 2023.",
    "Tim Cook is the chief executive officer of Apple Inc. and lives in Palo Alto.",
    "Barack Obama was born in Honolulu, Hawaii and served as president of the United States.",
    "Microsoft acquired GitHub for 7.5 billion dollars in 2018, said Satya Nadella in Redmond.",
    "Contact support at help@example.com or visit https://example.com/docs for more details.",
    "The patient was prescribed 20 mg of atorvastatin daily by Dr. Maria Garcia at Mercy Hospital.",
    "Elon Musk founded SpaceX in 2002 and later became chief executive of Tesla Motors in Austin.",
    "Angela Merkel met Emmanuel Macron in Berlin to discuss the European Union budget for 2024.",
    "I absolutely love this phone, the camera is amazing and the screen is bright and sharp!",
    "Shipping was slow and the package arrived damaged, very disappointed with the service.",
    "Order #12345 contains two items: a blue shirt (size M) priced at $29.99 and black shoes.",
    "Marie Curie won the Nobel Prize in Physics in 1903 and in Chemistry in 1911 in Stockholm.",
)
UNICODE_TEXT = "İstanbul'da Café Über und naïve résumé — “quoted” ‘single’ ✓ über straße."
CJK_TEXT = "北京 和 东京 是 城市, 上海 在 中国 🙂 日本 😀"
MULTILINE_TEXT = "Tim Cook\nChief Executive, Apple Inc.\n\nCupertino, California\n\temail: help@example.com"
URL_TEXT = "Mail help@example.com, @satya_nadella or see https://example.com/docs?id=7 and www.example.org/x"
NO_PUNCTUATION_TEXT = "Satya Nadella leads Microsoft in Redmond"
ONE_WORD_TEXT = "Apple"
# A standalone zero-width space: BERT's normalizer drops it, so the word has no subwords.
DROPPED_WORD_TEXT = "Tim Cook \u200b works for Apple in Cupertino \u200b today."
LONG_TEXT = " ".join(SENTENCES * 2)  # about 400 words
MEDIUM_TEXT = " ".join(SENTENCES[:8])  # about 130 words: a few chunks for the *_long methods

ENTITY_LABELS = ["person", "organization", "location", "date"]
MANY_LABELS = [
    "person", "organization", "location", "date", "product", "money", "email", "url",
    "company", "founder", "event", "price", "size", "color", "quantity", "medication",
]  # fmt: skip
RELATION_LABELS = ["works_for", "born_in", "located_in", "ceo_of", "founded", "acquired"]
CLASSIFICATION_TASKS = {"sentiment": ["positive", "negative", "neutral"]}
PRODUCT_STRUCTURE = {
    "product": ["name::str", "price", "color::[red|blue|green|black]::str", "size::[S|M|L]::list"]
}
MIXED_LENGTH_TEXTS = (
    ONE_WORD_TEXT,
    SENTENCES[3],
    " ".join(SENTENCES[:3]),
    NO_PUNCTUATION_TEXT,
    SENTENCES[6],
    " ".join(SENTENCES[4:9]),
    SENTENCES[9],
)


@dataclass(frozen=True)
class Case:
    """One call of a public gliner2 method.

    Attributes:
        name: Test id.
        method: Name of the public method, e.g. "batch_extract_entities".
        inputs: The text (single-text methods) or a tuple of texts (batch_* methods).
        target: What follows the text(s): labels, tasks, structures, a schema dict, or a
            function that fills an empty schema builder (extract / batch_extract).
        options: Keyword arguments.
    """

    name: str
    method: str
    inputs: Union[str, Tuple[str, ...]]
    target: Any
    options: Mapping[str, Any] = field(default_factory=dict)


def run_case(model: Any, case: Case) -> Any:
    """Run `case` on anything exposing gliner2's API and return the result."""
    if callable(case.target):
        target = case.target(model.create_schema())
    else:
        target = copy.deepcopy(case.target)
    inputs = list(case.inputs) if isinstance(case.inputs, tuple) else case.inputs
    return getattr(model, case.method)(inputs, target, **dict(case.options))


def _builder_module(schema: Any):
    """The module of the schema's own class, for its `AttributeGroup` (checked by isinstance)."""
    return importlib.import_module(type(schema).__module__)


def _mixed_schema(schema):
    return (
        schema.entities({"person": "a human being", "company": {"threshold": 0.45}, "city": {}})
        .relations(["works_for", "located_in"])
        .classification("sentiment", ["positive", "negative", "neutral"])
        .structure("employment")
        .field("employee", dtype="str")
        .field("employer", dtype="str", description="company name")
        .field("seniority", choices=["junior", "senior", "executive"])
        .classification("topic", ["business", "sports", "science"], multi_label=True, cls_threshold=0.4)
    )


def _validator_schema(schema):
    return schema.entities(
        {
            "email": {"validators": [RegexValidator(r"[^@\s]+@[^@\s]+\.\w+")]},
            "url": {"validators": [RegexValidator(r"https?://|www\.", mode="partial")]},
            "person": {"validators": [RegexValidator(r"\d", mode="partial", exclude=True)]},
        }
    ).structure("contact").field(
        "handle", validators=[RegexValidator(r"@\w+", mode="partial")]
    ).field("address", dtype="str", threshold=0.3)


def _str_entities(schema):
    return schema.entities(["person", "location"], dtype="str").entities(
        {"date": {"dtype": "str", "threshold": 0.65}, "organization": {"threshold": 0.35}}
    )


def _attribute_schema(schema):
    group = _builder_module(schema).AttributeGroup
    return schema.entities(["person", "organization", "location"]).entity_attributes(
        {
            "sentiment": group(["positive", "negative", "neutral"]),
            "role": group(["leader", "founder"], multi_label=True, threshold=0.3, applies_to=["person"]),
            "kind": group(["public", "private"], qualify_labels=True),
        }
    )


def _classification_options(schema):
    return schema.classification(
        "intent",
        {"complaint": "the customer is unhappy", "praise": "the customer is happy", "question": "asks"},
        prompt="What does the writer want?",
        examples=[("Where is my order?", "question"), ("Great phone!", "praise")],
    ).classification("urgency", ["low", "high"], class_act="sigmoid").classification(
        "topics", ["shipping", "quality", "price", "support"], multi_label=True, top_k=2,
        cls_threshold=0.3, class_act="softmax",
    )  # fmt: skip


def _repeated_structure(schema):
    schema.structure("event").field("who").field("when", dtype="str")
    return schema.structure("event").field("where").field("who")


DICT_SCHEMA = {
    "entities": ["person", "location", "organization"],
    "entity_descriptions": {"person": "a human"},
    "relations": [{"works_for": {"head": "", "tail": ""}}, {"lives_in": {"head": "", "tail": ""}}],
    "classifications": [{"task": "sentiment", "labels": ["positive", "negative"], "multi_label": False}],
    "json_structures": [{"order": {"item": "", "color": {"value": "", "choices": ["blue", "black"]}}}],
    "json_descriptions": {"order": {"item": "a product"}},
}

CASES = (
    # Entities
    Case("entities", "extract_entities", SENTENCES[0], ENTITY_LABELS),
    Case("entities_batch_confidence_spans", "batch_extract_entities", SENTENCES[:4], ENTITY_LABELS,
         {"include_confidence": True, "include_spans": True}),
    Case("entities_spans_only", "extract_entities", SENTENCES[1], ENTITY_LABELS, {"include_spans": True}),
    Case("entities_threshold_0.3", "batch_extract_entities", SENTENCES[4:7], ENTITY_LABELS,
         {"threshold": 0.3, "include_confidence": True}),
    Case("entities_threshold_0.7", "batch_extract_entities", SENTENCES[7:10], ENTITY_LABELS,
         {"threshold": 0.7}),
    Case("entities_many_labels", "extract_entities", SENTENCES[10], MANY_LABELS, {"include_confidence": True}),
    Case("entities_descriptions_per_label_thresholds", "batch_extract_entities", SENTENCES[:3],
         {"person": {"description": "a human being", "threshold": 0.6},
          "company": {"dtype": "str", "threshold": 0.4}, "location": "a place", "date": {}},
         {"include_confidence": True}),
    Case("entities_single_label_str", "extract_entities", SENTENCES[5], "person"),
    Case("entities_dtype_str", "extract", SENTENCES[5], _str_entities),
    Case("entities_dtype_str_confidence_spans", "batch_extract", SENTENCES[5:8], _str_entities,
         {"include_confidence": True, "include_spans": True}),
    Case("entities_validators", "batch_extract", (SENTENCES[4], URL_TEXT), _validator_schema,
         {"threshold": 0.4, "include_confidence": True}),
    Case("entities_attribute_groups", "batch_extract", SENTENCES[:3], _attribute_schema,
         {"include_confidence": True}),
    Case("entities_attribute_groups_plain", "extract", SENTENCES[6], _attribute_schema, {"include_spans": True}),
    *(
        Case(f"entities_overlap_{policy}", "extract_entities", SENTENCES[2], ENTITY_LABELS,
             {"threshold": 0.45, "include_confidence": True, "overlap_policy": policy})
        for policy in ("allow", "nested", "flat", "longest", "no_overlap")
    ),
    # Text shapes
    Case("text_unicode", "extract_entities", UNICODE_TEXT, ENTITY_LABELS, {"include_spans": True}),
    Case("text_cjk_emoji", "extract_entities", CJK_TEXT, ENTITY_LABELS, {"include_spans": True, "threshold": 0.4}),
    Case("text_multiline", "extract_entities", MULTILINE_TEXT, ENTITY_LABELS + ["email"],
         {"include_confidence": True, "include_spans": True}),
    Case("text_emails_urls", "extract_entities", URL_TEXT, ["email", "url", "person"], {"include_spans": True}),
    Case("text_one_word", "extract_entities", ONE_WORD_TEXT, ENTITY_LABELS, {"include_confidence": True}),
    Case("text_no_final_punctuation", "extract_entities", NO_PUNCTUATION_TEXT, ENTITY_LABELS,
         {"include_spans": True}),
    # A dropped word shares the next word's embedding, so their spans tie exactly: confidences
    # are shown for the comparator to accept either order.
    Case("text_dropped_subwords", "extract_entities", DROPPED_WORD_TEXT, ENTITY_LABELS,
         {"include_spans": True, "include_confidence": True}),
    Case("text_long", "extract_entities", LONG_TEXT, ENTITY_LABELS,
         {"include_spans": True, "include_confidence": True}),
    Case("text_long_max_len", "extract_entities", LONG_TEXT, ENTITY_LABELS, {"max_len": 40}),
    Case("batch_mixed_lengths", "batch_extract_entities", MIXED_LENGTH_TEXTS, ENTITY_LABELS,
         {"batch_size": 3, "include_confidence": True}),
    # Relations
    Case("relations", "extract_relations", SENTENCES[1], RELATION_LABELS),
    Case("relations_batch_confidence_spans", "batch_extract_relations", SENTENCES[:6], RELATION_LABELS,
         {"include_confidence": True, "include_spans": True}),
    Case("relations_confidence", "batch_extract_relations", SENTENCES[6:9], RELATION_LABELS[:3],
         {"include_confidence": True, "threshold": 0.4}),
    Case("relations_spans", "extract_relations", SENTENCES[6], RELATION_LABELS, {"include_spans": True}),
    Case("relations_descriptions_thresholds", "batch_extract_relations", SENTENCES[:3],
         {"works_for": {"description": "employment", "threshold": 0.4}, "born_in": "birth place",
          "located_in": {"threshold": 0.6}}),
    Case("relations_overlap_longest", "extract_relations", SENTENCES[3], RELATION_LABELS,
         {"overlap_policy": "longest", "threshold": 0.3}),
    # JSON structures
    Case("json", "extract_json", SENTENCES[10], PRODUCT_STRUCTURE),
    Case("json_batch_confidence", "batch_extract_json", SENTENCES[:5], PRODUCT_STRUCTURE,
         {"include_confidence": True}),
    Case("json_spans_descriptions", "batch_extract_json", SENTENCES[5:8],
         {"person": ["name::str::full name", {"name": "role", "dtype": "list", "description": "job"}],
          "event": ["date", "location::str"]},
         {"include_spans": True, "include_confidence": True, "threshold": 0.45}),
    Case("json_choices_list", "extract_json", SENTENCES[8],
         {"review": ["aspect::[camera|screen|battery|price]::list", "opinion::[good|bad]", "detail"]},
         {"threshold": 0.35}),
    Case("json_overlap_nested", "extract_json", SENTENCES[11], {"award": ["winner::str", "field", "year"]},
         {"overlap_policy": "nested", "threshold": 0.4}),
    Case("json_repeated_structure", "extract", SENTENCES[7], _repeated_structure),
    # Classification
    Case("classification", "classify_text", SENTENCES[9], CLASSIFICATION_TASKS),
    Case("classification_batch_confidence", "batch_classify_text", SENTENCES[7:12],
         {"sentiment": ["positive", "negative", "neutral"], "topic": ["sports", "politics", "technology"]},
         {"include_confidence": True}),
    Case("classification_multi_label_0.3", "batch_classify_text", SENTENCES[:4],
         {"topic": {"labels": ["business", "politics", "technology", "science"], "multi_label": True,
                    "cls_threshold": 0.3}}, {"include_confidence": True}),
    Case("classification_multi_label_0.7", "classify_text", SENTENCES[8],
         {"topic": {"labels": ["business", "politics", "technology", "science"], "multi_label": True,
                    "cls_threshold": 0.7}}),
    Case("classification_options", "batch_extract", SENTENCES[8:10], _classification_options,
         {"include_confidence": True}),
    # Mixed and dict schemas, raw results
    Case("mixed_schema", "batch_extract", SENTENCES[:5], _mixed_schema,
         {"include_confidence": True, "batch_size": 2}),
    Case("mixed_schema_spans", "extract", SENTENCES[6], _mixed_schema, {"include_spans": True}),
    Case("mixed_schema_raw", "batch_extract", SENTENCES[1:3], _mixed_schema,
         {"format_results": False, "include_confidence": True}),
    Case("dict_schema", "batch_extract", SENTENCES[9:12], DICT_SCHEMA, {"include_confidence": True}),
    Case("dict_schema_raw", "extract", SENTENCES[10], DICT_SCHEMA, {"format_results": False}),
    # Long documents
    Case("long_entities", "extract_entities_long", LONG_TEXT, ENTITY_LABELS,
         {"chunk_size": 64, "chunk_overlap": 16, "include_confidence": True}),
    Case("long_entities_batch_spans", "batch_extract_entities_long", (MEDIUM_TEXT, SENTENCES[3]), ENTITY_LABELS,
         {"chunk_size": 48, "chunk_overlap": 8, "include_spans": True, "overlap_policy": "allow"}),
    Case("long_mixed", "extract_long", MEDIUM_TEXT, _mixed_schema, {"chunk_size": 80, "chunk_overlap": 20}),
    Case("long_mixed_batch", "batch_extract_long", (SENTENCES[0], MEDIUM_TEXT), _str_entities,
         {"chunk_size": 64, "chunk_overlap": 16, "include_confidence": True, "include_spans": True}),
    Case("long_classification", "classify_text_long", MEDIUM_TEXT, CLASSIFICATION_TASKS,
         {"chunk_size": 96, "chunk_overlap": 16, "include_confidence": True}),
    Case("long_classification_batch", "batch_classify_text_long", (MEDIUM_TEXT, SENTENCES[9]),
         {"topic": {"labels": ["business", "science"], "multi_label": True}}, {"chunk_size": 96, "chunk_overlap": 16}),
    Case("long_json", "extract_json_long", MEDIUM_TEXT, PRODUCT_STRUCTURE,
         {"chunk_size": 64, "chunk_overlap": 16, "include_confidence": True}),
    Case("long_json_batch", "batch_extract_json_long", (MEDIUM_TEXT,), PRODUCT_STRUCTURE,
         {"chunk_size": 100, "chunk_overlap": 10}),
    Case("long_relations", "extract_relations_long", MEDIUM_TEXT, RELATION_LABELS[:3],
         {"chunk_size": 64, "chunk_overlap": 16, "include_spans": True}),
    Case("long_relations_batch", "batch_extract_relations_long", (MEDIUM_TEXT, SENTENCES[1]), RELATION_LABELS[:3],
         {"chunk_size": 100, "chunk_overlap": 20, "include_confidence": True}),
)  # fmt: skip

assert len({case.name for case in CASES}) == len(CASES), "case names must be unique"

#: Builders used above, for tests that need a schema outside a case.
SCHEMA_BUILDERS: Dict[str, Callable[[Any], Any]] = {
    "mixed": _mixed_schema,
    "validators": _validator_schema,
    "attributes": _attribute_schema,
}


# ---------------------------------------------------------------------------------------------
# GLiNER2.5 (boundary) models: entities and classification
# ---------------------------------------------------------------------------------------------


def _entity_validator_schema(schema):
    return schema.entities(
        {
            "email": {"validators": [RegexValidator(r"[^@\s]+@[^@\s]+\.\w+")]},
            "url": {"validators": [RegexValidator(r"https?://|www\.", mode="partial")]},
            "person": {"validators": [RegexValidator(r"\d", mode="partial", exclude=True)]},
        }
    )


def _entities_and_classifications(schema):
    return (
        schema.entities({"person": "a human being", "company": {"threshold": 0.45}, "city": {"dtype": "str"}})
        .classification("sentiment", ["positive", "negative", "neutral"])
        .classification("topic", ["business", "sports", "science"], multi_label=True, cls_threshold=0.4)
    )


#: Texts of 2..40 words: a boundary model's pool is full past about 10 words (top-k boundaries and
#: pool size), so these straddle the pool's limits; 1 word is ONE_WORD_TEXT.
POOL_LIMIT_TEXTS = tuple(" ".join(LONG_TEXT.split()[:words]) for words in (2, 3, 5, 8, 12, 20, 33, 40))

#: Span-model cases left out: tasks a boundary model refuses, and overlap cases whose threshold
#: leaves boundary fixtures nothing to resolve (replaced below by boundary_overlap_*).
_BOUNDARY_UNSUPPORTED = ("entities_overlap_",)
_BOUNDARY_SUPPORTED_PREFIXES = (
    "entities", "text_", "batch_", "classification", "long_entities", "long_classification", "relations", "long_relations",
    "mixed_schema", "dict_schema", "json_repeated_structure", "long_mixed",
)  # fmt: skip


def _entities_relations_classifications(schema):
    return (
        _entities_and_classifications(schema)
        .relations(["works_for", "located_in"])
        .relations({"founded": {"description": "who started a company", "threshold": 0.55}})
    )


def _str_attribute_schema(schema):
    group = _builder_module(schema).AttributeGroup
    return schema.entities({"person": {"dtype": "str"}, "location": {"dtype": "str", "threshold": 0.35}}).entity_attributes(
        {"tone": group(["formal", "casual"]), "tags": group(["famous", "local", "old"], multi_label=True, threshold=0.4)}
    )


def _choice_structures(schema):
    return (
        schema.structure("review")
        .field("aspect", choices=["camera", "screen", "battery", "price"], dtype="list", threshold=0.3)
        .field("opinion", choices=["good", "bad", "mixed"], dtype="str")
        .field("detail", threshold=0.4)
        .structure("shipment")
        .field("item", dtype="str")
        .field("state", choices=["slow", "damaged", "fine"], dtype="list")
    )


def _everything_without_records(schema):
    return _choice_structures(_entities_relations_classifications(schema))


def _record_schema(schema):
    return schema.structure("employment", mode="natural").field("employee", dtype="str").field("employer")


def _attributes_and_relations(schema):
    return _attribute_schema(schema).relations(["works_for", "located_in"]).classification("sentiment", ["positive", "negative"])


#: The cases a GLiNER2.5 model answers today (entities, classification, relations), with gliner2's answers.
BOUNDARY_CASES = (
    *(
        case for case in CASES
        if case.name.startswith(_BOUNDARY_SUPPORTED_PREFIXES) and not case.name.startswith(_BOUNDARY_UNSUPPORTED)
    ),
    *(
        Case(f"boundary_overlap_{policy}", "batch_extract_entities", SENTENCES[:3], ENTITY_LABELS,
             {"threshold": 0.4, "include_confidence": True, "include_spans": True, "overlap_policy": policy})
        for policy in ("allow", "nested", "flat", "longest", "no_overlap")
    ),
    Case("entities_entity_validators", "batch_extract", (SENTENCES[4], URL_TEXT, SENTENCES[1]), _entity_validator_schema,
         {"threshold": 0.4, "include_confidence": True}),
    Case("entities_default_overlap_low_threshold", "batch_extract_entities", SENTENCES[:3], ENTITY_LABELS,
         {"threshold": 0.3, "include_confidence": True, "include_spans": True}),
    Case("entities_many_labels_batch", "batch_extract_entities", SENTENCES[8:12], MANY_LABELS,
         {"include_confidence": True, "batch_size": 2}),
    *(
        Case(f"text_{len(text.split())}_words", "extract_entities", text, ENTITY_LABELS,
             {"include_confidence": True, "include_spans": True, "threshold": 0.4})
        for text in POOL_LIMIT_TEXTS
    ),
    Case("batch_pool_limits", "batch_extract_entities", (ONE_WORD_TEXT, *POOL_LIMIT_TEXTS, LONG_TEXT), ENTITY_LABELS,
         {"batch_size": 4, "include_confidence": True}),
    Case("schema_entities_classifications", "batch_extract", SENTENCES[:5], _entities_and_classifications,
         {"include_confidence": True, "batch_size": 2}),
    Case("schema_entities_classifications_spans", "extract", SENTENCES[6], _entities_and_classifications,
         {"include_spans": True}),
    Case("schema_entities_classifications_raw", "batch_extract", SENTENCES[1:3], _entities_and_classifications,
         {"format_results": False, "include_confidence": True}),
    Case("dict_schema_entities_classifications", "batch_extract", SENTENCES[9:12],
         {"entities": ["person", "location", "organization"], "entity_descriptions": {"person": "a human"},
          "classifications": [{"task": "sentiment", "labels": ["positive", "negative"], "multi_label": False}]},
         {"include_confidence": True}),
    Case("long_entities_default_overlap", "extract_entities_long", LONG_TEXT, ENTITY_LABELS,
         {"chunk_size": 48, "chunk_overlap": 16, "include_confidence": True, "include_spans": True}),
    Case("long_schema_batch", "batch_extract_long", (MEDIUM_TEXT, SENTENCES[2]), _entities_and_classifications,
         {"chunk_size": 64, "chunk_overlap": 16, "include_confidence": True}),
    # Relations: gliner2 scales each pair's distance by the padded width of its own batch, so mixed
    # lengths and batch sizes that split them differently are part of the answer.
    Case("relations_mixed_lengths", "batch_extract_relations", MIXED_LENGTH_TEXTS, RELATION_LABELS[:4],
         {"batch_size": 3, "include_confidence": True, "include_spans": True}),
    Case("relations_pool_limits", "batch_extract_relations", (ONE_WORD_TEXT, *POOL_LIMIT_TEXTS, LONG_TEXT),
         RELATION_LABELS[:2], {"batch_size": 4, "include_confidence": True}),
    Case("relations_low_threshold", "batch_extract_relations", SENTENCES[6:10], RELATION_LABELS,
         {"threshold": 0.3, "include_confidence": True, "batch_size": 2}),
    Case("relations_raw", "batch_extract", SENTENCES[:3], {"relations": [{"works_for": {"head": "", "tail": ""}},
         {"lives_in": {"head": "", "tail": ""}}]}, {"format_results": False, "include_confidence": True}),
    Case("schema_entities_relations_classifications", "batch_extract", SENTENCES[:6], _entities_relations_classifications,
         {"include_confidence": True, "include_spans": True, "batch_size": 4}),
    Case("schema_entities_relations_classifications_raw", "extract", SENTENCES[3], _entities_relations_classifications,
         {"format_results": False}),
    # Entity attributes: gliner2 scores them on the kept entities by injecting those spans into a
    # pool built for the attribute queries.
    Case("entities_attributes_mixed_lengths", "batch_extract", MIXED_LENGTH_TEXTS, _attribute_schema,
         {"batch_size": 3, "include_confidence": True, "include_spans": True, "threshold": 0.4}),
    Case("entities_attributes_str", "batch_extract", SENTENCES[4:8], _str_attribute_schema,
         {"include_confidence": True}),
    Case("entities_attributes_relations", "batch_extract", SENTENCES[:4], _attributes_and_relations,
         {"include_confidence": True, "batch_size": 2}),
    Case("long_entities_attributes", "extract_long", LONG_TEXT, _attribute_schema,
         {"chunk_size": 64, "chunk_overlap": 16, "include_confidence": True}),
    # Structures without a record mode: one instance each; choice fields score their choice words.
    Case("structures_choices", "batch_extract", SENTENCES[8:12], _choice_structures,
         {"include_confidence": True, "threshold": 0.4}),
    Case("structures_choices_plain", "batch_extract", MIXED_LENGTH_TEXTS, _choice_structures, {"batch_size": 3}),
    Case("structures_choices_spans", "extract", SENTENCES[9], _choice_structures,
         {"include_spans": True, "include_confidence": True, "threshold": 0.3}),
    Case("schema_everything", "batch_extract", SENTENCES[:6], _everything_without_records,
         {"include_confidence": True, "batch_size": 4, "threshold": 0.45}),
    Case("schema_everything_raw", "extract", SENTENCES[10], _everything_without_records, {"format_results": False}),
    Case("long_schema_everything", "batch_extract_long", (MEDIUM_TEXT, SENTENCES[9]), _everything_without_records,
         {"chunk_size": 48, "chunk_overlap": 8, "include_confidence": True, "batch_size": 3}),
    Case("long_schema_relations_batch", "batch_extract_long", (MEDIUM_TEXT, SENTENCES[6]), _entities_relations_classifications,
         {"chunk_size": 48, "chunk_overlap": 8, "include_confidence": True, "include_spans": True, "batch_size": 3}),
)  # fmt: skip

assert len({case.name for case in BOUNDARY_CASES}) == len(BOUNDARY_CASES), "case names must be unique"

#: One record call of each kind: (method, target); refused by exports without the record_head graph.
BOUNDARY_REFUSED_CALLS = (
    ("extract_json", PRODUCT_STRUCTURE),
    ("extract", _record_schema),
)
