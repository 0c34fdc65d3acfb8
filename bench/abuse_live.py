"""bench/abuse.py's rows for the live stream (issue 19): big messages, a container that stops reading, fast
senders, control-message and tiny-frame floods, deep JSON, a client that pings and never reads.

Each attack takes the running ServerProcess (tiny.en, ``stream_idle_seconds`` 3) and returns (answered as it
must and within its target, what happened with its figures). Imported by bench/abuse.py; not run on its own.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import psutil
import soundfile as sf

from tests import ws_raw
from tests.helpers import TOKEN, manifest, tone
from tests.live_helpers import collect, recovered, speech_120s
from tests.serverproc import ServerProcess

AUTH = {"Authorization": f"Token {TOKEN}"}
PCM = "/v1/listen?encoding=linear16&sample_rate=16000&channels=1"
CLIP = "en/librispeech/1089-134686-0000.flac"
RECOVERED_TARGET = 0.97
AIFF_JUNK_MB = 3000
AIFF_RSS_TARGET_MB = 100
FAST_STREAMS, FAST_SPEED = 4, 12.0
FAST_RSS_TARGET_MB = 400
LOG_TARGET_BYTES = 1_000_000
IDLE_S = 3  # bench/abuse.py's CONFIG


async def send_in_messages(url: str, data: bytes, message_bytes: int,
                           speed: float = 0.0) -> tuple[Any, float, float]:
    """Sends ``data`` in messages of ``message_bytes`` (paced at ``speed`` x real time, 0: at once), then
    CloseStream. Returns what came back, the seconds the sending took (back-pressure slows it) and the seconds
    from CloseStream to the close."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=900)) as http:
        ws = await http.ws_connect(url + PCM, headers=AUTH)
        reader = asyncio.create_task(collect(ws))
        started = time.monotonic()
        for i in range(0, len(data), message_bytes):
            await ws.send_bytes(data[i:i + message_bytes])
            if speed:
                await asyncio.sleep(max(0.0, started + (i + message_bytes) / 32000 / speed - time.monotonic()))
        await ws.send_str(json.dumps({"type": "CloseStream"}))
        closed = time.monotonic()
        received = await asyncio.wait_for(reader, 900)
    return received, closed - started, time.monotonic() - closed


async def big_messages(server: ServerProcess) -> tuple[bool, str]:
    data, reference = speech_120s()
    seconds = len(data) / 32000
    figures = {}
    for label, size in (("100 ms frames", 3200), ("40 s messages", 40 * 32000), ("one message", len(data))):
        received, _, _ = await send_in_messages(server.url, data, size)
        figures[label] = recovered(reference, received.final_text)
    frames = figures["100 ms frames"]
    ok = min(figures["40 s messages"], figures["one message"]) >= min(RECOVERED_TARGET, frames - 0.005)
    return ok, f"{seconds:.0f} s of speech sent at once, words recovered: " + ", ".join(
        f"{label} {value:.1%}" for label, value in figures.items())


class RssPeak:
    """The server's peak RSS above its value at the start, sampled every 20 ms from a thread."""

    def __init__(self, server: ServerProcess) -> None:
        assert server.proc is not None
        self._proc = psutil.Process(server.proc.pid)
        self._base = self._proc.memory_info().rss
        self.peak = self._base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "RssPeak":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(0.02)

    @property
    def growth_mb(self) -> float:
        return (self.peak - self._base) / 2**20


def _port(server: ServerProcess) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _aiff_then_junk(port: int, megabytes: int) -> tuple[int, int | None, bytes]:
    """A valid 1 s AIFF, then ``megabytes`` of junk in 1 MiB messages: (MiB sent before the server cut the
    connection, close code, what came back)."""
    sock = ws_raw.connect(port, "/v1/listen")
    buf = io.BytesIO()
    sf.write(buf, tone(440, 1.0, 16000), 16000, format="AIFF", subtype="PCM_16")
    sock.sendall(ws_raw.frame(ws_raw.BINARY, buf.getvalue()))
    junk = ws_raw.frame(ws_raw.BINARY, bytes(range(256)) * 4096)
    sent = 0
    try:
        for _ in range(megabytes):
            sock.sendall(junk)
            sent += 1
    except OSError:
        pass  # the server closed and cut the connection
    code, data = ws_raw.read_until_close(sock, 30)
    sock.close()
    return sent, code, data


async def aiff_then_junk(server: ServerProcess) -> tuple[bool, str]:
    with RssPeak(server) as rss:
        sent, code, data = await asyncio.to_thread(_aiff_then_junk, _port(server), AIFF_JUNK_MB)
    error = b'"type": "Error"' in data and b"DATA-0000" in data
    ok = code == 1007 and error and rss.growth_mb <= AIFF_RSS_TARGET_MB
    return ok, (f"valid AIFF + up to {AIFF_JUNK_MB:,} MB of junk: {sent:,} MB sent before the cut, close {code}, "
                f"Error message {'sent' if error else 'missing'}; peak RSS +{rss.growth_mb:.0f} MB "
                f"(target <= +{AIFF_RSS_TARGET_MB})")


async def fast_senders(server: ServerProcess) -> tuple[bool, str]:
    data, reference = speech_120s()
    data = data * 2  # 4 minutes a stream
    reference = f"{reference} {reference}"
    with RssPeak(server) as rss:
        results = await asyncio.gather(*(send_in_messages(server.url, data, 3200, speed=FAST_SPEED)
                                         for _ in range(FAST_STREAMS)))
    codes = sorted({received.close_code for received, _, _ in results})
    words = [recovered(reference, received.final_text) for received, _, _ in results]
    sending = max(took for _, took, _ in results)
    late = max(after for _, _, after in results)
    ok = codes == [1000] and min(words) >= RECOVERED_TARGET - 0.02 and rss.growth_mb <= FAST_RSS_TARGET_MB
    return ok, (f"{FAST_STREAMS} streams of {len(data) / 32000:.0f} s at {FAST_SPEED:g}x real time: close {codes}, "
                f"words recovered {min(words):.1%} to {max(words):.1%}; sending took up to {sending:.0f} s "
                f"(at 12x: {len(data) / 32000 / FAST_SPEED:.0f} s), Metadata at most {late:.1f} s after "
                f"CloseStream (the client's own socket buffers hold what it has not sent); peak RSS +{rss.growth_mb:.0f} MB (target <= +{FAST_RSS_TARGET_MB})")


def _log_bytes(server: ServerProcess, since: int) -> int:
    return sum(len(line.encode()) + 1 for line in server.lines[since:])


async def control_flood(server: ServerProcess) -> tuple[bool, str]:
    big = json.dumps({"type": "x" * (4 * 1024 * 1024 - 20)})
    lines = len(server.lines)
    sent = 0
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.url + PCM, headers=AUTH)
        reader = asyncio.create_task(collect(ws))
        started = time.monotonic()
        while time.monotonic() - started < 10:
            await ws.send_str(big)
            sent += 1
        await ws.send_str(json.dumps({"type": "CloseStream"}))
        received = await asyncio.wait_for(reader, 60)
    await asyncio.sleep(0.5)  # the server's last lines reach the pump
    logged = _log_bytes(server, lines)
    ok = received.close_code == 1000 and logged <= LOG_TARGET_BYTES
    return ok, (f"{sent} messages {{\"type\": \"<4 MB>\"}} in 10 s: {logged:,} bytes of log (target <= "
                f"{LOG_TARGET_BYTES:,}), close {received.close_code}")


async def big_json_frames(server: ServerProcess) -> tuple[bool, str]:
    big = json.dumps({"type": "KeepAlive", "pad": [0] * (4 * 1024 * 1024 // 3)})[:4 * 1024 * 1024 - 10] + "]}"
    sent = 0
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.url + PCM, headers=AUTH)
        reader = asyncio.create_task(collect(ws))
        started = time.monotonic()
        while time.monotonic() - started < 5:
            await ws.send_str(big)
            sent += 1
        await ws.send_str(json.dumps({"type": "CloseStream"}))
        received = await asyncio.wait_for(reader, 60)
    return received.close_code == 1000, f"{sent} JSON text frames of 4 MiB in 5 s: close {received.close_code}"


async def _stt_seconds(server: ServerProcess) -> float:
    body = (manifest()[CLIP].path).read_bytes()
    async with aiohttp.ClientSession() as http:
        started = time.monotonic()
        async with http.post(f"{server.url}/stt", data=body, headers=AUTH) as resp:
            await resp.read()
            assert resp.status == 200, resp.status
        return time.monotonic() - started


def _flood(port: int, one: bytes, count: int) -> tuple[int | None, float]:
    sock = ws_raw.connect(port, PCM)
    started = time.monotonic()
    sock.sendall(one * count + ws_raw.close_stream())
    code, _ = ws_raw.read_until_close(sock, 600)
    sock.close()
    return code, time.monotonic() - started


async def _flood_with_stt(server: ServerProcess, one: bytes, count: int) -> str:
    assert server.proc is not None
    proc = psutil.Process(server.proc.pid)
    alone = await _stt_seconds(server)
    cpu = sum(proc.cpu_times()[:2])
    flood = asyncio.create_task(asyncio.to_thread(_flood, _port(server), one, count))
    await asyncio.sleep(0.5)
    during = await _stt_seconds(server) if not flood.done() else float("nan")
    code, took = await flood
    spent = sum(proc.cpu_times()[:2]) - cpu
    return (f"close {code}, {took:.1f} s, server CPU {spent:.1f} s ({spent / count * 1e6:.0f} us a message, "
            f"/stt included); /stt of 10 s: {alone:.2f} s alone, {during:.2f} s during")


async def tiny_frames(server: ServerProcess) -> tuple[bool, str]:
    count = 200_000  # 40 s at a stream's message rate (MAX_MESSAGES_PER_S)
    binary = await _flood_with_stt(server, ws_raw.frame(ws_raw.BINARY, b"\x01\x00"), count)
    keepalive = await _flood_with_stt(server, ws_raw.frame(ws_raw.TEXT, b'{"type": "KeepAlive"}'), count)
    ok = "close 1000" in binary and "close 1000" in keepalive
    return ok, f"200,000 2-byte frames: {binary}; 200,000 KeepAlive: {keepalive}"


async def deep_json(server: ServerProcess) -> tuple[bool, str]:
    lines = len(server.lines)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.url + PCM, headers=AUTH)
        for text in ("[" * 5000 + "]" * 5000, '{"a":' * 5000 + "1" + "}" * 5000):
            await ws.send_str(text)
        await ws.send_bytes(bytes(3200))
        await ws.send_str(json.dumps({"type": "CloseStream"}))
        received = await asyncio.wait_for(collect(ws), 30)
    await asyncio.sleep(0.3)
    tracebacks = sum("Traceback" in line for line in server.lines[lines:])
    ok = received.close_code == 1000 and bool(received.of("Metadata")) and not tracebacks
    return ok, f"5,000-deep JSON arrays and objects: close {received.close_code}, {tracebacks} traceback(s) logged"


def _pinging_non_reader(port: int) -> float:
    """Pings every 0.2 s, never reads: seconds until the server cuts the connection."""
    sock = ws_raw.connect(port, PCM, rcvbuf=4096)
    ping = ws_raw.frame(ws_raw.PING, b"hi")
    started = time.monotonic()
    sock.settimeout(1.0)
    try:
        while time.monotonic() - started < 60:
            sock.sendall(ping)
            time.sleep(0.2)
            # The connection is gone when the kernel reports it (a reset makes the next send fail).
    except OSError:
        pass
    finally:
        sock.close()
    return time.monotonic() - started


async def pinging_non_reader(server: ServerProcess) -> tuple[bool, str]:
    took = await asyncio.to_thread(_pinging_non_reader, _port(server))
    return took < IDLE_S + 3, (f"a client that pings every 0.2 s and never reads: cut {took:.1f} s after it "
                               f"connected (stream_idle_seconds {IDLE_S})")


BOMB, PING = "bomb", "ping"
Attack = Callable[[ServerProcess], Awaitable[tuple[bool, str]]]
ATTACKS: list[tuple[str, Attack, set[str]]] = [
    ("19/P1: live 120 s as one message", big_messages, {PING}),
    ("19/P2: live AIFF + 3,000 MB junk", aiff_then_junk, {BOMB, PING}),
    ("19/P9: live 4 streams at 12x", fast_senders, {PING}),
    ("19/P6: live 4 MB control types, 10 s", control_flood, {PING}),
    ("19/P11: live 4 MiB JSON frames, 5 s", big_json_frames, {PING}),
    ("19/P13: live 200k tiny frames, KeepAlives", tiny_frames, {PING}),
    ("19/P10: live 5,000-deep JSON", deep_json, set()),
    ("19: live pinging non-reader at idle", pinging_non_reader, set()),
]
