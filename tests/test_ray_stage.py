"""GLiNER2 on Ray Data (issue 15): serial answers, bad rows, a dying actor and the command, on a local
Ray cluster that the module starts (`ray.init(num_cpus=2)`) and shuts down."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

from optimum_gliner2.ray import ERROR_COLUMN, OUTPUT_MANIFEST, RESULT_COLUMN, GLiNER2Stage, extract_dataset
from optimum_gliner2.ray.dataset import actor_cpu_reservation, input_format
from optimum_gliner2.runtime import GLiNER2ONNXRuntime, Schema
from tests.support.parity_corpus import SENTENCES

REPOSITORY = Path(__file__).resolve().parents[1]
VARIANT = "deberta_lstm"
SCHEMA = {
    "entities": ["person", "organization", "location", "date"],
    "classifications": [{"task": "sentiment", "labels": ["positive", "negative", "neutral"]}],
    "relations": ["works_for", "located_in"],
}
SCHEMA_OBJECT = Schema.from_dict(SCHEMA)
DOCUMENTS = 300
# Over the 8,192 tokens of one encoder pass with the fixture tokenizer (3-5 pieces per word).
TOO_LONG = " ".join([SENTENCES[1]] * 300)
BAD_DOCUMENTS = {
    "none": (None, "must be a str, got NoneType"),
    "empty": ("", "empty or whitespace only"),
    "blank": (" \n\t ", "empty or whitespace only"),
    "too_long": (TOO_LONG, "max_sequence_tokens"),
}


def generated_documents(count: int, seed: int = 0) -> list:
    """`count` documents of 1-4 corpus sentences, so that the tiny fixture gives varied answers."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(SENTENCES) for _ in range(rng.randint(1, 4))) for _ in range(count)]


def write_parquet_files(folder: Path, table: pa.Table, files: int = 3) -> Path:
    folder.mkdir(parents=True)
    step = -(-table.num_rows // files)
    for index, start in enumerate(range(0, table.num_rows, step)):
        pq.write_table(table.slice(start, step), folder / f"part-{index}.parquet")
    return folder


def read_output(folder: Path) -> list:
    return pa.concat_tables([pq.read_table(path) for path in sorted(folder.glob("*.parquet"))]).to_pylist()


def serial_answers(model_dir: Path, texts: list, long: bool = False) -> list:
    """What a serial call on one process gives, through JSON as the stage stores it."""
    model = GLiNER2ONNXRuntime.from_pretrained(model_dir)
    method = model.batch_extract_long if long else model.batch_extract
    return [json.loads(json.dumps(result)) for result in method(texts, SCHEMA_OBJECT, batch_size=8)]


class ReportingStage(GLiNER2Stage):
    """Adds which heavy modules the actor's process has loaded, to show the workers stay torch-free."""

    def __call__(self, batch):
        loaded = sorted(name for name in ("torch", "transformers", "gliner2", "optimum_gliner2.exporters") if name in sys.modules)
        output = super().__call__(batch)
        return output.append_column("worker_heavy_modules", pa.array([",".join(loaded)] * output.num_rows, pa.string()))


class DiesOnFirstBatch(GLiNER2Stage):
    """Kills its own process on the first batch any actor of the job sees (the marker file says so)."""

    def __init__(self, *, death_marker: str, **options):
        super().__init__(**options)
        self.death_marker = death_marker

    def __call__(self, batch):
        try:
            descriptor = os.open(self.death_marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return super().__call__(batch)
        os.write(descriptor, str(os.getpid()).encode())
        os.close(descriptor)
        os._exit(1)  # as a worker killed for memory or a lost node: no exception, no cleanup


@pytest.fixture(scope="module")
def model_dir(exported_dirs) -> Path:
    return exported_dirs[VARIANT]


@pytest.fixture(scope="module")
def local_ray():
    # Workers import the package and this module from the repository, as the test process does.
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": str(REPOSITORY)}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """DOCUMENTS good documents and the bad ones spread among them, with extra columns to keep."""
    texts = generated_documents(DOCUMENTS)
    rows = [{"id": index, "text": text, "kind": "good"} for index, text in enumerate(texts)]
    for offset, (kind, (text, _)) in enumerate(BAD_DOCUMENTS.items()):
        rows.insert(37 * (offset + 1), {"id": DOCUMENTS + offset, "text": text, "kind": kind})
    for row in rows:
        row["meta"] = {"source": f"doc-{row['id']}", "words": len((row["text"] or "").split())}
    folder = write_parquet_files(tmp_path_factory.mktemp("corpus") / "input", pa.Table.from_pylist(rows))
    return folder, rows


@pytest.fixture(scope="module")
def mixed_run(local_ray, model_dir, corpus):
    folder, _ = corpus
    dataset = ray.data.read_parquet(str(folder))
    results = extract_dataset(dataset, model_dir, SCHEMA_OBJECT, num_actors=2, rows_per_batch=32, stage_class=ReportingStage)
    return results.take_all()


def test_results_equal_a_serial_batch_extract(mixed_run, corpus, model_dir):
    _, rows = corpus
    good = sorted((row for row in mixed_run if row["kind"] == "good"), key=lambda row: row["id"])
    assert [row["id"] for row in good] == list(range(DOCUMENTS))
    expected = serial_answers(model_dir, [row["text"] for row in good])
    answers = [json.loads(row[RESULT_COLUMN]) for row in good]
    assert answers == expected
    assert all(row[ERROR_COLUMN] is None for row in good)
    # Real answers, not empty ones: most documents have entities and relations.
    assert sum(any(answer["entities"].values()) for answer in answers) > DOCUMENTS * 0.8
    assert sum(any(answer["relation_extraction"].values()) for answer in answers) > DOCUMENTS * 0.5
    assert len({row[RESULT_COLUMN] for row in good}) > DOCUMENTS // 4


def test_bad_rows_get_an_error_and_change_no_other_row(mixed_run, corpus):
    _, rows = corpus
    by_kind = {row["kind"]: row for row in mixed_run if row["kind"] != "good"}
    assert set(by_kind) == set(BAD_DOCUMENTS)
    for kind, (_, message) in BAD_DOCUMENTS.items():
        assert by_kind[kind][RESULT_COLUMN] is None, kind
        assert message in by_kind[kind][ERROR_COLUMN], (kind, by_kind[kind][ERROR_COLUMN])
    assert "GLiNER2InputError" in by_kind["too_long"][ERROR_COLUMN]


def test_every_input_column_is_kept_and_workers_stay_torch_free(mixed_run, corpus):
    _, rows = corpus
    assert len(mixed_run) == len(rows)
    originals = {row["id"]: row for row in rows}
    for row in mixed_run:
        assert {key: row[key] for key in ("id", "text", "kind", "meta")} == originals[row["id"]]
    assert {row["worker_heavy_modules"] for row in mixed_run} == {""}


def test_long_documents_go_through_batch_extract_long(local_ray, model_dir, tmp_path):
    texts = generated_documents(12, seed=1)
    long_texts = [TOO_LONG, " ".join(generated_documents(60, seed=2))]
    table = pa.table({"id": list(range(14)), "body": texts + long_texts})
    dataset = ray.data.from_arrow(table)
    rows = extract_dataset(dataset, model_dir, SCHEMA_OBJECT, text_column="body", long_document_words=150).take_all()
    rows.sort(key=lambda row: row["id"])
    assert all(row[ERROR_COLUMN] is None for row in rows)
    assert [json.loads(row[RESULT_COLUMN]) for row in rows[:12]] == serial_answers(model_dir, texts)
    assert [json.loads(row[RESULT_COLUMN]) for row in rows[12:]] == serial_answers(model_dir, long_texts, long=True)


def test_an_actor_killed_mid_run_is_restarted_and_every_row_comes_once(local_ray, model_dir, corpus, tmp_path):
    folder, rows = corpus
    marker = tmp_path / "died"
    dataset = ray.data.read_parquet(str(folder))
    results = extract_dataset(
        dataset, model_dir, SCHEMA_OBJECT, num_actors=2, rows_per_batch=32, stage_class=DiesOnFirstBatch, death_marker=str(marker)
    ).take_all()
    assert marker.is_file(), "no actor died: the test did not test a restart"
    assert sorted(row["id"] for row in results) == sorted(row["id"] for row in rows)
    good = sorted((row for row in results if row["kind"] == "good"), key=lambda row: row["id"])
    assert [json.loads(row[RESULT_COLUMN]) for row in good] == serial_answers(model_dir, [row["text"] for row in good])
    assert sum(row[ERROR_COLUMN] is not None for row in results) == len(BAD_DOCUMENTS)


def test_a_bad_schema_fails_before_any_actor_starts(local_ray, model_dir):
    dataset = ray.data.from_items([{"text": "Tim Cook works for Apple."}])
    with pytest.raises(ValueError, match="duplicate labels"):
        extract_dataset(dataset, model_dir, {"classifications": [{"task": "tone", "labels": ["calm", "calm"]}]})


def test_an_input_with_a_result_column_is_refused(model_dir):
    stage = GLiNER2Stage(model_dir, SCHEMA_OBJECT)
    with pytest.raises(ValueError, match="gliner2"):
        stage(pa.table({"text": ["Tim Cook works for Apple."], RESULT_COLUMN: ["old"]}))
    with pytest.raises(KeyError, match="no text column 'text'"):
        stage(pa.table({"body": ["Tim Cook works for Apple."]}))
    outcome = stage({"text": ["Tim Cook works for Apple.", None]})
    assert outcome[ERROR_COLUMN][0] is None and "NoneType" in outcome[ERROR_COLUMN][1]


# -- the command ------------------------------------------------------------------------------


def run_command(*arguments: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    environment["PYTHONPATH"] = str(REPOSITORY)
    return subprocess.run(
        [sys.executable, "-m", "optimum_gliner2.ray", *arguments],
        capture_output=True, text=True, timeout=600, cwd=REPOSITORY, env=environment,
    )  # fmt: skip


def test_command_end_to_end_twice_gives_each_row_once(model_dir, tmp_path):
    texts = generated_documents(60, seed=3)
    folder = write_parquet_files(tmp_path / "input", pa.table({"id": list(range(60)), "text": texts}), files=2)
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps(SCHEMA))
    output = tmp_path / "output"
    arguments = ["--input", str(folder), "--schema", str(schema_file), "--model", str(model_dir), "--output", str(output)]
    for extra in (["--num-actors", "2", "--batch-size", "16"], ["--batch-size", "7"]):
        completed = run_command(*arguments, *extra)
        assert completed.returncode == 0, completed.stderr[-4000:]
        assert "wrote" in completed.stdout and '"rows": 60' in completed.stdout
        rows = read_output(output)
        assert sorted(row["id"] for row in rows) == list(range(60))
    assert "Running Dataset" in completed.stderr or "MapBatches" in completed.stderr  # Ray's progress
    rows.sort(key=lambda row: row["id"])
    assert [json.loads(row[RESULT_COLUMN]) for row in rows] == serial_answers(model_dir, texts)
    manifest = json.loads((output / OUTPUT_MANIFEST).read_text())
    assert manifest["rows"] == 60 and manifest["errors"] == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["input", "output", "schema.json"]


def test_command_refuses_to_replace_a_folder_it_did_not_write(model_dir, tmp_path):
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    (tmp_path / "input.jsonl").write_text(json.dumps({"text": "Tim Cook works for Apple."}) + "\n")
    output = tmp_path / "precious"
    output.mkdir()
    (output / "notes.txt").write_text("keep me")
    completed = run_command(
        "--input", str(tmp_path / "input.jsonl"), "--schema", str(tmp_path / "schema.json"),
        "--model", str(model_dir), "--output", str(output),
    )  # fmt: skip
    assert completed.returncode == 1
    assert "did not write" in completed.stderr and (output / "notes.txt").read_text() == "keep me"


def test_command_names_a_bad_schema_file(model_dir, tmp_path):
    (tmp_path / "schema.json").write_text(json.dumps({"entitys": ["person"]}))
    (tmp_path / "input.txt").write_text("Tim Cook works for Apple.\n")
    completed = run_command(
        "--input", str(tmp_path / "input.txt"), "--schema", str(tmp_path / "schema.json"),
        "--model", str(model_dir), "--output", str(tmp_path / "out"),
    )  # fmt: skip
    assert completed.returncode == 1
    assert "schema.json is not a valid schema" in completed.stderr and "entitys" in completed.stderr


def test_input_format_comes_from_the_suffixes(tmp_path):
    (tmp_path / "a.jsonl").write_text("{}\n")
    (tmp_path / "b.parquet").write_bytes(b"")
    assert input_format([tmp_path / "a.jsonl"]) == "json"
    assert input_format(["s3://bucket/docs/part-0.parquet"]) == "parquet"
    with pytest.raises(ValueError, match="input-format"):
        input_format([tmp_path])
    with pytest.raises(ValueError, match="does not exist"):
        input_format([tmp_path / "missing.parquet"])


def test_actors_leave_one_cpu_for_reading_and_writing():
    assert actor_cpu_reservation(num_actors=2, cpus_per_actor=1, cluster_cpus=4) == 1
    assert actor_cpu_reservation(num_actors=2, cpus_per_actor=1, cluster_cpus=2) == 0.5
    assert actor_cpu_reservation(num_actors=4, cpus_per_actor=2, cluster_cpus=8) == 1.75
    assert actor_cpu_reservation(num_actors=1, cpus_per_actor=1, cluster_cpus=1) == 0
