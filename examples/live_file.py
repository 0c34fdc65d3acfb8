"""Stream an audio file to the live endpoint as a microphone would, and print the transcript as it comes.

    .venv/bin/python examples/live_file.py --token TOKEN [--url ws://localhost:8080] [--fast] speech.flac
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import aiohttp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stt.audio import SAMPLE_RATE, decode_audio  # noqa: E402

QUERY = "/v1/listen?encoding=linear16&sample_rate=16000&interim_results=true&punctuate=true"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file")
    parser.add_argument("--token", required=True)
    parser.add_argument("--url", default="ws://localhost:8080")
    parser.add_argument("--fast", action="store_true", help="send as fast as possible instead of in real time")
    args = parser.parse_args()
    audio = decode_audio(Path(args.file).read_bytes())
    data = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    frame = SAMPLE_RATE // 10 * 2  # 100 ms of Int16
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(args.url + QUERY, headers={"Authorization": f"Token {args.token}"}) as ws:
            async def show() -> None:
                async for msg in ws:
                    message = json.loads(msg.data)
                    if message["type"] == "Results":
                        text = message["channel"]["alternatives"][0]["transcript"]
                        print(("FINAL   " if message["is_final"] else "interim ") + text, flush=True)
                    elif message["type"] == "Metadata":
                        print(f"({message['duration']:.1f} s of audio, request {message['request_id']})")

            printer = asyncio.create_task(show())
            for i in range(0, len(data), frame):
                await ws.send_bytes(data[i:i + frame])
                if not args.fast:
                    await asyncio.sleep(0.1)
            await ws.send_str(json.dumps({"type": "CloseStream"}))
            await printer


if __name__ == "__main__":
    asyncio.run(main())
