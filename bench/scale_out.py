"""Scale-out: two replicas (1 thread each) behind Debian's nginx (deploy/nginx/stt.conf) on loopback.

Phases, each of which counts the requests that failed at the client (anything but a 200 with the clip's own
transcript, or a transport error):
  (a) N shared clips at concurrency 8 through nginx, and the same N against 1 replica x 2 threads (direct),
      in alternating blocks so that both see the same machine load: throughput of both, and their ratio;
  (b) N/2 clips through nginx while one replica is killed with SIGKILL a third of the way in;
  (c) N/2 clips through nginx while one replica gets SIGTERM (drains, exits) and is started again: a rolling
      update;
  (d) a live stream through nginx gets interim and final results; when its replica is killed the client gets
      a close, and a new stream through nginx works.
The last line includes ``failed=<n>``; the exit code is 1 when n != 0, when a live check fails, or when nginx
cannot be started.

Usage: .venv/bin/python bench/scale_out.py [--quick] [--requests 200] [--model tiny.en]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import numpy as np
import soundfile as sf
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import ROOT, TOKEN, Clip, librispeech_clips, wer  # noqa: E402
from tests.serverproc import ServerProcess, free_port  # noqa: E402

AUTH = {"Authorization": f"Token {TOKEN}"}
CONCURRENCY = 8
NGINX_CONF = ROOT / "deploy" / "nginx" / "stt.conf"


@dataclasses.dataclass
class Phase:
    name: str
    answered: int = 0
    failures: list[str] = dataclasses.field(default_factory=list)
    wall_s: float = 0.0
    audio_s: float = 0.0
    retried: int = 0  # requests nginx sent to a second replica (from its access log)

    @property
    def throughput(self) -> float:
        return self.audio_s / self.wall_s if self.wall_s else 0.0


# -- nginx ----------------------------------------------------------------------------------------------

def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def nginx_config(upstreams: list[int], port: int, workdir: Path) -> Path:
    """deploy/nginx/stt.conf with loopback replicas and port, inside a minimal nginx.conf in ``workdir``."""
    site = NGINX_CONF.read_text()
    servers = "".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;\n" for p in upstreams)
    site = re.sub(r"(?m)^    server stt-\d:8080[^\n]*\n", "", site, count=0)
    site = site.replace("    keepalive 32;", servers + "    keepalive 32;")
    site = site.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    (workdir / "stt.conf").write_text(site)
    temp = {name: workdir / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir(exist_ok=True)
        path.chmod(0o777)  # nginx's workers drop root privileges
    workdir.chmod(0o755)
    main = f"""
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format upstreams '$status $upstream_addr $upstream_status';
    access_log {workdir}/access.log upstreams;
    client_body_temp_path {temp['body']};
    proxy_temp_path {temp['proxy']};
    fastcgi_temp_path {temp['fastcgi']};
    uwsgi_temp_path {temp['uwsgi']};
    scgi_temp_path {temp['scgi']};
    include {workdir}/stt.conf;
}}
"""
    path = workdir / "nginx.conf"
    path.write_text(main)
    return path


def start_nginx(binary: str, conf: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([binary, "-c", str(conf), "-p", str(conf.parent)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            with __import__("socket").create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("nginx did not listen within 10 s")


# -- batch requests ---------------------------------------------------------------------------------------

def pick_clips(count: int) -> list[Clip]:
    clips = sorted((c for c in librispeech_clips() if c.seconds <= 12.0), key=lambda c: c.file)
    return [clips[i % len(clips)] for i in range(count)]


def own_transcript(text: str, clip: Clip, references: list[str]) -> bool:
    """The answer is this clip's transcript: closest to its own reference among all the references."""
    mine = wer(clip.transcript, text)
    return mine <= 0.5 and all(mine <= wer(ref, text) for ref in references if ref != clip.transcript)


async def one(session: aiohttp.ClientSession, url: str, clip: Clip, body: bytes, phase: Phase,
              references: list[str]) -> None:
    try:
        async with session.post(f"{url}/stt", data=body, headers=AUTH) as response:
            payload = await response.json(content_type=None)
            if response.status != 200:
                phase.failures.append(f"{clip.file}: HTTP {response.status} {payload}")
            elif not own_transcript(payload["text"], clip, references):
                phase.failures.append(f"{clip.file}: wrong transcript {payload['text']!r}")
            else:
                phase.answered += 1
                phase.audio_s += clip.seconds
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        phase.failures.append(f"{clip.file}: {type(exc).__name__}: {exc}")


async def drive(url: str, clips: list[Clip], phase: Phase,
                at_third: Callable[[], object] | None = None) -> Phase:
    """All ``clips`` at concurrency 8; ``at_third`` runs (in a thread) once a third of them were answered."""
    bodies = {c.file: c.path.read_bytes() for c in clips}
    references = sorted({c.transcript for c in clips})
    queue: asyncio.Queue[Clip] = asyncio.Queue()
    for clip in clips:
        queue.put_nowait(clip)
    disruption: asyncio.Task[object] | None = None
    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async def worker() -> None:
            nonlocal disruption
            while not queue.empty():
                clip = queue.get_nowait()
                await one(session, url, clip, bodies[clip.file], phase, references)
                done = phase.answered + len(phase.failures)
                if at_third is not None and disruption is None and done >= len(clips) // 3:
                    disruption = asyncio.create_task(asyncio.to_thread(at_third))

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        if disruption is not None:
            await disruption
    phase.wall_s = time.monotonic() - started
    return phase


# -- live --------------------------------------------------------------------------------------------------

def pcm16(clip: Clip) -> bytes:
    audio, rate = sf.read(clip.path, dtype="float32", always_2d=True)
    mono = soxr.resample(audio.mean(axis=1), rate, 16000)
    return (np.clip(mono, -1, 1) * 32767).astype("<i2").tobytes()


async def live_stream(url: str, audio: bytes, on_open: Callable[[], object] | None = None,
                      speed: float = 2.0) -> tuple[list[dict[str, object]], str]:
    """Streams ``audio`` (16 kHz Int16) through nginx at ``speed`` x real time; returns the Results messages
    and how the stream ended (``closed <code>`` or ``timeout``)."""
    ws_url = url.replace("http://", "ws://") + "/listen?encoding=linear16&sample_rate=16000&interim_results=true"
    results: list[dict[str, object]] = []
    frame = 3200  # 100 ms
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(ws_url, headers=AUTH, timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws:
            async def reader() -> str:
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        data = json.loads(msg.data)
                        if data.get("type") == "Results":
                            results.append(data)
                return f"closed {ws.close_code}"

            reading = asyncio.create_task(reader())
            if on_open is not None:
                await asyncio.sleep(1.0)
                await asyncio.to_thread(on_open)
            for start in range(0, len(audio), frame):
                if ws.closed:
                    break
                try:
                    await ws.send_bytes(audio[start:start + frame])
                except (ConnectionError, aiohttp.ClientError):
                    break
                await asyncio.sleep(0.1 / speed)
            if not ws.closed:
                try:
                    await ws.send_str(json.dumps({"type": "CloseStream"}))
                except (ConnectionError, aiohttp.ClientError):
                    pass
            try:
                how = await asyncio.wait_for(reading, 60)
            except asyncio.TimeoutError:
                how = "timeout"
    return results, how


async def stream_replica(replicas: list[ServerProcess]) -> ServerProcess | None:
    """The replica holding the one open live stream, read from each replica's own /metrics."""
    async with aiohttp.ClientSession() as session:
        for replica in replicas:
            async with session.get(f"{replica.url}/metrics", headers=AUTH) as response:
                text = await response.text()
            if re.search(r"^stt_live_streams_open 1\.0$", text, re.M):
                return replica
    return None


async def live_checks(url: str, replicas: list[ServerProcess], clip: Clip) -> list[str]:
    problems = []
    audio = pcm16(clip)
    results, how = await live_stream(url, audio)
    interims = sum(1 for r in results if not r.get("is_final"))
    finals = [r for r in results if r.get("is_final")]
    text = " ".join(str(r["channel"]["alternatives"][0]["transcript"]) for r in finals)  # type: ignore[index]
    print(f"(d) live through nginx: {interims} interim and {len(finals)} final results, {how}, "
          f"WER {wer(clip.transcript, text):.1%}")
    if not interims or not finals or how != "closed 1000":
        problems.append(f"live stream: {interims} interims, {len(finals)} finals, {how}")

    killed: list[ServerProcess] = []

    def kill_its_replica() -> None:
        replica = asyncio.run(stream_replica(replicas))
        if replica is not None:
            replica.stop()  # SIGKILL
            killed.append(replica)

    started = time.monotonic()
    _, how = await live_stream(url, audio * 3, on_open=kill_its_replica, speed=1.0)
    print(f"(d) replica of a live stream killed: the client saw '{how}' after {time.monotonic() - started:.1f} s")
    if not killed or not how.startswith("closed"):
        problems.append(f"live stream on a killed replica: killed={bool(killed)}, {how}")
    results, how = await live_stream(url, audio)
    finals = [r for r in results if r.get("is_final")]
    print(f"(d) new live stream after the kill: {len(finals)} final results, {how}")
    if not finals or how != "closed 1000":
        problems.append(f"live stream after the kill: {len(finals)} finals, {how}")
    for replica in killed:
        replica.start()
    return problems


# -- main --------------------------------------------------------------------------------------------------

def replica(workdir: Path, model: str, threads: int, name: str) -> ServerProcess:
    config = {"asr": {"model": model, "threads": threads, "beam_size": 1},
              "server": {"http": {"trusted_proxies": ["127.0.0.1/32"]}},
              "limits": {"shutdown_timeout_seconds": 30}}
    path = workdir / name
    path.mkdir()
    return ServerProcess(config, path)


def report(phase: Phase) -> None:
    retried = f", {phase.retried} retried by nginx on the other replica" if phase.retried else ""
    print(f"{phase.name}: {phase.answered} answered 200 with their own transcript, {len(phase.failures)} failed, "
          f"{phase.audio_s:.0f} s of audio in {phase.wall_s:.1f} s ({phase.throughput:.1f} x real time){retried}")
    for failure in phase.failures[:5]:
        print(f"    {failure}")


async def run(args: argparse.Namespace, workdir: Path) -> tuple[int, list[str]]:
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError("nginx not found (apt-get install nginx)")
    clips = pick_clips(args.requests)
    half = pick_clips(max(CONCURRENCY, args.requests // 2))
    replicas = [replica(workdir, args.model, 1, f"r{i}") for i in (1, 2)]
    for r in replicas:
        r.start()
    port = free_port()
    nginx = start_nginx(binary, nginx_config([r.port for r in replicas], port, workdir), port)
    url = f"http://127.0.0.1:{port}"
    phases: list[Phase] = []
    problems: list[str] = []
    log = workdir / "access.log"
    try:
        pair, baseline = await compare(url, workdir, args.model, clips)
        phases += [pair, baseline]
        killed = replicas[0]
        mark = log.stat().st_size
        phases.append(report_and(await drive(url, half, Phase("(b) one replica killed (SIGKILL) mid-run"),
                                             at_third=killed.stop), retries(log, mark)))
        killed.start()

        def rolling_update() -> None:
            code = replicas[1].terminate(signal.SIGTERM)
            print(f"(c) replica 2 drained and exited with {code}; starting it again")
            replicas[1].start()

        mark = log.stat().st_size
        phases.append(report_and(await drive(url, half, Phase("(c) rolling update: SIGTERM + restart mid-run"),
                                             at_third=rolling_update), retries(log, mark)))
        problems += await live_checks(url, replicas, clips[0])
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(10)
        for r in replicas:
            r.stop()
    return sum(len(p.failures) for p in phases), problems


def report_and(phase: Phase, retried: int = 0) -> Phase:
    phase.retried = retried
    report(phase)
    return phase


def retries(log: Path, offset: int) -> int:
    """Requests logged since ``offset`` that nginx sent to more than one replica ("a:1, b:2" upstreams)."""
    with log.open() as f:
        f.seek(offset)
        return sum(1 for line in f if "," in line.split(" ", 1)[1])


async def compare(url: str, workdir: Path, model: str, clips: list[Clip]) -> tuple[Phase, Phase]:
    """2 replicas x 1 thread (through nginx) against 1 replica x 2 threads (direct), in alternating blocks:
    the idle configuration costs nothing while the other works, and both share the machine's load changes."""
    pair, single = Phase("(a) 2 replicas x 1 thread behind nginx"), Phase("(a) 1 replica x 2 threads, direct")
    one_process = replica(workdir, model, 2, "single").start()
    block = max(CONCURRENCY * 2, len(clips) // 5)
    try:
        for start in range(0, len(clips), block):
            for target, phase in ((url, pair), (one_process.url, single)):
                part = await drive(target, clips[start:start + block], Phase(phase.name))
                phase.answered += part.answered
                phase.failures += part.failures
                phase.wall_s += part.wall_s
                phase.audio_s += part.audio_s
    finally:
        one_process.terminate()
    report(pair)
    report(single)
    print(f"(a) throughput, 2 replicas x 1 thread / 1 replica x 2 threads: {pair.throughput / single.throughput:.2f}")
    return pair, single


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="24 requests per phase (a few minutes)")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--model", default="tiny.en")
    args = parser.parse_args()
    if args.quick:
        args.requests = 24
    with tempfile.TemporaryDirectory(prefix="scale-out-") as tmp:
        try:
            failed, problems = asyncio.run(run(args, Path(tmp)))
        except RuntimeError as exc:
            print(f"scale_out: cannot run: {exc}; failed=unknown")
            return 2
    for problem in problems:
        print(f"problem: {problem}")
    print(f"scale_out: {'ok' if not failed and not problems else 'FAILED'} failed={failed} "
          f"live_problems={len(problems)}")
    return 0 if failed == 0 and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
