"""server.py caps glibc's heap arenas itself, before numpy's threads start (issue 19, memory at rest): the same
as MALLOC_ARENA_MAX=1 in the environment, which wins when it is set. The memory it saves is measured by
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


# Large buffers on mappings of their own, on transparent huge pages (stt/memory_budget.py, huge_page_tunables).
HUGE = ("import ctypes, os, sys; from stt.memory_budget import restart_with_huge_pages; restart_with_huge_pages(); "
        "libc = ctypes.CDLL(None); libc.malloc.restype = ctypes.c_void_p; libc.free.argtypes = [ctypes.c_void_p]; "
        "rss = lambda: int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') >> 20; "
        "huge = lambda: int(open('/proc/self/smaps_rollup').read().split('AnonHugePages:')[1].split()[0]) >> 10; "
        "libc.free(libc.malloc(16 << 20)); "  # glibc's dynamic threshold: the next one of this size comes from the heap
        "before, h0 = rss(), huge(); p = libc.malloc(16 << 20); ctypes.memset(p, 1, 16 << 20); "
        "held, h1 = rss(), huge(); libc.free(p); "
        "print(os.environ.get('GLIBC_TUNABLES', '-'), held - before, h1 - h0, held - rss())")


def _huge_pages_here() -> bool:
    from stt.memory_budget import huge_page_tunables

    env = os.environ.pop("GLIBC_TUNABLES", None)
    try:
        return huge_page_tunables() is not None
    finally:
        if env is not None:
            os.environ["GLIBC_TUNABLES"] = env


def test_tunables_only_where_huge_pages_are_given(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from stt.memory_budget import HUGE_PAGE_TUNABLES, huge_page_tunables

    never, madvise = tmp_path / "never", tmp_path / "madvise"
    never.write_text("always madvise [never]\n")
    madvise.write_text("always [madvise] never\n")
    saved = os.environ.pop("GLIBC_TUNABLES", None)
    try:
        assert huge_page_tunables(never) is None  # 4 KiB pages: the page faults cost a quarter more CPU
        assert huge_page_tunables(tmp_path / "absent") is None
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
        glibc_2_35 = libc.startswith("glibc ") and tuple(map(int, libc.split()[1].split(".")[:2])) >= (2, 35)
        assert huge_page_tunables(madvise) == (HUGE_PAGE_TUNABLES if glibc_2_35 else None)
        os.environ["GLIBC_TUNABLES"] = ""
        assert huge_page_tunables(madvise) is None  # the environment wins, even empty
    finally:
        os.environ.pop("GLIBC_TUNABLES", None)
        if saved is not None:
            os.environ["GLIBC_TUNABLES"] = saved


def test_a_large_buffer_is_on_huge_pages_and_leaves_rss_when_freed() -> None:
    if not _huge_pages_here():
        import pytest
        pytest.skip("no glibc >= 2.35 or no transparent huge pages here")
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    tunables, held, huge, released = probe_huge(env)
    assert tunables != "-"  # the process started again with the tunables
    assert held >= 15 and huge >= 8  # the 16 MiB buffer is resident, on huge pages
    assert released >= 15  # and gone from RSS once freed
    # Without them (the environment's empty GLIBC_TUNABLES wins), glibc's dynamic threshold keeps such a buffer
    # in the heap once a first one was freed: resident after free, no huge pages.
    tunables, held, huge, released = probe_huge({**env, "GLIBC_TUNABLES": ""})
    assert tunables == "" and held >= 15 and huge == 0 and released < 4


def probe_huge(env: dict[str, str]) -> tuple[str, int, int, int]:
    out = subprocess.run([sys.executable, "-c", HUGE], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0] if len(out) == 4 else "", *map(int, out[-3:])  # type: ignore[return-value]


def test_server_py_starts_again_with_them_first() -> None:
    source = (ROOT / "server.py").read_text()
    assert source.index("restart_with_huge_pages()") < source.index("limit_heap_arenas()")
