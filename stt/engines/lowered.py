"""A copy of a model whose threads run at a lower OS priority: work the kernel gives the cores to last.

The copy is loaded by a thread of its own that lowered its priority first: the engine's worker threads, and the
threads each of them starts for its matrix work, inherit it (Linux threads start with their creator's nice value
and scheduling class). A call on the copy then takes only the CPU that calls on the shared model leave; a call in
progress cannot be interrupted, but its threads are preempted whenever a thread of normal priority wants a core.
Asynchronous jobs run on such a copy (stt/jobs), and so do live interim passes (stt/inference/pass_batcher.py).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from stt.engines.base import Engine

log = logging.getLogger("stt.engines")


def lowered_copy(load: Callable[[], Engine], nice: int, idle: bool, purpose: str) -> Engine:
    """Blocking: ``load()`` run by a thread at OS priority ``nice`` and, when ``idle``, in Linux's SCHED_IDLE class
    (the copy's threads then get a core only when no other thread wants it; elsewhere only ``nice`` applies)."""
    out: list[Engine] = []
    failed: list[BaseException] = []
    idle = idle and hasattr(os, "SCHED_IDLE")  # Linux only

    def run() -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
            if idle:  # pid 0: this thread; its children inherit the class
                os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            out.append(load())
        except BaseException as exc:  # re-raised in the caller's thread
            failed.append(exc)

    thread = threading.Thread(target=run, name=f"stt-{purpose}-engine-load")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    log.info("%s: their own copy of the model loaded, its threads at nice %d%s", purpose, nice,
             " in the idle scheduling class" if idle else "")
    return out[0]
