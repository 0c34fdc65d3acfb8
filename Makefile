# make run | make test | make bench — each creates .venv and installs the pinned requirements on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
CONFIG ?= config.json
PYTEST_ARGS ?=

.PHONY: install install-dev browser run test test-fast bench bench-close bench-diarization bench-live bench-load bench-fuzz clean newman newman-run

$(VENV)/.runtime: requirements.txt requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# torch first and pinned: the CPU wheel; anything unpinned would pull the CUDA build.
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -r requirements.txt
	$(PIP) install --quiet --no-deps -r requirements-nodeps.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.runtime

install-dev: $(VENV)/.dev

# The browser end-to-end test drives Debian's Chromium (never a browser downloaded by a test tool). Installing
# it needs root and apt; where that fails the test is skipped and says why, so `make test` still runs.
browser:
	@command -v chromium >/dev/null 2>&1 || { (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 \
		|| echo "chromium not installed (needs root + apt): the browser test will be skipped"; }

run: install
	$(PY) server.py --config $(CONFIG)

test: install-dev newman browser
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install-dev
	$(PY) -m pytest -m "not model" $(PYTEST_ARGS)

bench: install-dev
	$(PY) bench/bench_core.py

# Hardening: 1,000 mixed requests at concurrency 16 against a real server (tiny.en), and a long fuzz run.
bench-close: install-dev
	$(PY) bench/bench_close.py --rounds 2

bench-diarization: install-dev
	$(PY) bench/bench_diarization.py

bench-load: install-dev
	$(PY) bench/load.py

bench-fuzz: install-dev
	$(PY) bench/fuzz_long.py

# newman (Postman's CLI) runs docs/postman_collection.json in the tests; installed locally, only where npm exists.
NEWMAN_VERSION := 6.2.2
NEWMAN := .cache/npm/node_modules/.bin/newman
newman:
	@if command -v npm >/dev/null 2>&1; then \
		test -x $(NEWMAN) || npm install --prefix .cache/npm --no-audit --no-fund --silent newman@$(NEWMAN_VERSION); \
	else echo "npm not found: skipping newman (the Postman collection test will be skipped)"; fi

# Run the Postman collection against a server you started (make run): TOKEN=... [BASE_URL=...] make newman-run
BASE_URL ?= http://127.0.0.1:8080
AUDIO_DIR ?= ../shared/audio
newman-run: newman
	$(NEWMAN) run docs/postman_collection.json --working-dir $(AUDIO_DIR) --env-var baseUrl=$(BASE_URL) --env-var token=$(TOKEN)

bench-live: install-dev browser
	$(PY) bench/bench_live.py
	$(PY) bench/browser_demo.py

clean:
	rm -rf $(VENV) .pytest_cache
