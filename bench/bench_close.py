"""CloseStream latency of the live face: the time from a client's CloseStream (sent right after its last
audio frame, streamed in real time) to the last final and to Metadata. Deepgram's Python SDK stops reading
0.5 s after CloseStream, so target: Metadata within 0.5 s at p95.

Usage: .venv/bin/python bench/bench_close.py [--model base] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import aiohttp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stt.http.app import create_app  # noqa: E402
from stt.engines.factory import load_engine  # noqa: E402
from tests.conftest import make_settings  # noqa: E402
from tests.helpers import TOKEN  # noqa: E402
from tests.live_helpers import load_pcm16  # noqa: E402
from tests.live_server import serve_in_thread  # noqa: E402

CLIPS = ("en/librispeech/1089-134686-0001.flac", "en/librispeech/1089-134686-0003.flac",
         "en/librispeech/1089-134686-0014.flac", "en/librispeech/1089-134686-0030.flac",
         "en/librispeech/1089-134686-0036.flac", "en/jfk.flac", "en/librispeech/1089-134686-0000.flac",
         "en/librispeech/1089-134686-0005.flac")
TARGET_S = 0.5
CHUNK = 3200  # bytes: 100 ms of 16 kHz Int16


async def one(url: str, data: bytes) -> tuple[float, float]:
    """(CloseStream -> last final, CloseStream -> Metadata) in seconds."""
    path = f"{url.replace('http', 'ws')}/v1/listen?encoding=linear16&sample_rate=16000&punctuate=true"
    async with aiohttp.ClientSession() as http, http.ws_connect(path, protocols=("token", TOKEN)) as ws:
        times: dict[str, float] = {}

        async def read() -> None:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                body = json.loads(msg.data)
                if body.get("type") == "Results" and body["is_final"]:
                    times["final"] = time.monotonic()
                elif body.get("type") == "Metadata":
                    times["metadata"] = time.monotonic()

        reader = asyncio.create_task(read())
        started = time.monotonic()
        for i in range(0, len(data), CHUNK):
            await ws.send_bytes(data[i:i + CHUNK])
            await asyncio.sleep(max(0.0, started + (i + CHUNK) / 32000 - time.monotonic()))
        closed = time.monotonic()
        await ws.send_str(json.dumps({"type": "CloseStream"}))
        await asyncio.wait_for(reader, 60)
        return times.get("final", closed) - closed, times["metadata"] - closed


async def run(url: str, rounds: int) -> list[tuple[float, float]]:
    out = []
    for _ in range(rounds):
        for clip in CLIPS:
            out.append(await one(url, load_pcm16(clip)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="base")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    settings = make_settings(asr={"model": args.model, "threads": 2})
    with serve_in_thread(create_app(settings, engine=load_engine(settings.asr))) as url:
        results = asyncio.run(run(url, args.rounds))
    final = np.array([r[0] for r in results])
    meta = np.array([r[1] for r in results])
    p95 = float(np.percentile(meta, 95))
    print(f"{args.model}, {len(results)} streams in real time: CloseStream -> last final p50 "
          f"{np.percentile(final, 50):.3f} s p95 {np.percentile(final, 95):.3f} s; -> Metadata p50 "
          f"{np.percentile(meta, 50):.3f} s p95 {p95:.3f} s max {meta.max():.3f} s (target p95 <= {TARGET_S} s)")
    return 0 if p95 <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
