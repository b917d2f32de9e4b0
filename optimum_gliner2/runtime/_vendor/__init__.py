"""Torch-free modules copied from gliner2 2.1.0 (Apache-2.0).

`import gliner2` imports torch (through gliner2.processing and gliner2.models), so the serving
runtime cannot import it. Each file here is a verbatim copy of a torch-free gliner2 module, or of
the torch-free part of one, with imports made relative. Its header names the original and
tests/test_vendored_gliner2.py fails when the installed gliner2 differs from the copy.
"""
