# make run | make test | make bench — each creates .venv and installs the pinned requirements on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
CONFIG ?= config.json
PYTEST_ARGS ?=

.PHONY: install install-dev run test test-fast bench bench-load bench-fuzz clean

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first and pinned: the CPU wheel; anything unpinned would pull the CUDA build.
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.runtime

install-dev: $(VENV)/.dev

run: install
	$(PY) server.py --config $(CONFIG)

test: install-dev
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install-dev
	$(PY) -m pytest -m "not model" $(PYTEST_ARGS)

bench: install-dev
	$(PY) bench/bench_core.py

# Hardening: 1,000 mixed requests at concurrency 16 against a real server (tiny.en), and a long fuzz run.
bench-load: install-dev
	$(PY) bench/load.py

bench-fuzz: install-dev
	$(PY) bench/fuzz_long.py

clean:
	rm -rf $(VENV) .pytest_cache
