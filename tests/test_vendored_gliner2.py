"""Each file in optimum_gliner2/runtime/_vendor/ equals its original in the installed gliner2.

A gliner2 upgrade that changes a vendored module fails here, naming the file; re-copy it (keeping
the header and the relative imports) and re-run the runtime parity tests.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
from pathlib import Path

import pytest

import optimum_gliner2.runtime._vendor as vendor

GLINER2_ROOT = Path(importlib.util.find_spec("gliner2").origin).parent
VENDOR_ROOT = Path(vendor.__file__).parent

# Vendored file -> (original path, import lines rewritten in the copy).
WHOLE_FILES = {
    "schema_model.py": ("inference/schema_model.py", {}),
    "schema.py": (
        "inference/schema.py",
        {
            "from gliner2.inference.schema_model import SchemaInput": (
                "from .schema_model import SchemaInput"
            ),
            "from gliner2.processing.records import VALID_MODES, VALID_OCCURRENCE_POLICIES": (
                "from .records import VALID_MODES, VALID_OCCURRENCE_POLICIES"
            ),
        },
    ),
    "overlap.py": ("inference/overlap.py", {}),
    "word_splitter.py": ("processing/word_splitter.py", {}),
    "chunking.py": (
        "inference/chunking.py",
        {
            "from gliner2.inference.overlap import normalize_overlap_policy, resolve_overlaps": (
                "from .overlap import normalize_overlap_policy, resolve_overlaps"
            ),
            "from gliner2.processing.word_splitter import resolve_word_splitter": (
                "from .word_splitter import resolve_word_splitter"
            ),
        },
    ),
}
# Partial copies: the torch-free part of a module that also needs torch.
FINALIZE_SPANS = (
    "candidate_decoder.py",
    "inference/candidate_decoder.py",
    "# --- final span selection ---",
)
RESULT_FORMAT = ("result_format.py", "inference/runtime.py")
RECORDS = ("records.py", "processing/records.py")
PINNED = set(WHOLE_FILES) | {FINALIZE_SPANS[0], RESULT_FORMAT[0], RECORDS[0]}


def _vendored(name: str) -> str:
    return (VENDOR_ROOT / name).read_text(encoding="utf-8")


def _original(path: str) -> str:
    return (GLINER2_ROOT / path).read_text(encoding="utf-8")


def _without_header(text: str) -> str:
    """The copy without its "# Vendored from ..." comment block and the blank line after it."""
    lines = text.splitlines(keepends=True)
    assert lines[0].startswith("# Vendored from gliner2 2.1.0 (Apache-2.0)"), lines[0]
    end = next(index for index, line in enumerate(lines) if not line.startswith("#"))
    assert lines[end].strip() == "", "the header must end with a blank line"
    return "".join(lines[end + 1 :])


def _diff(expected: str, actual: str, name: str) -> str:
    return "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True),
            actual.splitlines(keepends=True),
            f"gliner2 (rewritten imports) {name}",
            f"_vendor/{name}",
            n=1,
        )
    )[:3000]


def test_every_vendored_file_is_pinned():
    files = {path.name for path in VENDOR_ROOT.glob("*.py")} - {"__init__.py"}
    assert files == PINNED


def test_installed_gliner2_is_the_vendored_version():
    import gliner2

    assert gliner2.__version__ == "2.1.0", "re-vendor runtime/_vendor/ from the new gliner2"


@pytest.mark.parametrize("name", sorted(WHOLE_FILES))
def test_whole_file_copy(name):
    path, rewrites = WHOLE_FILES[name]
    expected = _original(path)
    for old, new in rewrites.items():
        assert expected.count(old) == 1, f"gliner2/{path} no longer has {old!r}"
        expected = expected.replace(old, new)
    actual = _without_header(_vendored(name))
    assert actual == expected, _diff(expected, actual, name)


def test_finalize_spans_section():
    name, path, marker = FINALIZE_SPANS
    expected = _original(path).split(marker, 1)[1]
    actual = _vendored(name).split(marker, 1)[1]
    assert actual == expected, _diff(expected, actual, name)


def _top_level(source: str, kind: type) -> dict:
    tree = ast.parse(source)
    return {
        node.name if isinstance(node, ast.FunctionDef) else node.targets[0].id: (
            ast.get_source_segment(source, node)
        )
        for node in tree.body
        if isinstance(node, kind)
    }


def test_result_format_functions():
    name, path = RESULT_FORMAT
    copied = _top_level(_vendored(name), ast.FunctionDef)
    original = _top_level(_original(path), ast.FunctionDef)
    assert copied, "no function found in the copy"
    for function, source in copied.items():
        expected = original.get(function) or ""
        assert source == expected, _diff(expected, source, function)


def test_record_constants():
    name, path = RECORDS
    copied = _top_level(_vendored(name), ast.Assign)
    original = _top_level(_original(path), ast.Assign)
    assert set(copied) == {"VALID_MODES", "VALID_OCCURRENCE_POLICIES"}
    for constant, source in copied.items():
        assert source == original[constant]


def test_vendored_schema_builds_what_gliner2_builds():
    """Behaviour check on top of the source pins: same dict and metadata from both builders."""
    from gliner2 import Schema as Gliner2Schema

    from optimum_gliner2.runtime._vendor.schema import RegexValidator, Schema
    from parity_corpus import SCHEMA_BUILDERS

    for builder in SCHEMA_BUILDERS.values():
        ours, theirs = builder(Schema()), builder(Gliner2Schema())
        assert ours.build() == theirs.build()
        assert ours._entity_order == theirs._entity_order
        assert ours._field_orders == theirs._field_orders
        assert ours.to_dict().keys() == theirs.to_dict().keys()
    assert RegexValidator(r"\d+").validate("42") and not RegexValidator(r"\d+").validate("4a")
