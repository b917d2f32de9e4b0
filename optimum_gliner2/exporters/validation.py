"""The plugin's own check of exported graphs against gliner2's PyTorch modules.

Optimum validates each graph at the export shapes only and merely warns on a mismatch. Here every
graph is compared with gliner2's PyTorch modules at several other shapes; any divergence beyond
tolerance raises (exporters/publishing.py then removes the graphs, so no loadable folder is left).

The boundary head is compared with gliner2's own `BoundaryHead.forward` (the unpatched module):
its candidate pool (boundaries and order) and mask must be identical, its scores within tolerance,
at 1-word texts, short ones, mixed lengths in one batch and texts long enough to fill the pool.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import onnxruntime as ort
import torch

from optimum_gliner2.bundle.format import BOUNDARY, SPAN
from optimum_gliner2.errors import GLiNER2ExportError
from optimum_gliner2.exporters.boundary_patches import pool_entries

logger = logging.getLogger(__name__)

#: Accepted |ONNX - PyTorch| per element: ATOL + RTOL * |PyTorch|. The graphs agree to ~1e-5 relative;
#: full-size span logits reach magnitudes where a pure absolute bound would be arbitrary.
VALIDATION_ATOL = 1e-4
VALIDATION_RTOL = 1e-4
ENCODER_SHAPES = ((1, 5), (3, 37), (2, 130))  # (batch, sequence length)
#: (fields, instances the host reads per task): one task, two, and five that read instance 0 only.
COUNT_EMBED_CASES = ((1, (20,)), (5, (1, 20)), (12, (1, 1, 1, 1, 1)))
CLASSIFIER_SHAPES = (1, 3, 17)  # label markers
SPAN_SCORER_SHAPES = ((1, 1, 1), (2, 9, 4), (3, 41, 11))  # (batch, words, queries)
#: (words of each text in the batch, queries). Batches of 1-4, texts of 1 word up to past the point
#: where the pool is full (300 words: 32 x 32 start/end pairs for 192 slots), 1 to 6 queries; with
#: two or more texts and queries, the first text also has its last query masked (mixed counts).
BOUNDARY_HEAD_CASES = (
    ((1,), 1),
    ((2,), 3),
    ((1, 5), 4),
    ((8, 2, 40), 6),
    ((120, 57), 5),
    ((300,), 2),
    ((1, 9, 33, 64), 1),
    ((7, 7, 7), 6),
)
#: (words of each text in the batch, relations, pairs): one 1-word text, mixed lengths, many pairs
#: on a long text (the published pair cap is 128 per relation).
RELATION_SCORER_CASES = (((1,), 1, 1), ((2, 9), 2, 5), ((41, 3, 17), 4, 37), ((300,), 3, 384))
#: (words of each text in the batch, queries, requested spans per query) for explicit_spans.
EXPLICIT_SPAN_CASES = (((1,), 1, 1), ((3, 1), 2, 2), ((12, 40), 3, 4), ((300,), 2, 6))
#: Outputs that must match exactly (the pool's boundaries, order and mask).
EXACT_OUTPUTS = ("candidates", "candidate_mask", "span_outside_pool", "instance_mask", "field_membership")


def _compare(expected: torch.Tensor, actual: np.ndarray, exact: bool = False) -> Tuple[float, bool]:
    """(max abs diff, whether every element is within VALIDATION_ATOL + VALIDATION_RTOL * |expected|,
    or, if `exact`, equal)."""
    expected = expected.detach().cpu().numpy()
    if expected.shape != actual.shape:
        raise GLiNER2ExportError(f"shape {actual.shape} from ONNX Runtime, {expected.shape} from PyTorch")
    if not expected.size:
        return 0.0, True
    if exact:
        diff = np.abs(expected.astype(np.float64) - actual.astype(np.float64))
        return float(diff.max()), bool(np.array_equal(expected, actual))
    diff = np.abs(expected - actual)
    within = bool(np.all(diff <= VALIDATION_ATOL + VALIDATION_RTOL * np.abs(expected)))
    return float(diff.max()), within


def _encoder_cases(encoder: torch.nn.Module, generator: torch.Generator):
    vocab_size = encoder.encoder.config.vocab_size
    for batch, length in ENCODER_SHAPES:
        ids = torch.randint(0, vocab_size, (batch, length), generator=generator)
        mask = torch.ones(batch, length, dtype=torch.long)
        mask[0, length // 2 + 1 :] = 0  # right padding, as the runtime pads
        reference = encoder(ids, mask)["last_hidden_state"] * mask[..., None]
        yield "encoder", f"batch {batch} x {length} tokens", {"input_ids": ids, "attention_mask": mask}, {
            "last_hidden_state": (reference, mask)
        }


def _classifier_cases(classifier: torch.nn.Module, hidden: int, generator: torch.Generator):
    for labels in CLASSIFIER_SHAPES:
        embs = torch.randn(labels, hidden, generator=generator) * 2.0
        yield "classifier", f"{labels} labels", {"label_embeddings": embs}, {"logits": (classifier(embs)["logits"], None)}


def _span_cases(submodels: Dict[str, torch.nn.Module], hidden: int, generator: torch.Generator):
    """(graph, shape description, ONNX feeds, PyTorch reference outputs) at non-export shapes."""

    def floats(*shape):
        return torch.randn(*shape, generator=generator) * 2.0

    with torch.inference_mode():
        yield from _encoder_cases(submodels["encoder"], generator)
        count_module = submodels["count_embed"]
        for fields, instances in COUNT_EMBED_CASES:
            tasks = len(instances)
            prompts, field_embs = floats(tasks, hidden), floats(tasks, fields, hidden)
            max_instances = torch.tensor([min(n, count_module.max_count) for n in instances])
            count_logits = count_module.count_pred(prompts)
            counts = [min(int(c), int(n)) for c, n in zip(count_logits.argmax(-1), max_instances)]
            steps = max(1, *counts)
            # Reference: gliner2's count_embed called per task with an int count, as gliner2 calls it.
            queries = torch.stack([count_module.count_embed(field_embs[t], steps) for t in range(tasks)])
            yield "count_embed", f"{tasks} tasks x {fields} fields, {steps} steps", {
                "prompt_embeddings": prompts,
                "field_embeddings": field_embs,
                "max_instances": max_instances,
            }, {"count_logits": (count_logits, None), "queries": (queries, None)}
        yield from _classifier_cases(submodels["classifier"], hidden, generator)
        for batch, words, queries_count in SPAN_SCORER_SHAPES:
            word_embs, queries = floats(batch, words, hidden), floats(batch, queries_count, hidden)
            yield "span_scorer", f"batch {batch} x {words} words x {queries_count} queries", {
                "word_embeddings": word_embs,
                "queries": queries,
            }, {"span_logits": (submodels["span_scorer"](word_embs, queries)["span_logits"], None)}


def boundary_head_case(head: torch.nn.Module, hidden: int, word_counts, queries: int, generator: torch.Generator):
    """ONNX feeds for one boundary-head case and gliner2's BoundaryHead.forward outputs for them.

    Word states are zero beyond each text's length (as gliner2 routes them); with two or more
    texts and queries, the first text's last query is masked.

    Returns:
        (feeds, references): name -> tensor, and output name -> (reference tensor, None).
    """
    batch, length = len(word_counts), max(word_counts)
    text_mask = (torch.arange(length).unsqueeze(0) < torch.tensor(word_counts).unsqueeze(1)).long()
    text_states = torch.randn(batch, length, hidden, generator=generator) * text_mask.unsqueeze(-1)
    query_states = torch.randn(batch, queries, hidden, generator=generator)
    query_mask = torch.ones(batch, queries, dtype=torch.long)
    if batch > 1 and queries > 1:
        query_mask[0, -1] = 0
    output = head(text_states, text_mask.bool(), query_states, query_mask.bool(), return_candidates=True)
    candidates = output.candidates
    # What the graph outputs for a missing head (see GLiNER2BoundaryHeadForExport): never abstain, no rates.
    no_count_head = torch.zeros(batch, queries)
    never_abstain = torch.full((batch, queries), -1.0e4)
    references = {
        # The shared pool is the same for every query: gliner2 broadcasts it over the query axis.
        "candidates": candidates.indices[:, 0],
        "candidate_mask": candidates.valid_mask[:, 0],
        "pair_logits": candidates.pair_logits,
        "null_logits": output.null_logits if output.null_logits is not None else never_abstain,
        "count_log_rates": output.count_log_rates if output.count_log_rates is not None else no_count_head,
    }
    feeds = {"text_states": text_states, "text_mask": text_mask, "query_states": query_states, "query_mask": query_mask}
    return feeds, {name: (value, None) for name, value in references.items()}


def relation_scorer_case(wrapper: torch.nn.Module, hidden: int, word_counts, relations: int, pairs: int, generator):
    """ONNX feeds for one relation-scorer case and gliner2's SparseRelationScorer output for them.

    Pairs are spread over the batch's rows and relations, each span inside its own text. The
    relation queries are built from the role markers as gliner2's `_encode_core` builds them."""
    from gliner2.models.boundary.relations import RelationPairBatch

    batch, length = len(word_counts), max(word_counts)
    lengths = torch.tensor(word_counts)
    text_states = torch.randn(batch, length, hidden, generator=generator)
    text_states = text_states * (torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(-1)
    relation_roles = torch.randn(batch, relations, 2, hidden, generator=generator)
    if wrapper.directional:
        relation_queries = torch.cat((relation_roles[:, :, 0], relation_roles[:, :, 1]), dim=-1)
    else:
        relation_queries = torch.stack((relation_roles[:, :, 0], relation_roles[:, :, 1])).mean(dim=0)
    rows = torch.randint(0, batch, (pairs,), generator=generator)
    row_lengths = lengths[rows].unsqueeze(1)
    starts = (torch.rand(pairs, 2, generator=generator) * row_lengths).long()
    ends = starts + 1 + (torch.rand(pairs, 2, generator=generator) * (row_lengths - starts)).long()
    spans = torch.stack((starts[:, 0], ends[:, 0], starts[:, 1], ends[:, 1]), dim=-1)
    relation_index = torch.randint(0, relations, (pairs,), generator=generator)
    confidences = torch.zeros(pairs)
    reference = wrapper.relation_scorer(
        text_states,
        relation_queries,
        None,
        RelationPairBatch(rows, relation_index, spans[:, 0], spans[:, 1], spans[:, 2], spans[:, 3], confidences, confidences),
    )
    feeds = {
        "text_states": text_states,
        "relation_roles": relation_roles,
        "pair_rows": rows,
        "pair_relations": relation_index,
        "pair_spans": spans,
    }
    return feeds, {"relation_logits": (reference, None)}


def explicit_spans_case(head: torch.nn.Module, hidden: int, word_counts, queries: int, spans: int, generator):
    """ONNX feeds for one explicit-span case and gliner2's `score_explicit_spans` output for them.

    Spans lie inside their text, except that the last one of each query is masked."""
    feeds, _ = boundary_head_case(head, hidden, word_counts, queries, generator)
    lengths = torch.tensor(word_counts).view(-1, 1, 1)
    shape = (len(word_counts), queries, spans)
    starts = (torch.rand(shape, generator=generator) * lengths).long()
    ends = starts + 1 + (torch.rand(shape, generator=generator) * (lengths - starts)).long()
    requested = torch.stack((starts, ends), dim=-1)
    span_mask = torch.ones(shape, dtype=torch.long)
    if spans > 1:
        span_mask[..., -1] = 0
    logits = head.score_explicit_spans(
        feeds["text_states"], feeds["text_mask"].bool(), feeds["query_states"], feeds["query_mask"].bool(), requested, span_mask.bool()
    )
    feeds.update(spans=requested, span_mask=span_mask)
    return feeds, {"span_logits": (logits, None), "span_outside_pool": (torch.zeros(shape, dtype=torch.bool), None)}


def record_head_case(wrapper: torch.nn.Module, hidden: int, word_counts, queries: int, groups, generator):
    """ONNX feeds for one record-head case and gliner2's record head output for them.

    `groups` lists, per text, its record groups as (mode, field count); a text with fewer groups
    than the widest is padded, and so are groups with fewer fields. Field queries are spread over
    the text's queries (some shared between groups); the anchor is the first field."""
    feeds, _ = boundary_head_case(wrapper.boundary_head, hidden, word_counts, queries, generator)
    batch = len(word_counts)
    group_count = max(len(text_groups) for text_groups in groups)
    field_count = max(fields for text_groups in groups for _, fields in text_groups)
    field_queries = torch.zeros(batch, group_count, field_count, dtype=torch.long)
    field_mask = torch.zeros_like(field_queries)
    modes = torch.full((batch, group_count), -1, dtype=torch.long)
    anchor_fields = torch.full_like(modes, -1)
    group_mask = torch.zeros_like(modes)
    mode_ids = {"natural": 0, "latent": 1, "anchorless": 2}
    for row, text_groups in enumerate(groups):
        for group, (mode, fields) in enumerate(text_groups):
            field_queries[row, group, :fields] = torch.randint(0, queries, (fields,), generator=generator)
            field_mask[row, group, :fields] = 1
            modes[row, group] = mode_ids[mode]
            anchor_fields[row, group] = 0 if mode == "natural" else -1
            group_mask[row, group] = 1
    routing = {
        "field_queries": field_queries, "field_mask": field_mask, "modes": modes, "anchor_fields": anchor_fields, "group_mask": group_mask
    }  # fmt: skip
    feeds.update(routing)
    head = wrapper.boundary_head
    output = head(feeds["text_states"], feeds["text_mask"].bool(), feeds["query_states"], feeds["query_mask"].bool(), return_candidates=True)
    field_mask_bool = field_mask.bool()
    dense = wrapper.record_head.forward_groups_dense(
        feeds["query_states"],
        output.candidates,
        (field_queries, field_mask_bool, torch.zeros_like(field_mask_bool), modes, anchor_fields, group_mask.bool()),
    )
    # Padded instances and groups are not compared: nothing reads them (their logits are masked).
    live = dense.instance_mask
    references = {
        "object_logits": (dense.object_logits.masked_fill(~live, 0.0), None),
        "assign_logits": (dense.assign_logits.masked_fill(~live[..., None, None], 0.0), None),
        "instance_mask": (dense.instance_mask, None),
        "field_membership": (dense.field_membership, None),
    }
    return feeds, references


#: (words of each text, queries, per text its record groups as (mode, fields)): one-word text,
#: mixed lengths and modes with padded groups and fields, and a text that fills the pool.
RECORD_HEAD_CASES = (
    ((1,), 1, ((("natural", 1),),)),
    ((5, 12), 4, ((("natural", 3), ("latent", 2)), (("anchorless", 4),))),
    ((40, 2, 17), 6, ((("natural", 2),), (("natural", 5), ("anchorless", 1), ("latent", 3)), ())),
    ((300,), 3, ((("natural", 3), ("natural", 2)),)),
)


def _boundary_cases(submodels: Dict[str, torch.nn.Module], hidden: int, generator: torch.Generator):
    head = submodels["boundary_head"].boundary_head
    with torch.inference_mode():
        yield from _encoder_cases(submodels["encoder"], generator)
        for word_counts, queries in BOUNDARY_HEAD_CASES:
            feeds, references = boundary_head_case(head, hidden, word_counts, queries, generator)
            mask = references["candidate_mask"][0]
            filled = "/".join(str(int(count)) for count in mask.sum(dim=-1))
            words = "/".join(str(count) for count in word_counts)
            shape = f"batch {len(word_counts)} x {words} words x {queries} queries, pool {filled} of {mask.shape[-1]} filled"
            yield "boundary_head", shape, feeds, references
        yield from _classifier_cases(submodels["classifier"], hidden, generator)
        for word_counts, relations, pairs in RELATION_SCORER_CASES:
            feeds, references = relation_scorer_case(submodels["relation_scorer"], hidden, word_counts, relations, pairs, generator)
            words = "/".join(str(count) for count in word_counts)
            shape = f"batch {len(word_counts)} x {words} words x {relations} relations, {pairs} pairs"
            yield "relation_scorer", shape, feeds, references
        for word_counts, queries, spans in EXPLICIT_SPAN_CASES:
            feeds, references = explicit_spans_case(head, hidden, word_counts, queries, spans, generator)
            words = "/".join(str(count) for count in word_counts)
            shape = f"batch {len(word_counts)} x {words} words x {queries} queries x {spans} spans"
            yield "explicit_spans", shape, feeds, references
        if "record_head" in submodels:
            for word_counts, queries, groups in RECORD_HEAD_CASES:
                feeds, references = record_head_case(submodels["record_head"], hidden, word_counts, queries, groups, generator)
                words = "/".join(str(count) for count in word_counts)
                modes = "/".join("+".join(f"{mode} {fields}" for mode, fields in text_groups) or "none" for text_groups in groups)
                yield "record_head", f"batch {len(word_counts)} x {words} words x {queries} queries, groups {modes}", feeds, references


def validate_graphs(output_dir: Path, onnx_files: Dict[str, str], submodels: Dict[str, torch.nn.Module]) -> List[dict]:
    """Compare every graph with PyTorch at shapes other than the export example.

    Returns:
        One record per case: graph, shape, output, max_abs_diff.

    Raises:
        GLiNER2ExportError: If any output differs by more than VALIDATION_ATOL (for the boundary
            head's candidates and mask: at all), or a shape fails.
    """
    architecture = BOUNDARY if "boundary_head" in submodels else SPAN
    hidden = submodels["encoder"].encoder.config.hidden_size
    sessions = {
        graph: ort.InferenceSession(str(output_dir / onnx_files[graph]), providers=["CPUExecutionProvider"])
        for graph in submodels
    }
    generator = torch.Generator().manual_seed(0)
    cases = (_boundary_cases if architecture == BOUNDARY else _span_cases)(submodels, hidden, generator)
    report, failures = [], []
    for graph, shape, feeds, references in cases:
        try:
            outputs = sessions[graph].run(list(references), {k: v.numpy() for k, v in feeds.items()})
        except Exception as error:
            failures.append(f"{graph} fails at {shape}: {error}")
            continue
        actual, notes = dict(zip(references, outputs)), {}
        if graph == "boundary_head":
            try:
                actual, notes = align_pool_to_reference(references, actual, feeds, submodels["boundary_head"].boundary_head)
            except GLiNER2ExportError as error:
                failures.append(f"{graph}.candidates at {shape}: {error}")
        if graph == "record_head":  # as in the references, instances that do not exist are not compared
            live = references["instance_mask"][0].numpy()
            actual["object_logits"] = np.where(live, actual["object_logits"], 0.0)
            actual["assign_logits"] = np.where(live[..., None, None], actual["assign_logits"], 0.0)
        for name, (expected, mask) in references.items():
            output = actual[name]
            if mask is not None:  # padded positions are not compared: nothing reads them
                output = output * mask.numpy()[..., None]
            exact = name in EXACT_OUTPUTS
            try:
                diff, within_tolerance = _compare(expected, output, exact=exact)
            except GLiNER2ExportError as error:
                failures.append(f"{graph}.{name} at {shape}: {error}")
                continue
            record = {"graph": graph, "shape": shape, "output": name, "max_abs_diff": diff}
            if name == "candidates" and notes:
                record.update(notes)
            report.append(record)
            logger.info("validated %s.%s at %s: max abs diff %.2e", graph, name, shape, diff)
            if not within_tolerance:
                failures.append(
                    f"{graph}.{name} at {shape}: differs from PyTorch (max abs diff {diff:.3e})"
                    if exact
                    else f"{graph}.{name} at {shape}: max abs diff {diff:.3e} exceeds {VALIDATION_ATOL:.0e} + {VALIDATION_RTOL:.0e} x |PyTorch|"
                )
    if failures:
        shown = "; ".join(failures[:3]) + (f"; and {len(failures) - 3} more" if len(failures) > 3 else "")
        raise GLiNER2ExportError(f"The exported ONNX graphs do not reproduce PyTorch: {shown}")
    return report


def _tolerance(value: float) -> float:
    return VALIDATION_ATOL + VALIDATION_RTOL * abs(value)


def _pool_priorities(head: torch.nn.Module, feeds: Dict[str, torch.Tensor]) -> List[Dict[Tuple[int, int], float]]:
    """Per text, every valid (start, end) pair gliner2's pool chooses from, with its best priority."""
    text_mask, query_mask = feeds["text_mask"].bool(), feeds["query_mask"].bool()
    with torch.inference_mode():
        encoding = head.boundary_encoder(feeds["text_states"], text_mask)
        marginals = head.boundary_query_head(
            encoding.states, encoding.mask, feeds["text_states"], text_mask, feeds["query_states"], query_mask
        )
        entries = pool_entries(
            head.shared_pool_builder, encoding.states, encoding.mask, query_mask, marginals.start_logits, marginals.end_logits
        )
    boundaries = int(entries.boundaries)
    rows = []
    for keys, priorities, valid in zip(entries.keys.tolist(), entries.priorities.tolist(), entries.valid.tolist()):
        best: Dict[Tuple[int, int], float] = {}
        for key, priority, is_valid in zip(keys, priorities, valid):
            if is_valid:
                pair = divmod(key, boundaries)
                best[pair] = max(best.get(pair, priority), priority)
        rows.append(best)
    return rows


def align_pool_to_reference(
    references: Dict[str, tuple], actual: Dict[str, np.ndarray], feeds: Dict[str, torch.Tensor], head: torch.nn.Module
) -> Tuple[Dict[str, np.ndarray], Dict[str, float]]:
    """ONNX Runtime's boundary-head outputs, put in the reference's pool order where the two pools
    differ only by float near-ties in the pool's priorities; otherwise unchanged.

    The pool is ordered by priority (a sum of logits). ONNX Runtime computes each priority to
    ~1e-7 relative of PyTorch, so two candidates whose priorities differ by less than that may swap
    places, or trade the last slot. Such a difference is accepted when every candidate ONNX
    Runtime pooled is one gliner2 could pool, its order breaks gliner2's priority order by no more
    than the validation tolerance, and every candidate it left out ranks within tolerance of its
    last one. Each candidate's pair logits are then compared with the reference's for the same
    candidate.

    Returns:
        (outputs, notes): notes are empty when the pools are identical, else `near_tie_slots`
        (slots holding another candidate than the reference's) and `near_tie_priority_gap`.

    Raises:
        GLiNER2ExportError: If the pools differ in a way near-ties do not explain.
    """
    reference_pool = references["candidates"][0].numpy()
    reference_mask = references["candidate_mask"][0].numpy()
    pool, mask, logits = actual["candidates"], actual["candidate_mask"], actual["pair_logits"]
    if pool.shape != reference_pool.shape or mask.shape != reference_mask.shape:
        return actual, {}  # the comparison reports the shape
    if np.array_equal(pool, reference_pool) and np.array_equal(mask, reference_mask):
        return actual, {}
    priorities = _pool_priorities(head, feeds)
    reference_logits = references["pair_logits"][0].numpy()
    pool, mask, logits = pool.copy(), mask.copy(), logits.copy()
    displaced, widest_gap = 0, 0.0
    for row, best in enumerate(priorities):
        expected = [tuple(pair) for pair in reference_pool[row][reference_mask[row]].tolist()]
        found = [tuple(pair) for pair in actual["candidates"][row][actual["candidate_mask"][row]].tolist()]
        filled = len(found)
        if filled != len(expected) or not mask[row, :filled].all() or not reference_mask[row, :filled].all():
            raise GLiNER2ExportError(f"text {row}: {filled} candidates pooled, gliner2 pools {len(expected)}")
        if len(set(found)) != filled or not set(found) <= set(best):
            raise GLiNER2ExportError(f"text {row}: the pool holds a duplicate or a pair gliner2 never considers")
        ranked = [best[pair] for pair in found]
        for slot, (higher, lower) in enumerate(zip(ranked, ranked[1:])):
            if lower > higher + _tolerance(higher):
                raise GLiNER2ExportError(
                    f"text {row}: slot {slot + 1} outranks slot {slot} by {lower - higher:.3e}, beyond tolerance"
                )
        left_out = [best[pair] for pair in set(expected) - set(found)]
        if left_out and max(left_out) > min(ranked) + _tolerance(min(ranked)):
            raise GLiNER2ExportError(f"text {row}: a candidate left out of the pool outranks its last one beyond tolerance")
        reference_slot = {pair: slot for slot, pair in enumerate(expected)}
        moved = [slot for slot, pair in enumerate(found) if pair != expected[slot]]
        displaced += len(moved)
        widest_gap = max([widest_gap, *(abs(best[found[slot]] - best[expected[slot]]) for slot in moved)])
        # Filled slots take the reference's candidate, and ONNX Runtime's logits for that same
        # candidate; a candidate only one side pooled (a near-tie at the last slot) keeps the
        # reference's logits. Empty slots keep ONNX Runtime's own values, still compared.
        pool[row, :filled] = reference_pool[row, :filled]
        logits[row, :, :filled] = reference_logits[row, :, :filled]
        for slot, pair in enumerate(found):
            if pair in reference_slot:
                logits[row, :, reference_slot[pair]] = actual["pair_logits"][row, :, slot]
    aligned = {**actual, "candidates": pool, "candidate_mask": mask, "pair_logits": logits}
    return aligned, {"near_tie_slots": displaced, "near_tie_priority_gap": widest_gap}
