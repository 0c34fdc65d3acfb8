"""Asynchronous jobs against real servers (base int8, shared audio): the targets of issue 18, side by side.

1. restart: a long job (the shared chapter repeated to --long-seconds; 3600 for the issue's 1 h), the server
   killed with SIGKILL at ~50 % and started again on the same jobs.dir: the job completes with the transcript of
   an uninterrupted run of the same audio.
2. kill cycles: --jobs jobs (shared utterances) with callbacks to a local receiver, --kills SIGKILL/restart
   cycles while they run: completed, lost, callbacks acknowledged then sent again (duplicates).
3. callbacks: delay from a job's end to its callback's arrival (p50, max), a retry after the receiver's 500,
   signatures verified.
4. replicas: two servers on one PostgreSQL (started here), --jobs jobs, one replica killed mid-run: all complete,
   each job's result recorded once (one callback each).
5. throughput: the same files as synchronous uploads (POST /stt, all at once) and as jobs (ended by their
   callbacks): wall-time ratio.
6. live: final delay p95 of live streams alone and while 10 jobs run, after a 10 s stream that warms the server
   up: the chapter's first --live-seconds (60 by default; continuous reading) and LibriSpeech utterances joined
   with 1 s of silence (the stream of bench_mixed.py and bench_realtime.py); each speech_final final's delay is
   printed too.

Usage: .venv/bin/python bench/bench_jobs.py [--quick] [--model base] [--long-seconds 3600] [--jobs 20]
       [--kills 5] [--only restart,kills,replicas,throughput,live] [--live-seconds 60] [--live-audio chapter,clips] [--nice N] [--sched-idle 0|1]
--quick: 300 s long job, 10 jobs, 3 kills, 3 throughput files: a reduced run for a loaded machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import soundfile as sf
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from stt.audio import SAMPLE_RATE, decode_audio  # noqa: E402
from stt.jobs import webhooks  # noqa: E402
from tests.helpers import AUDIO_DIR, TOKEN, manifest  # noqa: E402
from tests.serverproc import ServerProcess  # noqa: E402

AUTH = {"Authorization": f"Token {TOKEN}"}
SECRET = "bench-secret"
CHAPTER = AUDIO_DIR / "long" / "1089-134686_full_chapter.flac"
LIVE_TOKEN = "bench-token"  # bench_live's


def flac(audio: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def config(model: str, jobs: dict[str, Any]) -> dict[str, Any]:
    return {"server": {"http": {"allowed_tokens": [TOKEN, LIVE_TOKEN]}},
            "asr": {"model": model, "threads": 2, "beam_size": 5},
            "jobs": {"callback_allowed_hosts": ["127.0.0.1"], "webhook_secret": SECRET, **jobs}}


NICE: dict[str, Any] = {}  # --nice, --sched-idle: jobs.nice and jobs.sched_idle for every server


def start(model: str, jobs: dict[str, Any], workdir: Path) -> ServerProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    return ServerProcess(config(model, {**NICE, **jobs}), workdir).start(timeout=300)


class Receiver:
    """Records every callback: (delivery id, arrival time, signature ok, status answered)."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.calls: list[tuple[str, float, bool, int]] = []
        self.server: Any = None
        self.arrived = asyncio.Event()  # set at each call

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        status = 500 if len(self.calls) < self.fail_first else 200
        self.calls.append((request.headers.get(webhooks.DELIVERY_HEADER, ""), time.time(),
                           webhooks.verify(SECRET, dict(request.headers), body), status))
        self.arrived.set()
        return web.Response(status=status)

    async def wait_for(self, ids: list[str], timeout: float) -> None:
        """Until a callback of each of ``ids`` arrived (at most ``timeout`` s)."""
        async with asyncio.timeout(timeout):
            while not set(ids) <= {delivery for delivery, *_ in self.calls}:
                self.arrived.clear()
                await self.arrived.wait()

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.server = runner
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}/hook"

    def acknowledged(self) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for delivery, at, _, status in self.calls:
            if status == 200:
                out.setdefault(delivery, []).append(at)
        return out

    def duplicates(self) -> int:
        """Deliveries received again after one of them had been acknowledged."""
        return sum(len(times) - 1 for times in self.acknowledged().values())


async def submit(http: aiohttp.ClientSession, url: str, data: bytes, **params: str) -> str:
    async with http.post(f"{url}/v1/jobs", params=params, data=data, headers=AUTH) as response:
        assert response.status == 202, await response.text()
        return (await response.json())["id"]


async def get(http: aiohttp.ClientSession, url: str, job_id: str) -> dict[str, Any]:
    async with http.get(f"{url}/v1/jobs/{job_id}", headers=AUTH) as response:
        return await response.json()


async def wait_all(http: aiohttp.ClientSession, url: str, ids: list[str], timeout: float,
                   until: Any = lambda j: j["status"] in ("completed", "failed", "cancelled")) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    done: dict[str, dict] = {}
    while len(done) < len(ids) and time.monotonic() < deadline:
        for job_id in ids:
            if job_id not in done:
                with contextlib.suppress(aiohttp.ClientError):
                    job = await get(http, url, job_id)
                    if until(job):
                        done[job_id] = job
        await asyncio.sleep(0.2)
    return done


async def transcript(http: aiohttp.ClientSession, url: str, job_id: str) -> dict[str, Any]:
    async with http.get(f"{url}/v1/jobs/{job_id}/result?output=verbose_json", headers=AUTH) as response:
        body = await response.json()
    body.pop("proc_duration", None)
    return body


# --- 1. restart ----------------------------------------------------------------------------------------------

async def restart_row(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    chapter = decode_audio(CHAPTER.read_bytes())
    audio = np.tile(chapter, int(np.ceil(args.long_seconds * SAMPLE_RATE / len(chapter))))
    data = flac(audio[: int(args.long_seconds * SAMPLE_RATE)])
    async with aiohttp.ClientSession() as http:
        server = start(args.model, {"dir": str(tmp / "uninterrupted")}, tmp / "a")
        try:
            started = time.monotonic()
            job_id = await submit(http, server.url, data, language="en")
            await wait_all(http, server.url, [job_id], 4 * 3600)
            uninterrupted_s = time.monotonic() - started
            reference = await transcript(http, server.url, job_id)
        finally:
            server.stop()
        server = start(args.model, {"dir": str(tmp / "interrupted")}, tmp / "b")
        try:
            job_id = await submit(http, server.url, data, language="en")
            job = (await wait_all(http, server.url, [job_id], 4 * 3600,
                                  lambda j: j["progress"]["done_seconds"] >= 0.5 * args.long_seconds
                                  or j["status"] != "processing" and j["status"] != "queued"))[job_id]
            killed_at = job["progress"]["done_seconds"] / args.long_seconds
            server.terminate(signal.SIGKILL)
            server = start(args.model, {"dir": str(tmp / "interrupted")}, tmp / "b")
            final = (await wait_all(http, server.url, [job_id], 4 * 3600))[job_id]
            resumed = await transcript(http, server.url, job_id) if final["status"] == "completed" else {}
            resumed_log = any("resuming" in line for line in server.lines)
        finally:
            server.stop()
    return {"seconds": args.long_seconds, "killed_at": killed_at, "status": final["status"],
            "equal": resumed == reference, "resumed_from_windows": resumed_log, "uninterrupted_s": uninterrupted_s,
            "words": len(reference.get("text", "").split())}


# --- 2 and 3. kill cycles, callbacks -------------------------------------------------------------------------------

def utterances(n: int) -> list[bytes]:
    clips = sorted((c for c in manifest().values() if c.lang == "en" and 4 <= c.seconds <= 20),
                   key=lambda c: c.file)
    return [clips[i % len(clips)].path.read_bytes() for i in range(n)]


async def kills_row(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    receiver = Receiver(fail_first=1)
    hook = await receiver.start()
    rng = random.Random(18)
    files = utterances(args.jobs)
    jobs_dir = str(tmp / "kills")
    async with aiohttp.ClientSession() as http:
        server = start(args.model, {"dir": jobs_dir}, tmp / "k")
        try:
            ids = [await submit(http, server.url, data, callback_url=hook, language="en") for data in files]
            kills: list[float] = []
            for _ in range(args.kills):
                await asyncio.sleep(rng.uniform(2.0, 8.0))
                kills.append(time.time())
                server.terminate(signal.SIGKILL)
                server = start(args.model, {"dir": jobs_dir}, tmp / "k")
            done = await wait_all(http, server.url, ids, 3600)
            delivered = await wait_all(http, server.url, ids, 120,
                                       lambda j: j.get("callback", {}).get("state") in ("delivered", "failed"))
        finally:
            server.stop()
    await receiver.server.cleanup()
    completed = [j for j in done.values() if j["status"] == "completed"]
    acknowledged = receiver.acknowledged()
    first_call = {}
    for delivery, at, _, _ in receiver.calls:
        first_call.setdefault(delivery, at)
    # From the job's end to its callback's first arrival (a retry's wait is the backoff, counted apart).
    delays = [first_call[j] - done[j]["finished_at"] for j in ids if j in first_call and j in done]
    retried = [j for j in delivered.values() if [a["status"] for a in j["callback"]["attempts"]][:2] == [500, 200]]
    failed = [j["error"]["message"] for j in done.values() if j["status"] == "failed"]
    # A duplicate is expected only where the server died between the receiver's answer and its record of it:
    # the seconds from the first acknowledged arrival to the next kill say whether that was the case.
    gaps = [round(min((k for k in kills if k >= times[0]), default=float("inf")) - times[0], 3)
            for times in acknowledged.values() if len(times) > 1]
    return {"jobs": len(ids), "kills": args.kills, "completed": len(completed), "lost": len(ids) - len(completed),
            "failed": failed, "duplicate_to_kill_s": gaps,
            "callbacks_acknowledged": len(acknowledged), "duplicates": receiver.duplicates(),
            "signatures_ok": sum(ok for _, _, ok, _ in receiver.calls), "calls": len(receiver.calls),
            "delay_p50_s": statistics.median(delays) if delays else float("nan"),
            "delay_max_s": max(delays) if delays else float("nan"), "retried_after_500": len(retried)}


# --- 4. replicas on PostgreSQL -----------------------------------------------------------------------------------

async def replicas_row(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    import pytest

    from tests.postgres_server import postgres_server

    try:
        database = postgres_server()
        url = database.__enter__()
    except pytest.skip.Exception as exc:
        return {"skipped": str(exc)}
    receiver = Receiver()
    hook = await receiver.start()
    files = utterances(args.jobs)
    jobs = {"database_url": url, "lease_seconds": 5}
    try:
        async with aiohttp.ClientSession() as http:
            one, two = start(args.model, jobs, tmp / "r1"), start(args.model, jobs, tmp / "r2")
            try:
                ids = [await submit(http, (one, two)[i % 2].url, data, callback_url=hook, language="en")
                       for i, data in enumerate(files)]
                # Killed once it runs a job (it takes half of them).
                await wait_all(http, one.url, ids[:1], 600, lambda j: j["status"] != "queued")
                await asyncio.sleep(3)
                two.terminate(signal.SIGKILL)
                done = await wait_all(http, one.url, ids, 3600)
                await wait_all(http, one.url, ids, 120,
                               lambda j: j.get("callback", {}).get("state") in ("delivered", "failed"))
                taken_over = sum("started (attempt 2)" in line for line in one.lines)
            finally:
                one.stop()
                two.stop()
    finally:
        database.__exit__(None, None, None)
        await receiver.server.cleanup()
    acknowledged = receiver.acknowledged()
    return {"jobs": len(ids), "completed": sum(j["status"] == "completed" for j in done.values()),
            "callbacks": len(acknowledged), "duplicates": receiver.duplicates(), "taken_over": taken_over}


# --- 5. throughput --------------------------------------------------------------------------------------------------

async def throughput_row(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """The jobs' end is their callback's arrival, as an upload's is its answer: polling every job's status
    five times a second (as the other rows do) took CPU from the decoding it measured on 2 cores."""
    chapter = decode_audio(CHAPTER.read_bytes())
    part = len(chapter) // args.files
    files = [flac(chapter[i * part:(i + 1) * part]) for i in range(args.files)]
    receiver = Receiver()
    hook = await receiver.start()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600)) as http:
        server = start(args.model, {"dir": str(tmp / "throughput")}, tmp / "t")
        try:
            async def upload(data: bytes) -> str:
                async with http.post(f"{server.url}/stt", params={"language": "en"}, data=data,
                                     headers=AUTH) as response:
                    return (await response.json())["text"]

            # Warm both paths first: an upload, and a job (which loads the jobs' own model copy, once per
            # server: a steady-state comparison leaves that load out).
            warm = flac(chapter[:10 * SAMPLE_RATE])
            await upload(warm)
            await receiver.wait_for([await submit(http, server.url, warm, language="en", callback_url=hook)], 600)
            started = time.monotonic()
            sync_texts = await asyncio.gather(*(upload(d) for d in files))
            sync_s = time.monotonic() - started
            started = time.monotonic()
            ids = [await submit(http, server.url, d, language="en", callback_url=hook) for d in files]
            await receiver.wait_for(ids, 3600)
            jobs_s = time.monotonic() - started
            job_texts = [(await transcript(http, server.url, j)).get("text") for j in ids]
        finally:
            server.stop()
            await receiver.server.cleanup()
    return {"files": len(files), "audio_s": len(chapter) / SAMPLE_RATE, "sync_s": sync_s, "jobs_s": jobs_s,
            "ratio": sync_s / jobs_s, "same_text": job_texts == sync_texts}


# --- 6. live while jobs run -----------------------------------------------------------------------------------------

def live_streams(args: argparse.Namespace) -> dict[str, np.ndarray]:
    """The live row's streams: the chapter's first --live-seconds (continuous reading: sentences end at pauses of
    0.3-1 s, utterances run up to the session's longest), and LibriSpeech utterances joined with 1 s of silence
    up to about as long (the stream of bench_mixed.py and bench_realtime.py: a talker who stops between turns)."""
    from tests.helpers import joined_with_gaps, librispeech_clips

    out: dict[str, np.ndarray] = {}
    if "chapter" in args.live_audio:
        out["chapter"] = decode_audio(CHAPTER.read_bytes())[: int(args.live_seconds * SAMPLE_RATE)]
    if "clips" in args.live_audio:
        clips, total = [], 0.0
        for clip in sorted((c for c in librispeech_clips() if c.seconds <= 14), key=lambda c: c.file):
            if total >= args.live_seconds:
                break
            clips.append(clip)
            total += clip.seconds + 1.0
        out["clips"] = joined_with_gaps(clips, 1.0)[0]
    assert out, "--live-audio: chapter, clips or both"
    return out


async def live_row(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    import bench_live

    streams = live_streams(args)
    data = CHAPTER.read_bytes()
    alone: dict[str, Any] = {}
    loaded: dict[str, Any] = {}
    async with aiohttp.ClientSession() as http:
        server = start(args.model, {"dir": str(tmp / "live"), "concurrency": 2}, tmp / "l")
        try:
            # Not measured: the first stream after start (the model's first passes) would be measured alone
            # only, the stream with jobs coming second.
            first = next(iter(streams.values()))
            await bench_live.replay(server.port, first[: 10 * SAMPLE_RATE], tail_silence_s=1.0)
            for name, audio in streams.items():
                alone[name] = (await bench_live.replay(server.port, audio, tail_silence_s=3.0))[1]
            ids = [await submit(http, server.url, data, language="en") for _ in range(10)]
            await wait_all(http, server.url, ids[:1], 600, lambda j: j["status"] == "processing")
            # The jobs' copy of the model loads with the first job: wait for its first window, so the streams
            # below run beside jobs that decode, not beside a model being read from disk.
            await wait_all(http, server.url, ids[:1], 600, lambda j: j["progress"]["done_seconds"] > 0)
            for name, audio in streams.items():
                loaded[name] = (await bench_live.replay(server.port, audio, tail_silence_s=3.0))[1]
            jobs = [await get(http, server.url, job_id) for job_id in ids]
        finally:
            server.stop()
    out: dict[str, Any] = {"jobs_audio_done_s": sum(j["progress"]["done_seconds"] for j in jobs),
                           "jobs_still_running": sum(j["status"] in ("queued", "processing") for j in jobs)}
    for name, audio in streams.items():
        chunks = bench_live.speech_chunks(audio)
        delays = [bench_live.analyse(m, chunks)["delays"] for m in (alone[name], loaded[name])]
        p95 = [bench_live.pct([d for _, d in found], 95) for found in delays]
        p50 = [bench_live.pct([d for _, d in found], 50) for found in delays]
        # Each speech_final final: (end of its speech on the audio's timeline, delay), to see what p95 is made of.
        shown = [[(round(end, 2), round(delay, 2)) for end, delay in found] for found in delays]
        out[name] = {"seconds": round(len(audio) / SAMPLE_RATE, 1), "p95_alone_s": p95[0],
                     "p95_with_jobs_s": p95[1], "p50_alone_s": p50[0], "p50_with_jobs_s": p50[1],
                     "finals_alone": shown[0], "finals_with_jobs": shown[1]}
    return out


# --- report -----------------------------------------------------------------------------------------------------------

def report(results: dict[str, dict[str, Any]]) -> None:
    print("\n| measure | target | measured |")
    print("|---|---|---|")
    r = results.get("restart")
    if r:
        print(f"| {r['seconds'] / 60:.0f} min job, kill -9 at {r['killed_at']:.0%}, restart | completes; transcript "
              f"equal to an uninterrupted run | {r['status']}; equal: {r['equal']}; resumed from recorded windows: "
              f"{r['resumed_from_windows']} ({r['words']} words; uninterrupted run {r['uninterrupted_s']:.0f} s) |")
    k = results.get("kills")
    if k:
        print(f"| {k['jobs']} jobs, {k['kills']} kill -9/restart cycles | all completed, 0 lost, 0 duplicated "
              f"callbacks | {k['completed']} completed, {k['lost']} lost, {k['duplicates']} duplicated "
              f"({k['callbacks_acknowledged']} acknowledged; from a duplicate's first answer to the kill: "
              f"{k['duplicate_to_kill_s']} s) |")
        print(f"| callback after completion | <= 1 s; retried after a 500; signature verifies | p50 "
              f"{k['delay_p50_s']:.2f} s, max {k['delay_max_s']:.2f} s; retried after 500: {k['retried_after_500']}; "
              f"signatures {k['signatures_ok']}/{k['calls']} |")
    p = results.get("replicas")
    if p:
        measured = p["skipped"] if "skipped" in p else (
            f"{p['completed']}/{p['jobs']} completed, {p['callbacks']} callbacks, {p['duplicates']} duplicated, "
            f"{p['taken_over']} taken over from the killed replica")
        print(f"| 2 replicas on one PostgreSQL, one killed mid-run | each job once, all complete | {measured} |")
    t = results.get("throughput")
    if t:
        print(f"| throughput, jobs vs the same {t['files']} files as synchronous uploads | >= 0.95x | "
              f"{t['ratio']:.2f}x (uploads {t['sync_s']:.0f} s, jobs {t['jobs_s']:.0f} s; same text: "
              f"{t['same_text']}) |")
    v = results.get("live")
    for name in ("chapter", "clips") if v else ():
        if name in v:
            w = v[name]
            print(f"| live final delay p95 while 10 jobs run ({name}, {w['seconds']:.0f} s) | <= 1.0 s (as with none) "
                  f"| {w['p95_with_jobs_s']:.2f} s, p50 {w['p50_with_jobs_s']:.2f} (alone {w['p95_alone_s']:.2f} s, "
                  f"p50 {w['p50_alone_s']:.2f}; {len(w['finals_with_jobs'])} finals) |")
    if v:
        print(f"| jobs meanwhile | | {v['jobs_audio_done_s']:.0f} s of audio done, "
              f"{v['jobs_still_running']} of 10 still running at the end |")

ROWS = {"restart": restart_row, "kills": kills_row, "replicas": replicas_row, "throughput": throughput_row,
        "live": live_row}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="base")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--long-seconds", type=float, default=3600.0)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--only", default=",".join(ROWS))
    parser.add_argument("--live-seconds", type=float, default=60.0,
                        help="the live row's stream: the chapter's first seconds (60: about 11 finals, so the p95 "
                             "is about the mean of the two slowest; 276: the whole chapter, about 40)")
    parser.add_argument("--live-audio", default="chapter,clips",
                        help="the live row's streams: chapter (continuous reading), clips (utterances and pauses)")
    parser.add_argument("--nice", type=int, default=None, help="jobs.nice of the servers (default: the server's)")
    parser.add_argument("--sched-idle", type=int, choices=(0, 1), default=None,
                        help="jobs.sched_idle of the servers (default: the server's)")
    args = parser.parse_args()
    if args.nice is not None:
        NICE["nice"] = args.nice
    if args.sched_idle is not None:
        NICE["sched_idle"] = bool(args.sched_idle)
    if args.quick:
        args.long_seconds, args.jobs, args.kills, args.files = 300.0, 10, 3, 3
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as tmp:
        for name in args.only.split(","):
            started = time.monotonic()
            results[name] = await ROWS[name](args, Path(tmp) / name)
            print(f"{name}: {json.dumps(results[name])} ({time.monotonic() - started:.0f} s)", flush=True)
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
