"""Why jobs run on a copy of the model at a lower OS priority (jobs.nice): a live-like pass's latency alone,
beside a job's window on the shared model (two replicas of one model, both at the usual priority: the server
with jobs.nice 0), and beside a job's window on the copy loaded at nice 10 (the default), in one process, the
three interleaved round by round.

    .venv/bin/python bench/bench_job_priority.py [--rounds 3] [--nice 10]

Passes: 8 stretches of 3-12 s of the shared chapter, beam 1, one after the other 0.3 s apart (a live stream's
finals); the job: 30 s windows of the chapter at beam 5, back to back on the other replica. Printed per mode:
pass latency p50 / max / sum, and the job windows finished meanwhile (what the passes cost the job).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stt.audio import SAMPLE_RATE, decode_audio  # noqa: E402
from stt.engines.base import Engine, WindowRequest  # noqa: E402
from stt.engines.factory import load_engine  # noqa: E402
from stt.http.faces.jobs.lifetime import niced_engine  # noqa: E402
from stt.settings import AsrSettings  # noqa: E402
from tests.helpers import AUDIO_DIR  # noqa: E402

CHAPTER = AUDIO_DIR / "long" / "1089-134686_full_chapter.flac"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nice", type=int, default=10)
    args = parser.parse_args()
    chapter = decode_audio(CHAPTER.read_bytes())
    asr = AsrSettings(model="base", threads=2, workers=1, reserved_workers=1, beam_size=5)
    shared = load_engine(asr)  # a replica for the passes, one for the job (as the server: workers 1, reserved 1)
    copy = niced_engine(load_engine, asr, args.nice)
    job = [WindowRequest(chapter[i * 30 * SAMPLE_RATE:(i + 1) * 30 * SAMPLE_RATE - SAMPLE_RATE // 2], "en", None, 5)
           for i in range(8)]
    passes = [WindowRequest(chapter[(40 + 7 * i) * SAMPLE_RATE:(40 + 7 * i + s) * SAMPLE_RATE], "en", None, 1)
              for i, s in enumerate([4, 8, 12, 6, 10, 3, 9, 5])]
    shared.decode_windows(passes[:1])
    copy.decode_windows(job[:1])
    results: dict[str, list[tuple[list[float], int]]] = {}
    for _ in range(args.rounds):
        for mode, engine in (("alone", None), ("job on the shared model", shared),
                             (f"job on the copy at nice {args.nice}", copy)):
            results.setdefault(mode, []).append(run(shared, passes, engine, job))
    for mode, runs in results.items():
        latencies = [t for r, _ in runs for t in r]
        print(f"{mode:28s} pass p50 {statistics.median(latencies):.2f} s, max {max(latencies):.2f} s, "
              f"sum {sum(latencies) / len(runs):.2f} s per round; job windows done {sum(n for _, n in runs)}")
    print(f"load average at the end {os.getloadavg()[0]:.1f} (2 cores: above ~1, other work shares them)")


def run(shared: Engine, passes: list[WindowRequest], job_engine: Engine | None,
        job: list[WindowRequest]) -> tuple[list[float], int]:
    stop, done = threading.Event(), [0]

    def background() -> None:
        while not stop.is_set():
            job_engine.decode_windows([job[done[0] % len(job)]])  # type: ignore[union-attr]
            done[0] += 1

    thread = threading.Thread(target=background) if job_engine is not None else None
    if thread is not None:
        thread.start()
        time.sleep(1.0)  # the job's window is under way when the passes come
    latencies = []
    for request in passes:
        started = time.monotonic()
        shared.decode_windows([request])
        latencies.append(time.monotonic() - started)
        time.sleep(0.3)
    stop.set()
    if thread is not None:
        thread.join()
    return latencies, done[0]


if __name__ == "__main__":
    main()
