"""A real ``python server.py`` in a subprocess, with a config written to a folder: for shutdown tests and
bench/load.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.helpers import ROOT, TOKEN


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    def __init__(self, folder: Path, *, asr: dict[str, Any] | None = None, limits: dict[str, Any] | None = None,
                 http: dict[str, Any] | None = None) -> None:
        self.port = free_port()
        self.folder = folder
        self.config = folder / "config.json"
        self.log_path = folder / "server.log"
        http = {"host": "127.0.0.1", "port": self.port, "allowed_tokens": [TOKEN], **(http or {})}
        asr = {"model": "tiny.en", "threads": 2, "beam_size": 1, **(asr or {})}
        self.config.write_text(json.dumps({"server": {"http": http}, "asr": asr, "limits": limits or {}}))
        self.scheme = "https" if "ssl_certfile" in http else "http"
        # Trust the server's own (self-signed) certificate for the health checks.
        self.ssl = ssl.create_default_context(cafile=http["ssl_certfile"]) if self.scheme == "https" else None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> "ServerProcess":
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "server.py"), "--config", str(self.config)],
                                     cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            if self._healthy():
                return self
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"server not ready after {timeout} s:\n{self.log()}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1, context=self.ssl) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/health", timeout=5, context=self.ssl) as resp:
            return json.loads(resp.read())

    def signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
