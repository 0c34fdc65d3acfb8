"""PassBatcher: live passes batched into shared scheduler jobs; finals' passes first."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import numpy as np

from stt.audio import SAMPLE_RATE
from stt.inference.pass_batcher import INTERIM_JOB_INPUT_S, PassBatcher
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


class GatedDecoder(RecordingDecoder):
    """Records its batches; each job waits for ``gate`` (one job at a time is let through by the test)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Semaphore(0)
        self.started = threading.Semaphore(0)

    def decode_windows(self, requests: Sequence[WindowRequest]) -> list[WindowResult]:
        self.started.release()
        assert self.gate.acquire(timeout=10)
        return super().decode_windows(requests)


async def _started(engine: GatedDecoder) -> None:
    assert await asyncio.to_thread(engine.started.acquire, True, 10)


async def test_interims_wait_while_finals_decode_and_finals_go_one_length_at_a_time() -> None:
    """Two slots (the reserved one free): an interim would run beside a final; it waits instead, until no final
    is left. Finals of other lengths are decoded in jobs of their own (each out when it is decoded), those of
    one length together."""
    scheduler = Scheduler(1, 16, 30, reserved=1)
    engine = GatedDecoder()
    batcher = PassBatcher(scheduler, engine)  # type: ignore[arg-type]
    first = asyncio.create_task(batcher.decode(window(SAMPLE_RATE), urgent=True))
    await _started(engine)  # the first final decodes
    interim = asyncio.create_task(batcher.decode(window(3 * SAMPLE_RATE)))
    finals = [asyncio.create_task(batcher.decode(window(n), urgent=True))
              for n in (5 * SAMPLE_RATE, 8 * SAMPLE_RATE, 5 * SAMPLE_RATE - 100)]
    await asyncio.sleep(0.2)
    assert engine.started.acquire(timeout=0) is False  # the interim did not start beside the final
    for _ in range(3):  # first final, then the two 5 s finals together, then the 8 s one
        engine.gate.release()
        if _ < 2:
            await _started(engine)
    engine.gate.release()  # the interim, once every final is out
    await asyncio.gather(first, *finals, interim)
    assert engine.batches == [[SAMPLE_RATE], [5 * SAMPLE_RATE, 5 * SAMPLE_RATE - 100], [8 * SAMPLE_RATE],
                              [3 * SAMPLE_RATE]]
    scheduler.close()


async def test_an_interims_job_takes_a_bounded_input() -> None:
    scheduler = Scheduler(1, 16, 30)
    engine = RecordingDecoder()
    batcher = PassBatcher(scheduler, engine)  # type: ignore[arg-type]
    blocker = asyncio.create_task(scheduler.run(lambda: time.sleep(0.3)))
    await asyncio.sleep(0.05)
    seconds = (15, 8, 2, 12)  # encoder inputs of 20, 13, 7 and 17 s
    await asyncio.gather(*(batcher.decode(window(s * SAMPLE_RATE)) for s in seconds))
    await blocker
    budget = INTERIM_JOB_INPUT_S * SAMPLE_RATE
    assert [len(b) for b in engine.batches] == [1, 2, 1]  # 20 | 13 + 7 | 17
    assert all(len(b) == 1 or sum(n + 5 * SAMPLE_RATE for n in b) <= budget for b in engine.batches)
    scheduler.close()


async def test_finals_of_two_lengths_decode_at_once_on_two_slots() -> None:
    scheduler = Scheduler(1, 16, 30, reserved=1)
    engine = GatedDecoder()
    batcher = PassBatcher(scheduler, engine, final_jobs=2)  # type: ignore[arg-type]
    finals = [asyncio.create_task(batcher.decode(window(n * SAMPLE_RATE), urgent=True)) for n in (2, 7)]
    await _started(engine)
    await _started(engine)  # the second started before the first was let through
    engine.gate.release()
    engine.gate.release()
    await asyncio.gather(*finals)
    assert sorted(map(tuple, engine.batches)) == [(2 * SAMPLE_RATE,), (7 * SAMPLE_RATE,)]
    scheduler.close()


async def test_an_interim_no_longer_wanted_is_dropped_undecoded() -> None:
    """An interim that waited behind a final and is of no use any more (its utterance went final meanwhile) is
    answered None without decoding; one still wanted is decoded."""
    scheduler = Scheduler(1, 16, 30, reserved=1)
    engine = GatedDecoder()
    batcher = PassBatcher(scheduler, engine)  # type: ignore[arg-type]
    final = asyncio.create_task(batcher.decode(window(SAMPLE_RATE), urgent=True))
    await _started(engine)
    wanted = {2: True, 3: True}
    interims = [asyncio.create_task(batcher.decode(window(n * SAMPLE_RATE), wanted=lambda n=n: wanted[n]))
                for n in (2, 3)]
    await asyncio.sleep(0.1)
    wanted[2] = False  # its utterance was made final by the final's pass
    engine.gate.release()
    await _started(engine)
    engine.gate.release()
    results = await asyncio.gather(final, *interims)
    assert results[1] is None and results[2] is not None and results[2].text == f"window of {3 * SAMPLE_RATE}"
    assert engine.batches == [[SAMPLE_RATE], [3 * SAMPLE_RATE]]
    scheduler.close()


class ClosableGatedDecoder(GatedDecoder):
    closed = False

    def close(self) -> None:
        self.closed = True


async def test_interims_move_to_their_copy_and_leave_both_shared_slots_to_finals() -> None:
    """With ``interims_copy``, the first interim loads the copy (decoding on the shared model meanwhile); from then
    on interims decode on the copy, on a lane of their own: an interim in progress there (starved by the OS in
    the idle class) holds no shared slot, so two finals still decode at once beside it. Finals never go to the
    copy; closing the batcher closes the copy it loaded."""
    scheduler = Scheduler(1, 16, 30, reserved=1)
    shared, copy = GatedDecoder(), ClosableGatedDecoder()
    loads: list[int] = []

    def load() -> ClosableGatedDecoder:
        loads.append(1)
        return copy

    batcher = PassBatcher(scheduler, shared, final_jobs=2, interims_copy=load)  # type: ignore[arg-type]
    shared.gate.release()
    first = await batcher.decode(window(SAMPLE_RATE))  # loads the copy, decoded on the shared model
    assert first is not None and shared.batches == [[SAMPLE_RATE]]
    await _started(shared)
    for _ in range(100):
        if batcher.copy is not None:
            break
        await asyncio.sleep(0.01)
    assert batcher.copy is copy and loads == [1]
    interim = asyncio.create_task(batcher.decode(window(2 * SAMPLE_RATE)))
    await _started(copy)  # decoding on the copy, held at its gate
    finals_started = [asyncio.create_task(batcher.decode(window(n * SAMPLE_RATE), urgent=True)) for n in (3, 4)]
    await _started(shared)
    await _started(shared)  # both finals decode at once: the interim holds no shared slot
    shared.gate.release()
    shared.gate.release()
    finals = await asyncio.gather(*finals_started)
    assert sorted(map(tuple, shared.batches[1:])) == [(3 * SAMPLE_RATE,), (4 * SAMPLE_RATE,)]
    assert all(f is not None for f in finals)
    copy.gate.release()
    assert (await interim).text == f"window of {2 * SAMPLE_RATE}"
    assert copy.batches == [[2 * SAMPLE_RATE]] and loads == [1]
    scheduler.close()
    batcher.close()
    assert copy.closed and batcher.copy is None


async def test_a_copy_that_fails_to_load_leaves_interims_on_the_shared_model() -> None:
    scheduler = Scheduler(1, 16, 30, reserved=1)
    shared = RecordingDecoder()

    def load() -> RecordingDecoder:
        raise RuntimeError("no memory for a second copy")

    batcher = PassBatcher(scheduler, shared, interims_copy=load)  # type: ignore[arg-type]
    await batcher.decode(window(SAMPLE_RATE))
    await asyncio.sleep(0.1)
    assert (await batcher.decode(window(2 * SAMPLE_RATE))) is not None
    assert shared.batches == [[SAMPLE_RATE], [2 * SAMPLE_RATE]] and batcher.copy is None
    scheduler.close()
