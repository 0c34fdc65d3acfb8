"""Window-level scheduling with a fake engine: priorities, turns between uploads, departed clients, windows."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from stt.audio import SAMPLE_RATE
from stt.engines.base import TranscribeOptions, WindowRequest, WindowResult, Word
from stt.inference.window_batcher import WindowBatcher
from stt.inference.speech_windows import SpeechWindow, assemble, cut_windows
from stt.inference.uploads import transcribe_windows
from stt.inference.scheduler import JOBS_LANE, Priority, Scheduler
from tests.conftest import AUTH
from tests.helpers import FakeEngine, tone, wav

S = SAMPLE_RATE


class WindowEngine(FakeEngine):
    """Speech where the upload is non-zero; each window's text is its first sample's value, so a test can tell
    which upload and which window was decoded, in which job."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__(delay)
        self.jobs: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.gated: float | None = None  # when set, only jobs holding a window of this upload wait for the gate

    def find_speech(self, audio: np.ndarray) -> list[tuple[int, int]]:
        nonzero = np.flatnonzero(audio)
        if not len(nonzero):
            return []
        edges = np.flatnonzero(np.diff(nonzero) > 1)
        starts = [nonzero[0], *nonzero[edges + 1]]
        ends = [*nonzero[edges] + 1, nonzero[-1] + 1]
        return [(int(a), int(b)) for a, b in zip(starts, ends)]

    def decode_windows(self, requests: Sequence[WindowRequest]) -> list[WindowResult]:
        self.running.set()
        if self.gated is None or any(r.audio[0] == self.gated for r in requests):
            self.gate.wait(5)
        time.sleep(self.delay)
        texts = [f"{r.audio[0]:g}" for r in requests]
        self.jobs.append(texts)
        return [WindowResult(" " + t, (Word(0.0, len(r.audio) / S, " " + t, 1.0),), "en", 0.9)
                for t, r in zip(texts, requests)]


def upload(value: float, windows: int) -> np.ndarray:
    """``windows`` pieces of 30 s 'speech' of the given value, 1 s of silence between them."""
    gap = np.zeros(S, dtype=np.float32)
    return np.concatenate([p for _ in range(windows) for p in (np.full(30 * S, value, np.float32), gap)])


def transcribe(batcher: WindowBatcher, scheduler: Scheduler, engine: WindowEngine, audio: np.ndarray) -> Any:
    """One upload, as the service runs it: speech found in a scheduler job, windows through the batcher."""
    owner = object()
    return transcribe_windows(engine, audio, TranscribeOptions(language="en"),
                              lambda job: scheduler.run(job, None, Priority.SPEECH),
                              lambda windows, speech: batcher.decode(windows, owner, upload_samples=speech))


async def _until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


# -- the scheduler's priorities ---------------------------------------------------------------------------

async def test_waiting_jobs_run_finals_then_live_passes_then_uploads_each_in_arrival_order() -> None:
    scheduler = Scheduler(1, 16, 30)
    order: list[str] = []
    blocker = asyncio.create_task(scheduler.run(lambda: time.sleep(0.2)))
    await _until(lambda: scheduler.running == 1)
    jobs = [("batch-1", Priority.BATCH), ("live-1", Priority.LIVE), ("final-1", Priority.FINAL),
            ("speech-1", Priority.SPEECH), ("batch-2", Priority.BATCH), ("final-2", Priority.FINAL),
            ("short-1", Priority.SHORT), ("live-2", Priority.LIVE)]
    tasks = [asyncio.create_task(scheduler.run(lambda name=name: order.append(name), None, priority))
             for name, priority in jobs]
    await _until(lambda: scheduler.waiting == len(jobs))
    await asyncio.gather(blocker, *tasks)
    assert order == ["final-1", "final-2", "live-1", "live-2", "speech-1", "short-1", "batch-1", "batch-2"]
    assert scheduler.waiting == 0 and scheduler.running == 0
    scheduler.close()


async def test_a_cancelled_waiter_never_runs_and_its_turn_passes_on() -> None:
    scheduler = Scheduler(1, 16, 30)
    ran: list[str] = []
    blocker = asyncio.create_task(scheduler.run(lambda: time.sleep(0.2)))
    await _until(lambda: scheduler.running == 1)
    gone = asyncio.create_task(scheduler.run(lambda: ran.append("gone"), None, Priority.FINAL))
    kept = asyncio.create_task(scheduler.run(lambda: ran.append("kept")))
    await _until(lambda: scheduler.waiting == 2)
    gone.cancel()
    await asyncio.gather(blocker, kept)
    assert ran == ["kept"] and await scheduler.drain(1)
    scheduler.close()


# -- uploads take turns ----------------------------------------------------------------------------------

async def test_a_short_upload_waits_for_one_job_of_a_long_one_not_for_all_of_it() -> None:
    engine = WindowEngine(delay=0.05)
    scheduler = Scheduler(1, 16, 30)
    batcher = WindowBatcher(scheduler, engine)  # type: ignore[arg-type]
    long = asyncio.create_task(transcribe(batcher, scheduler, engine, upload(1, 8)))
    await _until(lambda: len(engine.jobs) == 1)
    short = await transcribe(batcher, scheduler, engine, upload(2, 1))
    assert short.text == "2"
    # Its search for speech went ahead of the long upload's queued job; its window took the next turn.
    assert engine.jobs.index(["2"]) <= 3  # (or the one after, when a job took its windows just before)
    assert (await long).text == " ".join(["1"] * 8)
    assert all(len(job) <= 2 for job in engine.jobs)  # a long upload's job decodes at most 60 s
    scheduler.close()


async def test_a_reserved_slot_decodes_a_short_upload_and_live_passes_beside_a_long_uploads_job() -> None:
    engine = WindowEngine()
    scheduler = Scheduler(1, 16, 30, reserved=1)
    batcher = WindowBatcher(scheduler, engine)  # type: ignore[arg-type]
    engine.gate.clear()
    engine.gated = 1.0  # the long upload's job holds its slot until the gate opens
    long = asyncio.create_task(transcribe(batcher, scheduler, engine, upload(1, 8)))
    await _until(engine.running.is_set)
    short = await transcribe(batcher, scheduler, engine, upload(2, 1))
    assert short.text == "2" and engine.jobs == [["2"]]  # decoded while the long upload's job still runs
    assert await scheduler.run(lambda: "live", None, Priority.FINAL) == "live"
    assert not long.done()
    engine.gate.set()
    assert (await long).text == " ".join(["1"] * 8)
    scheduler.close()


async def test_a_long_uploads_jobs_never_take_a_reserved_slot() -> None:
    scheduler = Scheduler(1, 16, 30, reserved=1)
    gate = threading.Event()
    first = asyncio.create_task(scheduler.run(lambda: gate.wait(5), None, Priority.BATCH))
    await _until(lambda: scheduler.running == 1)
    second = asyncio.create_task(scheduler.run(lambda: "batch", None, Priority.BATCH))
    await _until(lambda: scheduler.waiting == 1)
    await asyncio.sleep(0.05)
    assert scheduler.running == 1  # the reserved slot stays free for urgent work ...
    for priority in (Priority.FINAL, Priority.LIVE, Priority.SPEECH, Priority.SHORT):
        assert await scheduler.run(lambda: "urgent", None, priority) == "urgent"  # ... which runs at once
    assert not second.done()
    gate.set()
    assert await second == "batch"
    await first
    scheduler.close()


async def test_jobs_on_the_idle_lane_leave_both_shared_slots_to_live_passes_and_are_bounded_by_their_own() -> None:
    """A job's window on the idle-class copy (the idle lane) waits for the cores as long as live passes keep them:
    it must not hold a shared slot meanwhile. Its lane is bounded by its own slots."""
    scheduler = Scheduler(1, 16, 30, reserved=1)
    scheduler.add_lane(JOBS_LANE, 1)
    gate = threading.Event()
    running: list[object] = []

    def job(name: object) -> object:
        running.append(name)
        gate.wait(5)
        return name

    first = asyncio.create_task(scheduler.run(lambda: job("job 1"), None, Priority.JOBS, bounded=False, lane=JOBS_LANE))
    await _until(lambda: running == ["job 1"])
    second = asyncio.create_task(scheduler.run(lambda: job("job 2"), None, Priority.JOBS, bounded=False, lane=JOBS_LANE))
    await _until(lambda: scheduler.waiting == 1)
    # Both shared slots free: an interim and a final pass of one stream run at once beside the job.
    passes = [asyncio.create_task(scheduler.run(lambda p=p: job(p), None, p)) for p in (Priority.LIVE, Priority.FINAL)]
    await _until(lambda: len(running) == 3)
    assert sorted(running[1:]) == sorted([Priority.LIVE, Priority.FINAL]) and scheduler.running == 3
    assert not second.done()  # the lane's one slot is taken
    gate.set()
    assert await first == "job 1" and await second == "job 2"
    await asyncio.gather(*passes)
    assert scheduler.running == 0 and scheduler.waiting == 0
    scheduler.close()


async def test_without_an_idle_lane_a_job_takes_a_shared_slot() -> None:
    scheduler = Scheduler(1, 16, 30, reserved=1)
    gate = threading.Event()
    first = asyncio.create_task(scheduler.run(lambda: gate.wait(5), None, Priority.JOBS, bounded=False, lane=JOBS_LANE))
    await _until(lambda: scheduler.running == 1)
    second = asyncio.create_task(scheduler.run(lambda: "live", None, Priority.LIVE))
    assert await second == "live"  # the reserved slot
    third = asyncio.create_task(scheduler.run(lambda: "batch", None, Priority.BATCH))
    await asyncio.sleep(0.05)
    assert not third.done()  # the job holds the only slot a long upload may take
    gate.set()
    assert await third == "batch"
    await first
    scheduler.close()


async def test_short_uploads_sent_together_share_one_batch() -> None:
    engine = WindowEngine()
    scheduler = Scheduler(1, 16, 30)
    batcher = WindowBatcher(scheduler, engine)  # type: ignore[arg-type]
    engine.gate.clear()
    blocker = asyncio.create_task(scheduler.run(lambda: engine.gate.wait(5)))  # the worker is busy meanwhile
    short = [np.full(5 * S, v, np.float32) for v in (1, 2, 3, 4)]
    uploads = [asyncio.create_task(transcribe(batcher, scheduler, engine, a)) for a in short]
    await _until(lambda: scheduler.waiting == 4)  # four searches for speech behind the busy worker
    engine.gate.set()
    texts = [t.text for t in await asyncio.gather(*uploads)]
    await blocker
    assert texts == ["1", "2", "3", "4"]
    # One job per upload before; now the windows waiting when a job starts share it (the last search may end
    # just after the job took its windows: then it goes in the next one).
    assert len(engine.jobs) <= 2 and len(engine.jobs[0]) >= 3
    assert sorted(t for job in engine.jobs for t in job) == ["1", "2", "3", "4"]
    scheduler.close()


async def test_a_short_clips_job_is_bounded_by_its_encoder_input() -> None:
    """A job is bounded by its windows' encoder input (audio + 5 s of silence each), not by the clips' own
    seconds: twenty 1 s clips in one job would encode 120 s; at most 60 s of input go in one job."""
    engine = WindowEngine()
    scheduler = Scheduler(1, 32, 30)
    batcher = WindowBatcher(scheduler, engine)  # type: ignore[arg-type]
    engine.gate.clear()
    blocker = asyncio.create_task(scheduler.run(lambda: engine.gate.wait(5)))
    tiny = [np.full(S, v, np.float32) for v in range(1, 21)]
    uploads = [asyncio.create_task(transcribe(batcher, scheduler, engine, a)) for a in tiny]
    await _until(lambda: scheduler.waiting == 20)
    engine.gate.set()
    texts = [t.text for t in await asyncio.gather(*uploads)]
    await blocker
    assert texts == [str(v) for v in range(1, 21)]
    assert max(len(job) for job in engine.jobs) == 10, engine.jobs  # 10 x (1 s + 5 s) = 60 s
    scheduler.close()


async def test_an_upload_whose_client_left_decodes_no_further_window() -> None:
    engine = WindowEngine()
    scheduler = Scheduler(1, 16, 30)
    batcher = WindowBatcher(scheduler, engine)  # type: ignore[arg-type]
    engine.gate.clear()
    task = asyncio.create_task(transcribe(batcher, scheduler, engine, upload(1, 8)))
    await _until(engine.running.is_set)  # the first batch's job runs
    task.cancel()
    engine.gate.set()
    assert await scheduler.drain(5)
    await asyncio.sleep(0.1)
    assert engine.jobs == [["1", "1"]]  # the job that was running finished; nothing after it
    scheduler.close()


async def test_silence_is_never_decoded() -> None:
    engine = WindowEngine()
    scheduler = Scheduler(1, 16, 30)
    batcher = WindowBatcher(scheduler, engine)  # type: ignore[arg-type]
    transcript = await transcribe(batcher, scheduler, engine, np.zeros(30 * S, np.float32))
    assert transcript.text == "" and transcript.segments == () and engine.jobs == []
    assert transcript.duration == 30.0
    scheduler.close()


# -- windows and the upload's timeline ------------------------------------------------------------------

def test_speech_is_joined_into_windows_of_at_most_30_s_in_order() -> None:
    speech = [(0, 10 * S), (12 * S, 25 * S), (26 * S, 40 * S), (41 * S, 112 * S)]
    windows = cut_windows(speech, 112 * S)
    assert [w.samples for w in windows] == [23 * S, 14 * S, 30 * S, 30 * S, 11 * S]
    assert all(w.samples <= 30 * S for w in windows)
    assert [p for w in windows for p in w.pieces][0] == (0, 10 * S)
    assert cut_windows([], 10 * S) == [] and cut_windows([(5, 5)], 10) == []


def test_times_in_a_window_map_back_across_the_cut_out_pauses() -> None:
    window = SpeechWindow(((2 * S, 5 * S), (9 * S, 10 * S)))
    assert window.original_time(0.0) == 2.0
    assert window.original_time(2.5) == 4.5
    assert window.original_time(3.5) == 9.5  # half a second into the second piece
    assert window.original_time(99.0) == 10.0


def test_words_make_one_segment_per_speech_piece_on_the_upload_timeline() -> None:
    window = SpeechWindow(((2 * S, 5 * S), (9 * S, 10 * S)))
    words = (Word(0.1, 1.0, " one", 0.9), Word(1.2, 2.8, " two", 0.9), Word(3.1, 3.9, " three", 0.9))
    transcript = assemble([window], [WindowResult("one two three", words, "de", 0.7)],
                          np.zeros(12 * S, np.float32), TranscribeOptions())
    assert [(s.start, s.end, s.text) for s in transcript.segments] == [(2.1, 4.8, " one two"),
                                                                      (9.1, 9.9, " three")]
    assert transcript.text == "one two three"
    assert (transcript.language, transcript.language_probability) == ("de", 0.7)


def test_words_mapped_across_cut_out_pauses_stay_in_order_with_their_nearer_piece() -> None:
    # Three pieces (2-5 s, 9-10 s, 14-16 s of the upload): "a" ends 0.4 s into the second piece, "c" starts
    # 0.2 s before the second ends and ends 0.4 s into the third; both words' middles fall into cut-out pauses.
    # They were once gathered into one segment at "a"'s start, which put "c" before "b" (FLEURS pt joined:
    # "largada. O Skelegel. romantismo").
    window = SpeechWindow(((2 * S, 5 * S), (9 * S, 10 * S), (14 * S, 16 * S)))
    words = (Word(0.5, 1.0, " x", 0.9), Word(2.0, 3.4, " a", 0.9), Word(3.5, 3.6, " b", 0.9),
             Word(3.8, 4.4, " c", 0.9), Word(4.5, 5.0, " d.", 0.9))
    transcript = assemble([window], [WindowResult("x a b c d.", words, "pt")], np.zeros(17 * S, np.float32),
                          TranscribeOptions())
    assert transcript.text == "x a b c d."
    assert [(s.start, s.text) for s in transcript.segments] == [(2.5, " x a"), (9.5, " b"), (9.8, " c d.")]


# -- the HTTP faces -------------------------------------------------------------------------------------

class RecordingEngine(FakeEngine):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[TranscribeOptions] = []

    def transcribe(self, audio: np.ndarray, options: TranscribeOptions) -> Any:
        self.seen.append(options)
        return super().transcribe(audio, options)


@pytest.mark.parametrize(("query", "whole"), [("", False), ("?vad_filter=false", True),
                                              ("?temperature=0.4", True)])
async def test_vad_filter_false_decodes_the_whole_upload_in_one_call(make_client: Any, query: str,
                                                                    whole: bool) -> None:
    engine = RecordingEngine()
    client = await make_client(engine)
    resp = await client.post("/stt" + query, data=wav(tone(440, 2.0, S)), headers=AUTH)
    assert resp.status == 200 and (await resp.json())["text"] == "hello world"
    (options,) = engine.seen
    # The opt-out hands the whole upload over with the caller's options (conditioned on previous text);
    # windows reach this engine through the per-window fallback: no context, temperature 0, no second VAD.
    assert options.condition_on_previous_text is whole
    if not whole:
        assert options.temperature == (0.0,) and options.vad_filter is False


def test_a_piece_with_several_sentences_makes_one_segment_per_sentence() -> None:
    window = SpeechWindow(((0, 10 * S),))
    words = (Word(0.1, 1.0, " Yes.", 0.9), Word(1.2, 2.0, " Go", 0.9), Word(2.1, 2.9, " on?", 0.9),
             Word(3.0, 3.5, " Well", 0.9))
    transcript = assemble([window], [WindowResult("Yes. Go on? Well", words, "en")],
                          np.zeros(10 * S, np.float32), TranscribeOptions())
    assert [(s.start, s.end, s.text) for s in transcript.segments] == [
        (0.1, 1.0, " Yes."), (1.2, 2.9, " Go on?"), (3.0, 3.5, " Well")]


async def test_asynchronous_jobs_wait_behind_everything_and_never_take_a_reserved_slot() -> None:
    scheduler = Scheduler(1, 16, 30, reserved=1)
    gate = threading.Event()
    order: list[str] = []
    first = asyncio.create_task(scheduler.run(lambda: gate.wait(5), None, Priority.JOBS))
    await _until(lambda: scheduler.running == 1)
    job = asyncio.create_task(scheduler.run(lambda: order.append("job"), None, Priority.JOBS, bounded=False))
    await _until(lambda: scheduler.waiting == 1)
    assert await scheduler.run(lambda: "final", None, Priority.FINAL) == "final"  # the reserved slot is free
    batch = asyncio.create_task(scheduler.run(lambda: order.append("batch"), None, Priority.BATCH))
    await _until(lambda: scheduler.waiting == 2)
    gate.set()
    await asyncio.gather(first, job, batch)
    assert order == ["batch", "job"]  # a long upload's window goes before a job's that waited longer
    scheduler.close()
