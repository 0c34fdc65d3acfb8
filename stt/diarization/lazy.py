"""A Diarizer loaded on first use, owned by whoever closes it (the server: each Transcriber has one).

Importing this module loads neither torch nor scikit-learn: ``get`` does, in a scheduler worker, the first
time speakers are asked for.
"""

from __future__ import annotations

import gc
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stt.diarization.diarizer import Diarizer


class LazyDiarizer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._diarizer: Diarizer | None = None

    def get(self) -> Diarizer:
        """Blocking on first use (the sha256 check and the torch load): call it from a worker."""
        with self._lock:
            if self._diarizer is None:
                from stt.diarization.diarizer import Diarizer  # torch + scikit-learn, only once it is asked for

                self._diarizer = Diarizer()
                # What was just imported and loaded (torch, SciPy, scikit-learn, the encoder: ~150,000 objects)
                # lives as long as the process: out of the cyclic garbage collector's walk, as the server's
                # start-up heap is (server.freeze_startup_heap). In view, every full collection walked them
                # while holding the GIL, 130-200 ms each during a diarized hour: the event loop's /ping waited
                # as long. (Objects of requests in flight at this moment are frozen too: they are still freed
                # by reference counting; only a cycle among them would stay, once.)
                gc.freeze()
            return self._diarizer

    def close(self) -> None:
        with self._lock:
            self._diarizer = None
