"""The Postman collection in docs/ run by newman against a real server process (tiny.en).

Needs npm: newman is installed under .cache/npm by `make newman` (what `make test` does first); without npm
the test is skipped with a message."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import AUDIO_DIR, ROOT, TOKEN

pytestmark = pytest.mark.model

COLLECTION = ROOT / "docs" / "postman_collection.json"
NEWMAN = ROOT / ".cache" / "npm" / "node_modules" / ".bin" / "newman"


@pytest.fixture(scope="module")
def newman() -> Path:
    """Requested before the server, so a machine without npm skips without starting one."""
    if NEWMAN.exists():
        return NEWMAN
    if shutil.which("npm") is None:
        pytest.skip("npm not found: the Postman collection is not run (install Node.js/npm, then `make newman`)")
    subprocess.run(["make", "-s", "newman"], cwd=ROOT, check=True, timeout=300)
    return NEWMAN


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    config = tmp_path_factory.mktemp("newman") / "config.json"
    config.write_text(json.dumps({"server": {"http": {"host": "127.0.0.1", "port": port,
                                                      "allowed_tokens": [TOKEN]}},
                                  "asr": {"model": "tiny.en", "threads": 2}}))
    env = {k: v for k, v in os.environ.items() if k != "STT_TOKENS"}
    proc = subprocess.Popen([sys.executable, "server.py", "--config", str(config)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_until_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server did not start in 120 s")


def test_postman_collection_passes_in_newman(newman: Path, server: str, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    result = subprocess.run(
        [str(newman), "run", str(COLLECTION), "--working-dir", str(AUDIO_DIR), "--env-var", f"baseUrl={server}",
         "--env-var", f"token={TOKEN}", "--reporters", "cli,json", "--reporter-json-export", str(report),
         "--timeout-request", "60000", "--color", "off"],
        capture_output=True, text=True, timeout=300)
    print(result.stdout[-5000:])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    run = json.loads(report.read_text())["run"]
    assert run["stats"]["requests"]["total"] == len(json.loads(COLLECTION.read_text())["item"])
    assert run["stats"]["assertions"]["failed"] == 0 and run["stats"]["assertions"]["total"] >= 20
