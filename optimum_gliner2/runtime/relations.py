"""Relations of GLiNER2.5 (boundary) models: typed pair proposals and gliner2's edge clean-up.

A relation task brings two field queries, its head and tail roles, into the shared candidate pool.
The host proposes pairs from their scores, the relation_scorer graph scores them, and the host
keeps and tidies the edges, as gliner2's BoundaryExtractor does:

    argument probability = sigmoid(pair_logit)        (no pair temperature, as gliner2 proposes)
    heads = the pool candidates valid for the head role with probability >= the proposal
            threshold, best first (ties by start, then end), the first `heads_per_type`
    tails = the same for the tail role
    pairs = every head x tail except a span paired with itself, ranked by the product of the
            two probabilities (ties by head rank, then tail rank), the first `pair_cap`
    relation probability = sigmoid(relation_logit / relation_temperature), kept at or above the
            relation's threshold
    then per relation type: contained mentions merge into the mention containing them, repeated
    (head, tail) mentions keep their best edge, edges naming the same texts keep the closest
    pair, and an edge whose head or tail is a strict word subset of another's (other side equal)
    is dropped; the survivors are ordered by head start, tail start and score.

Nothing here imports torch.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, NamedTuple, Sequence, Tuple

import numpy as np


class RelationSettings(NamedTuple):
    """The head's relation proposal settings (bundle metadata `boundary_head`)."""

    heads_per_type: int
    tails_per_type: int
    pair_cap: int
    argument_threshold: float
    temperature: float

    @classmethod
    def from_head(cls, settings: Mapping[str, Any]) -> "RelationSettings":
        return cls(
            int(settings["relation_heads_per_type"]),
            int(settings["relation_tails_per_type"]),
            int(settings["relation_pair_cap"]),
            float(settings["relation_argument_proposal_threshold"]),
            float(settings["relation_temperature"]),
        )


class ProposedPair(NamedTuple):
    """A head and a tail candidate (half-open word boundaries) with their argument probabilities."""

    head: Tuple[int, int]
    tail: Tuple[int, int]
    head_probability: float
    tail_probability: float


#: One mention of an edge: (text, char_start, char_end, argument probability).
Mention = Tuple[str, int, int, float]


class Edge(NamedTuple):
    """A relation kept for a text, before formatting."""

    score: float
    head: Mention
    tail: Mention


def _ranked_arguments(
    candidates: np.ndarray, valid: np.ndarray, probabilities: np.ndarray, limit: int
) -> List[Tuple[int, float]]:
    """(candidate index, probability) of the `limit` best valid candidates, best first, ties
    broken by (start, end) as gliner2's stable sorts break them."""
    indices = np.flatnonzero(valid)
    order = sorted(
        indices.tolist(),
        key=lambda index: (-float(probabilities[index]), int(candidates[index, 0]), int(candidates[index, 1])),
    )
    return [(index, probabilities[index]) for index in order[:limit]]


def propose_pairs(
    candidates: np.ndarray,
    candidate_mask: np.ndarray,
    head_logits: np.ndarray,
    tail_logits: np.ndarray,
    settings: RelationSettings,
    probability,
) -> List[ProposedPair]:
    """gliner2's typed, capped pair proposals for one relation of one text, best first.

    Args:
        candidates: The pool `[C, 2]`.
        candidate_mask: `[C]` bool, the pool's real slots.
        head_logits, tail_logits: `[C]` pair logits of the head and tail role queries.
        settings: The relation settings.
        probability: The float32 sigmoid the rest of decoding uses.
    """
    head_probabilities = probability(head_logits)
    tail_probabilities = probability(tail_logits)
    threshold = np.float32(settings.argument_threshold)
    mask = candidate_mask.astype(bool)
    heads = _ranked_arguments(candidates, mask & (head_probabilities >= threshold), head_probabilities, settings.heads_per_type)
    tails = _ranked_arguments(candidates, mask & (tail_probabilities >= threshold), tail_probabilities, settings.tails_per_type)
    scored = []
    for head_rank, (head, head_probability) in enumerate(heads):
        for tail_rank, (tail, tail_probability) in enumerate(tails):
            if head == tail:  # the same pool slot is the same span: no self-relation
                continue
            # The float32 product gliner2 ranks by; ties keep (head rank, tail rank) order.
            scored.append((-(head_probability * tail_probability), head_rank, tail_rank, head, tail))
    scored.sort(key=lambda item: item[:3])
    return [
        ProposedPair(
            (int(candidates[head, 0]), int(candidates[head, 1])),
            (int(candidates[tail, 0]), int(candidates[tail, 1])),
            float(head_probabilities[head]),
            float(tail_probabilities[tail]),
        )
        for _, _, _, head, tail in scored[: settings.pair_cap]
    ]


# ---------------------------------------------------------------------------------------------
# Edge clean-up (gliner2's relation de-duplication)
# ---------------------------------------------------------------------------------------------


def _widest_containing(mentions: Dict[Tuple[int, int], Mention]) -> Dict[Tuple[int, int], Mention]:
    """Each mention's replacement: the longest mention containing it (the earliest on ties)."""
    replacement = {}
    for start, end in mentions:
        best = None
        for other in mentions.values():
            if other[1] <= start and other[2] >= end:
                rank = (other[2] - other[1], -other[1])
                if best is None or rank > best[0]:
                    best = (rank, other)
        replacement[(start, end)] = best[1]
    return replacement


def _normalized(text: str) -> str:
    return " ".join(text.casefold().split())


def _closeness(edge: Edge) -> Tuple[int, float, int, int]:
    """Smaller is preferred among edges naming the same texts: nearer arguments, then higher score."""
    head_start, head_end = edge.head[1], edge.head[2]
    tail_start, tail_end = edge.tail[1], edge.tail[2]
    return max(head_start - tail_end, tail_start - head_end, 0), -edge.score, head_start, tail_start


def clean_edges(edges: Sequence[Edge]) -> List[Edge]:
    """gliner2's clean-up of one relation type's edges (see the module docstring)."""
    if len(edges) < 2:
        return list(edges)
    heads = _widest_containing({(edge.head[1], edge.head[2]): edge.head for edge in edges})
    tails = _widest_containing({(edge.tail[1], edge.tail[2]): edge.tail for edge in edges})

    by_position: Dict[Tuple[int, int, int, int], Edge] = {}
    for edge in edges:
        head, tail = heads[(edge.head[1], edge.head[2])], tails[(edge.tail[1], edge.tail[2])]
        key = (head[1], head[2], tail[1], tail[2])
        if key not in by_position or edge.score > by_position[key].score:
            by_position[key] = Edge(edge.score, head, tail)

    by_text: Dict[Tuple[str, str], Edge] = {}
    for edge in by_position.values():
        key = (_normalized(edge.head[0]), _normalized(edge.tail[0]))
        if key not in by_text or _closeness(edge) < _closeness(by_text[key]):
            by_text[key] = edge

    survivors = list(by_text.values())
    words = [(set(_normalized(edge.head[0]).split()), set(_normalized(edge.tail[0]).split())) for edge in survivors]

    def dominated(index: int) -> bool:
        head, tail = words[index]
        return any(
            other != index
            and ((head < other_head and tail == other_tail) or (tail < other_tail and head == other_head))
            for other, (other_head, other_tail) in enumerate(words)
        )

    kept = [edge for index, edge in enumerate(survivors) if not dominated(index)]
    return sorted(kept, key=lambda edge: (edge.head[1], edge.tail[1], -edge.score))
