"""Peak memory of the server under the mixed load of bench_mixed, default settings beside the leanest ones.

    .venv/bin/python bench/bench_memory.py

For each configuration a fresh server (base int8, 2 threads, beam 5) gets: JFK's 11 s clip, the 276 s
chapter, the chapter again with the 11 s clip sent 1 s after it, 4 live streams, then 8 live streams (two
LibriSpeech clips each, real time). After each step the server's peak RSS (VmHWM) and current RSS are
printed, and the chapter's wall time (what the memory buys). Default: asr.reserved_workers 1 and
asr.upload_batch_seconds 60; one window: 1 and 30; lean: 0 and 30.

The baseline, in its own process: faster-whisper's ``WhisperModel.transcribe`` (base int8, 2 threads, beam 5)
on the same files one after the other (the clip, the chapter, the clip again), its peak RSS after each; the
last lines print each configuration's peak over the chapter + clips against it (issue 19's target: <= 1.1x).
``--configs default`` runs only the named configurations; "huge pages" is the default with the opt-in glibc
tunables server.py starts itself with under ``STT_HUGE_PAGES=1`` (stt/memory_budget.py); "one arena" and "two
arenas" are the default with ``MALLOC_ARENA_MAX`` set in the server's environment (server.py's own cap is one:
``--configs "two arenas,one arena"`` measures what the second arena costs; not run by default).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
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
           "lean": {"reserved_workers": 0, "upload_batch_seconds": 30}, "huge pages": {}, "one arena": {},
           "two arenas": {}}
# The server's environment per configuration: "huge pages" is the default with the opt-in glibc tunables that
# server.py starts itself with under STT_HUGE_PAGES=1 (stt/memory_budget.py, huge_page_tunables).
ENVS = {"huge pages": {"STT_HUGE_PAGES": "1"}, "one arena": {"MALLOC_ARENA_MAX": "1"},
        "two arenas": {"MALLOC_ARENA_MAX": "2"}}


def measure(extra: dict[str, Any], env: dict[str, str]) -> list[tuple[str, float, float]]:
    m = manifest()
    chapter, jfk = wav16(decode_audio(m[CHAPTER].path.read_bytes())), m[CLIP_11S].path.read_bytes()
    asr = {"engine": "faster-whisper", "model": "base", "beam_size": 5, "threads": 2, "compute_type": "int8",
           **extra}
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess({"asr": asr, "limits": {"max_streams": 16, "max_queue": 64}}, Path(tmp),
                               env).start()
        proc = psutil.Process(server.proc.pid)  # type: ignore[union-attr]

        def step(name: str) -> None:
            rows.append((name, peak_rss_mb(proc.pid), proc.memory_info().rss / 2**20))
            print(f"  {name}: peak {rows[-1][1]:.0f} MB, now {rows[-1][2]:.0f} MB", flush=True)

        try:
            step("started")
            post(server.url, jfk)
            step("11 s clip")
            cpu = cpu_seconds(proc)
            wall, _ = post(server.url, chapter)
            step(f"276 s chapter ({wall:.1f} s, {cpu_seconds(proc) - cpu:.1f} CPU-s)")
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


def cpu_seconds(proc: psutil.Process) -> float:
    """The server's CPU time (all its threads): a measure of the work that load on the machine barely moves,
    where wall times on shared cores do."""
    times = proc.cpu_times()
    return times.user + times.system


IN_PROCESS_STEPS = ("started", "11 s clip", "276 s chapter", "chapter + 11 s clip")


# The baseline runs in a process of its own that imports only faster-whisper (the bench's own imports, through
# tests.helpers, bring torch: +260 MB that a user of the library does not have).
IN_PROCESS = """
import json, os, sys, time
from pathlib import Path
from faster_whisper import WhisperModel
from stt.models import default_cache_dir, resolve_ct2_model
def peak():
    return int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]) / 1024
audio, steps, files = Path(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
model = WhisperModel(str(resolve_ct2_model("base", default_cache_dir())), device="cpu", compute_type="int8",
                     cpu_threads=2, local_files_only=True)
rows = [(steps[0], peak(), 0.0, 0.0)]
for step, name in zip(steps[1:], files):
    started, cpu = time.perf_counter(), time.process_time()
    segments, _ = model.transcribe(str(audio / name), beam_size=5)
    "".join(s.text for s in segments)  # the generator runs the decoding
    rows.append((step, peak(), time.perf_counter() - started, time.process_time() - cpu))
print(json.dumps(rows))
"""


def measure_in_process() -> list[tuple[str, float, float]]:
    audio = manifest()[CHAPTER].path.parents[1]
    out = subprocess.run([sys.executable, "-c", IN_PROCESS, str(audio), json.dumps(IN_PROCESS_STEPS),
                          json.dumps([CLIP_11S, CHAPTER, CLIP_11S])], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    rows = [tuple(r) for r in json.loads(out.stdout.strip().splitlines()[-1])]
    for step, peak, wall, cpu in rows:
        print(f"  {step}: peak {peak:.0f} MB" + (f" ({wall:.1f} s, {cpu:.1f} CPU-s)" if wall else ""), flush=True)
    return rows  # type: ignore[return-value]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--configs", default=",".join(c for c in CONFIGS if "arena" not in c),
                        help="comma-separated: " + ", ".join(CONFIGS))
    args = parser.parse_args()
    print("in-process faster-whisper (baseline)", flush=True)
    baseline = measure_in_process()
    results = {}
    for name in args.configs.split(","):
        extra, env = CONFIGS[name], ENVS.get(name, {})
        print(f"{name}: {extra or 'defaults'}" + (f", environment {env}" if env else ""), flush=True)
        results[name] = measure(extra, env)
    print("\n| after | " + " | ".join(f"{n} peak / now" for n in results) + " |")
    print("|---|" + "---|" * len(results))
    for i, (step, *_) in enumerate(next(iter(results.values()))):
        cells = [f"{rows[i][1]:.0f} / {rows[i][2]:.0f} MB" + (f" {rows[i][0][rows[i][0].find('('):]}"
                 if "(" in rows[i][0] else "") for rows in results.values()]
        print(f"| {step.split(' (')[0]} | " + " | ".join(cells) + " |")
    base_peak, base_wall, base_cpu = baseline[-1][1], baseline[2][2], baseline[2][3]
    print(f"\nin-process faster-whisper: peak {base_peak:.0f} MB over the clip, the chapter and the clip; "
          f"chapter {base_wall:.1f} s, {base_cpu:.1f} CPU-s")
    for name, rows in results.items():
        peak = rows[3][1]  # after the chapter + 11 s clip
        print(f"{name}: peak {peak:.0f} MB over the chapter + clips = {peak / base_peak:.2f}x in-process "
              f"(target <= 1.1x); chapter {rows[2][0][rows[2][0].find('(') + 1:-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
