"""Serving an exported folder imports none of torch, transformers, gliner2, pydantic or Optimum's exporters.

Each check runs a script in a fresh interpreter where those packages cannot be imported, as in a
serving image without them, and fails if any of them (or the export side) ends up loaded.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

UNAVAILABLE = ("torch", "transformers", "gliner2", "pydantic")
FORBIDDEN_PREFIXES = ("optimum.exporters", "optimum.onnxruntime", "optimum_gliner2.exporters")

_BLOCK_IMPORTS = f"""
import sys

class _Unavailable:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {UNAVAILABLE!r}:
            raise ImportError(f"{{name}} is not available in a torch-free serving image")
        return None

sys.meta_path.insert(0, _Unavailable())
"""

_REPORT_LOADED = f"""
loaded = sorted(
    m for m in sys.modules
    if sys.modules[m] is not None and (m.split(".")[0] in {UNAVAILABLE!r} or m.startswith({FORBIDDEN_PREFIXES!r}))
)
print("FORBIDDEN_LOADED", loaded)
assert not loaded, loaded
"""


def run_without_torch(body: str, *arguments: str) -> None:
    """Run `body` with the unavailable packages blocked; fail if it fails or loads a forbidden module."""
    script = _BLOCK_IMPORTS + textwrap.dedent(body) + _REPORT_LOADED
    completed = subprocess.run([sys.executable, "-c", script, *arguments], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-4000:]
    assert "FORBIDDEN_LOADED []" in completed.stdout


SERVE_EVERY_METHOD = """
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
"""


def test_serving_core_runs_every_method_without_torch(exported_dirs):
    run_without_torch(SERVE_EVERY_METHOD, str(exported_dirs["deberta_lstm"]))


BUILD_SCHEMAS = """
from optimum_gliner2.runtime import AttributeGroup, GLiNER2ONNXRuntime, RegexValidator, Schema

schema = (
    Schema()
    .entities({"person": {"description": "a human", "threshold": 0.4}, "email": {"validators": [RegexValidator(r"@")]}})
    .entity_attributes({"role": AttributeGroup(["leader", "founder"], multi_label=True)})
    .relations({"works_for": {"threshold": 0.3}})
    .classification("sentiment", {"positive": "good", "negative": "bad"}, top_k=1)
    .structure("product").field("name", dtype="str").field("color", choices=["red", "blue"])
)
from_dict = Schema.from_dict({"entities": ["person"], "structures": {"order": {"fields": [{"name": "item"}]}}})
model = GLiNER2ONNXRuntime.from_pretrained(sys.argv[1])
results = [model.extract("Tim Cook leads Apple in Cupertino.", built) for built in (schema, from_dict)]
assert set(results[0]) == {"entities", "relation_extraction", "sentiment", "product"}, results
assert set(results[1]) == {"entities", "order"}, results
"""


def test_schemas_are_built_without_torch_or_pydantic(exported_dirs):
    """`from optimum_gliner2.runtime import Schema` gives gliner2's builder in a torch-free, pydantic-free image."""
    run_without_torch(BUILD_SCHEMAS, str(exported_dirs["deberta_lstm"]))


def test_variant_tools_and_bundle_format_import_without_torch():
    """Making variants edits the bundle through bundle/format.py; neither needs the export side's torch."""
    run_without_torch("import optimum_gliner2.bundle, optimum_gliner2.variants\nfrom optimum_gliner2.variants.cli import main\n")


RAY_STAGE = """
from optimum_gliner2.ray import GLiNER2Stage
from optimum_gliner2.runtime import Schema

stage = GLiNER2Stage(sys.argv[1], Schema().entities(["person", "organization"]), intra_op_threads=1)
output = stage({"id": [1, 2], "text": ["Tim Cook leads Apple in Cupertino.", "  "]})
assert output["gliner2"][0].startswith('{"entities"') and output["gliner2_error"][0] is None, output
assert output["gliner2"][1] is None and "empty" in output["gliner2_error"][1], output
"""


def test_ray_stage_runs_without_torch(exported_dirs):
    """What a Ray actor runs: the stage imports only the runtime (Ray itself is not needed to call it)."""
    run_without_torch(RAY_STAGE, str(exported_dirs["deberta_lstm"]))


SERVE_BOUNDARY_METHODS = """
from optimum_gliner2.runtime import GLiNER2ONNXRuntime
from optimum_gliner2.runtime.schema import AttributeGroup

model = GLiNER2ONNXRuntime.from_pretrained(sys.argv[1])
assert model.bundle.architecture == "boundary"
text = "Tim Cook is the chief executive officer of Apple Inc. and lives in Palo Alto."
texts = [text, "Apple released the iPhone 15 in Cupertino on September 12, 2023.", "Apple"]
labels = ["person", "organization", "location"]
tasks = {"sentiment": ["positive", "negative", "neutral"]}
schema = model.create_schema().entities(labels).classification("sentiment", ["positive", "negative"])
outputs = [
    model.extract(text, schema), model.batch_extract(texts, schema),
    model.extract_entities(text, labels), model.batch_extract_entities(texts, labels),
    model.classify_text(text, tasks), model.batch_classify_text(texts, tasks),
    model.extract_long(text * 20, schema, chunk_size=64, chunk_overlap=8), model.batch_extract_long(texts, schema),
    model.extract_entities_long(text, labels), model.batch_extract_entities_long(texts, labels),
    model.classify_text_long(text, tasks), model.batch_classify_text_long(texts, tasks),
    model.extract_relations(text, ["works_for"]), model.batch_extract_relations_long(texts, ["works_for"]),
    model.extract(text, model.create_schema().entities(labels).entity_attributes({"tone": AttributeGroup(["calm", "angry"])})),
    model.extract(text, model.create_schema().structure("job").field("title").field("level", choices=["a", "b"])),
    # Records: the record_head graph and the host's record decoding and assignment solver.
    model.extract_json(text, {"job": ["title::str", "level::[a|b]", "place"]}),
    model.batch_extract_json_long(texts, {"job": ["title", "company::str"]}, chunk_size=8, chunk_overlap=2),
    model.extract(text, model.create_schema().structure("deal", mode="latent").field("buyer", dtype="str", exclusive=True)),
]
assert all(isinstance(o, (dict, list)) for o in outputs)
"""


def test_serving_core_runs_boundary_models_without_torch(boundary_exported_dirs):
    run_without_torch(SERVE_BOUNDARY_METHODS, str(boundary_exported_dirs["boundary"]))


IMPORT_THE_OPTIMUM_CLASS = """
import optimum_gliner2

try:
    from optimum_gliner2 import ORTModelForGLiNER2
except ImportError as error:
    message = str(error)
else:
    raise AssertionError("ORTModelForGLiNER2 imported although Optimum's classes cannot be")
assert "optimum_gliner2.runtime.GLiNER2ONNXRuntime" in message, message
assert "pip install optimum-gliner2" in message, message
"""


def test_the_optimum_class_points_to_the_torch_free_one():
    """In a serving image, `import optimum_gliner2` works and ORTModelForGLiNER2 names the class to use instead."""
    run_without_torch(IMPORT_THE_OPTIMUM_CLASS)
