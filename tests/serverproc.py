"""Run the real ``python server.py`` in a subprocess for end-to-end tests and benchmarks."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.helpers import ROOT, TOKEN

READY = re.compile(r"ready: listening on (https?://\S+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, config: dict[str, Any], workdir: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        http = {"host": "127.0.0.1", "port": self.port, "allowed_tokens": [TOKEN]}
        config = {**config, "server": {"http": {**http, **config.get("server", {}).get("http", {})}}}
        self.config_path = workdir / "config.json"
        self.config_path.write_text(json.dumps(config))
        self.lines: list[str] = []
        self.url = ""
        self._env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[str] | None = None
        self.ready_after_s = 0.0

    def start(self, timeout: float = 120.0) -> "ServerProcess":
        started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "server.py", "--config", str(self.config_path)], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self._env)
        ready = threading.Event()
        threading.Thread(target=self._pump, args=(ready,), daemon=True).start()
        if not ready.wait(timeout):
            self.stop()
            raise RuntimeError("server did not become ready:\n" + "\n".join(self.lines[-30:]))
        self.ready_after_s = time.monotonic() - started
        return self

    def _pump(self, ready: threading.Event) -> None:
        assert self.proc and self.proc.stdout
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            match = READY.search(line)
            if match:
                self.url = match.group(1).replace("0.0.0.0", "127.0.0.1")
                ready.set()

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 120.0) -> int:
        assert self.proc
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
