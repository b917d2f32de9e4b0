"""Errors the export side raises. They name the problem; Optimum's CLI shows them as they are."""


class GLiNER2ExportError(RuntimeError):
    """A GLiNER2 checkpoint could not be exported, or its export failed validation."""
