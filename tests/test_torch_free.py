"""Serving an exported folder imports none of torch, transformers, gliner2 or Optimum's exporters."""

from __future__ import annotations

import subprocess
import sys
import textwrap

FORBIDDEN = ("torch", "transformers", "gliner2", "optimum.exporters", "optimum.onnxruntime")

SERVE_EVERY_METHOD = """
import sys

class _Blocked:
    # Makes the forbidden packages unimportable, as in a serving image without them.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers", "gliner2"):
            raise ImportError(f"{name} is not available in a torch-free serving image")
        return None

sys.meta_path.insert(0, _Blocked())

from optimum_gliner2.runtime import GLiNER2ONNXRuntime

model = GLiNER2ONNXRuntime.from_pretrained(sys.argv[1])
text = "Tim Cook is the chief executive officer of Apple Inc. and lives in Palo Alto."
texts = [text, "Apple released the iPhone 15 in Cupertino on September 12, 2023."]
labels = ["person", "organization", "location"]
tasks = {"sentiment": ["positive", "negative", "neutral"]}
structures = {"product": ["name::str", "price", "color::[red|blue]::str"]}
relations = ["works_for", "located_in"]
schema = model.create_schema().entities(labels).classification("sentiment", ["positive", "negative"]).relations(relations)
outputs = [
    model.extract(text, schema), model.batch_extract(texts, schema),
    model.extract_entities(text, labels), model.batch_extract_entities(texts, labels),
    model.classify_text(text, tasks), model.batch_classify_text(texts, tasks),
    model.extract_relations(text, relations), model.batch_extract_relations(texts, relations),
    model.extract_json(text, structures), model.batch_extract_json(texts, structures),
    model.extract_long(text * 20, schema, chunk_size=64, chunk_overlap=8),
    model.batch_extract_long(texts, schema), model.extract_entities_long(text, labels),
    model.batch_extract_entities_long(texts, labels), model.classify_text_long(text, tasks),
    model.batch_classify_text_long(texts, tasks), model.extract_json_long(text, structures),
    model.batch_extract_json_long(texts, structures), model.extract_relations_long(text, relations),
    model.batch_extract_relations_long(texts, relations),
]
assert all(isinstance(o, (dict, list)) for o in outputs)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "gliner2") or m.startswith(("optimum.exporters", "optimum.onnxruntime")))
print("FORBIDDEN_LOADED", loaded)
assert not loaded, loaded
"""


def test_serving_core_runs_every_method_without_torch(exported_dirs):
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SERVE_EVERY_METHOD), str(exported_dirs["deberta_lstm"])],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-4000:]
    assert "FORBIDDEN_LOADED []" in completed.stdout
