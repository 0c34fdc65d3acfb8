"""server.py caps glibc's heap arenas itself, before numpy's threads start (issue 19, memory at rest): the same
as MALLOC_ARENA_MAX=2 in the environment, which wins when it is set. The memory it saves is measured by
bench/bench_memory.py (peak over the chapter + clips)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers import ROOT

PROBE = ("import sys; from stt.memory_budget import limit_heap_arenas; set_ = limit_heap_arenas(); "
         "print(set_, 'numpy' in sys.modules)")


def probe(env: dict[str, str]) -> str:
    return subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_arenas_capped_before_numpy_is_imported() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    assert probe(env) == "True False"  # mallopt accepted, and numpy (its threads) not imported yet


def test_the_environment_wins() -> None:
    assert probe({**os.environ, "MALLOC_ARENA_MAX": "4"}) == "False False"


def test_server_py_caps_them_before_its_other_imports() -> None:
    source = (ROOT / "server.py").read_text()
    assert source.index("limit_heap_arenas()") < source.index("from aiohttp import web")
