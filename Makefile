# make run | make test | make bench — each creates .venv and installs the pinned requirements on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
CONFIG ?= config.json
PYTEST_ARGS ?=

.PHONY: install install-dev browser ops-tools run test test-fast bench bench-close bench-finalize bench-language bench-realtime bench-diarization bench-live bench-memory bench-load bench-fuzz bench-abuse \
	bench-scale-out bench-jobs bench-accuracy clean newman newman-run docker docker-wheels docker-base-debian docker-test

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

# nginx, Prometheus and PostgreSQL (Debian's) for the deployment tests, the jobs' PostgreSQL mode and
# bench/scale_out.py; skipped with a reason where they cannot be installed.
ops-tools:
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || { (apt-get update -qq && apt-get install -y -qq nginx) \
		>/dev/null 2>&1 || echo "nginx not installed (needs root + apt): its tests will be skipped"; }
	@command -v prometheus >/dev/null 2>&1 || { (apt-get update -qq && apt-get install -y -qq prometheus) >/dev/null 2>&1 \
		|| echo "prometheus not installed (needs root + apt): the Prometheus test will be skipped"; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { (apt-get update -qq && apt-get install -y -qq postgresql) \
		>/dev/null 2>&1 || echo "postgresql not installed (needs root + apt): the jobs' PostgreSQL tests will be skipped"; }

# MALLOC_ARENA_MAX=1: glibc keeps one heap, so an unloaded model's memory goes back (README, Several models).
run: install
	MALLOC_ARENA_MAX=1 $(PY) server.py --config $(CONFIG)

test: install-dev newman browser ops-tools
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install-dev
	$(PY) -m pytest -m "not model" $(PYTEST_ARGS)

bench: install-dev
	$(PY) bench/bench_core.py

# Hardening: 1,000 mixed requests at concurrency 16 against a real server (tiny.en), and a long fuzz run.
bench-close: install-dev
	$(PY) bench/bench_close.py --rounds 2

bench-finalize: install-dev
	$(PY) bench/bench_finalize.py

# Issue 15: the server's default path beside faster-whisper's own transcribe on every shared set (WER, runaway
# outputs, wrong languages; 1 and 4 requests at a time). ACCURACY_ARGS=--quick: a stride through every set.
bench-accuracy: install-dev
	$(PY) bench/bench_accuracy.py $(ACCURACY_ARGS)

# Language detection on long uploads (shared clips joined): the first full window against the upload's first 30 s.
bench-language: install-dev
	$(PY) bench/bench_language.py

# Issue 17's Realtime face: completed delays for one session and six at once (about 8 minutes).
bench-realtime: install-dev
	$(PY) bench/bench_realtime.py

bench-diarization: install-dev
	$(PY) bench/bench_diarization.py

bench-load: install-dev
	$(PY) bench/load.py

bench-fuzz: install-dev
	$(PY) bench/fuzz_long.py

# The attacks of issue 9 against a real server: held/failed per attack, peak RSS, /ping p99.
bench-abuse: install-dev
	$(PY) bench/abuse.py

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

# Issue 8's inference-core targets side by side in one run (about 15 minutes): bench/bench_mixed.py
bench-mixed: install-dev
	$(PY) bench/bench_mixed.py

# Issue 18's jobs targets against real servers: restart safety, kill cycles, callbacks, PostgreSQL replicas,
# throughput against synchronous uploads, live delay while jobs run. BENCH_JOBS_ARGS=--quick: a reduced run.
bench-jobs: install-dev ops-tools
	$(PY) bench/bench_jobs.py $(BENCH_JOBS_ARGS)

bench-memory: install-dev
	$(PY) bench/bench_memory.py

bench-live: install-dev browser
	$(PY) bench/bench_live.py
	$(PY) bench/browser_demo.py

# Two replicas (1 thread each) behind nginx: kill, rolling update, live streams. --quick: a few minutes.
bench-scale-out: install-dev ops-tools
	$(PY) bench/scale_out.py $(SCALE_OUT_ARGS)

# The Docker image. The build uses only wheels collected here (pip with this machine's index and CA), so it
# needs no network or CA bundle inside the build, and the wheels stay out of the final image.
# DOCKER_BASE: any image with python3.11 + venv (python:3.11-slim by default; `make docker-base-debian` makes
# one from the Debian mirror with debootstrap where no registry is reachable).
DOCKER_IMAGE ?= stt-server:local
DOCKER_BASE ?= python:3.11-slim
DEBIAN_MIRROR ?= http://deb.debian.org/debian
docker-wheels: $(VENV)/.runtime
	$(PIP) wheel --quiet -r requirements.txt -w .cache/docker-wheels --find-links .cache/docker-wheels
	$(PIP) wheel --quiet --no-deps -r requirements-nodeps.txt -w .cache/docker-wheels --find-links .cache/docker-wheels

docker: docker-wheels
	docker build --build-arg BASE=$(DOCKER_BASE) -t $(DOCKER_IMAGE) .

docker-base-debian:
	rm -rf .cache/rootfs
	debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm .cache/rootfs $(DEBIAN_MIRROR)
	tar -C .cache/rootfs -c . | docker import - stt-base:bookworm
	rm -rf .cache/rootfs

# Runs the image and transcribes a shared clip (skipped with the reason where no Docker daemon runs).
docker-test: install-dev
	@if docker info >/dev/null 2>&1; then $(MAKE) docker; else echo "no Docker daemon: the image test will be skipped"; fi
	STT_DOCKER_IMAGE=$(DOCKER_IMAGE) $(PY) -m pytest tests/server/test_docker.py -rs $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
