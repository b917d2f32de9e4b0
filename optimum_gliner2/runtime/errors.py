"""Exceptions raised by the torch-free GLiNER2 runtime."""

from __future__ import annotations


class GLiNER2InputError(ValueError):
    """A text, schema or option passed to the pipeline cannot be processed.

    gliner2 silently substitutes placeholder results for some of these inputs; the runtime
    raises instead, naming the offending input.
    """


class GLiNER2LoadError(RuntimeError):
    """An exported GLiNER2 bundle or checkpoint cannot be loaded."""
