"""Load test: 1,000 requests at concurrency 16 against a real ``python server.py`` (tiny.en) on 127.0.0.1.

The mix: short LibriSpeech clips and the bad-inputs table (tests/bad_inputs.py), shuffled with a fixed seed.
Checks, each of which fails the run (exit 1):
- every request gets exactly one well-formed answer: JSON with the right ``status`` and the request's own
  X-Request-Id (a fresh one where the HTTP parser refused the request before reading it), and an allowed status (clips: 200 with the transcript of the clip sent, or 503 with
  Retry-After; bad inputs: their 4xx);
- zero lost (transport errors, timeouts) or malformed answers;
- server RSS after the run within 10% of RSS after the first 100 requests.
A client that gets 503 waits its Retry-After (at most 10 s) before its next request, as a well-behaved client
would; the refused request itself is counted as answered (503), not retried.
Reported: p50/p99 latency per kind, /ping p99 during the run, RSS, throughput.

Usage: .venv/bin/python bench/load.py [--requests 1000] [--concurrency 16] [--clip-share 0.5] [--max-queue 12]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.bad_inputs import BadInput, bad_inputs, body_over_limit  # noqa: E402
from tests.helpers import TOKEN, manifest, wer  # noqa: E402
from tests.serverproc import ServerProcess  # noqa: E402

CLIPS = ["en/librispeech/1089-134686-0001.flac", "en/librispeech/1089-134686-0003.flac",
         "en/librispeech/1089-134686-0014.flac", "en/librispeech/1089-134686-0030.flac",
         "en/librispeech/1089-134686-0036.flac"]
BODY_LIMIT = 2 * 1024 * 1024
MAX_AUDIO_S = 600.0
AUTH = {"Authorization": f"Token {TOKEN}"}
RETRY_CAP_S = 10
MAX_CLIP_WER = 0.5  # tiny.en, beam 1 on these clips: a transcript this far off belongs to another request


TRANSCRIPTS: dict[str, str] = {}  # clip name -> reference transcript


@dataclass
class Outcome:
    kind: str  # "clip" or "bad"
    status: int | None
    latency_s: float
    problem: str | None = None
    retry_after: int = 0  # seconds, from a 503


@dataclass
class Run:
    outcomes: list[Outcome] = field(default_factory=list)
    ping_s: list[float] = field(default_factory=list)
    ping_failures: int = 0
    rss_after_100: int = 0


def workload(count: int, clip_share: float) -> list[BadInput]:
    """``count`` requests: clips (expected 200) and bad inputs (expected their 4xx), shuffled."""
    rng = random.Random(7)
    bad = bad_inputs(MAX_AUDIO_S) + [body_over_limit(BODY_LIMIT)]
    clips = [BadInput(f"clip {c}", manifest()[c].path.read_bytes(), 200, "audio/flac") for c in CLIPS]
    TRANSCRIPTS.update({f"clip {c}": manifest()[c].transcript for c in CLIPS})
    items = [rng.choice(clips) if rng.random() < clip_share else rng.choice(bad) for _ in range(count)]
    return items


def check(item: BadInput, status: int, headers: Mapping[str, str], body: object, request_id: str) -> str | None:
    """None when the answer is well formed and allowed for this request, else what is wrong."""
    answered_id = headers.get("X-Request-Id")
    if not answered_id or (item.parsed and answered_id != request_id):
        return f"X-Request-Id {answered_id!r} is not ours"
    if not isinstance(body, dict) or "status" not in body:
        return f"not a JSON object with a status: {body!r:.80}"
    if item.status == 200 and status == 503:
        retry = headers.get("Retry-After", "")
        return None if retry.isdigit() and body["status"] == "failed" else f"503 without Retry-After: {retry!r}"
    if status != item.status:
        return f"status {status}, expected {item.status}: {body}"
    expected = "success" if status == 200 else "failed"
    if body["status"] != expected or (status == 200 and not body.get("text")):
        return f"body does not match status {status}: {body}"
    if status == 200 and wer(TRANSCRIPTS[item.name], body["text"]) > MAX_CLIP_WER:
        return f"transcript does not match the clip sent: {body['text']!r}"
    return None


async def one(session: aiohttp.ClientSession, url: str, index: int, item: BadInput) -> Outcome:
    request_id = f"load-{index}"
    headers = {**AUTH, "Content-Type": item.content_type, "X-Request-Id": request_id, **dict(item.headers)}
    kind = "clip" if item.status == 200 else "bad"
    started = time.perf_counter()
    try:
        async with session.post(f"{url}/stt", data=item.body, headers=headers) as resp:
            raw = await resp.read()
            latency = time.perf_counter() - started
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw[:80]
            retry = resp.headers.get("Retry-After", "0")
            return Outcome(kind, resp.status, latency, check(item, resp.status, resp.headers, body, request_id),
                           int(retry) if retry.isdigit() else 0)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        return Outcome(kind, None, time.perf_counter() - started, f"lost: {type(exc).__name__}: {exc}")


async def pinger(session: aiohttp.ClientSession, url: str, run: Run, stop: asyncio.Event) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        try:
            async with session.get(f"{url}/ping", headers=AUTH) as resp:
                await resp.read()
                if resp.status == 200:
                    run.ping_s.append(time.perf_counter() - started)
                else:
                    run.ping_failures += 1
        except aiohttp.ClientError:
            run.ping_failures += 1
        await asyncio.sleep(0.05)


async def drive(url: str, items: list[BadInput], concurrency: int, server_pid: int) -> Run:
    run = Run()
    process = psutil.Process(server_pid)
    timeout = aiohttp.ClientTimeout(total=300)
    gate = asyncio.Semaphore(concurrency)
    done = 0

    async with aiohttp.ClientSession(timeout=timeout) as session, aiohttp.ClientSession() as ping_session:
        stop = asyncio.Event()
        ping_task = asyncio.create_task(pinger(ping_session, url, run, stop))

        async def guarded(index: int, item: BadInput) -> None:
            nonlocal done
            async with gate:
                outcome = await one(session, url, index, item)
                run.outcomes.append(outcome)
                if outcome.status == 503 and outcome.retry_after:
                    # A well-behaved client waits as told before its next request (holding its slot).
                    await asyncio.sleep(min(outcome.retry_after, RETRY_CAP_S))
            done += 1
            if done == min(100, len(items)):
                run.rss_after_100 = process.memory_info().rss
            if done % 100 == 0:
                print(f"  {done}/{len(items)} done", flush=True)

        await asyncio.gather(*(guarded(i, item) for i, item in enumerate(items)))
        stop.set()
        await ping_task
    return run


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def report(run: Run, rss_end: int, wall_s: float, requests: int) -> list[str]:
    """Print the figures; return the failed checks."""
    failures: list[str] = []
    problems = [o for o in run.outcomes if o.problem]
    statuses: dict[str, int] = {}
    for o in run.outcomes:
        key = f"{o.kind}:{o.status}"
        statuses[key] = statuses.get(key, 0) + 1
    print(f"requests: {len(run.outcomes)} in {wall_s:.1f} s ({len(run.outcomes) / wall_s:.1f} req/s)")
    print(f"answers by kind:status: {dict(sorted(statuses.items()))}")
    for kind in ("clip", "bad"):
        lat = [o.latency_s for o in run.outcomes if o.kind == kind and o.status in (200, 400, 413)]
        print(f"latency {kind} (answered): p50 {pct(lat, 50) * 1000:.0f} ms, p99 {pct(lat, 99) * 1000:.0f} ms")
    all_lat = [o.latency_s for o in run.outcomes if not o.problem]
    print(f"latency all: p50 {pct(all_lat, 50) * 1000:.0f} ms, p99 {pct(all_lat, 99) * 1000:.0f} ms")
    print(f"/ping during the run: {len(run.ping_s)} answered, p50 {pct(run.ping_s, 50) * 1000:.1f} ms, "
          f"p99 {pct(run.ping_s, 99) * 1000:.1f} ms, max {max(run.ping_s, default=0) * 1000:.1f} ms, "
          f"failed {run.ping_failures}")
    growth = rss_end / run.rss_after_100 - 1 if run.rss_after_100 else float("nan")
    print(f"server RSS: {run.rss_after_100 / 2**20:.0f} MiB after 100 requests, {rss_end / 2**20:.0f} MiB after "
          f"all ({growth:+.1%})")
    if len(run.outcomes) != requests:
        failures.append(f"{requests - len(run.outcomes)} requests got no outcome")
    for o in problems[:10]:
        print(f"  problem: {o.kind} {o.status}: {o.problem}")
    if problems:
        failures.append(f"{len(problems)} lost or malformed answers")
    if run.ping_failures:
        failures.append(f"{run.ping_failures} /ping failures during the run")
    if not growth <= 0.10:
        failures.append(f"RSS grew {growth:+.1%} between request 100 and the end (limit +10%)")
    if not any(o.kind == "clip" and o.status == 200 for o in run.outcomes):
        failures.append("no clip was transcribed")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--clip-share", type=float, default=0.5, help="share of requests that are real clips")
    parser.add_argument("--max-queue", type=int, default=12, help="limits.max_queue (below the concurrency: exercises 503)")
    parser.add_argument("--model", default="tiny.en")
    args = parser.parse_args()

    items = workload(args.requests, args.clip_share)
    config = {
        "server": {"http": {"request_max_size": BODY_LIMIT}},
        "asr": {"model": args.model, "threads": 2, "beam_size": 1},
        "limits": {"max_queue": args.max_queue, "max_audio_seconds": MAX_AUDIO_S,
                   "queue_timeout_seconds": 120, "auth_max_failures": 1000},
    }
    with tempfile.TemporaryDirectory() as folder, ServerProcess(config, Path(folder)) as server:
        assert server.proc is not None
        print(f"server {server.url} (pid {server.proc.pid}), ready in {server.ready_after_s:.1f} s; "
              f"{args.requests} requests at concurrency {args.concurrency}, max_queue {args.max_queue}")
        started = time.perf_counter()
        run = asyncio.run(drive(server.url, items, args.concurrency, server.proc.pid))
        wall = time.perf_counter() - started
        rss_end = psutil.Process(server.proc.pid).memory_info().rss
        failures = report(run, rss_end, wall, args.requests)
        code = server.terminate()
        if code != 0:
            failures.append(f"server exit code {code} after SIGTERM")
    print("PASS" if not failures else "FAIL: " + "; ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
