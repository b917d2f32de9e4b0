"""`make demo`: the trained fixture's real answers, and `MODEL=<hub id>` offline (a clear stop, or the cache).

The expected answers below are the truth the demo sentences were written with (who, where, when), not
outputs recorded from our code.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.trained_fixture import trained_checkpoint

REPO = Path(__file__).resolve().parents[1]


def _demo(*arguments: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "examples.demo", *arguments],
        cwd=REPO, capture_output=True, text=True, timeout=1200, env={**os.environ, **env},
    )  # fmt: skip


def _fp32_line_after(output: str, sentence: str) -> str:
    lines = output.splitlines()
    return lines[next(i for i, line in enumerate(lines) if sentence in line) + 1]


def test_demo_shows_the_trained_models_right_answers_and_pytorch_parity():
    # Built here first, outside the demo's timeout: a first build takes about 5 minutes on 2 CPUs, more on a busy one.
    trained_checkpoint()
    completed = _demo(env={})
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    output = completed.stdout
    assert "same answers as gliner2's PyTorch model on every sentence: True" in output
    entities = _fp32_line_after(output, "Last year Amir Dubois left Zenith Foods")
    for truth in ('"person": ["Amir Dubois"]', '"organization": ["Zenith Foods"]', '"location": ["Bilbao"]', '"date": ["March 3, 2021"]'):
        assert truth in entities, entities
    relations = _fp32_line_after(output, "Daria Sato has been a manager at Brightwater Group")
    assert '"works_for": [{"head": "Daria Sato", "tail": "Brightwater Group"}]' in relations, relations
    assert '"located_in": [{"head": "Brightwater Group", "tail": "Accra"}]' in relations, relations
    record = _fp32_line_after(output, "Crescent Labs priced its Echo camera")
    assert '"name": "Echo camera", "price": "$349", "maker": "Crescent Labs"' in record, record
    assert '"sentiment": "negative"' in _fp32_line_after(output, "Honestly, Crescent Bank was dreadful")
    assert '"sentiment": "positive"' in _fp32_line_after(output, "Our visit to Perth with Westbrook Motors was a delight")
    assert output.count("ONNX INT8 :") == output.count("ONNX FP32 :") == 6


def test_demo_on_a_hub_id_offline_and_uncached_stops_with_a_clear_message(tmp_path):
    completed = _demo("--model", "fastino/gliner2-multi-v1", env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)})
    assert completed.returncode == 2
    message = completed.stderr
    assert "fastino/gliner2-multi-v1" in message and "HF_HUB_OFFLINE" in message and "not in the local cache" in message
    assert "Traceback" not in message


def test_demo_on_a_hub_id_runs_from_a_prefilled_cache(checkpoint_dirs, tmp_path):
    cache = tmp_path / "home" / "hub"
    snapshot = cache / "models--fastino--gliner2-multi-v1" / "snapshots" / ("0" * 40)
    shutil.copytree(checkpoint_dirs["deberta_lstm"], snapshot)
    (cache / "models--fastino--gliner2-multi-v1" / "refs").mkdir()
    (cache / "models--fastino--gliner2-multi-v1" / "refs" / "main").write_text("0" * 40)
    completed = _demo("--model", "fastino/gliner2-multi-v1", env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "home")})
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "same answers as gliner2's PyTorch model on every sentence: True" in completed.stdout
