"""A real Prometheus (Debian's package) scrapes a real server process with a token; its query API returns the
series. Skipped, with the reason, where the prometheus binary cannot be installed."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import AUDIO_DIR, TOKEN
from tests.serverproc import ServerProcess, free_port

pytestmark = [pytest.mark.model, pytest.mark.timeout(180)]


def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus not installed (make ops-tools installs Debian's prometheus where root and apt "
                    "are available)")
    return binary


def query(base: str, promql: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success"
    return body["data"]["result"]


def wait_for(base: str, promql: str, timeout: float = 60.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = query(base, promql)
        except OSError:
            result = []
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"prometheus returned no series for {promql} within {timeout:.0f} s")


def test_prometheus_scrapes_the_server_with_a_token(tmp_path: Path) -> None:
    binary = prometheus_binary()
    config = {"asr": {"model": "tiny.en", "threads": 1, "beam_size": 1}}
    with ServerProcess(config, tmp_path) as server:
        request = urllib.request.Request(f"{server.url}/stt", data=(AUDIO_DIR / "en" / "jfk.flac").read_bytes(),
                                         headers={"Authorization": f"Token {TOKEN}"})
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 200
        host = server.url.removeprefix("http://")
        (tmp_path / "prometheus.yml").write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": "1s"},
            "scrape_configs": [{"job_name": "stt", "static_configs": [{"targets": [host]}],
                                "authorization": {"credentials": TOKEN}},
                               {"job_name": "stt-no-token", "static_configs": [{"targets": [host]}]}],
        }))
        port = free_port()
        prometheus = subprocess.Popen(
            [binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            series = wait_for(base, 'stt_http_requests_total{job="stt",route="/stt",status="200"}')
            assert float(series[0]["value"][1]) == 1
            audio = wait_for(base, 'stt_audio_seconds_total{job="stt",face="native"}')
            assert float(audio[0]["value"][1]) == pytest.approx(11.0)
            assert wait_for(base, 'stt_ready{job="stt"}')[0]["value"][1] == "1"
            # Without the token the scrape is refused (401): the target is down, the series absent.
            assert wait_for(base, 'up{job="stt-no-token"} == 0')
            assert not query(base, 'stt_ready{job="stt-no-token"}')
        finally:
            prometheus.terminate()
            prometheus.wait(30)
