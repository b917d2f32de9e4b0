"""Structured records on GLiNER2.5 (boundary) models: extract_json and structures with a record mode
give gliner2 2.1's answers.

- Host code alone (TorchBoundaryBackend: gliner2's own record head behind our decoding) and the
  exported bundle (the record_head graph), against gliner2's BoundaryExtractor, on every boundary
  fixture: natural records from extract_json (required "str" fields, exclusive fields, choice
  fields), and builder schemas with latent and anchorless records, optional and non-exclusive fields.
- gliner2 2.1.0 raises `token boundaries [..) out of range` when a record anchored on a choice-prefix
  word gets a choice value. We answer instead (runtime/boundary.py); the reference for those cases
  is gliner2 with that one conversion made total, placing the value at (0, 0) as gliner2 does for a
  record without an anchor. `test_token_boundaries_bug_is_answered` shows the crash and our answer.
- The assignment of exclusive scalar fields: gliner2 uses scipy when it is importable (the test
  extra installs it), else its own solver. Our solver (runtime/records.py) is checked against a brute
  force and against gliner2's own solver on heavy ties, and the record cases run against gliner2 on
  both of its paths.

Texts, labels and offsets must be equal; confidences within 1e-4 (tests/support/parity.py).
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest

from optimum_gliner2.runtime.records import min_cost_assignment
from tests.support.parity import assert_same_results
from tests.support.parity_corpus import LONG_TEXT, MEDIUM_TEXT, PRODUCT_STRUCTURE, SENTENCES, Case, run_case
from tests.support.torch_backend import gliner2_without_token_boundaries_crash


def _people_and_events(schema):
    return (
        schema.structure("person", mode="natural", anchor="name")
        .field("name", dtype="str")
        .field("role", dtype="list", cardinality="zero_or_more")
        .field("employer", dtype="str", cardinality="optional_one", exclusive=True)
        .structure("event", mode="natural")
        .field("what", dtype="str")
        .field("where", dtype="str", cardinality="optional_one")
        .field("when", cardinality="one_or_more", exclusive=True)
    )


def _latent_and_anchorless(schema):
    return (
        schema.structure("deal", mode="latent")
        .field("buyer", dtype="str", cardinality="optional_one", exclusive=True)
        .field("target", dtype="str", cardinality="required_one")
        .field("amount")
        .structure("meeting", mode="anchorless")
        .field("who", cardinality="one_or_more")
        .field("where", dtype="str", cardinality="optional_one")
        .entities(["person", "city"])
    )


def _records_and_everything(schema):
    return (
        schema.entities(["person", "company"])
        .relations(["works_for"])
        .classification("sentiment", ["positive", "negative"])
        .structure("employment", mode="natural")
        .field("employee", dtype="str")
        .field("employer", dtype="str", cardinality="optional_one", exclusive=True)
        .field("level", dtype="str", choices=["junior", "senior"])
        .structure("legacy")
        .field("topic")
    )


PEOPLE = {"person": ["name::str::full name", {"name": "role", "dtype": "list", "description": "job"}], "event": ["date", "location::str"]}
REVIEW = {"review": ["aspect::[camera|screen|battery|price]::list", "opinion::[good|bad]", "detail"]}

RECORD_CASES = (
    Case("json_products", "batch_extract_json", SENTENCES[:6], PRODUCT_STRUCTURE, {"include_confidence": True, "include_spans": True}),
    # A low threshold makes many records (gliner2's pure-Python solver is slow on them: few texts).
    Case("json_products_low_threshold", "batch_extract_json", SENTENCES[6:9], PRODUCT_STRUCTURE, {"threshold": 0.35, "batch_size": 2}),
    Case("json_people", "batch_extract_json", SENTENCES[:8], PEOPLE, {"include_confidence": True, "threshold": 0.4}),
    Case("json_people_spans", "extract_json", SENTENCES[9], PEOPLE, {"include_spans": True}),
    Case("json_review", "batch_extract_json", SENTENCES[4:12], REVIEW, {"threshold": 0.35, "include_confidence": True}),
    Case("json_raw", "batch_extract_json", SENTENCES[1:4], PEOPLE, {"format_results": False, "include_confidence": True}),
    Case("natural_builder", "batch_extract", SENTENCES[:8], _people_and_events, {"include_confidence": True, "threshold": 0.4}),
    Case("latent_anchorless", "batch_extract", SENTENCES[2:10], _latent_and_anchorless,
         {"include_confidence": True, "include_spans": True, "threshold": 0.35, "batch_size": 3}),
    Case("records_and_everything", "batch_extract", SENTENCES[:6], _records_and_everything, {"include_confidence": True, "batch_size": 4}),
    Case("long_json", "extract_json_long", MEDIUM_TEXT, PEOPLE, {"chunk_size": 48, "chunk_overlap": 8, "include_confidence": True}),
    Case("long_json_batch", "batch_extract_json_long", (LONG_TEXT, SENTENCES[3]), PRODUCT_STRUCTURE,
         {"chunk_size": 64, "chunk_overlap": 16, "batch_size": 2}),
    Case("long_builder", "extract_long", MEDIUM_TEXT, _people_and_events, {"chunk_size": 40, "chunk_overlap": 8}),
)  # fmt: skip
CASE_IDS = [case.name for case in RECORD_CASES]


@pytest.fixture
def gliner2_without_the_token_boundaries_crash():
    with gliner2_without_token_boundaries_crash():
        yield


@pytest.fixture
def gliner2_without_scipy(monkeypatch):
    """gliner2 on its own assignment solver: it imports scipy inside linear_sum_assignment at each
    call, and a None entry in sys.modules makes that import fail."""
    monkeypatch.setitem(sys.modules, "scipy.optimize", None)


def _record_count(result) -> int:
    results = result if isinstance(result, list) else [result]
    return max(
        (len(value) for item in results for key, value in item.items() if isinstance(value, list) and key != "entities"),
        default=0,
    )


@pytest.mark.usefixtures("gliner2_without_the_token_boundaries_crash")
@pytest.mark.parametrize("case", RECORD_CASES, ids=CASE_IDS)
def test_host_records_match_gliner2(boundary_models, boundary_host_pipelines, boundary_variant, case):
    """gliner2 as installed: with the test extra, on scipy's assignment."""
    expected = run_case(boundary_models[boundary_variant], case)
    actual = run_case(boundary_host_pipelines[boundary_variant], case)
    assert_same_results(expected, actual, context=f"{boundary_variant}/{case.name}")


#: The cases whose structures have exclusive scalar fields (the joint assignment), and long texts.
ASSIGNMENT_CASES = [case for case in RECORD_CASES if case.name in ("json_products", "json_people", "natural_builder", "latent_anchorless")]


@pytest.mark.usefixtures("gliner2_without_the_token_boundaries_crash", "gliner2_without_scipy")
@pytest.mark.parametrize("variant", ["boundary", "boundary_seed1"])
@pytest.mark.parametrize("case", ASSIGNMENT_CASES, ids=[case.name for case in ASSIGNMENT_CASES])
def test_host_records_match_gliner2_without_scipy(boundary_models, boundary_host_pipelines, variant, case):
    """gliner2 on its own pure-Python assignment solver gives the same answers too."""
    expected = run_case(boundary_models[variant], case)
    actual = run_case(boundary_host_pipelines[variant], case)
    assert_same_results(expected, actual, context=f"{variant}/{case.name}/pure-python")


#: The exported graph on every fixture, for one case of each kind (the host tests cover the rest).
ONNX_CASES = [
    case for case in RECORD_CASES
    if case.name in ("json_products", "json_people", "json_review", "latent_anchorless", "records_and_everything", "long_json_batch")
]  # fmt: skip


@pytest.mark.usefixtures("gliner2_without_the_token_boundaries_crash")
@pytest.mark.parametrize("case", ONNX_CASES, ids=[case.name for case in ONNX_CASES])
def test_onnx_records_match_gliner2(boundary_models, boundary_onnx_models, boundary_variant, case):
    expected = run_case(boundary_models[boundary_variant], case)
    actual = run_case(boundary_onnx_models[boundary_variant], case)
    assert_same_results(expected, actual, context=f"{boundary_variant}/{case.name}")


def test_cases_form_several_records(boundary_models, boundary_host_pipelines, gliner2_without_the_token_boundaries_crash):
    """The parity cases are not vacuous: structures hold several records on every fixture."""
    for variant in ("boundary", "boundary_seed1", "boundary_seed2"):
        counts = [_record_count(run_case(boundary_host_pipelines[variant], case)) for case in (RECORD_CASES[0], RECORD_CASES[2])]
        assert max(counts) > 1, (variant, counts)


def test_token_boundaries_bug_is_answered(boundary_models, boundary_host_pipelines):
    """gliner2 2.1.0 crashes on this call; we answer, as gliner2 answers once that crash is removed."""
    model, pipeline = boundary_models["boundary"], boundary_host_pipelines["boundary"]
    text = SENTENCES[0]
    with pytest.raises(ValueError, match="token boundaries"):
        model.extract_json(text, PRODUCT_STRUCTURE)
    answer = pipeline.extract_json(text, PRODUCT_STRUCTURE, include_confidence=True, include_spans=True)
    assert answer["product"], "records were formed"
    colors = [record["color"] for record in answer["product"] if record["color"] is not None]
    assert colors and all(color["text"] in ("red", "blue", "green", "black") for color in colors)
    with gliner2_without_token_boundaries_crash():
        expected = model.extract_json(text, PRODUCT_STRUCTURE, include_confidence=True, include_spans=True)
    assert_same_results(expected, answer)


# -- the assignment solver ------------------------------------------------------------------


def _brute_force_cost(cost: np.ndarray) -> float:
    rows, columns = cost.shape
    if rows <= columns:
        return min(sum(cost[row, column] for row, column in enumerate(chosen)) for chosen in itertools.permutations(range(columns), rows))
    return _brute_force_cost(cost.T)


@pytest.mark.parametrize("seed", range(40))
def test_min_cost_assignment_is_optimal(seed):
    rng = np.random.default_rng(seed)
    rows, columns = rng.integers(1, 5), rng.integers(1, 6)
    # Integer costs give many exact ties between assignments.
    cost = rng.integers(0, 4, size=(rows, columns)).astype(np.float64) if seed % 2 else rng.normal(size=(rows, columns))
    matched_rows, matched_columns = min_cost_assignment(cost)
    assert len(matched_rows) == min(rows, columns)
    assert list(matched_rows) == sorted(set(matched_rows.tolist())) and len(set(matched_columns.tolist())) == len(matched_columns)
    assert cost[matched_rows, matched_columns].sum() == pytest.approx(_brute_force_cost(cost), abs=1e-9)


@pytest.mark.parametrize("seed", range(30))
def test_min_cost_assignment_equals_gliner2_solver(seed, monkeypatch):
    """Where gliner2's own solver runs (no scipy), ties included, we pick its very assignment."""
    import torch
    from gliner2.training.matching import linear_sum_assignment

    monkeypatch.setitem(sys.modules, "scipy.optimize", None)
    rng = np.random.default_rng(seed)
    rows = int(rng.integers(1, 6))
    cost = rng.integers(0, 3, size=(rows, rows + int(rng.integers(0, 8)))).astype(np.float64)
    expected_rows, expected_columns = linear_sum_assignment(torch.from_numpy(cost))
    matched_rows, matched_columns = min_cost_assignment(cost)
    assert matched_rows.tolist() == expected_rows.tolist()
    assert matched_columns.tolist() == expected_columns.tolist()


def test_min_cost_assignment_refuses_bad_costs():
    with pytest.raises(ValueError, match="2-D"):
        min_cost_assignment(np.zeros(3))
    with pytest.raises(ValueError, match="NaN or infinite"):
        min_cost_assignment(np.array([[0.0, np.nan]]))
    assert [len(part) for part in min_cost_assignment(np.zeros((0, 3)))] == [0, 0]


def test_only_boundary_exports_with_a_record_head_have_the_record_graph():
    from optimum_gliner2.bundle.format import ARCHITECTURE_GRAPHS, graph_names

    assert graph_names("boundary", has_record_head=True) == (*ARCHITECTURE_GRAPHS["boundary"], "record_head")
    assert graph_names("boundary", has_record_head=False) == ARCHITECTURE_GRAPHS["boundary"]
    assert graph_names("span", has_record_head=True) == ARCHITECTURE_GRAPHS["span"]


def test_exports_from_before_records_still_load_and_refuse_records_in_one_line(boundary_exported_dirs, tmp_path):
    """A bundle written before record decoding (no record_head graph, no record_temperature) loads,
    answers everything else, and refuses record calls naming the fix."""
    import json
    import shutil

    from optimum_gliner2.bundle.format import METADATA_FILE
    from optimum_gliner2.runtime import GLiNER2InputError, GLiNER2ONNXRuntime

    folder = Path(shutil.copytree(boundary_exported_dirs["boundary"], tmp_path / "old"))
    metadata = json.loads((folder / METADATA_FILE).read_text())
    metadata["graphs"].remove("record_head")
    for files in metadata["variants"].values():
        files.pop("record_head", None)
    metadata["files"].pop("record_head.onnx")
    del metadata["boundary_head"]["record_temperature"]
    (folder / METADATA_FILE).write_text(json.dumps(metadata))
    (folder / "record_head.onnx").unlink()
    model = GLiNER2ONNXRuntime.from_pretrained(folder)
    assert "record_head" not in model.bundle.graph_names
    assert isinstance(model.extract_entities(SENTENCES[0], ["person", "company"]), dict)
    with pytest.raises(GLiNER2InputError, match="no record_head graph") as raised:
        model.extract_json(SENTENCES[0], PRODUCT_STRUCTURE)
    assert "\n" not in str(raised.value)
