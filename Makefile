# Everyday commands.  `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
PYTEST_ARGS ?=

.PHONY: all compile debug deps test-deps system-deps test test-fast demo bench docs lint clean

all: compile

deps:
	$(PIP) install -q "setuptools>=65" wheel "Cython==3.3.1" "pytest>=7" "pytest-asyncio>=1.1"

compile: deps
	$(PIP) install -q --no-build-isolation -e .

debug: deps
	AIONVME_DEBUG=1 $(PIP) install -q --no-build-isolation -e .

test-deps: compile
	$(PIP) install -q "uvloop>=0.19" "mkdocs-material>=9" "mkdocstrings[python]>=0.24" "rich>=13"

test: test-deps
	$(PYTHON) -m pytest $(PYTEST_ARGS)
	$(PYTHON) -m pytest --loop uvloop -q tests/test_api.py $(PYTEST_ARGS)

test-fast:
	$(PYTHON) -m pytest -x -q $(PYTEST_ARGS)

demo: compile
	$(PYTHON) -m pytest -s -q examples/test_demo.py

bench: test-deps
	$(PYTHON) benchmarks/bench_qd.py --json bench-results/bench_qd.json
	$(PYTHON) benchmarks/bench_ioworker.py --json bench-results/bench_ioworker.json

docs: test-deps
	mkdocs build --strict

clean:
	rm -rf build dist *.egg-info site ext/aionvme/*.c aionvme/*.so
