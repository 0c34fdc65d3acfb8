"""Live transcription benchmark: real-time replay through the WebSocket against a real server.

    .venv/bin/python bench/bench_live.py [--model base] [--concurrency 2,3] [--tiny-concurrency 4,5]

1. The 276 s chapter is streamed in real time (100 ms frames) to a server running base int8 on 2 threads.
   Utterances are the Silero VAD speech chunks of the chapter (the manifest's 38 LibriSpeech utterances are
   concatenated with no gaps and only some have their own file, so the speech detector marks where speech
   ends). Reported: end of speech -> final delay (p50/p95), interim update interval, speech start -> first
   interim words, the delay at the start vs the end of the chapter, and the server's CPU time after the last
   final while silence keeps streaming (what a finished utterance still costs).
2. N streams at once (different parts of the chapter, real time) on base and on tiny.en: a level is
   sustained when every stream keeps p95 final delay <= 2 s and finishes within 2 s of its audio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import psutil
from faster_whisper.vad import VadOptions, get_speech_timestamps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stt.audio import SAMPLE_RATE, decode_audio  # noqa: E402
from tests.helpers import AUDIO_DIR, wer  # noqa: E402

CHAPTER = AUDIO_DIR / "long" / "1089-134686_full_chapter.flac"
TOKEN = "bench-token"
CHUNK = SAMPLE_RATE // 10
QUERY = "/v1/listen?encoding=linear16&sample_rate=16000&interim_results=true&punctuate=true"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, model: str) -> None:
        self.port = free_port()
        config = {"server": {"http": {"host": "127.0.0.1", "port": self.port, "allowed_tokens": [TOKEN]}},
                  "asr": {"model": model, "threads": 2}, "limits": {"max_streams": 16}}
        self._config = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        json.dump(config, self._config)
        self._config.close()
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "server.py"), "--config", self._config.name],
                                     cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.ps = psutil.Process(self.proc.pid)

    async def ready(self) -> None:
        async with aiohttp.ClientSession() as http:
            for _ in range(600):
                try:
                    async with http.get(f"http://127.0.0.1:{self.port}/health") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError("server did not start")

    def cpu(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        os.unlink(self._config.name)


async def replay(port: int, audio: np.ndarray, tail_silence_s: float = 0.0,
                 on_last_final: Any = None) -> tuple[float, list[tuple[float, dict[str, Any]]]]:
    """Stream in real time; returns the start time (monotonic) and every message with its arrival time."""
    data = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    data += b"\0\0" * int(tail_silence_s * SAMPLE_RATE)
    messages: list[tuple[float, dict[str, Any]]] = []
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"http://127.0.0.1:{port}{QUERY}", protocols=("token", TOKEN)) as ws:
            started = time.monotonic()

            async def receive() -> None:
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        messages.append((time.monotonic() - started, json.loads(msg.data)))

            reader = asyncio.create_task(receive())
            step = CHUNK * 2
            for i in range(0, len(data), step):
                await ws.send_bytes(data[i:i + step])
                await asyncio.sleep(max(0.0, started + (i + step) / (2 * SAMPLE_RATE) - time.monotonic()))
            await ws.send_str(json.dumps({"type": "CloseStream"}))
            await reader
    return started, messages


def speech_chunks(audio: np.ndarray) -> list[tuple[float, float]]:
    chunks = get_speech_timestamps(audio, VadOptions(min_silence_duration_ms=300, speech_pad_ms=0))
    return [(c["start"] / SAMPLE_RATE, c["end"] / SAMPLE_RATE) for c in chunks]


def analyse(messages: list[tuple[float, dict[str, Any]]], chunks: list[tuple[float, float]]) -> dict[str, Any]:
    results = [(t, m) for t, m in messages if m.get("type") == "Results"]
    finals = [(t, m) for t, m in results if m["is_final"]]
    delays: list[tuple[float, float]] = []  # (speech end, delay)
    for t, m in finals:
        end = m["start"] + m["duration"]
        inside = [e for s, e in chunks if m["start"] - 0.05 <= e <= end + 0.35]
        if inside and m["speech_final"]:
            delays.append((inside[-1], t - inside[-1]))
    first_words = []
    gaps: list[float] = []
    by_start: dict[float, list[float]] = {}
    for t, m in results:
        if not m["is_final"] and m["channel"]["alternatives"][0]["transcript"]:
            by_start.setdefault(m["start"], []).append(t)
    for start, times in by_start.items():
        speech = next((s for s, _ in chunks if s >= start - 0.05), None)
        if speech is not None:
            first_words.append(times[0] - speech)
        gaps += [b - a for a, b in zip(times, times[1:])]
    values = [d for _, d in delays]
    text = " ".join(m["channel"]["alternatives"][0]["transcript"] for _, m in finals)
    return {"delays": delays, "values": values, "first_words": first_words, "gaps": gaps, "text": text}


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def chapter(model: str, seconds: float) -> None:
    audio = decode_audio(CHAPTER.read_bytes())[:int(seconds * SAMPLE_RATE)]
    chunks = speech_chunks(audio)
    server = Server(model)
    try:
        await server.ready()
        _, messages = await replay(server.port, audio, tail_silence_s=5.0)
        report = analyse(messages, chunks)
        finals_t = [t for t, m in messages if m.get("type") == "Results" and m["is_final"]]
    finally:
        server.stop()
    values = report["values"]
    n = max(1, len(values) // 5)
    reference = [line.split("\t") for line in (AUDIO_DIR / "manifest.tsv").read_text().splitlines()]
    ref = next(r[6] for r in reference if r[0] == "long/1089-134686_full_chapter.flac")
    print(f"== chapter, {model} int8, 2 threads, real time ({len(audio) / SAMPLE_RATE:.0f} s, "
          f"{len(chunks)} speech chunks, {len(values)} speech finals)")
    print(f"end of speech -> final: p50 {pct(values, 50):.2f} s, p95 {pct(values, 95):.2f} s, "
          f"max {max(values):.2f} s  (targets 1.0 / 2.0)")
    print(f"speech start -> first interim words: p50 {pct(report['first_words'], 50):.2f} s, "
          f"p95 {pct(report['first_words'], 95):.2f} s  (target 1.0)")
    print(f"interim update interval: p50 {pct(report['gaps'], 50):.2f} s, p95 {pct(report['gaps'], 95):.2f} s")
    print(f"final delay, first {n} vs last {n} utterances: {statistics.mean(values[:n]):.2f} s vs "
          f"{statistics.mean(values[-n:]):.2f} s")
    print(f"last final at {finals_t[-1]:.1f} s of {len(audio) / SAMPLE_RATE + 5:.1f} s streamed")
    if len(audio) == len(decode_audio(CHAPTER.read_bytes())):
        print(f"chapter WER of the finals: {wer(ref, report['text']):.3f}")


async def cpu_after_final(model: str) -> None:
    """Server CPU while 5 s of silence streams after an utterance's final (decoding work left: should be 0)."""
    audio = decode_audio((AUDIO_DIR / "en/librispeech/1089-134686-0000.flac").read_bytes())
    server = Server(model)
    try:
        await server.ready()
        data = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes() + b"\0\0" * (6 * SAMPLE_RATE)
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"http://127.0.0.1:{server.port}{QUERY}", protocols=("token", TOKEN)) as ws:
                started = time.monotonic()
                final_at: list[float] = []
                cpu_marks: list[float] = []

                async def receive() -> None:
                    async for msg in ws:
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            m = json.loads(msg.data)
                            if m.get("type") == "Results" and m["is_final"] and not final_at:
                                final_at.append(time.monotonic() - started)
                                cpu_marks.append(server.cpu())

                reader = asyncio.create_task(receive())
                step = CHUNK * 2
                for i in range(0, len(data), step):
                    await ws.send_bytes(data[i:i + step])
                    await asyncio.sleep(max(0.0, started + (i + step) / (2 * SAMPLE_RATE) - time.monotonic()))
                cpu_end = server.cpu()
                wall_end = time.monotonic() - started
                await ws.send_str(json.dumps({"type": "CloseStream"}))
                await reader
    finally:
        server.stop()
    if final_at:
        spent = cpu_end - cpu_marks[0]
        print(f"CPU after the final (silence keeps streaming for {wall_end - final_at[0]:.1f} s): "
              f"{spent:.2f} CPU-s ({spent / (wall_end - final_at[0]) * 100:.1f}% of one core; speech detection "
              f"only, no decoding)")


async def concurrent(model: str, levels: list[int], seconds: float = 45.0) -> None:
    audio = decode_audio(CHAPTER.read_bytes())
    server = Server(model)
    try:
        await server.ready()
        for n in levels:
            parts = [audio[int(i * 50 * SAMPLE_RATE):int((i * 50 + seconds) * SAMPLE_RATE)] for i in range(n)]
            runs = await asyncio.gather(*(replay(server.port, p) for p in parts))
            worst_p95, worst_tail, p50s = 0.0, 0.0, []
            for part, (_, messages) in zip(parts, runs):
                report = analyse(messages, speech_chunks(part))
                worst_p95 = max(worst_p95, pct(report["values"], 95))
                p50s.append(pct(report["values"], 50))
                finals = [t for t, m in messages if m.get("type") == "Results" and m["is_final"]]
                worst_tail = max(worst_tail, (finals[-1] if finals else 0) - len(part) / SAMPLE_RATE)
            ok = worst_p95 <= 2.0 and worst_tail <= 2.0
            print(f"{model}: {n} concurrent real-time streams: final delay p50 {max(p50s):.2f} s (worst stream), "
                  f"p95 {worst_p95:.2f} s, last final {worst_tail:+.2f} s after the audio -> "
                  f"{'sustained' if ok else 'falling behind'}")
    finally:
        server.stop()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="base")
    parser.add_argument("--concurrency", default="2,3")
    parser.add_argument("--tiny-concurrency", default="4,5")
    parser.add_argument("--skip-chapter", action="store_true")
    parser.add_argument("--chapter-seconds", type=float, default=1e9, help="replay only the start (smoke run)")
    args = parser.parse_args()
    if not args.skip_chapter:
        await chapter(args.model, args.chapter_seconds)
        await cpu_after_final(args.model)
    if args.concurrency:
        await concurrent(args.model, [int(n) for n in args.concurrency.split(",")])
    if args.tiny_concurrency:
        await concurrent("tiny.en", [int(n) for n in args.tiny_concurrency.split(",")])


if __name__ == "__main__":
    asyncio.run(main())
