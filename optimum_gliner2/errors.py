"""The errors optimum-gliner2 raises, shared by the export side, the bundle format and the runtime.

Each names the problem and, where there is one, the fix. They are plain exception classes with no
imports, so every room of the package can raise them without importing another room.
"""

from __future__ import annotations


class GLiNER2InputError(ValueError):
    """A text, schema or option passed to an extraction method cannot be processed.

    gliner2 silently substitutes placeholder results for some of these inputs; optimum-gliner2
    raises instead, naming the offending input.
    """


class GLiNER2LoadError(RuntimeError):
    """An exported GLiNER2 folder (or one of its files) cannot be loaded."""


class GLiNER2ExportError(RuntimeError):
    """A GLiNER2 checkpoint could not be exported, or its export failed validation."""
