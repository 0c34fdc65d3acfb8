"""A throwaway PostgreSQL server (Debian's binaries) for the jobs tests: its own data folder, a free port,
trust authentication on 127.0.0.1 only; stopped and removed after. Skips with the reason where it cannot run."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serverproc import free_port


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _as_postgres(command: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: as root, run them as the postgres user."""
    if os.geteuid() != 0:
        return command
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("PostgreSQL cannot run as root and runuser is missing")
    return [runuser, "-u", "postgres", "--", *command]


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yields ``postgresql://postgres@127.0.0.1:<port>/postgres``. Its folder is a new one in the temporary
    directory (not pytest's, which the postgres user cannot enter when the tests run as root)."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server not installed (apt-get install postgresql; make ops-tools does it)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg not installed (pip install -r requirements.txt)")
    folder = Path(tempfile.mkdtemp(prefix="stt-pg-"))
    data = folder / "pgdata"
    if os.geteuid() == 0:
        try:
            shutil.chown(folder, "postgres")
        except (LookupError, PermissionError) as exc:
            shutil.rmtree(folder, ignore_errors=True)
            pytest.skip(f"no postgres user to run PostgreSQL as root: {exc}")
    init = subprocess.run(_as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                                        "--auth=trust", "-E", "UTF8", "--no-sync"]),
                          capture_output=True, text=True)
    if init.returncode != 0:
        pytest.skip(f"initdb failed: {init.stderr[-500:]}")
    port = free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off -c max_connections=50"
    start = subprocess.run(_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-w",
                                         "-t", "60", "-l", str(folder / "log"), "start"]),
                           capture_output=True, text=True)
    if start.returncode != 0:
        log = (folder / "log").read_text() if (folder / "log").exists() else ""
        pytest.skip(f"PostgreSQL did not start: {start.stderr[-300:]} {log[-500:]}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                       capture_output=True)
        time.sleep(0.1)
        shutil.rmtree(folder, ignore_errors=True)
