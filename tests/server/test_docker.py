"""The Docker image (``make docker``) runs, as a non-root user, configured by STT_TOKENS and a mounted
config.json, becomes healthy through its HEALTHCHECK and transcribes a shared clip.

Skipped, with the reason, where no Docker daemon runs or the image was not built (``make docker-test``
builds it first)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import AUDIO_DIR, wer
from tests.serverproc import free_port

IMAGE = os.environ.get("STT_DOCKER_IMAGE", "stt-server:local")
pytestmark = [pytest.mark.model, pytest.mark.timeout(300)]


def docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def image() -> str:
    if shutil.which("docker") is None:
        pytest.skip("docker CLI not installed")
    if docker("info").returncode != 0:
        pytest.skip("no Docker daemon reachable (start dockerd as root, or run where Docker runs)")
    if docker("image", "inspect", IMAGE).returncode != 0:
        pytest.skip(f"image {IMAGE} not built: run `make docker` (or `make docker-test`)")
    return IMAGE


def test_the_image_serves_a_transcription_as_a_non_root_user(image: str, tmp_path: Path) -> None:
    config = {"server": {"http": {"host": "0.0.0.0", "port": 8080}},
              "asr": {"model": "tiny.en", "threads": 1, "cache_dir": "/opt/stt-cache"},
              "logging": {"format": "json"}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    tmp_path.chmod(0o755)
    port = free_port()
    run = docker("run", "-d", "-e", "STT_TOKENS=docker-token", "-p", f"127.0.0.1:{port}:8080",
                 "-v", f"{tmp_path / 'config.json'}:/etc/stt/config.json:ro",
                 "--health-interval", "2s", image)  # the image's check, run more often than its 15 s
    assert run.returncode == 0, run.stderr
    container = run.stdout.strip()
    try:
        assert docker("exec", container, "id", "-u").stdout.strip() != "0"
        deadline, health = time.monotonic() + 120, ""
        while time.monotonic() < deadline and health != "healthy":
            time.sleep(1)
            health = docker("inspect", "-f", "{{.State.Health.Status}}", container).stdout.strip()
        assert health == "healthy", docker("logs", container).stdout[-3000:]
        clip = AUDIO_DIR / "en" / "jfk.flac"
        request = urllib.request.Request(f"http://127.0.0.1:{port}/stt", data=clip.read_bytes(),
                                         headers={"Authorization": "Token docker-token"})
        with urllib.request.urlopen(request, timeout=120) as response:
            body = json.load(response)
        assert wer("And so my fellow Americans, ask not what your country can do for you, ask what you can do "
                   "for your country.", body["text"]) < 0.1
        logs = docker("logs", container)
        lines = [json.loads(line) for line in (logs.stdout + logs.stderr).splitlines() if line.startswith("{")]
        assert any(r.get("route") == "/stt" and r.get("status") == 200 for r in lines)  # the mounted config
        assert any("tiny.en" in r.get("message", "") for r in lines)
    finally:
        docker("rm", "-f", container)
