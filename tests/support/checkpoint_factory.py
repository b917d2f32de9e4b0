"""Offline GLiNER2 span checkpoints built with gliner2's own classes.

The hub is unreachable in tests, so checkpoints are built locally: a small tokenizer trained with
`tokenizers` on CORPUS (stored in tests/data/tokenizers/ because the trainers are not deterministic
across processes; `python -m tests.support.checkpoint_factory --retrain-tokenizers` rebuilds them), a small encoder from a transformers config, gliner2's `SpanExtractorModel` around it,
and gliner2's own `save_pretrained`. Random weights give near-constant outputs, so the task heads
are rescaled until entities, classes, relations and JSON fields differ by label and straddle the
0.5 threshold; otherwise a parity test would compare empty results and prove nothing.

Variants:
    deberta_lstm      DeBERTa-v2 (v3-style), count_lstm, gliner2 2.1 config.json
    deberta_lstm_v2   DeBERTa-v2, count_lstm_v2 (the gliner2-base-v1 head)
    deberta_moe       DeBERTa-v2, count_lstm_moe
    legacy            DeBERTa-v2, count_lstm, the published 5-key config.json
    bert              BERT with a WordPiece tokenizer, count_lstm, max_width 5
    full              fastino/gliner2-multi-v1 dimensions (benchmarks only; ~1.2 GB, ~1 min)

GLiNER2.5 ("boundary" architecture, loaded with `gliner2.auto.AutoExtractor`) variants, built from
`BOUNDARY_HEAD_V1`, the published v1 `boundary_head` (shared candidate pool):
    boundary          tiny DeBERTa-v2, boundary/pair dim 32, seed 0
    boundary_seed1    the same, seed 1
    boundary_seed2    the same, seed 2
    boundary_bert     BERT with a WordPiece tokenizer
    boundary_full     mdeberta-v3-base dimensions and the published head dims (benchmarks only)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Mapping, Optional, Union

CORPUS = """
Apple released the iPhone 15 in Cupertino, California on September 12, 2023.
Tim Cook is the chief executive officer of Apple Inc. and lives in Palo Alto.
Barack Obama was born in Honolulu, Hawaii and served as president of the United States.
Microsoft acquired GitHub for 7.5 billion dollars in 2018, said Satya Nadella in Redmond.
Contact support at help@example.com or visit https://example.com/docs for more details.
The patient was prescribed 20 mg of atorvastatin daily by Dr. Maria Garcia at Mercy Hospital.
Elon Musk founded SpaceX in 2002 and later became chief executive of Tesla Motors in Austin.
The Eiffel Tower in Paris, France attracts millions of tourists every year from around the world.
Angela Merkel met Emmanuel Macron in Berlin to discuss the European Union budget for 2024.
The customer wrote that the laptop battery died after two days and demanded a full refund.
I absolutely love this phone, the camera is amazing and the screen is bright and sharp!
Shipping was slow and the package arrived damaged, very disappointed with the service.
Amazon opened a new warehouse in Seattle, Washington creating 2,000 jobs in the region.
The meeting is scheduled for Monday at 3 pm in conference room B with the marketing team.
Order #12345 contains two items: a blue shirt (size M) priced at $29.99 and black shoes.
Marie Curie won the Nobel Prize in Physics in 1903 and in Chemistry in 1911 in Stockholm.
Google, Meta and OpenAI compete on large language models, reported Reuters on Tuesday.
The quick brown fox jumps over the lazy dog near the river bank under the old bridge.
person organization location date product money email url company founder event
positive negative neutral sentiment urgent spam category topic sports politics technology
name price size color quantity works_for born_in located_in founded acquired ceo_of
北京 东京 上海 日本 中国 über straße café naïve résumé İstanbul 🙂 😀 ✓ — “quoted” ‘single’
"""


@dataclass(frozen=True)
class EncoderSpec:
    """Encoder family and dimensions of one checkpoint variant."""

    family: str  # "deberta" or "bert"
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 128
    vocab_size: Optional[int] = None  # None: the trained tokenizer's size
    max_position_embeddings: int = 512


@dataclass(frozen=True)
class Variant:
    """One fixture checkpoint: encoder, counting layer and config layout."""

    name: str
    encoder: EncoderSpec
    counting_layer: str = "count_lstm"
    max_width: int = 8
    legacy_config: bool = False
    # Head rescaling that makes random outputs non-trivial (see module docstring).
    shape_outputs: bool = True
    extra: Dict[str, object] = field(default_factory=dict)


TINY_DEBERTA = EncoderSpec("deberta")
VARIANTS: Dict[str, Variant] = {
    "deberta_lstm": Variant("deberta_lstm", TINY_DEBERTA, "count_lstm"),
    "deberta_lstm_v2": Variant("deberta_lstm_v2", TINY_DEBERTA, "count_lstm_v2"),
    "deberta_moe": Variant("deberta_moe", TINY_DEBERTA, "count_lstm_moe"),
    "legacy": Variant("legacy", TINY_DEBERTA, "count_lstm", legacy_config=True),
    "bert": Variant("bert", EncoderSpec("bert"), "count_lstm", max_width=5),
    "full": Variant(
        "full",
        EncoderSpec(
            "deberta",
            hidden_size=768,
            num_layers=12,
            num_heads=12,
            intermediate_size=3072,
            vocab_size=250_102,
        ),
        "count_lstm",
        shape_outputs=False,
    ),
}
FIXTURE_TOKENIZERS = Path(__file__).resolve().parents[1] / "data" / "tokenizers"
TEST_VARIANTS = ("deberta_lstm", "deberta_lstm_v2", "deberta_moe", "legacy", "bert")

# The published fastino/gliner2-multi-v1 config.json, keys and all.
LEGACY_CONFIG_KEYS = ("counting_layer", "max_width", "model_name", "model_type", "token_pooling")

# The published GLiNER2.5 v1 `boundary_head` (small/base/multi report the same one), in gliner2 2.1's
# field names. Everything not listed keeps gliner2's default; adding a key here changes what the
# fixtures claim to mirror, so keep it to published settings.
BOUNDARY_HEAD_V1: Mapping[str, object] = {
    "candidate_pool": "shared",
    "boundary_dim": 128,
    "pair_dim": 128,
    "enable_span_content": True,
    "content_dim": 64,
    "boundary_attention_layers": 2,
    "boundary_attention_heads": 4,
    "boundary_attention_window": 128,
    "boundary_refinement_layers": 1,
    "pool_boundary_top_k": 32,
    "pool_size": 192,
    "min_pool_per_query": 8,  # the per-query quota
    "candidate_attention_layers": 0,
    "query_attention_layers": 0,
    "enable_abstention": True,
    "enable_count_head": True,
    "enable_records": True,
    "enable_relations": True,
    "adaptive_threshold": False,
    "pair_temperature": 1.0,
    "relation_temperature": 1.0,
    "record_temperature": 1.0,
    "classification_temperature": 1.0,
    "overlap_policy": "flat",
    "enable_rotary_endpoints": True,
    "endpoint_difference_features": True,
    "multihead_pair_compat_heads": 8,
    "directional_relation_states": True,
    "relation_biaffine_content": True,
}
# Top-level ExtractorConfig fields of the published boundary checkpoints.
BOUNDARY_MAX_LEN = 4096

# Tiny heads shrink only widths; pool size, top-k, quota and every switch stay published so tests
# can reach the pool's limits. 32 keeps pair_dim divisible by the 8 compat heads and the
# boundary dim by the 4 attention heads, and both even for rotary endpoints.
TINY_BOUNDARY_HEAD: Mapping[str, object] = {
    **BOUNDARY_HEAD_V1,
    "boundary_dim": 32,
    "pair_dim": 32,
    "content_dim": 16,
    "record_dim": 32,
}


@dataclass(frozen=True)
class BoundaryVariant:
    """One GLiNER2.5 fixture checkpoint: encoder, boundary_head settings and default seed."""

    name: str
    encoder: EncoderSpec
    head: Mapping[str, object] = field(default_factory=lambda: dict(TINY_BOUNDARY_HEAD))
    seed: int = 0
    shape_outputs: bool = True


BOUNDARY_VARIANTS: Dict[str, BoundaryVariant] = {
    "boundary": BoundaryVariant("boundary", TINY_DEBERTA),
    "boundary_seed1": BoundaryVariant("boundary_seed1", TINY_DEBERTA, seed=1),
    "boundary_seed2": BoundaryVariant("boundary_seed2", TINY_DEBERTA, seed=2),
    "boundary_bert": BoundaryVariant("boundary_bert", EncoderSpec("bert")),
    "boundary_full": BoundaryVariant(
        "boundary_full",
        VARIANTS["full"].encoder,
        head=dict(BOUNDARY_HEAD_V1),
        shape_outputs=False,
    ),
}
BOUNDARY_TEST_VARIANTS = ("boundary", "boundary_seed1", "boundary_seed2", "boundary_bert")

# Long enough (119 gliner2 words, so 120 boundaries) that the shared pool keeps only 32 of them as
# starts and 32 as ends, and those pair into more valid spans (about 420-530 on the test variants)
# than its 192 slots: truncation, dedupe order and the per-query quota all take effect. Built
# from CORPUS sentences so every piece is in the fixture vocabularies.
BOUNDARY_POOL_LIMIT_TEXT = " ".join(
    [
        "Apple released the iPhone 15 in Cupertino, California on September 12, 2023.",
        "Tim Cook is the chief executive officer of Apple Inc. and lives in Palo Alto.",
        "Microsoft acquired GitHub for 7.5 billion dollars in 2018, said Satya Nadella in Redmond.",
        "Elon Musk founded SpaceX in 2002 and later became chief executive of Tesla Motors in Austin.",
        "Angela Merkel met Emmanuel Macron in Berlin to discuss the European Union budget for 2024.",
        "Amazon opened a new warehouse in Seattle, Washington creating 2,000 jobs in the region.",
        "Marie Curie won the Nobel Prize in Physics in 1903 and in Chemistry in 1911 in Stockholm.",
    ]
)


def _fit_tokenizer_on_corpus(family: str):
    """Train a small tokenizer on CORPUS, shaped like the encoder family's real one."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    lines = [line for line in CORPUS.strip().splitlines() if line.strip()]
    if family == "deberta":
        # deberta-v3 / mdeberta: SentencePiece Unigram with a "▁" Metaspace, [PAD]=0 ... [UNK]=3.
        tokenizer = Tokenizer(models.Unigram())
        tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC()])
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
        tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
        trainer = trainers.UnigramTrainer(
            vocab_size=400,
            special_tokens=["[PAD]", "[CLS]", "[SEP]", "[UNK]"],
            unk_token="[UNK]",
        )
        tokenizer.train_from_iterator(lines, trainer)
        tokenizer.add_special_tokens(["[MASK]"])
    else:
        tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(
            vocab_size=400, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        )
        tokenizer.train_from_iterator(lines, trainer)
    return tokenizer


def _base_tokenizer(family: str, vocab_size: Optional[int]):
    """The family's stored fixture tokenizer, padded with filler pieces up to `vocab_size`.

    Stored rather than trained per build: the `tokenizers` trainers break frequency ties in hash-map
    order, so two builds tokenized the same text differently and threshold-sensitive tests flipped.
    """
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(FIXTURE_TOKENIZERS / f"{family}.json"))
    if vocab_size is not None and vocab_size > tokenizer.get_vocab_size():
        # Full-size mode only needs the real embedding-table shape, not real pieces.
        filler = [f"<extra_{i}>" for i in range(vocab_size - tokenizer.get_vocab_size())]
        tokenizer.add_tokens(filler)
    return tokenizer


def _wrap_tokenizer(family: str, tokenizer):
    if family == "deberta":
        from transformers import DebertaV2TokenizerFast

        return DebertaV2TokenizerFast(
            tokenizer_object=tokenizer,
            bos_token="[CLS]",
            eos_token="[SEP]",
            unk_token="[UNK]",
            sep_token="[SEP]",
            pad_token="[PAD]",
            cls_token="[CLS]",
            mask_token="[MASK]",
        )
    from transformers import BertTokenizerFast

    return BertTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
    )


def _encoder_config(spec: EncoderSpec, vocab_size: int):
    if spec.family == "deberta":
        from transformers import DebertaV2Config

        return DebertaV2Config(
            vocab_size=vocab_size,
            hidden_size=spec.hidden_size,
            num_hidden_layers=spec.num_layers,
            num_attention_heads=spec.num_heads,
            intermediate_size=spec.intermediate_size,
            max_position_embeddings=spec.max_position_embeddings,
            relative_attention=True,
            position_buckets=256,
            max_relative_positions=-1,
            share_att_key=True,
            pos_att_type=["p2c", "c2p"],
            position_biased_input=False,
            type_vocab_size=0,
            norm_rel_ebd="layer_norm",
            layer_norm_eps=1e-7,
            hidden_act="gelu",
            pad_token_id=0,
            initializer_range=0.02,
        )
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        intermediate_size=spec.intermediate_size,
        max_position_embeddings=spec.max_position_embeddings,
        pad_token_id=0,
        initializer_range=0.02,
    )


def _spread_encoder(encoder, generator) -> None:
    """Redraw encoder weights wide enough that marker states differ by label and by text.

    At the 0.02 init every [E]/[L] marker state is nearly the same vector, so every label
    would find the same spans with the same score.
    """
    import torch

    for module in encoder.modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)):
            module.weight.normal_(0.0, 0.35, generator=generator)


def _shape_outputs(model, seed: int) -> None:
    """Rescale random heads so decoded outputs are label-dependent and near the threshold."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        _spread_encoder(model.encoder, generator)
        # Span logits: a larger final projection spreads scores across 0.5; the bias
        # moves the centre so a minority of spans pass.
        span_out = model.span_rep.span_rep_layer.out_project[3]
        span_out.weight.mul_(6.0)
        span_out.bias.normal_(0.0, 0.5, generator=generator)
        for projection in (
            model.span_rep.span_rep_layer.project_start,
            model.span_rep.span_rep_layer.project_end,
        ):
            projection[3].weight.mul_(3.0)
        if hasattr(model.count_embed, "w2"):
            # count_lstm_moe's expert mixture shrinks the queries; restore their spread.
            model.count_embed.w2.mul_(8.0)
        classifier_out = model.classifier[-1]
        classifier_out.weight.mul_(20.0)
        # Counts: classes 0..3 compete so different prompts predict 0, 1, 2 or 3 instances.
        count_out = model.count_pred[-1]
        count_out.weight.mul_(8.0)
        count_out.bias.fill_(-30.0)
        count_out.bias[0:4] = torch.tensor([0.0, 3.0, 2.5, 1.0])


def build_checkpoint(
    variant: Union[str, Variant, BoundaryVariant], directory: os.PathLike, seed: Optional[int] = None
) -> Path:
    """Build a GLiNER2 checkpoint (span or boundary) with gliner2's classes and save it to `directory`.

    Args:
        variant: A name from `VARIANTS` or `BOUNDARY_VARIANTS`, a `Variant` or a `BoundaryVariant`.
        directory: Where `save_pretrained` writes the checkpoint.
        seed: Seed for the random weights; None means 0 for span variants and the variant's own
            seed for boundary ones.

    Returns:
        The checkpoint directory.
    """
    if isinstance(variant, BoundaryVariant) or (isinstance(variant, str) and variant in BOUNDARY_VARIANTS):
        return build_boundary_checkpoint(variant, directory, seed)
    seed = 0 if seed is None else seed
    import torch
    from gliner2 import ExtractorConfig
    from gliner2.models.span.model import SpanExtractorModel

    spec = VARIANTS[variant] if isinstance(variant, str) else variant
    directory = Path(directory)
    torch.manual_seed(seed)

    tokenizer = _wrap_tokenizer(spec.encoder.family, _base_tokenizer(spec.encoder.family, spec.encoder.vocab_size))
    encoder_config = _encoder_config(spec.encoder, len(tokenizer))
    model_name = "microsoft/mdeberta-v3-base" if spec.encoder.family == "deberta" else "bert-base-uncased"
    config = ExtractorConfig(
        model_name=model_name,
        max_width=spec.max_width,
        counting_layer=spec.counting_layer,
        token_pooling="first",
    )
    model = SpanExtractorModel(config, encoder_config=encoder_config, tokenizer=tokenizer)
    if spec.shape_outputs:
        _shape_outputs(model, seed)
    model.eval()
    model.save_pretrained(str(directory))

    if spec.legacy_config:
        saved = json.loads((directory / "config.json").read_text())
        legacy = {key: saved[key] for key in LEGACY_CONFIG_KEYS if key in saved}
        legacy["max_width"] = spec.max_width
        legacy["counting_layer"] = spec.counting_layer
        (directory / "config.json").write_text(json.dumps(legacy, indent=2))
    return directory


# Head gains for the tiny boundary variants; `tests/test_boundary_fixtures.py` checks the result.
BOUNDARY_SHAPING: Dict[str, float] = {
    # FiLM candidate scorer: pair logits spread ~1.2 (sd) instead of ~0.6 within a query; larger
    # gains push most confidences to 0 or 1 and no longer straddle the threshold.
    "film_gain": 8.0,
    "null_std": 0.25,  # abstention weights (gliner2 starts them at zero)
    "count_std": 0.05,  # count head (zero-initialised too; only read by adaptive thresholds)
    "classifier_gain": 20.0,  # classification logits, as for the span fixtures
    # Calibrated on CORPUS after the gains: the share of (text, label) queries that abstain,
    # and of pooled candidates whose pair probability reaches 0.5.
    "abstain_share": 0.25,
    "pass_share": 0.06,
    # Relation scorer: random weights give relation probabilities within ~0.2-0.6; the gain spreads
    # them, and the calibrated share of proposed pairs reaching 0.5 leaves a few edges per text.
    "relation_gain": 4.0,
    "relation_pass_share": 0.04,
}
CALIBRATION_RELATIONS = ("works_for", "located_in", "founded")
# What the calibration runs: CORPUS's sentences (not its word lists) and its entity labels.
CALIBRATION_LABELS = ("person", "organization", "location", "date", "product", "money", "event")
CALIBRATION_CLASSES = {
    "sentiment": ["positive", "negative", "neutral"],
    "topic": ["sports", "politics", "technology"],
    "category": ["urgent", "spam"],
}


def _calibration_texts():
    return [line for line in CORPUS.strip().splitlines() if line.rstrip().endswith((".", "!", "?"))]


def _shape_boundary_outputs(model, seed: int) -> None:
    """Make a random boundary model's entities, abstention and classes non-trivial.

    Random heads score every candidate and class nearly alike, and gliner2 zero-initialises the
    abstention head: sigmoid(0) = 0.5 sits exactly on the default abstention threshold, which
    needs "> 0.5" to fire, so abstention could never happen. Gains and redraws give spread; the
    two biases are then set from the model's own scores on CORPUS so that every seed and encoder
    lands at the same operating point (a fixed bias left one seed abstaining on 80% of queries
    and another on 10%).
    """
    import torch

    gains = BOUNDARY_SHAPING
    generator = torch.Generator().manual_seed(seed)
    head = model.boundary_head
    with torch.no_grad():
        _spread_encoder(model.encoder, generator)
        # Near-zero BOS/EOS states would make the first and last boundary of every text alike.
        head.boundary_encoder.bos_state.normal_(0.0, 1.0, generator=generator)
        head.boundary_encoder.eos_state.normal_(0.0, 1.0, generator=generator)
        head.shared_pool_scorer.film_output[-1].weight.mul_(gains["film_gain"])
        head.null_projection.weight.normal_(0.0, gains["null_std"], generator=generator)
        head.count_head.weight.normal_(0.0, gains["count_std"], generator=generator)
        model.classifier[-1].weight.mul_(gains["classifier_gain"])

    null_logits, pair_logits, class_logits = _boundary_scores_on_corpus(model)
    with torch.no_grad():
        # These biases add to every score without moving the candidate pool or the softmax,
        # so a quantile shift hits its target share exactly on the calibration set.
        head.null_projection.bias.sub_(torch.quantile(null_logits, 1.0 - gains["abstain_share"]))
        head.shared_pool_scorer.film_output[-1].bias.sub_(
            torch.quantile(pair_logits, 1.0 - gains["pass_share"])
        )
        # Multi-label classification thresholds sigmoid(logit) at 0.5: centre the logits so
        # about half the labels pass, instead of all or none depending on the seed.
        model.classifier[-1].bias.sub_(torch.median(class_logits))
    _shape_relation_scores(model)


def _shape_relation_scores(model) -> None:
    """Spread the relation scorer's logits and set their operating point from CORPUS (after the
    rest of the head is shaped: relation proposals read the pool's scores)."""
    import torch

    scorer = model.relation_scorer
    gain = BOUNDARY_SHAPING["relation_gain"]
    with torch.no_grad():
        scorer.mlp[-1].weight.mul_(gain)
        scorer.mlp[-1].bias.mul_(gain)
        if scorer.use_biaffine_content:
            scorer.content_linear.weight.mul_(gain)
            scorer.content_linear.bias.mul_(gain)
    logits = []
    hook = scorer.register_forward_hook(lambda _module, _inputs, output: logits.append(output.flatten()))
    try:
        model.eval()
        model.batch_extract_relations(_calibration_texts(), list(CALIBRATION_RELATIONS), batch_size=32)
    finally:
        hook.remove()
    with torch.no_grad():
        scorer.mlp[-1].bias.sub_(torch.quantile(torch.cat(logits).float(), 1.0 - BOUNDARY_SHAPING["relation_pass_share"]))


def _boundary_scores_on_corpus(model):
    """On CORPUS: null logits of every real query, pair logits of every pooled candidate, and
    classifier logits of every class label."""
    import torch

    outputs, class_logits = [], []
    hooks = [
        model.boundary_head.register_forward_hook(lambda _module, _inputs, output: outputs.append(output)),
        model.classifier.register_forward_hook(lambda _module, _inputs, output: class_logits.append(output)),
    ]
    try:
        model.eval()
        texts = _calibration_texts()
        model.batch_extract_entities(texts, list(CALIBRATION_LABELS), batch_size=32)
        del class_logits[:]  # only classification tasks should set the classifier's centre
        model.batch_classify_text(texts, CALIBRATION_CLASSES, batch_size=32)
    finally:
        for hook in hooks:
            hook.remove()
    null_logits = torch.cat([out.null_logits[out.candidates.query_mask] for out in outputs])
    pair_logits = torch.cat(
        [
            out.candidates.pair_logits[out.candidates.valid_mask & out.candidates.query_mask.unsqueeze(-1)]
            for out in outputs
        ]
    )
    return null_logits.float(), pair_logits.float(), torch.cat([x.flatten() for x in class_logits]).float()


def build_boundary_checkpoint(
    variant: Union[str, BoundaryVariant], directory: os.PathLike, seed: Optional[int] = None
) -> Path:
    """Build a GLiNER2.5 boundary checkpoint with gliner2's classes and save it to `directory`.

    Args:
        variant: A name from `BOUNDARY_VARIANTS` or a `BoundaryVariant`.
        directory: Where gliner2's `save_pretrained` writes the checkpoint.
        seed: Seed for the random weights; None uses the variant's.

    Returns:
        The checkpoint directory; `gliner2.auto.AutoExtractor.from_pretrained` loads it.
    """
    import torch
    from gliner2 import ExtractorConfig
    from gliner2.models.boundary.engine import BoundaryExtractor

    spec = BOUNDARY_VARIANTS[variant] if isinstance(variant, str) else variant
    seed = spec.seed if seed is None else seed
    directory = Path(directory)
    torch.manual_seed(seed)

    family = spec.encoder.family
    tokenizer = _wrap_tokenizer(family, _base_tokenizer(family, spec.encoder.vocab_size))
    encoder_config = _encoder_config(spec.encoder, len(tokenizer))
    model_name = "microsoft/mdeberta-v3-base" if family == "deberta" else "bert-base-uncased"
    config = ExtractorConfig(
        model_name=model_name,
        architecture="boundary",
        token_pooling="first",
        max_len=BOUNDARY_MAX_LEN,
        boundary_head=dict(spec.head),
    )
    # BoundaryExtractor (what AutoExtractor registers for "boundary") rather than the bare
    # BoundaryExtractorModel: calibration needs its extraction runtime.
    model = BoundaryExtractor(config, encoder_config=encoder_config, tokenizer=tokenizer)
    if spec.shape_outputs:
        _shape_boundary_outputs(model, seed)
    model.eval()
    model.save_pretrained(str(directory))
    return directory


def retrain_fixture_tokenizers() -> None:
    """Rewrite tests/data/tokenizers/ (changes every fixture's tokenization; re-check test_fixtures)."""
    FIXTURE_TOKENIZERS.mkdir(parents=True, exist_ok=True)
    for family in ("deberta", "bert"):
        _fit_tokenizer_on_corpus(family).save(str(FIXTURE_TOKENIZERS / f"{family}.json"))


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--retrain-tokenizers"]:
        sys.exit("usage: python -m tests.support.checkpoint_factory --retrain-tokenizers")
    retrain_fixture_tokenizers()
