"""OpenAI `stream=true` benchmark: when the first text of a long upload arrives, against the whole answer.

A real server process (base int8, beam 5, 2 threads by default) gets the 276 s chapter on
`POST /v1/audio/transcriptions`, with and without `stream=true`, interleaved so that a drifting machine load hits
both alike. Printed side by side: the first delta's delay after the request (target <= 3 s), the done event's,
the plain request's total, the ratio first delta / plain total, the WER of both answers, and the server's CPU
seconds up to the first delta and for the plain answer (robust on a loaded machine, where times are not).

Usage: .venv/bin/python bench/bench_stream.py [--audio FILE] [--model base] [--runs 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import AUDIO_DIR, TOKEN, manifest, wer  # noqa: E402
from tests.serverproc import ServerProcess  # noqa: E402

LONG = "long/1089-134686_full_chapter.flac"
FIRST_DELTA_TARGET_S = 3.0


@dataclasses.dataclass
class Answer:
    first_s: float  # first delta (streamed), or the whole answer (plain)
    total_s: float
    text: str
    deltas: int = 0
    first_cpu_s: float = 0.0  # the server's CPU seconds from the request to the first delta (or the answer)


def cpu_seconds(pid: int) -> float:
    """The server process's CPU seconds so far (user + system, every thread): what a loaded machine disturbs
    least. Between the request and the first delta it is the work on the first delta's path."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def multipart(data: bytes, fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.flac"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def transcribe(url: str, data: bytes, stream: bool, pid: int) -> Answer:
    body, content_type = multipart(data, {"model": "whisper-1", "stream": "true" if stream else "false"})
    target = urlparse(url)
    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=3600)
    cpu = cpu_seconds(pid)
    started = time.perf_counter()
    conn.request("POST", "/v1/audio/transcriptions", body=body,
                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": content_type})
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()
    if not stream:
        text = json.loads(resp.read())["text"]
        took = time.perf_counter() - started
        return Answer(took, took, text, first_cpu_s=cpu_seconds(pid) - cpu)
    first, deltas, first_cpu = 0.0, 0, 0.0
    while line := resp.readline():
        if not line.startswith(b"data: "):
            continue
        event = json.loads(line[6:])
        if event["type"] == "transcript.text.delta":
            deltas += 1
            if not first:
                first, first_cpu = time.perf_counter() - started, cpu_seconds(pid) - cpu
        elif event["type"] == "transcript.text.done":
            conn.close()
            return Answer(first, time.perf_counter() - started, event["text"], deltas, first_cpu)
        else:
            raise RuntimeError(f"unexpected event: {event}")
    raise RuntimeError("the stream ended without transcript.text.done")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--audio", default=str(AUDIO_DIR / LONG))
    parser.add_argument("--model", default="base")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    data = Path(args.audio).read_bytes()
    reference = manifest()[LONG].transcript if args.audio.endswith(LONG) else None
    config = {"asr": {"engine": "faster-whisper", "model": args.model, "beam_size": 5, "threads": 2,
                      "compute_type": "int8"}}
    print(f"audio: {args.audio}, model {args.model} int8, beam 5, 2 threads, {args.runs} runs each, interleaved")
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(config, Path(tmp)).start()
        try:
            assert server.proc is not None
            pid = server.proc.pid
            transcribe(server.url, manifest()["en/jfk.flac"].path.read_bytes(), stream=False, pid=pid)  # warm-up
            plain, streamed = [], []
            for _ in range(args.runs):
                plain.append(transcribe(server.url, data, stream=False, pid=pid))
                streamed.append(transcribe(server.url, data, stream=True, pid=pid))
        finally:
            server.terminate()
    results = {
        "plain_total_s": statistics.median(r.total_s for r in plain),
        "stream_first_delta_s": statistics.median(r.first_s for r in streamed),
        "stream_first_delta_cpu_s": statistics.median(r.first_cpu_s for r in streamed),
        "plain_total_cpu_s": statistics.median(r.first_cpu_s for r in plain),
        "stream_done_s": statistics.median(r.total_s for r in streamed),
        "stream_deltas": streamed[-1].deltas,
    }
    results["first_delta_vs_plain_total"] = results["stream_first_delta_s"] / results["plain_total_s"]
    results["stream_done_vs_plain_total"] = results["stream_done_s"] / results["plain_total_s"]
    if reference:
        results["wer_plain"] = wer(reference, plain[-1].text)
        results["wer_stream"] = wer(reference, streamed[-1].text)
    for key, value in results.items():
        print(f"{key:28s} {value:.3f}" if isinstance(value, float) else f"{key:28s} {value}")
    met = results["stream_first_delta_s"] <= FIRST_DELTA_TARGET_S
    print(f"first delta <= {FIRST_DELTA_TARGET_S:g} s: {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
