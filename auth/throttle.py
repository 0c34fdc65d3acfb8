"""Slows down token guessing: too many failed attempts from one address within a window get refused."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


MAX_TRACKED = 10_000  # addresses with recent failures kept at most (an attacker may have many addresses)


class FailureThrottle:
    def __init__(self, max_failures: int, window_seconds: float,
                 clock: Callable[[], float] = time.monotonic, max_tracked: int = MAX_TRACKED) -> None:
        self._max = max_failures
        self._window = window_seconds
        self._clock = clock
        self._max_tracked = max_tracked
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, address: str) -> float:
        """Seconds this address must wait before trying again; 0 when it may try now."""
        times = self._recent(address)
        if len(times) < self._max:
            return 0.0
        return max(0.0, times[0] + self._window - self._clock())

    def record_failure(self, address: str) -> None:
        self._recent(address)
        self._failures.setdefault(address, deque()).append(self._clock())
        if len(self._failures) > self._max_tracked:
            self._sweep()

    def _sweep(self) -> None:
        """Forget addresses whose failures all left the window; if still too many, the longest idle ones."""
        horizon = self._clock() - self._window
        for address in [a for a, times in self._failures.items() if times[-1] <= horizon]:
            del self._failures[address]
        by_last_failure = sorted(self._failures, key=lambda a: self._failures[a][-1])
        for address in by_last_failure[:len(self._failures) - self._max_tracked]:
            del self._failures[address]

    @property
    def tracked(self) -> int:
        return len(self._failures)

    def record_success(self, address: str) -> None:
        self._failures.pop(address, None)

    def _recent(self, address: str) -> deque[float]:
        """This address's failures within the window; only record_failure adds an entry to the table, so
        checking the many addresses that never fail costs no insert."""
        times = self._failures.get(address)
        if times is None:
            return deque()
        horizon = self._clock() - self._window
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._failures[address]  # forget idle addresses so the table cannot grow without bound
        return times
