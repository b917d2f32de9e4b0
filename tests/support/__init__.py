"""What the tests share with the benchmarks and the examples: the offline checkpoint factory, the parity
corpus and its comparison, gliner2's PyTorch modules behind the runtime's backend interface, and the
agreement measures of the precision variants.

Imported as `tests.support.<module>`, from the repository root (pytest's rootdir, `python -m benchmarks.run`,
`python -m examples.demo`).
"""
