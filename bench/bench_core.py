"""Core benchmark: prints ratios measured side by side in one run (the machine is shared and noisy).

1. HTTP server end to end vs the same engine called in-process: throughput ratio (target >= 0.97), from
   wall time, and the same ratio from CPU seconds, which a busy shared machine disturbs much less.
2. faster-whisper int8 vs openai-whisper fp32, engine level: speed ratio (target >= 3.5x).
3. Peak RSS of the server process (VmHWM) with base int8 (target <= 600 MB) and its start-to-ready time
   (target <= 5 s once the models are installed).

Usage: .venv/bin/python bench/bench_core.py [--audio FILE] [--model base] [--runs 2] [--skip-openai]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stt.audio import decode_audio  # noqa: E402
from stt.engines.base import TranscribeOptions  # noqa: E402
from stt.engines.factory import load_engine  # noqa: E402
from stt.settings import settings_from_dict  # noqa: E402
from tests.helpers import AUDIO_DIR, TOKEN, manifest, wer  # noqa: E402
from tests.serverproc import ServerProcess  # noqa: E402

LONG = "long/1089-134686_full_chapter.flac"


def asr_config(args: argparse.Namespace, engine: str, compute_type: str = "int8") -> dict:
    return {"engine": engine, "model": args.model, "beam_size": 5, "threads": 2, "compute_type": compute_type}


@dataclasses.dataclass
class Run:
    wall_s: float
    cpu_s: float  # CPU seconds of the process doing the work: less sensitive to a busy shared machine
    text: str


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def direct_run(engine, data: bytes) -> Run:  # type: ignore[no-untyped-def]
    me = psutil.Process()
    cpu, started = cpu_seconds(me), time.perf_counter()
    audio = decode_audio(data)
    text = engine.transcribe(audio, TranscribeOptions(beam_size=5)).text
    return Run(time.perf_counter() - started, cpu_seconds(me) - cpu, text)


def http_run(url: str, data: bytes, server: psutil.Process) -> Run:
    request = urllib.request.Request(url + "/stt", data=data, method="POST",
                                     headers={"Authorization": f"Token {TOKEN}"})
    cpu, started = cpu_seconds(server), time.perf_counter()
    with urllib.request.urlopen(request, timeout=3600) as resp:
        body = json.loads(resp.read())
    return Run(time.perf_counter() - started, cpu_seconds(server) - cpu, body["text"])


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--audio", default=str(AUDIO_DIR / LONG))
    parser.add_argument("--model", default="base")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--skip-openai", action="store_true")
    args = parser.parse_args()
    data = Path(args.audio).read_bytes()
    reference = manifest()[LONG].transcript if args.audio.endswith(LONG) else None
    seconds = len(decode_audio(data)) / 16000
    print(f"audio: {args.audio} ({seconds:.1f} s), model {args.model}, beam 5, 2 threads, {args.runs} runs each")

    fw = load_engine(settings_from_dict({"asr": asr_config(args, "faster-whisper")}, env={}).asr)
    warmup = manifest()["en/jfk.flac"].path.read_bytes()
    direct_run(fw, warmup)  # first-call allocations are not throughput
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess({"asr": asr_config(args, "faster-whisper")}, Path(tmp)).start()
        try:
            server_proc = psutil.Process(server.proc.pid)  # type: ignore[union-attr]
            http_run(server.url, warmup, server_proc)
            direct, http = [], []
            for _ in range(args.runs):  # interleaved, so drifting machine load hits both sides alike
                direct.append(direct_run(fw, data))
                http.append(http_run(server.url, data, server_proc))
            rss = peak_rss_mb(server.proc.pid)  # type: ignore[union-attr]
        finally:
            server.terminate()
    best_direct = min(r.wall_s for r in direct)
    results = {
        "direct_wall_s": best_direct, "http_wall_s": min(r.wall_s for r in http),
        "direct_cpu_s": min(r.cpu_s for r in direct), "http_cpu_s": min(r.cpu_s for r in http),
    }
    results["server_vs_direct_throughput"] = results["direct_wall_s"] / results["http_wall_s"]
    results["server_vs_direct_cpu_ratio"] = results["direct_cpu_s"] / results["http_cpu_s"]
    results |= {"server_peak_rss_mb": rss, "server_start_to_ready_s": server.ready_after_s,
                "rtf_faster_whisper": best_direct / seconds}
    if reference:
        results["wer_http"] = wer(reference, http[-1].text)
    if not args.skip_openai:
        del fw
        ow = load_engine(settings_from_dict({"asr": asr_config(args, "openai-whisper")}, env={}).asr)
        ow_run = direct_run(ow, data)
        results["openai_whisper_wall_s"] = ow_run.wall_s
        results["faster_vs_openai_speedup"] = ow_run.wall_s / best_direct
        results["faster_vs_openai_cpu_ratio"] = ow_run.cpu_s / results["direct_cpu_s"]
        if reference:
            results["wer_openai_whisper"] = wer(reference, ow_run.text)
    report(results)
    return 0 if passed(results) else 1


TARGETS = {
    "server_vs_direct_throughput": (">=", 0.97),
    "faster_vs_openai_speedup": (">=", 3.5),
    "server_peak_rss_mb": ("<=", 600),
    "server_start_to_ready_s": ("<=", 5.0),
}


def passed(results: dict) -> bool:
    return all(_meets(results[k], op, v) for k, (op, v) in TARGETS.items() if k in results)


def _meets(value: float, op: str, target: float) -> bool:
    return value >= target if op == ">=" else value <= target


def report(results: dict) -> None:
    for key, value in results.items():
        target = TARGETS.get(key)
        verdict = ""
        if target:
            verdict = f"  target {target[0]} {target[1]}: {'PASS' if _meets(value, *target) else 'FAIL'}"
        print(f"{key:32s} {value:10.3f}{verdict}")


if __name__ == "__main__":
    sys.exit(main())
