"""The model registry: one Transcriber per loaded model, loaded on first use and unloaded when idle.

``asr.models`` names the models a request may choose; ``asr.model`` is the default. A model loads when a
request first names it (concurrent first requests share one load; they wait for it within their timeout);
it is unloaded after ``asr.model_ttl_seconds`` without work, and at most ``asr.max_loaded_models`` are in
memory at once: room is made by unloading the least recently used idle one. A model with work in flight
(a lease: an upload being handled, an open live stream) is never unloaded; the default may be pinned.
Loading and unloading run in threads, never on the event loop.

Faces and other callers take a model through ``lease(name)``: an async context manager that yields the
model's Transcriber and keeps the model loaded until it exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping

from stt import metrics
from stt.errors import EngineError, Overloaded, UnknownModel
from stt.inference.transcriber import Transcriber
from stt.memory_budget import give_back_to_the_system

log = logging.getLogger("stt.inference.registry")

Loader = Callable[[str, str], Transcriber]  # (name, source) -> a loaded Transcriber; blocking, run in a thread
RETRY_AFTER_S = 5  # what a client refused while every loaded model is busy is told to wait


@dataclasses.dataclass
class _Entry:
    name: str
    transcriber: Transcriber | None = None
    loading: asyncio.Task[Transcriber] | None = None
    leases: int = 0  # work in flight on it: never unloaded while above 0
    last_used: float = 0.0
    owned: bool = True  # False: an engine handed in by the caller (tests share one), never closed here


@dataclasses.dataclass(frozen=True)
class ModelState:
    name: str
    default: bool
    loaded: bool
    loading: bool
    leases: int


@dataclasses.dataclass(frozen=True)
class Policy:
    ttl_s: float | None = 300.0  # None: never unloaded for being idle
    max_loaded: int = 2
    pin_default: bool = True
    wait_s: float = 300.0  # how long a request waits for its model (a load, or room to load it)


class ModelRegistry:
    def __init__(self, sources: Mapping[str, str], default: str, loader: Loader, policy: Policy,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if default not in sources:
            raise ValueError(f"default model {default!r} is not among {sorted(sources)}")
        self.sources = dict(sources)
        self.default = default
        self._loader = loader
        self._policy = policy
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._unloading: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False
        self._abandoned = 0  # transcriptions still running when close() gave up on them

    # --- what callers use -----------------------------------------------------------------------------------

    def resolve(self, name: str | None) -> str:
        """A configured model name (None or empty: the default); UnknownModel for any other."""
        if not name:
            return self.default
        if name not in self.sources:
            shown = name if len(name) <= 40 else name[:40] + "..."
            raise UnknownModel(f"model: unknown model {shown!r} (this server has: {', '.join(self.sources)})",
                               param="model")
        return name

    @contextlib.asynccontextmanager
    async def lease(self, name: str | None = None, wait_s: float | None = None) -> AsyncIterator[Transcriber]:
        """The model's Transcriber, loaded if need be and kept loaded until the block exits. Overloaded (503)
        when it cannot be had within ``wait_s`` (default: the policy's), UnknownModel for a name not configured,
        EngineError when its weights fail to load."""
        entry = await self.acquire(name, wait_s)
        try:
            assert entry.transcriber is not None
            yield entry.transcriber
        finally:
            self.release(entry)

    async def acquire(self, name: str | None, wait_s: float | None = None) -> _Entry:
        resolved = self.resolve(name)
        timeout = self._policy.wait_s if wait_s is None else wait_s
        try:
            async with asyncio.timeout(timeout):
                return await self._acquire(resolved)
        except TimeoutError:
            raise Overloaded(f"model {resolved!r} is not available yet (loading, or every loaded model is busy): "
                             "retry later", retry_after_s=RETRY_AFTER_S) from None

    def release(self, entry: _Entry) -> None:
        entry.leases -= 1
        entry.last_used = self._clock()
        self._notify()

    def states(self) -> list[ModelState]:
        """Every configured model, in config order, with whether it is in memory now."""
        out = []
        for name in self.sources:
            entry = self._entries.get(name)
            out.append(ModelState(name, name == self.default, entry is not None and entry.transcriber is not None,
                                  entry is not None and entry.transcriber is None,
                                  entry.leases if entry is not None else 0))
        return out

    def loaded(self) -> list[Transcriber]:
        return [e.transcriber for e in self._entries.values() if e.transcriber is not None]

    def running(self) -> int:
        """Transcriptions running now, over every model (after ``close``: those it abandoned)."""
        return sum(t.scheduler.running for t in self.loaded()) + self._abandoned

    def loaded_count(self) -> int:
        """Models in memory or on their way in or out: what ``max_loaded`` bounds."""
        return len(self._entries) + len(self._unloading)

    # --- lifetime -------------------------------------------------------------------------------------------

    def adopt(self, name: str, transcriber: Transcriber, owned: bool) -> None:
        """A model already loaded (the default, at start): kept loaded while pinned."""
        self._entries[name] = _Entry(name, transcriber, last_used=self._clock(), owned=owned)
        metrics.MODEL_LOADS.labels(name).inc()

    def start(self) -> None:
        """Starts the idle-model reaper (call from the event loop)."""
        if self._policy.ttl_s is not None:
            self._reaper = asyncio.ensure_future(self._reap(self._policy.ttl_s))

    async def close(self, timeout_s: float) -> int:
        """Shutdown: every model finishes its accepted work within ``timeout_s`` and is unloaded. Returns how
        many transcriptions were still running (abandoned) then."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
        loads = [e.loading for e in self._entries.values() if e.loading is not None]
        await asyncio.gather(*loads, *self._unloading, return_exceptions=True)
        deadline = time.monotonic() + timeout_s
        abandoned = 0
        for entry in list(self._entries.values()):
            transcriber = entry.transcriber
            if transcriber is None:
                continue
            drained = await transcriber.drain(max(0.0, deadline - time.monotonic()))
            if not drained:
                abandoned += transcriber.scheduler.running
            await asyncio.to_thread(_close, transcriber, entry.owned, drained)
            self._entries.pop(entry.name, None)
            metrics.MODEL_UNLOADS.labels(entry.name, "shutdown").inc()
        self._abandoned = abandoned
        return abandoned

    # --- inside ---------------------------------------------------------------------------------------------

    async def _acquire(self, name: str) -> _Entry:
        while True:
            if self._closed:
                raise Overloaded("the server is shutting down", retry_after_s=RETRY_AFTER_S)
            entry = self._entries.get(name)
            if entry is not None and entry.transcriber is not None:
                entry.leases += 1
                entry.last_used = self._clock()
                return entry
            if entry is not None and entry.loading is not None:
                # Shielded: a waiter that gives up (timeout, client gone) leaves the load to the others.
                await asyncio.shield(entry.loading)
                continue
            if self.loaded_count() < self._policy.max_loaded:
                self._start_load(name)
                continue
            victim = self._least_recently_used_idle()
            if victim is not None:
                self._start_unload(victim, "evicted")
            await self._wait_for_change()

    def _start_load(self, name: str) -> None:
        entry = _Entry(name)
        self._entries[name] = entry
        entry.loading = asyncio.ensure_future(self._load(entry))
        # Retrieved here so that a failed load with no waiter left is not reported as never retrieved.
        entry.loading.add_done_callback(lambda task: task.cancelled() or task.exception())

    async def _load(self, entry: _Entry) -> Transcriber:
        started = time.monotonic()
        try:
            transcriber = await asyncio.to_thread(self._loader, entry.name, self.sources[entry.name])
        except Exception as exc:
            if self._entries.get(entry.name) is entry:
                del self._entries[entry.name]  # the next request tries again
            log.error("model %r failed to load: %s", entry.name, exc)
            raise EngineError(f"model {entry.name!r} could not be loaded") from exc
        else:
            entry.transcriber = transcriber
            entry.last_used = self._clock()
            metrics.MODEL_LOADS.labels(entry.name).inc()
            log.info("model %r loaded in %.1f s", entry.name, time.monotonic() - started)
            return transcriber
        finally:
            entry.loading = None
            self._notify()

    def _least_recently_used_idle(self) -> _Entry | None:
        idle = [e for e in self._entries.values() if e.transcriber is not None and e.leases == 0
                and not self._pinned(e)]
        return min(idle, key=lambda e: e.last_used, default=None)

    def _pinned(self, entry: _Entry) -> bool:
        # An engine handed in cannot be loaded again once closed: it stays.
        return not entry.owned or (self._policy.pin_default and entry.name == self.default)

    def _start_unload(self, entry: _Entry, reason: str) -> None:
        del self._entries[entry.name]  # new requests for it load it again (after this unload, within the bound)
        task = asyncio.ensure_future(self._unload(entry, reason))
        self._unloading.add(task)
        task.add_done_callback(self._unloaded)

    def _unloaded(self, task: asyncio.Task[None]) -> None:
        self._unloading.discard(task)
        self._notify()

    async def _unload(self, entry: _Entry, reason: str) -> None:
        transcriber = entry.transcriber
        entry.transcriber = None
        assert transcriber is not None
        await asyncio.to_thread(_close, transcriber, entry.owned, True)
        metrics.MODEL_UNLOADS.labels(entry.name, reason).inc()
        log.info("model %r unloaded (%s)", entry.name, reason)

    async def _reap(self, ttl_s: float) -> None:
        tick = min(max(ttl_s / 4, 0.01), 5.0)
        while True:
            await asyncio.sleep(tick)
            now = self._clock()
            for entry in list(self._entries.values()):
                if (entry.transcriber is not None and entry.leases == 0 and not self._pinned(entry)
                        and now - entry.last_used >= ttl_s):
                    self._start_unload(entry, "idle")

    async def _wait_for_change(self) -> None:
        await self._changed.wait()

    def _notify(self) -> None:
        """Wakes every waiter (a lease ended, a load or unload finished): each looks again."""
        self._changed.set()
        self._changed = asyncio.Event()


def _close(transcriber: Transcriber, owned: bool, wait: bool) -> None:
    """Blocking: the model's threads stopped, its weights freed, and the freed heap given back to the system."""
    transcriber.close(wait=wait)
    if owned:
        transcriber.engine.close()
    del transcriber
    gc.collect()
    give_back_to_the_system()  # glibc keeps freed memory in its arenas unless asked

