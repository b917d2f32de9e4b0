"""optimum_gliner2.runtime.long_text chunks and merges as gliner2.inference.chunking does."""

from __future__ import annotations

import copy
import dataclasses
import os
import re

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from optimum_gliner2.runtime.long_text import TextChunk, merge_chunk_results, split_into_chunks
from tests.support.parity import assert_identical

chunking = pytest.importorskip("gliner2.inference.chunking")
overlap_reference = pytest.importorskip("gliner2.inference.overlap")

EXAMPLES = int(os.environ.get("HOST_FUZZ_EXAMPLES", "400"))
fuzz = settings(max_examples=EXAMPLES, derandomize=True, deadline=None)

WORDS = [
    "Alice", "alice", "ALICE", "Bob", "works", "at", "Acme", "Corp.", "in", "Paris",
    "\u6771\u4eac", "e\u0301t\u00e9", "\u0130zmir", "https://x.io/a", "bob@acme.com", "@acme",
    "state-of-the-art", ",", "!", "...", "\U0001f44d",
]
SEPARATORS = [" ", "  ", "\n", "\t", " \u3000 ", ""]
documents = st.lists(
    st.tuples(st.sampled_from(WORDS), st.sampled_from(SEPARATORS)), max_size=30
).map(lambda pairs: "".join(word + separator for word, separator in pairs))


def comma_separated(text, lower=True):
    """A custom splitter: words are the runs between commas."""
    for match in re.finditer(r"[^,]+", text):
        yield (match.group().lower() if lower else match.group()), match.start(), match.end()


splitters = st.sampled_from([None, "whitespace", "char", comma_separated])
POLICIES = [None] + sorted(overlap_reference._ALIASES) + ["Keep-Longest"]

def outcome(function, *args, **kwargs):
    """(True, result) or (False, exception type)."""
    try:
        return True, function(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - the type is what is compared
        return False, type(error)


def as_ours(chunk) -> TextChunk:
    return TextChunk(**dataclasses.asdict(chunk))


# --- splitting --------------------------------------------------------------------------------


def check_split(text, chunk_size, chunk_overlap, word_splitter):
    arguments = (text, chunk_size, chunk_overlap, word_splitter)
    ours = outcome(split_into_chunks, *arguments)
    theirs = outcome(chunking.split_text_into_chunks, *arguments)
    assert ours[0] == theirs[0]
    if theirs[0]:
        assert list(map(dataclasses.astuple, ours[1])) == list(map(dataclasses.astuple, theirs[1]))
        assert all(type(chunk) is TextChunk for chunk in ours[1])
    else:
        assert ours[1] is theirs[1]


@fuzz
@given(
    text=st.one_of(documents, st.text(max_size=40)),
    chunk_size=st.integers(-1, 9),
    chunk_overlap=st.integers(-1, 9),
    word_splitter=splitters,
)
def test_split_matches_gliner2(text, chunk_size, chunk_overlap, word_splitter):
    check_split(text, chunk_size, chunk_overlap, word_splitter)


@pytest.mark.parametrize(
    "chunk_size, chunk_overlap, word_splitter",
    [
        (2.0, 1, None), (1.0, 0, None), (3, 1.5, None), (None, 1, None), (2, None, None),
        (True, False, None), (4, 1, "nope"), (4, 1, 5), (0, 0, "nope"), (384, 64, "char"),
    ],
)
@pytest.mark.parametrize("text", ["one", "one two three four five", "", "  \n "])
def test_split_odd_arguments_like_gliner2(text, chunk_size, chunk_overlap, word_splitter):
    check_split(text, chunk_size, chunk_overlap, word_splitter)


def test_split_examples():
    text = "a b c d e"
    windows = [(c.text, c.start_word, c.end_word) for c in split_into_chunks(text, 3, 1)]
    assert windows == [("a b c", 0, 3), ("c d e", 2, 5)]
    assert split_into_chunks("  ", 3, 1) == [TextChunk("  ", 0, 2, 0, 0)]
    for size, overlap in [(0, 0), (3, -1), (3, 3)]:
        with pytest.raises(ValueError):
            split_into_chunks(text, size, overlap)


# --- merging ----------------------------------------------------------------------------------
#
# Chunk results come from a seeded Random rather than from nested Hypothesis strategies: those
# favour empty and boundary values, which leave the overlap resolution and the deduplication
# little to do. Hypothesis still draws the seed (the same seeds on every run, derandomized).

LABELS = ["person", "org", "loc"]
POLICY_CHOICES = POLICIES + [None, None, "bogus", 7]


def random_span(rng, chunk, pool):
    """A span dict in chunk coordinates: mostly a document-level span of `pool` that lies in the
    chunk (so that overlapping chunks report the same prediction), else a random one."""
    inside = [(s, e) for s, e in pool if chunk.start_char <= s <= e <= chunk.end_char]
    if inside and rng.random() < 0.6:
        start, end = rng.choice(inside)
        start, end = start - chunk.start_char, end - chunk.start_char
    else:
        start = rng.randint(0, len(chunk.text))
        end = start + rng.choice([0, 1, 1, 2, 3, 5, 8])
    if rng.random() < 0.08:  # reversed, outside the chunk, or bool offsets (ints to gliner2)
        odd = [(end, start), (start - 3, end), (start, len(chunk.text) + 4), (True, 3), (False, 0)]
        start, end = rng.choice(odd)
    text = chunk.text[start:end] if rng.random() < 0.7 else rng.choice(["Alice", "alice", "", "X"])
    span = {"text": text}
    if rng.random() < 0.85:
        span["confidence"] = rng.choice([0.3, 0.5, 0.9, 1.0, 0, 1, round(rng.random(), 2)])
    span["start"], span["end"] = start, end
    if rng.random() < 0.15:  # an attribute payload
        payloads = [random_classification(rng), [random_span(rng, chunk, pool)], "red", None]
        span[rng.choice(["sentiment", "color"])] = rng.choice(payloads)
    if rng.random() < 0.1:  # another key order
        span = dict(reversed(list(span.items())))
    return span


def random_classification(rng):
    label = rng.choice(["pos", "neg", "neutral"])
    return {"label": label, "confidence": rng.choice([0.3, 0.5, 0.9, 1])}


def random_other_item(rng):
    """A list item that is not a span dict."""
    return rng.choice([
        "Alice", "alice", 3,
        {"text": rng.choice(["Alice", "Bob"])},
        {"text": "Bob", "confidence": rng.choice([0.2, 0.6])},
        {"text": "Bob", "start": "1", "end": 2},
        {"text": rng.choice(["indoor", "outdoor"]), "confidence": rng.choice([0.2, 0.6])},
        # Equal but for key order or where the confidences sit: duplicates of equal confidence.
        {"text": "Bob", "kind": "x"},
        {"kind": "x", "text": "Bob"},
        {"head": {"text": "A", "confidence": 0.9}, "tail": {"text": "B", "confidence": 0.5}},
        {"head": {"text": "A", "confidence": 0.5}, "tail": {"text": "B", "confidence": 0.9}},
    ])


def random_list(rng, make, max_size=5):
    return [make() for _ in range(rng.randint(0, max_size))]


def random_entities(rng, chunk, pool):
    def span_or_other():
        return random_span(rng, chunk, pool) if rng.random() < 0.85 else random_other_item(rng)

    def value():
        if rng.random() < 0.6:
            return random_list(rng, span_or_other)
        return rng.choice([random_span(rng, chunk, pool), None, [], "Alice"])

    return {label: value() for label in rng.sample(LABELS, rng.randint(0, len(LABELS)))}


def random_relations(rng, chunk, pool):
    if rng.random() < 0.1:
        return rng.choice([None, [], {}])

    def relation():
        roll = rng.random()
        if roll < 0.55:
            pair = {"head": random_span(rng, chunk, pool), "tail": random_span(rng, chunk, pool)}
            if rng.random() < 0.3:
                pair["confidence"] = rng.choice([0.4, 0.8])
            return pair
        return random_span(rng, chunk, pool) if roll < 0.9 else "r"

    names = rng.sample(["works_for", "lives_in"], rng.randint(0, 2))
    return {name: rng.choice([random_list(rng, relation, 4), relation(), None]) for name in names}


def random_structures(rng, chunk, pool):
    def list_item():
        return rng.choice([random_span(rng, chunk, pool), random_other_item(rng)])

    def field_value():
        return rng.choice([
            random_span(rng, chunk, pool),
            random_list(rng, list_item, 3),
            {"text": rng.choice(["indoor", "outdoor"]), "confidence": rng.choice([0.2, 0.6])},
            None, [], "free", "Free",
        ])

    def instance():
        fields = rng.sample(["name", "price", "kind"], rng.randint(0, 3))
        return {field: field_value() for field in fields}

    if rng.random() < 0.6:
        return random_list(rng, instance, 3)
    return rng.choice([instance(), None, []])


def random_classifications(rng, chunk, pool):
    return rng.choice([
        random_classification(rng),
        random_classification(rng),
        random_list(rng, lambda: random_classification(rng), 3),
        "pos", "neg", None, {}, [],
    ])


def random_misc(rng, chunk, pool):
    return rng.choice([
        1, 0, "a", "b", "", "", (1, 2), True, False, [1], ["a", 1, [1]], {"k": 1},
        {"k": "a", "l": None},
        [{"k": 1, "confidence": 0.5}, {"k": 1, "confidence": 0.7}],
        {"x": {"text": "t", "confidence": 0.4}},
    ])


TASKS = {
    "entities": random_entities,
    "relation_extraction": random_relations,
    "product": random_structures,
    "sentiment": random_classifications,
    "topics": random_classifications,
    "misc": random_misc,
}


def random_chunk_result(rng, chunk, pool):
    keys = rng.sample(sorted(TASKS), rng.randint(0, len(TASKS)))
    return {key: TASKS[key](rng, chunk, pool) for key in keys}


@st.composite
def merge_cases(draw):
    text = draw(documents)
    chunk_size = draw(st.integers(1, 6))
    chunk_overlap = draw(st.integers(0, chunk_size - 1))
    chunks = chunking.split_text_into_chunks(text, chunk_size, chunk_overlap, draw(splitters))
    rng = draw(st.randoms(use_true_random=True))
    pool = []
    for _ in range(rng.randint(0, 6)):
        start = rng.randint(0, len(text))
        pool.append((start, min(len(text), start + rng.randint(1, 12))))
    results = [random_chunk_result(rng, chunk, pool) for chunk in chunks]
    if rng.random() < 0.04:  # mismatched lengths
        results = results[1:] if rng.random() < 0.5 else results + [{}]
    options = dict(
        include_confidence=rng.random() < 0.5,
        include_spans=rng.random() < 0.5,
        scalar_entity_labels=rng.choice([None, [], ["person"], ["org", "x"], ("loc", "person")]),
        overlap_policy=rng.choice(POLICY_CHOICES),
    )
    return text, chunks, results, options


@fuzz
@given(case=merge_cases())
def test_merge_matches_gliner2(case):
    text, chunks, results, options = case
    snapshot = copy.deepcopy(results)
    our_chunks = [as_ours(chunk) for chunk in chunks]
    ours = outcome(merge_chunk_results, text, our_chunks, results, **options)
    assert results == snapshot, "the chunk results were modified"
    theirs = outcome(chunking.merge_chunk_results, text, chunks, copy.deepcopy(results), **options)
    event("merged" if theirs[0] else f"raised {theirs[1].__name__}")
    assert ours[0] == theirs[0]
    if theirs[0]:
        assert_identical(ours[1], theirs[1])
    else:
        assert ours[1] is theirs[1]


# --- documented behaviours, each checked against gliner2 as well -------------------------------

DOC = "Alice met Bob. Alice left."
CHUNKS = [TextChunk("Alice met Bob.", 0, 14, 0, 4), TextChunk("Bob. Alice left.", 10, 26, 2, 6)]


def both_merge(results, **options):
    reference_chunks = [chunking.TextChunk(**dataclasses.asdict(c)) for c in CHUNKS]
    ours = merge_chunk_results(DOC, CHUNKS, copy.deepcopy(results), **options)
    theirs = chunking.merge_chunk_results(DOC, reference_chunks, copy.deepcopy(results), **options)
    assert_identical(ours, theirs)
    return ours


def span(text, start, end, confidence=None, **extra):
    value = {"text": text, "start": start, "end": end, **extra}
    if confidence is not None:
        value["confidence"] = confidence
    return value


def test_spans_move_to_document_offsets_and_duplicates_collapse():
    results = [
        {"entities": {"person": [span("Alice", 0, 5, 0.9), span("Bob", 10, 13, 0.6)]}},
        {"entities": {"person": [span("Bob", 0, 3, 0.8), span("Alice", 5, 10, 0.7)]}},
    ]
    merged = both_merge(results, include_confidence=True, include_spans=True)
    assert merged == {
        "entities": {
            "person": [
                {"text": "Alice", "confidence": 0.9, "start": 0, "end": 5},
                {"text": "Bob", "confidence": 0.8, "start": 10, "end": 13},
                {"text": "Alice", "confidence": 0.7, "start": 15, "end": 20},
            ]
        }
    }
    assert both_merge(results) == {"entities": {"person": ["Alice", "Bob", "Alice"]}}


def test_scalar_labels_and_attribute_payloads():
    sentiment = {"label": "pos", "confidence": 0.9}
    results = [
        {"entities": {"person": span("Alice", 0, 5, 0.6, sentiment=sentiment)}},
        {"entities": {"person": span("Bob", 0, 3, 0.8)}},
    ]
    # A scalar label keeps the first span in document order, not the most confident one; and
    # attribute payloads are kept as they are, confidence included, whatever the flags.
    merged = both_merge(results, scalar_entity_labels=["person"])
    assert merged == {"entities": {"person": {"text": "Alice", "sentiment": sentiment}}}


def test_classifications_strings_and_relations():
    first = {"head": span("Alice", 0, 5, 0.5), "tail": span("Bob", 10, 13, 0.5)}
    second = {"head": span("Alice", -10, -5, 0.9), "tail": span("Bob", 0, 3, 0.4)}
    results = [
        {
            "sentiment": {"label": "neg", "confidence": 0.6},
            "tone": "calm",
            "relation_extraction": {"met": [first]},
        },
        {
            "sentiment": {"label": "pos", "confidence": 0.9},
            "tone": "angry",
            "relation_extraction": {"met": [second]},
        },
    ]
    # The most confident classification; a string tie goes to the first seen; the same relation
    # seen in both chunks is kept once, as its more confident copy.
    assert both_merge(results) == {
        "sentiment": "pos",
        "tone": "calm",
        "relation_extraction": {"met": [{"head": "Alice", "tail": "Bob"}]},
    }
    merged = both_merge(results, include_confidence=True)
    assert merged["relation_extraction"]["met"][0]["head"] == {"text": "Alice", "confidence": 0.9}


def test_default_policy_is_disallow_for_entities_and_allow_inside_relations():
    overlapping = [
        span("Alice met", 0, 9, 0.6), span("met Bob", 6, 13, 0.7), span("Bob", 10, 13, 0.2)
    ]
    first_chunk = {"entities": {"person": overlapping}, "relation_extraction": {"met": overlapping}}
    results = [first_chunk, {}]
    merged = both_merge(results, include_spans=True)
    # Entities: the best non-overlapping set; relations: every distinct span (no policy there).
    assert merged["entities"]["person"] == [
        {"text": "Alice met", "start": 0, "end": 9},
        {"text": "Bob", "start": 10, "end": 13},
    ]
    relation_texts = [item["text"] for item in merged["relation_extraction"]["met"]]
    assert relation_texts == ["Alice met", "met Bob", "Bob"]
    allowed = both_merge(results, overlap_policy="allow")["entities"]["person"]
    assert allowed == ["Alice met", "met Bob", "Bob"]


def test_empty_string_values_take_part_in_the_vote():
    # Only None, {} and [] count as missing: "" is a value, and wins a tie by coming first.
    assert both_merge([{"note": ""}, {"note": "x"}]) == {"note": ""}
    assert both_merge([{"note": None}, {"note": "x"}]) == {"note": "x"}


def test_equally_confident_duplicates_keep_the_first():
    first = {"head": {"text": "A", "confidence": 0.9}, "tail": {"text": "B", "confidence": 0.5}}
    second = {"tail": {"text": "B", "confidence": 0.9}, "head": {"text": "A", "confidence": 0.5}}
    merged = both_merge([{"pairs": [first]}, {"pairs": [second]}], include_confidence=True)
    assert list(merged["pairs"][0]) == ["head", "tail"]


def test_merge_errors():
    with pytest.raises(ValueError):
        merge_chunk_results(DOC, CHUNKS, [{}])
    with pytest.raises(ValueError, match="unknown overlap_policy"):
        merge_chunk_results(DOC, CHUNKS, [{}, {}], overlap_policy="sideways")
