"""The numeric stages the engine calls, whatever runs them.

Two architectures share the encoder and the classifier and differ in their extraction head:

- span models (gliner2-*-v1): a count head builds count-aware queries, and a span scorer scores every
  span up to `max_width` words against each query (`SpanBackend`);
- boundary models (GLiNER2.5): one head builds a shared pool of candidate spans per text, in the graph,
  and scores each candidate against each query (`BoundaryBackend`).

`OnnxBackend`s (runtime/onnx/sessions.py) run the stages with ONNX Runtime; tests also run them with
gliner2's own PyTorch modules (tests/support/torch_backend.py) to check the host code apart from the
graphs. All arrays are numpy; float arrays are float32, index arrays int64.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Protocol, Tuple

import numpy as np


class GLiNER2Backend(Protocol):
    """The stages every GLiNER2 architecture has. Data-dependent steps stay on the host."""

    #: "span" or "boundary": which extraction head the engine drives.
    architecture: str
    #: Encoder hidden size.
    hidden_size: int

    def encode(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """[B, S] int64 ids and mask (right-padded with 0) -> last hidden state [B, S, H]."""

    def classify(self, label_embeddings: np.ndarray) -> np.ndarray:
        """Classification label markers [K, H] -> raw logits [K]."""


class SpanBackend(GLiNER2Backend, Protocol):
    """Numeric stages of a span model (architecture "span")."""

    #: Largest span width in words (config.max_width); span logits have this last dimension.
    max_width: int
    #: Number of count classes of count_pred (20 in gliner2).
    max_count: int

    def count_and_queries(
        self, prompt_embeddings: np.ndarray, field_embeddings: np.ndarray, max_instances: np.ndarray
    ) -> Tuple[np.ndarray, np.ndarray]:
        """N tasks with M fields each: prompts [N, H], fields [N, M, H], int64 max_instances [N] ->
        (count logits [N, max_count], count-aware queries [N, S, M, H]).

        max_instances is how many instances the host reads per task (1 for entities). S is at least
        min(predicted count, max_instances) for every task; instance t depends only on instances
        < t, so the host keeps [:count].
        """

    def score_spans(self, word_embeddings: np.ndarray, queries: np.ndarray) -> np.ndarray:
        """Words [B, L, H] (zero-padded) and queries [B, Q, H] -> raw span logits [B, Q, L, W].

        Spans that run past a text's last word are not masked here; the host masks them.
        """


class CandidateScores(NamedTuple):
    """A boundary head's output for a batch of B texts, Q queries and a pool of C candidates.

    Attributes:
        candidates: `[B, C, 2]` int64 half-open word boundaries (start, end) of each candidate, in
            the pool's order.
        candidate_mask: `[B, C]` bool, False for the pool's padding.
        pair_logits: `[B, Q, C]` raw candidate-query logits (before the pair temperature).
        null_logits: `[B, Q]` abstention logits: a query abstains when sigmoid(null) exceeds the
            head's abstention threshold.
        count_log_rates: `[B, Q]` log of the expected number of mentions per query (read only
            when the head's adaptive threshold is on).
    """

    candidates: np.ndarray
    candidate_mask: np.ndarray
    pair_logits: np.ndarray
    null_logits: np.ndarray
    count_log_rates: np.ndarray


class RecordScores(NamedTuple):
    """A record head's output for B texts, R record groups (structures with a record mode) of at most
    F fields, I instance hypotheses and a pool of C candidates.

    Attributes:
        object_logits: `[B, R, I]` raw logit that instance i forms a record (natural: the anchor's
            pair logit of pool candidate i; latent: the seed head's; anchorless: the object head's).
        assign_logits: `[B, R, I, F, 1 + C]` raw logits of giving field f of instance i no value
            (column 0) or pool candidate c (column 1 + c).
        instance_mask: `[B, R, I]` bool, the instance hypotheses that exist.
        field_membership: `[B, R, F, C]` bool, the pool candidates field f may take.
    """

    object_logits: np.ndarray
    assign_logits: np.ndarray
    instance_mask: np.ndarray
    field_membership: np.ndarray


class BoundaryBackend(GLiNER2Backend, Protocol):
    """Numeric stages of a GLiNER2.5 model (architecture "boundary")."""

    #: The head's decoding settings, as bundle/format.py BOUNDARY_HEAD_KEYS names them.
    boundary_head: Mapping[str, Any]

    def score_candidates(
        self, text_states: np.ndarray, text_mask: np.ndarray, query_states: np.ndarray, query_mask: np.ndarray
    ) -> CandidateScores:
        """Word states [B, L, H] with int64 mask [B, L] (at least `min_words` wide) and query
        states [B, Q, H] with int64 mask [B, Q] -> the shared candidate pool and its scores."""

    def score_explicit_spans(
        self,
        text_states: np.ndarray,
        text_mask: np.ndarray,
        query_states: np.ndarray,
        query_mask: np.ndarray,
        spans: np.ndarray,
        span_mask: np.ndarray,
    ) -> Tuple[np.ndarray, np.ndarray]:
        """gliner2's `score_explicit_spans`: requested spans scored inside a pool built for these
        queries, with the spans injected.

        Args:
            text_states, text_mask, query_states, query_mask: As for `score_candidates`.
            spans: int64 [B, Q, S, 2] half-open word boundaries requested per query.
            span_mask: int64 [B, Q, S], 0 for padding.

        Returns:
            (raw logits [B, Q, S], bool [B, Q, S] set where a requested span did not fit the pool).
        """

    def score_records(
        self,
        text_states: np.ndarray,
        text_mask: np.ndarray,
        query_states: np.ndarray,
        query_mask: np.ndarray,
        field_queries: np.ndarray,
        field_mask: np.ndarray,
        modes: np.ndarray,
        anchor_fields: np.ndarray,
        group_mask: np.ndarray,
    ) -> RecordScores:
        """gliner2's record head (`RecordHead.forward_groups_dense`) on the pool `score_candidates`
        builds for the same inputs.

        Args:
            text_states, text_mask, query_states, query_mask: As for `score_candidates`.
            field_queries: int64 [B, R, F] query of each record field (prompt order).
            field_mask: int64 [B, R, F], 0 for padding.
            modes: int64 [B, R] 0 natural, 1 latent, 2 anchorless (-1 for padding).
            anchor_fields: int64 [B, R] position of the anchor among the fields (-1 without).
            group_mask: int64 [B, R], 0 for padding.
        """

    def score_relations(
        self,
        text_states: np.ndarray,
        relation_roles: np.ndarray,
        pair_rows: np.ndarray,
        pair_relations: np.ndarray,
        pair_spans: np.ndarray,
    ) -> np.ndarray:
        """Raw relation logits [P] of P proposed pairs.

        Args:
            text_states: Word states [B, L, H], zero-padded; L is the padded word axis gliner2's
                scorer normalises distances by (its own batch's widest text).
            relation_roles: [B, R, 2, H] head and tail role markers of each relation.
            pair_rows, pair_relations: int64 [P] row and relation of each pair.
            pair_spans: int64 [P, 4] head start, head end, tail start, tail end (half-open words).
        """
