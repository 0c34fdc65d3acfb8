"""Run by tests/diarization/test_diarization_bounds.py in a fresh process, so that its peak RSS is this job's alone.

    python -m tests.diarization.bounds_job silence MINUTES   # MINUTES of near-silence, then 10 s of speech
    python -m tests.diarization.bounds_job bursts MINUTES    # 220 ms of speech every 520 ms
    python -m tests.diarization.bounds_job speech MINUTES    # one sentence over and over: full batches of windows
    python -m tests.diarization.bounds_job cluster COUNT     # COUNT stretch embeddings of three voices

Prints one JSON line: peak RSS growth over the RSS held before the job (audio built, models loaded and
warmed), the job's CPU seconds, and what it found.
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time

import numpy as np
import psutil

from stt.audio import decode_audio
from tests.helpers import AUDIO_DIR

RATE = 16000
SPEECH = "en/librispeech/1089-134686-0000.flac"
BURST_S, PERIOD_S = 0.22, 0.52


def _speech() -> np.ndarray:
    return decode_audio((AUDIO_DIR / SPEECH).read_bytes())


def near_silence(minutes: float) -> np.ndarray:
    """``minutes`` of faint noise (-80 dBFS), then 10 s of speech; filled in place (no copies at its size)."""
    speech = _speech()[:10 * RATE]
    audio = np.empty(int(minutes * 60 * RATE) + len(speech), dtype=np.float32)
    rng = np.random.default_rng(0)
    step = 60 * RATE
    for at in range(0, len(audio) - len(speech), step):
        n = min(step, len(audio) - len(speech) - at)
        audio[at:at + n] = rng.normal(0.0, 1e-4, n)
    audio[-len(speech):] = speech
    return audio


def bursts(minutes: float) -> np.ndarray:
    """220 ms pieces of one speaker's speech every 520 ms (silence between): many tiny stretches."""
    speech = _speech()
    audio = np.zeros(int(minutes * 60 * RATE), dtype=np.float32)
    burst, period = int(BURST_S * RATE), int(PERIOD_S * RATE)
    pieces = (len(speech) - burst) // burst
    for i, at in enumerate(range(0, len(audio) - burst, period)):
        source = (i % pieces) * burst
        audio[at:at + burst] = speech[source:source + burst]
    return audio


def speech(minutes: float) -> np.ndarray:
    """One 10 s sentence over and over: speech nearly throughout, so every batch of windows is full (256 windows
    of 1.6 s), the embeddings' largest working set."""
    return np.resize(_speech(), int(minutes * 60 * RATE))


def _transcript(audio: np.ndarray):  # type: ignore[no-untyped-def]
    from stt.engines.base import Segment, Transcript, Word

    end = len(audio) / RATE
    words = tuple(Word(t, t + 0.3, " word", 0.9) for t in np.arange(max(0.0, end - 9.0), end - 0.3, 0.5))
    return Transcript("words", (Segment(0, words[0].start, words[-1].end, " words", words=words),), "en", 1.0, end)


def _measure(job):  # type: ignore[no-untyped-def]
    """The job's peak RSS over the RSS before it: the process's peak (ru_maxrss) when the job raised it,
    else the highest RSS sampled every 2 ms while it ran (the process peaked earlier, building its input)."""
    process = psutil.Process()
    before = process.memory_info().rss
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    sampled = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.002):
            sampled.append(process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        found = job()
    finally:
        done.set()
        sampler.join()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak = peak_after if peak_after > peak_before else max(sampled)
    return {"peak_growth_mb": round((peak - before) / 2**20, 1), "cpu_s": round(cpu, 2), "wall_s": round(wall, 2),
            **found}


def diarize_job(audio: np.ndarray) -> dict:
    from stt.diarization import pipeline
    from stt.diarization.diarizer import Diarizer
    from stt.diarization.types import DiarizeOptions

    diarizer = Diarizer()
    diarizer.label(_transcript(_speech()), _speech(), DiarizeOptions())  # warm: torch and ONNX arenas
    clustered: list[int] = []
    original = pipeline.cluster

    def counting(embeddings, *args, **kwargs):  # type: ignore[no-untyped-def]
        clustered.append(len(embeddings))
        return original(embeddings, *args, **kwargs)

    pipeline.cluster = counting
    stretches: list[int] = []
    spans = pipeline.speech_spans

    def counting_spans(*args, **kwargs):  # type: ignore[no-untyped-def]
        found = spans(*args, **kwargs)
        stretches.append(len(found))
        return found

    pipeline.speech_spans = counting_spans

    def job() -> dict:
        t = diarizer.label(_transcript(audio), audio, DiarizeOptions())
        speakers = {w.speaker for s in t.segments for w in s.words}
        return {"speakers": len(speakers), "clustered": clustered[-1] if clustered else 0,
                "stretches": stretches[-1] if stretches else 0,
                "audio_mb": round(audio.nbytes / 2**20, 1)}

    return _measure(job)


def cluster_job(count: int) -> dict:
    from stt.diarization.pipeline import label_units
    from stt.diarization.types import DiarizeOptions

    rng = np.random.default_rng(0)
    voices = 0.3 * np.abs(rng.normal(size=(3, 48)))  # a part every voice shares, and each voice's own
    for k in range(3):
        voices[k, 16 * k:16 * (k + 1)] += 1.0
    x = (voices[np.arange(count) % 3] + 0.3 * np.abs(rng.normal(size=(count, 48)))).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    label_units(x[:50], np.full(50, 1.0), DiarizeOptions())  # warm

    def job() -> dict:
        labels, _ = label_units(x, np.full(count, 1.0), DiarizeOptions())
        truth = np.arange(count) % 3
        pure = all(len(set(labels[truth == k])) == 1 for k in range(3))
        return {"speakers": len(set(labels.tolist())), "pure": pure}

    return _measure(job)


def main() -> None:
    kind, size = sys.argv[1], float(sys.argv[2])
    if kind == "silence":
        result = diarize_job(near_silence(size))
    elif kind == "bursts":
        result = diarize_job(bursts(size))
    elif kind == "speech":
        result = diarize_job(speech(size))
    else:
        result = cluster_job(int(size))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
