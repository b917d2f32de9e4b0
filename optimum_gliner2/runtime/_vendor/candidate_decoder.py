# Vendored from gliner2 2.1.0 (Apache-2.0), gliner2/inference/candidate_decoder.py.
# Why: `import gliner2` imports torch, and the serving runtime must stay torch-free.
# Changes: only the torch-free final section (RawSpan, finalize_spans), below the same marker
# comment as in the original; the candidate-set decoder above it needs gliner2.models (torch).
# tests/test_vendored_gliner2.py pins this copy to the installed original.

"""Final span selection (finalize_spans) of gliner2's span decoder."""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

from .overlap import resolve_overlaps


# --- final span selection ---

RawSpan = Tuple[str, float, int, int]


def finalize_spans(
    raw_spans: Sequence[RawSpan],
    *,
    dtype: str = "list",
    gate_open: bool = True,
    suppress: bool = True,
    overlap_policy: Optional[str] = None,
) -> List[RawSpan]:
    """Decode thresholded entity spans using the production contract."""
    if not gate_open:
        return []
    if overlap_policy is None:
        # Preserve the span architecture's published confidence-first greedy
        # default. Explicit policies use the shared deterministic resolver.
        ranked = sorted(raw_spans, key=lambda span: span[1], reverse=True)
        if suppress:
            spans = []
            for candidate in ranked:
                candidate_start, candidate_end = candidate[2], candidate[3]
                if any(
                    candidate_start < existing[3]
                    and existing[2] < candidate_end
                    for existing in spans
                ):
                    continue
                spans.append(candidate)
        else:
            spans = ranked
    else:
        spans = resolve_overlaps(
            raw_spans,
            overlap_policy,
            score=lambda span: span[1],
            start=lambda span: span[2],
            end=lambda span: span[3],
        )
    return spans if dtype == "list" else spans[:1]
