# Vendored from gliner2 2.1.0 (Apache-2.0), gliner2/processing/records.py.
# Why: the vendored Schema builder validates record modes against these constants, and
# `gliner2.processing` imports torch.
# Changes: only the two constants Schema reads; the boundary-architecture record specs are not copied.
# tests/test_vendored_gliner2.py pins this copy to the installed original.

"""Record-formation modes and occurrence policies accepted by ``Schema.structure``."""

VALID_MODES = ("natural", "latent", "anchorless")
VALID_OCCURRENCE_POLICIES = ("all", "first", "error_on_ambiguous", "latent_all")
