"""One memory budget for every large buffer the server holds for its clients (``limits.max_held_bytes``).

Bytes are reserved BEFORE the buffer they stand for is allocated (a request body as it is read, its inflated
bytes, the decoded audio, the windows handed to the batcher; a live stream's pending audio), and released when
the buffer is dropped. Each holder (a request, a stream) has its own ``Hold``, closed when it ends, which gives
back whatever it still holds, so nothing leaks when a handler fails half-way.

Over the budget a reservation fails at once with ``OverBudget`` (uploads answer 503 + Retry-After), or waits
for room (``await hold.reserve(n, timeout=...)``: back-pressure for a live stream). A holder that is alone (no
other holder has anything reserved) is always admitted, so one request up to the request and audio limits still
runs on a budget configured lower than that.

Thread-safe: reservations are made on the event loop and from the threads that inflate and decode uploads.
No HTTP here: the faces map ``OverBudget`` to their answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

MiB = 1024 * 1024
GiB = 1024 * MiB
DEFAULT_SHARE = 0.25  # of the memory this process may use (RAM or the container's limit)
DEFAULT_MIN = 1 * GiB  # a request of request_max_size plus 4 h of decoded audio (0.9 GB) still fits alone
RETRY_AFTER_S = 5


class OverBudget(Exception):
    """A reservation would take the held bytes over the budget."""

    def __init__(self, wanted: int, held: int, limit: int) -> None:
        super().__init__(f"server memory budget reached: {held // MiB} MiB held, {wanted // MiB} MiB more asked, "
                         f"the limit is {limit // MiB} MiB")
        self.wanted, self.held, self.limit = wanted, held, limit


def machine_memory_bytes() -> int:
    """The memory this process may use: physical RAM, or the cgroup (container) limit when lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def default_max_held_bytes() -> int:
    """``limits.max_held_bytes`` when it is 0 (the default): a quarter of the machine's memory, at least 1 GiB
    (24 GiB of RAM: 6 GiB). The model, the runtime and live streams' state need the rest."""
    return max(DEFAULT_MIN, int(machine_memory_bytes() * DEFAULT_SHARE))


class MemoryBudget:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.held = 0
        self.peak = 0  # the most ever held at once (tests and benchmarks read it)
        self._holders = 0  # Holds with something reserved
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def hold(self) -> "Hold":
        return Hold(self)

    @contextlib.contextmanager
    def holding(self, nbytes: int) -> Iterator["Hold"]:
        """``with budget.holding(n):`` reserve n bytes (or raise OverBudget), released on exit."""
        hold = Hold(self)
        hold.take(nbytes)
        try:
            yield hold
        finally:
            hold.close()

    @contextlib.asynccontextmanager
    async def reserving(self, nbytes: int, timeout: float | None = None) -> AsyncIterator["Hold"]:
        """``async with budget.reserving(n, timeout):`` wait for room (OverBudget after ``timeout``)."""
        hold = Hold(self)
        await hold.reserve(nbytes, timeout)
        try:
            yield hold
        finally:
            hold.close()

    def _try(self, hold: "Hold", nbytes: int, waiter: asyncio.Future[None] | None = None) -> bool:
        """Reserve, or (with ``waiter``) register it to be woken by the next release, under one lock: a release
        between a failed try and the registration would otherwise be missed."""
        with self._lock:
            alone = self._holders == (1 if hold.held else 0)
            if nbytes > 0 and not alone and self.held + nbytes > self.max_bytes:
                if waiter is not None:
                    self._waiters.append((waiter.get_loop(), waiter))
                return False
            if not hold.held and nbytes > 0:
                self._holders += 1
            self.held += nbytes
            hold.held += nbytes
            self.peak = max(self.peak, self.held)
            return True

    def _give(self, hold: "Hold", nbytes: int) -> None:
        with self._lock:
            nbytes = min(nbytes, hold.held)
            self.held -= nbytes
            hold.held -= nbytes
            if nbytes and not hold.held:
                self._holders -= 1
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:  # each waiter tries again (on its own loop: this may run in a thread)
            loop.call_soon_threadsafe(_wake, future)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Hold:
    """What one request or stream holds of the budget. ``close()`` gives all of it back."""

    def __init__(self, budget: MemoryBudget) -> None:
        self.budget = budget
        self.held = 0
        self.peak_held = 0  # the most this holder held (as far as close() and give() saw it)

    def take(self, nbytes: int) -> None:
        """Reserve now or raise OverBudget (uploads: refuse at once, from the loop or a thread)."""
        if not self.budget._try(self, nbytes):
            raise OverBudget(nbytes, self.budget.held, self.budget.max_bytes)

    async def reserve(self, nbytes: int, timeout: float | None = None) -> None:
        """Wait until the bytes fit (back-pressure); OverBudget after ``timeout`` seconds (None: forever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        loop = asyncio.get_running_loop()
        while True:
            woken: asyncio.Future[None] = loop.create_future()
            if self.budget._try(self, nbytes, woken):
                return
            remaining = None if deadline is None else deadline - time.monotonic()
            try:
                if remaining is not None and remaining <= 0:
                    raise asyncio.TimeoutError
                await asyncio.wait_for(woken, remaining)
            except asyncio.TimeoutError:
                raise OverBudget(nbytes, self.budget.held, self.budget.max_bytes) from None

    def give(self, nbytes: int) -> None:
        self.peak_held = max(self.peak_held, self.held)
        self.budget._give(self, nbytes)

    def close(self) -> None:
        self.peak_held = max(self.peak_held, self.held)
        self.budget._give(self, self.held)

    async def run_reserving(self, work: Callable[[Callable[[int], None]], T]) -> T:
        """Run blocking ``work(reserve)`` in a thread, each of its buffers reserved (``reserve(n)`` before it is
        allocated) in this hold, and WAIT for room rather than fail: when the budget refuses a buffer, the work
        is dropped (its buffers freed), and run again once all it had asked for fits (``reserve``, woken by
        releases); that much stays reserved for the next run, so each run gets further. A holder alone is
        always admitted, so this ends. For work that must not be refused (a queued job's decoding)."""
        base, credit = self.held, 0
        while True:
            asked = 0

            def reserve(nbytes: int) -> None:
                nonlocal asked
                asked += nbytes
                if asked > credit:  # beyond what an earlier run already reserved
                    self.take(min(nbytes, asked - credit))

            try:
                return await asyncio.to_thread(work, reserve)
            except OverBudget:
                self.give(self.held - base)
                await self.reserve(asked)
                credit = asked


# glibc keeps freed heap memory in the process (one arena per thread) unless asked: buffers of a few MiB
# (inflated pieces, read chunks) fall under its dynamic mmap threshold, so after a burst of large requests the
# RSS stayed at the burst's peak. A request that held at least TRIM_AFTER_BYTES asks for it back once done.
TRIM_AFTER_BYTES = 32 * MiB


# glibc gives each thread that allocates under contention a heap arena of its own, up to 8 per core, and a
# freed buffer stays in the arena that allocated it: the server's many threads (CTranslate2's, ONNX's, the
# scheduler's, the decoders') each kept a few tens of MB. Measured on the chapter + 11 s clip (bench_memory):
# peak 836 MB with the default arenas, 702 MB with two. One arena, not two: malloc_trim gives back the free
# pages inside every arena but the free top of a second arena's heap, and glibc trims that top by itself only
# above its dynamic threshold (up to 64 MB), so an unloaded model left up to ~50 MB there for good (48 MB after
# some unloads of base under load, none after 25 with one arena). One arena also peaked lower on the chapter +
# clips (499-512 MB against 553-556 with two), the chapter's time and CPU unchanged (19.1-19.2 s, 25.8 CPU-s
# both; bench_memory, configurations "one arena" and "two arenas", two runs). MALLOC_ARENA_MAX=1 in the
# environment does this too (make run and the Docker image set it); set here, ``python server.py`` alone gets
# it as well. It must run before any other thread allocates (numpy starts its BLAS threads at import), so the
# entry point calls it before importing anything but the standard library. ``MALLOC_ARENA_MAX`` set in the
# environment wins (glibc read it at start).
HEAP_ARENAS = 1
M_ARENA_MAX = -8  # mallopt's parameter number (glibc's malloc.h)


def limit_heap_arenas(arenas: int = HEAP_ARENAS) -> bool:
    """Cap glibc's heap arenas (True when set). Call before any thread starts; a no-op on other C libraries."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        return bool(name) and ctypes.CDLL(name).mallopt(M_ARENA_MAX, arenas) == 1
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False


def give_back_to_the_system() -> None:
    """Blocking (glibc's malloc_trim walks every arena; ctypes releases the GIL): run it in a thread."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0) if name else None
    except (OSError, AttributeError):  # musl and other C libraries have no malloc_trim
        pass



# glibc's own tunables (read once, when a process starts) that give the decoder's large transient buffers
# (the cross-attention keys and values tiled per beam, ~15 MB a layer for a 30 s window at beam 5; the encoder's
# attention scores) mappings of their own on transparent huge pages: freed, they leave RSS at once, where heap
# pieces stayed resident and fragmented. Measured on the chapter + clips (bench/bench_memory.py, default settings):
# peak ~495 MB against ~530-550 MB, CPU time unchanged. The threshold alone (4 KiB pages) cut the peak as much
# but cost +23-34 % CPU in page faults, so the tunables are set only where glibc can ask for huge pages (2.35 and
# later) and the kernel gives them (transparent_hugepage ``always`` or ``madvise``). ``GLIBC_TUNABLES`` set in the
# environment (even empty) wins.
HUGE_PAGE_TUNABLES = "glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=4194304"
THP_ENABLED = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def huge_page_tunables(thp_setting: Path = THP_ENABLED) -> str | None:
    """The ``GLIBC_TUNABLES`` this process should start with, or None to leave it alone."""
    if "GLIBC_TUNABLES" in os.environ:
        return None
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""  # "glibc 2.36"
        enabled = thp_setting.read_text()
    except (OSError, ValueError):  # another C library, or no transparent huge pages
        return None
    name, _, version = libc.partition(" ")
    major, _, minor = version.partition(".")
    if name != "glibc" or not (major.isdigit() and minor.split(".")[0].isdigit()):
        return None
    if (int(major), int(minor.split(".")[0])) < (2, 35) or not ("[always]" in enabled or "[madvise]" in enabled):
        return None
    return HUGE_PAGE_TUNABLES


def restart_with_huge_pages() -> None:
    """Start this process again (same pid, same arguments) with ``huge_page_tunables`` when it should have them:
    glibc reads its tunables only at start. The entry point calls it first, before anything else runs."""
    tunables = huge_page_tunables()
    if tunables is not None:
        os.execve(sys.executable, sys.orig_argv, {**os.environ, "GLIBC_TUNABLES": tunables})
