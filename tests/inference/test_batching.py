"""PassBatcher: live passes batched into shared scheduler jobs; finals' passes first."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import numpy as np

from stt.inference.pass_batcher import PassBatcher
from stt.engines.windows import WindowRequest, WindowResult
from stt.errors import Overloaded
from stt.inference.scheduler import Scheduler


class RecordingDecoder:
    name = model_name = "recording"
    multilingual = True

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def decode_windows(self, requests: Sequence[WindowRequest]) -> list[WindowResult]:
        self.batches.append([len(r.audio) for r in requests])
        return [WindowResult(f"window of {len(r.audio)}", (), "en") for r in requests]


def window(samples: int) -> WindowRequest:
    return WindowRequest(np.zeros(samples, dtype=np.float32))


async def test_waiting_passes_share_one_job_and_urgent_ones_go_first() -> None:
    scheduler = Scheduler(1, 16, 30)
    engine = RecordingDecoder()
    batcher = PassBatcher(scheduler, engine)  # type: ignore[arg-type]
    blocker = asyncio.create_task(scheduler.run(lambda: time.sleep(0.3)))  # the worker is busy meanwhile
    await asyncio.sleep(0.05)
    interims = [asyncio.create_task(batcher.decode(window(n))) for n in (100, 200, 300)]
    final = asyncio.create_task(batcher.decode(window(400), urgent=True))
    results = await asyncio.gather(*interims, final)
    await blocker
    assert engine.batches == [[400], [100, 200, 300]]  # the final alone first, then one batch of the rest
    assert [r.text for r in results] == [f"window of {n}" for n in (100, 200, 300, 400)]
    scheduler.close()


async def test_a_full_queue_fails_the_waiting_passes() -> None:
    scheduler = Scheduler(1, 0, 30)  # no waiting room at all
    batcher = PassBatcher(scheduler, RecordingDecoder())  # type: ignore[arg-type]
    blocker = asyncio.create_task(scheduler.run(lambda: time.sleep(0.2)))
    await asyncio.sleep(0.05)
    try:
        await batcher.decode(window(100))
    except Overloaded:
        pass
    else:
        raise AssertionError("expected Overloaded")
    await blocker
    assert (await batcher.decode(window(100))).text == "window of 100"  # and it recovers
    scheduler.close()
