"""Benchmark inputs: deterministic English-like texts, the schemas, and the benchmark tokenizer.

Texts are generated from sentence templates with people, organisations, places, dates and
products, so that every entity label of the schemas has something to find and the word statistics
look like news text. Everything is seeded: two runs measure exactly the same inputs.

Why a benchmark tokenizer: `tests/support/checkpoint_factory.py` trains a ~350-piece Unigram on a few
lines of text (enough for parity tests), which splits ordinary English words into 3-5 pieces.
mDeBERTa's 250k SentencePiece vocabulary needs about 1.3-1.5 pieces per English word. Sequence
length drives the encoder's cost (attention is quadratic in it), so the benchmark trains its own
BPE tokenizer on text from the same generator with a vocabulary sized for a realistic pieces-per-word
ratio, and pads the vocabulary to the real 250,102 entries exactly as the factory does. The
measured ratio is written into the results.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

ENTITY_LABELS: List[str] = ["person", "organization", "location", "date", "product"]
CLASSIFICATION_TASK = "sentiment"
CLASSIFICATION_LABELS: List[str] = ["positive", "negative", "neutral"]
RELATION_LABELS: List[str] = ["works_for", "located_in"]

PEOPLE = [
    "Tim Cook", "Satya Nadella", "Angela Merkel", "Marie Curie", "Elon Musk", "Maria Garcia",
    "Barack Obama", "Emmanuel Macron", "Sundar Pichai", "Jensen Huang", "Lisa Su", "Ada Lovelace",
    "Olaf Scholz", "Giorgia Meloni", "Pedro Sanchez", "Jacinda Ardern", "Mary Barra", "Andy Jassy",
    "Sam Altman", "Christine Lagarde", "Ngozi Okonjo-Iweala", "Kenji Tanaka", "Priya Sharma",
]
ORGANIZATIONS = [
    "Apple", "Microsoft", "GitHub", "Tesla", "SpaceX", "Google", "Amazon", "Reuters", "Siemens",
    "Mercy Hospital", "the European Union", "the World Bank", "Nvidia", "AMD", "Airbus", "Toyota",
    "General Motors", "the United Nations", "OpenAI", "Meta", "Samsung", "Volkswagen", "Nestle",
]
LOCATIONS = [
    "Cupertino", "California", "Palo Alto", "Redmond", "Berlin", "Paris", "Honolulu", "Austin",
    "Seattle", "Stockholm", "Tokyo", "Madrid", "Rome", "Toulouse", "Detroit", "Geneva", "Lagos",
    "Mumbai", "Sydney", "Toronto", "Singapore", "Brussels", "Washington",
]
DATES = [
    "Monday", "Tuesday", "last week", "September 12, 2023", "March 3, 2024", "early 2025", "2018",
    "the second quarter", "January", "next spring", "late October", "1911", "yesterday",
]
PRODUCTS = [
    "iPhone 15", "Model Y", "Azure", "Pixel 8", "Windows 11", "Galaxy S24", "Prius", "A350",
    "Vision Pro", "ChatGPT", "Ryzen 9", "Kindle", "Xbox", "Starlink", "Copilot",
]
TEMPLATES = [
    "{person} announced on {date} that {org} will open a new office in {location}.",
    "{org} released the {product} in {location} on {date}, according to {person}.",
    "On {date}, {person} met executives from {org} in {location} to discuss the {product}.",
    "{person}, who works for {org}, said the {product} sold out in {location} within hours.",
    "Analysts in {location} expect {org} to cut the price of the {product} before {date}.",
    "{org} hired {person} to lead its research lab in {location} starting {date}.",
    "Customers in {location} complained that the {product} from {org} stopped working {date}.",
    "{person} told reporters in {location} that {org} had no plans to sell the {product}.",
    "The {product} made by {org} won an award in {location} on {date}, said {person}.",
    "Regulators in {location} questioned {person} about how {org} marketed the {product}.",
]
FILLERS = [
    "The decision reflects growing demand for cloud services and longer battery life.",
    "Shares rose slightly after the news, while bond markets stayed calm for most of the day.",
    "Several employees said the change had been discussed for months before it was made public.",
    "Critics argued that the plan ignored smaller suppliers and the cost of shipping.",
    "The company did not respond to a request for comment on Tuesday evening.",
    "I absolutely love how fast it is, but the screen is too dim outside in the sun.",
    "Shipping was slow and the package arrived damaged, which was very disappointing.",
    "Officials promised a full report on the incident by the end of the month.",
    "The meeting is scheduled for three in the afternoon in conference room B.",
    "Sales of older models fell sharply as buyers waited for the new version.",
]


def _sentence(rng: random.Random) -> str:
    """One templated sentence (entity-rich) or, one time in three, a plain filler sentence."""
    if rng.random() < 1 / 3:
        return rng.choice(FILLERS)
    return rng.choice(TEMPLATES).format(
        person=rng.choice(PEOPLE),
        org=rng.choice(ORGANIZATIONS),
        location=rng.choice(LOCATIONS),
        date=rng.choice(DATES),
        product=rng.choice(PRODUCTS),
    )


def _text_of_about(words: int, rng: random.Random, spread: float = 0.2) -> str:
    """Whole sentences until the text reaches about `words` words (+-`spread`, uniformly drawn)."""
    target = int(words * rng.uniform(1 - spread, 1 + spread))
    sentences: List[str] = []
    count = 0
    while count < target:
        sentence = _sentence(rng)
        sentences.append(sentence)
        count += len(sentence.split())
    return " ".join(sentences)


def short_texts(count: int, seed: int = 1) -> List[str]:
    """`count` texts of about 15 words: one templated sentence, sometimes with a short tail."""
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        text = rng.choice(TEMPLATES).format(
            person=rng.choice(PEOPLE),
            org=rng.choice(ORGANIZATIONS),
            location=rng.choice(LOCATIONS),
            date=rng.choice(DATES),
            product=rng.choice(PRODUCTS),
        )
        texts.append(text)
    return texts


def medium_texts(count: int, seed: int = 2) -> List[str]:
    """`count` texts of about 120 words (96-144), several sentences each."""
    rng = random.Random(seed)
    return [_text_of_about(120, rng) for _ in range(count)]


def long_document(words: int = 3000, seed: int = 3) -> str:
    """One document of about `words` words (exactly at least `words`), for the `*_long` methods."""
    rng = random.Random(seed)
    return _text_of_about(words, rng, spread=0.0)


def word_count(text: str) -> int:
    """Whitespace words (the figure quoted as "~15 words" etc.)."""
    return len(text.split())


# ------------------------------------------------------------------------------------------------
# Schemas. Each implementation builds its own Schema object (gliner2's or the runtime's vendored
# copy) through `model.create_schema()`, so both sides run exactly the same task prompts.
# ------------------------------------------------------------------------------------------------


def entity_schema(model: Any) -> Any:
    """5 entity labels."""
    return model.create_schema().entities(ENTITY_LABELS)


def mixed_schema(model: Any) -> Any:
    """Entities + single-label classification + relations: exercises every head and the count."""
    return (
        model.create_schema()
        .entities(ENTITY_LABELS)
        .classification(CLASSIFICATION_TASK, CLASSIFICATION_LABELS)
        .relations(RELATION_LABELS)
    )


SCHEMAS: Dict[str, Callable[[Any], Any]] = {"entities": entity_schema, "mixed": mixed_schema}


@dataclass
class Workload:
    """One measured input set.

    Attributes:
        name: Row name in the results (e.g. "short").
        texts: The texts (throughput runs use all of them in one `batch_extract` call; latency
            runs call `extract` on each in turn).
        schema: A key of `SCHEMAS`.
        description: Shown in the results.
        words_mean: Mean whitespace words per text.
        tokens_mean: Mean encoder tokens per text (schema prompt included), filled in once the
            tokenizer is known.
    """

    name: str
    texts: List[str]
    schema: str
    description: str
    words_mean: float = 0.0
    tokens_mean: Optional[float] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.words_mean = sum(word_count(t) for t in self.texts) / max(1, len(self.texts))


def build_workloads(batch_texts: int, latency_texts: int, long_words: int) -> Dict[str, Dict[str, Workload]]:
    """All workloads, grouped by measurement kind: "throughput", "latency", "long"."""
    short = short_texts(batch_texts)
    medium = medium_texts(batch_texts)
    return {
        "throughput": {
            "short": Workload("short", short, "entities", f"{batch_texts} texts of ~15 words, 5 entity labels"),
            "medium": Workload("medium", medium, "entities", f"{batch_texts} texts of ~120 words, 5 entity labels"),
            "mixed": Workload(
                "mixed", short, "mixed", f"{batch_texts} texts of ~15 words, 5 entities + 1 classification + 2 relations"
            ),
        },
        "latency": {
            "short": Workload("short", short[:latency_texts], "entities", "one ~15-word text per call, 5 entity labels"),
            "medium": Workload("medium", medium[:latency_texts], "entities", "one ~120-word text per call, 5 entity labels"),
            "mixed": Workload("mixed", short[:latency_texts], "mixed", "one ~15-word text per call, mixed schema"),
        },
        "long": {
            "long": Workload(
                "long", [long_document(long_words)], "entities", f"one ~{long_words}-word document, extract_entities_long"
            ),
        },
    }


# ------------------------------------------------------------------------------------------------
# Benchmark tokenizer
# ------------------------------------------------------------------------------------------------

#: gliner2's word splitter without the URL/e-mail/@handle alternatives (the texts have none).
_GLINER2_WORD = re.compile(r"\w+(?:[-_]\w+)*|\S")

#: BPE vocabulary (before gliner2's markers and the filler up to the real vocabulary size). Chosen
#: so that the generated text needs ~1.5 pieces per word, like mDeBERTa on English news.
BENCHMARK_TOKENIZER_PIECES = 600


def tokenizer_training_lines(sentences: int = 4000, seed: int = 99) -> List[str]:
    """Text from the same generator (another seed) split and lowercased the way gliner2 feeds
    words to the tokenizer (each word alone, punctuation as its own word), plus the schema
    prompts' words and brackets, repeated so that they get pieces of their own."""
    rng = random.Random(seed)
    lines = [" ".join(w.lower() for w in _GLINER2_WORD.findall(_sentence(rng))) for _ in range(sentences)]
    prompt_words = ENTITY_LABELS + CLASSIFICATION_LABELS + RELATION_LABELS + [CLASSIFICATION_TASK, "entities", "(", ")"]
    lines += [" ".join(prompt_words)] * 50
    return lines


def train_benchmark_tokenizer(family: str, vocab_size: Optional[int], pieces: int = BENCHMARK_TOKENIZER_PIECES):
    """A drop-in for `checkpoint_factory._base_tokenizer` (same signature; [PAD]/[CLS]/[SEP]/[UNK]
    = ids 0-3, "<extra_i>" filler and [MASK] last up to `vocab_size` entries), trained on the
    benchmark's text instead of the factory's few lines.

    BPE rather than the factory's Unigram: on this small, repetitive corpus the Unigram trainer
    stops short of the requested vocabulary and keeps splitting common words into characters,
    while BPE's merge count gives direct control of the pieces-per-word ratio. Both sit behind
    the same Metaspace pre-tokenizer, as in mDeBERTa's SentencePiece model.
    """
    import string

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    if family != "deberta":
        raise ValueError("the benchmark tokenizer is only defined for the DeBERTa (mDeBERTa-shaped) checkpoints")
    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC()])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.BpeTrainer(
        vocab_size=pieces,
        special_tokens=["[PAD]", "[CLS]", "[SEP]", "[UNK]"],
        initial_alphabet=list(string.ascii_letters + string.digits + string.punctuation),
    )
    tokenizer.train_from_iterator(tokenizer_training_lines(), trainer)
    if vocab_size is not None and vocab_size - 1 > tokenizer.get_vocab_size():
        # Pad the vocabulary to the real table size inside the BPE model itself (entries no merge
        # produces), as mDeBERTa's SentencePiece vocabulary is. The factory adds its filler as
        # 250k *added tokens* instead, which makes transformers take ~30 s to load the tokenizer
        # and writes a 45 MB tokenizer_config.json: a load-time artefact no real checkpoint has.
        data = json.loads(tokenizer.to_str())
        vocab = data["model"]["vocab"]
        for index in range(len(vocab), vocab_size - 1):
            vocab[f"<extra_{index}>"] = index
        tokenizer = Tokenizer.from_str(json.dumps(data))
    tokenizer.add_special_tokens(["[MASK]"])  # last id, like mDeBERTa's [MASK] (250101)
    return tokenizer


def pieces_per_word(tokenizer_json: str, texts: Sequence[str]) -> float:
    """Subword pieces per word the way gliner2 tokenizes (each lowercased word on its own)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(tokenizer_json)
    words = [w.lower() for text in texts for w in _GLINER2_WORD.findall(text)]
    pieces = sum(len(tokenizer.encode(w, add_special_tokens=False).ids) for w in words)
    return pieces / max(1, len(words))
