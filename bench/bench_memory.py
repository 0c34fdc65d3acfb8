"""Peak memory of the server under the mixed load of bench_mixed, default settings beside the leanest ones.

    .venv/bin/python bench/bench_memory.py

For each configuration a fresh server (base int8, 2 threads, beam 5) gets: JFK's 11 s clip, the 276 s
chapter, the chapter again with the 11 s clip sent 1 s after it, 4 live streams, then 8 live streams (two
LibriSpeech clips each, real time). After each step the server's peak RSS (VmHWM) and current RSS are
printed, and the chapter's wall time (what the memory buys). Default: asr.reserved_workers 1 and
asr.upload_batch_seconds 60; one window: 1 and 30; lean: 0 and 30.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_core import peak_rss_mb  # noqa: E402
from bench_mixed import CHAPTER, CLIP_11S, live_level, post, wav16  # noqa: E402
from stt.audio import decode_audio  # noqa: E402
from tests.helpers import manifest  # noqa: E402
from tests.serverproc import ServerProcess  # noqa: E402

CONFIGS = {"default": {}, "one window per job": {"upload_batch_seconds": 30},
           "lean": {"reserved_workers": 0, "upload_batch_seconds": 30}}


def measure(extra: dict[str, Any]) -> list[tuple[str, float, float]]:
    m = manifest()
    chapter, jfk = wav16(decode_audio(m[CHAPTER].path.read_bytes())), m[CLIP_11S].path.read_bytes()
    asr = {"engine": "faster-whisper", "model": "base", "beam_size": 5, "threads": 2, "compute_type": "int8",
           **extra}
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess({"asr": asr, "limits": {"max_streams": 16, "max_queue": 64}}, Path(tmp)).start()
        proc = psutil.Process(server.proc.pid)  # type: ignore[union-attr]

        def step(name: str) -> None:
            rows.append((name, peak_rss_mb(proc.pid), proc.memory_info().rss / 2**20))
            print(f"  {name}: peak {rows[-1][1]:.0f} MB, now {rows[-1][2]:.0f} MB", flush=True)

        try:
            step("started")
            post(server.url, jfk)
            step("11 s clip")
            wall, _ = post(server.url, chapter)
            step(f"276 s chapter ({wall:.1f} s)")
            with ThreadPoolExecutor(1) as pool:
                long_job = pool.submit(post, server.url, chapter)
                time.sleep(1.0)
                post(server.url, jfk)
                long_job.result()
            step("chapter + 11 s clip")
            asyncio.run(live_level(server.url, 4, 2))
            step("4 live streams")
            asyncio.run(live_level(server.url, 8, 2))
            step("8 live streams")
        finally:
            server.terminate()
    return rows


def main() -> int:
    results = {}
    for name, extra in CONFIGS.items():
        print(f"{name}: {extra or 'defaults'}", flush=True)
        results[name] = measure(extra)
    print("\n| after | " + " | ".join(f"{n} peak / now" for n in results) + " |")
    print("|---|" + "---|" * len(results))
    for i, (step, *_) in enumerate(results["default"]):
        cells = [f"{rows[i][1]:.0f} / {rows[i][2]:.0f} MB" + (f" {rows[i][0][rows[i][0].find('('):]}"
                 if "(" in rows[i][0] else "") for rows in results.values()]
        print(f"| {step.split(' (')[0]} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
