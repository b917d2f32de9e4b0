"""Everything in the repository is our own code: no run of lines copied from gliner2.

The host logic reproduces gliner2's behaviour (tests/host/ proves it differentially), but its text
must be ours. A file fails when it holds RUN or more consecutive non-trivial lines that also occur,
consecutively, in gliner2's installed sources. Lines are compared with surrounding whitespace
stripped; a line with fewer than two identifiers or numbers (")", "else:", "self,", ") -> Dict:")
is trivial and skipped on both sides, so a signature mirroring gliner2's public API (a run of
`name: type = default,` lines, shorter than RUN) passes while a copied function body does not.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

RUN = 10
REPOSITORY = Path(__file__).resolve().parents[1]
OUR_FOLDERS = ("optimum_gliner2", "optimum", "tests", "benchmarks", "examples")
_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+")


def _non_trivial_lines(text: str) -> List[Tuple[int, str]]:
    """(line number, stripped line) of every line with at least two identifiers or numbers."""
    lines = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if len(_TOKEN.findall(stripped)) >= 2:
            lines.append((number, stripped))
    return lines


def _runs(lines: List[Tuple[int, str]]) -> Iterator[Tuple[int, Tuple[str, ...]]]:
    for start in range(len(lines) - RUN + 1):
        yield lines[start][0], tuple(line for _, line in lines[start : start + RUN])


def _gliner2_runs() -> Set[Tuple[str, ...]]:
    root = Path(importlib.util.find_spec("gliner2").origin).parent
    runs: Set[Tuple[str, ...]] = set()
    for path in root.rglob("*.py"):
        runs.update(run for _, run in _runs(_non_trivial_lines(path.read_text(encoding="utf-8"))))
    return runs


def copied_runs(text: str, reference: Set[Tuple[str, ...]]) -> List[int]:
    """First line numbers of every RUN-line run of `text` that `reference` holds."""
    return [line for line, run in _runs(_non_trivial_lines(text)) if run in reference]


@pytest.fixture(scope="module")
def gliner2_runs() -> Set[Tuple[str, ...]]:
    return _gliner2_runs()


def _our_files() -> Iterator[Path]:
    for folder in OUR_FOLDERS:
        yield from sorted((REPOSITORY / folder).rglob("*.py"))


def test_no_file_holds_lines_copied_from_gliner2(gliner2_runs):
    copies: Dict[str, str] = {}
    for path in _our_files():
        found = copied_runs(path.read_text(encoding="utf-8"), gliner2_runs)
        if found:
            copies[str(path.relative_to(REPOSITORY))] = f"{len(found)} runs, the first at line {found[0]}"
    assert not copies, f"runs of {RUN}+ lines identical to gliner2's sources: {copies}"


def test_the_check_finds_a_copied_function(gliner2_runs):
    """A real gliner2 function pasted into a file is caught, and re-indenting it does not hide it."""
    import gliner2.inference.overlap as original

    source = Path(original.__file__).read_text(encoding="utf-8")
    pasted = "def ours():\n    return 1\n\n" + "\n".join("    " + line for line in source.splitlines())
    assert copied_runs(pasted, gliner2_runs)
    assert not copied_runs("\n".join(f"value_{n} = compute({n})" for n in range(40)), gliner2_runs)
