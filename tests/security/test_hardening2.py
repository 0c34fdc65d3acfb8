"""Hardening, round 2 (issue 9): each attack from the adversarial pass, repeated on the real app.

The heavy versions (a real server process, peak RSS, /ping latency while the attack runs) are in
bench/abuse.py; these are the fast contract checks that fail without the fix.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from stt.audio import decode_audio
from stt.errors import AudioError
from tests.bad_inputs import tone, wav_bytes, wav_header
from tests.conftest import AUTH
from tests.helpers import TOKEN, FakeEngine
from tests.live_helpers import collect

PCM = "/v1/listen?encoding=linear16&channels=1"


# -- 1, 2: one sane range of sample rates wherever audio enters --------------------------------------------

def test_a_one_hertz_wav_is_refused_before_decoding() -> None:
    """28,844 bytes at 1 Hz claimed 14,400 s and decoded to 0.9 GB of float32."""
    body = wav_header(rate=1, channels=1, data_size=28_800) + bytes(28_800)
    with pytest.raises(AudioError, match="sample rate: 1 Hz"):
        decode_audio(body, max_seconds=4 * 3600)


def test_the_lowest_and_highest_accepted_rates_decode() -> None:
    for rate in (8000, 192_000):
        assert len(decode_audio(wav_bytes(tone(0.5, rate), rate=rate))) == 8000


async def test_upload_at_one_hertz_is_400(make_client: Any) -> None:
    engine = FakeEngine()
    client = await make_client(engine)
    body = wav_header(rate=1, channels=1, data_size=7_200) + bytes(7_200)
    resp = await client.post("/stt", data=body, headers=AUTH)
    assert resp.status == 400 and "sample rate" in (await resp.json())["message"]
    assert engine.calls == 0


async def test_live_query_rate_below_the_range_is_400_before_upgrade(client: Any) -> None:
    for rate in ("1", "7999", "192001"):
        resp = await client.get(f"{PCM}&sample_rate={rate}", headers=AUTH)
        assert resp.status == 400, rate
        assert "sample_rate" in (await resp.json())["err_msg"]


async def test_live_handshake_rate_below_the_range_closes_1007(client: Any) -> None:
    ws = await client.ws_connect("/listen", headers=AUTH)
    await ws.send_str("sample rate: 1")
    await ws.send_bytes(bytes(20_000))
    received = await collect(ws)
    assert received.close_code == 1007 and "sample_rate" in received.close_reason


# -- 10: FLAC decodes what is there, whatever its header says ------------------------------------------------

def _flac(seconds: float, rate: int = 16000) -> bytes:
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, tone(seconds, rate), rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def _with_total_samples(flac: bytes, total: int) -> bytes:
    """Rewrite STREAMINFO's 36-bit total sample count (0: unknown, as FFmpeg writes to a pipe)."""
    assert flac[:4] == b"fLaC"
    field = int.from_bytes(flac[18:26], "big")
    field = (field & ~((1 << 36) - 1)) | total
    return flac[:18] + field.to_bytes(8, "big") + flac[26:]


def test_flac_with_no_length_in_its_header_decodes() -> None:
    audio = decode_audio(_with_total_samples(_flac(5.0), 0), max_seconds=600)
    assert abs(len(audio) - 5 * 16000) < 1600


def test_flac_with_no_length_over_the_limit_is_refused_while_reading() -> None:
    from stt.errors import TooLarge

    with pytest.raises(TooLarge, match="too long"):
        decode_audio(_with_total_samples(_flac(5.0), 0), max_seconds=2.0)


def test_flac_whose_header_lies_low_is_decoded_whole() -> None:
    """The header says 1 s, the file holds 30 s: all of it is transcribed, none dropped silently."""
    audio = decode_audio(_with_total_samples(_flac(30.0), 16000), max_seconds=600)
    assert abs(len(audio) - 30 * 16000) < 1600


# -- auth fidelity (issue 11's items, auth code): 401 on the OpenAI and Deepgram faces, browser subprotocols --

@pytest.fixture
def fake_url() -> Any:
    from stt.http.app import create_app
    from tests.conftest import make_settings
    from tests.live_server import serve_in_thread

    with serve_in_thread(create_app(make_settings(), engine=FakeEngine())) as url:
        yield url


def test_openai_sdk_raises_authentication_error_on_a_wrong_key(fake_url: str) -> None:
    import openai

    client = openai.OpenAI(api_key="wrong", base_url=f"{fake_url}/v1", max_retries=0, timeout=30)
    with pytest.raises(openai.AuthenticationError) as err:
        client.audio.transcriptions.create(model="whisper-1", file=("a.wav", wav_bytes(tone())))
    assert err.value.status_code == 401
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_deepgram_sdk_sees_invalid_credentials_on_a_wrong_key(fake_url: str) -> None:
    from deepgram import DeepgramClient
    from deepgram.core.api_error import ApiError
    from deepgram.environment import DeepgramClientEnvironment

    ws = fake_url.replace("http", "ws")
    env = DeepgramClientEnvironment(base=fake_url, production=ws, agent=ws, agent_rest=fake_url)
    client = DeepgramClient(api_key="wrong", environment=env)
    with pytest.raises(ApiError) as err:
        client.listen.v1.media.transcribe_file(request=wav_bytes(tone()), model="nova-3")
    assert err.value.status_code == 401
    # With websockets 17 the SDK's own 401 mapping does not catch the library's InvalidStatus: what reaches
    # the caller is that, carrying the handshake's status.
    from websockets.exceptions import InvalidStatus

    with pytest.raises((ApiError, InvalidStatus)) as live_err:
        with client.listen.v1.connect(model="nova-3", encoding="linear16", sample_rate=16000):
            pass
    failure = live_err.value
    status = failure.status_code if isinstance(failure, ApiError) else failure.response.status_code
    assert status == 401


async def test_native_face_keeps_its_401_403_split(client: Any) -> None:
    assert (await client.post("/stt", data=b"x")).status == 401
    assert (await client.post("/stt", data=b"x", headers={"Authorization": "Token nope"})).status == 403
    resp = await client.post("/v1/audio/transcriptions", data=b"x", headers={"Authorization": "Bearer nope"})
    assert resp.status == 401 and resp.headers["WWW-Authenticate"]
    assert (await client.get("/v1/listen", headers={"Authorization": "Token nope"})).status == 401


@pytest.mark.parametrize("scheme", ["bearer", "Bearer", "token", "Token", "TOKEN"])
async def test_browser_subprotocol_pairs_are_accepted_and_the_scheme_echoed(client: Any, scheme: str) -> None:
    """Deepgram's JS SDK 5.x sends ["bearer", <access token>]; a browser refuses a handshake that does not
    echo an offered subprotocol, so "Token" must come back as "Token"."""
    ws = await client.ws_connect(f"{PCM}&sample_rate=16000", protocols=(scheme, TOKEN))
    assert ws.protocol == scheme
    await ws.send_str(json.dumps({"type": "CloseStream"}))
    received = await collect(ws)
    assert received.close_code == 1000 and received.of("Metadata")


async def test_raw_websocket_handshake_with_bearer_subprotocol(client: Any) -> None:
    """As a browser sends it, byte for byte: the 101 must carry Sec-WebSocket-Protocol: bearer."""
    from tests import rawhttp

    reader, writer = await rawhttp.connect(client.server.port)
    writer.write((f"GET {PCM}&sample_rate=16000 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: bearer, {TOKEN}\r\n\r\n").encode())
    await writer.drain()
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).decode().lower()
    await rawhttp.hang_up(writer)
    assert head.startswith("http/1.1 101") and "sec-websocket-protocol: bearer\r\n" in head


async def test_subprotocol_token_is_not_accepted_on_plain_http(client: Any) -> None:
    resp = await client.get("/ping", headers={"Sec-WebSocket-Protocol": f"token, {TOKEN}"})
    assert resp.status == 401


# -- 11: a 0xFF byte in a token is a wrong token, not a 500 ------------------------------------------------

async def test_a_token_with_a_non_utf8_byte_is_refused_and_throttled(make_client: Any) -> None:
    from tests import rawhttp

    client = await make_client(FakeEngine(), limits={"auth_max_failures": 2})
    statuses = []
    for _ in range(3):
        reader, writer = await rawhttp.connect(client.server.port)
        writer.write(b"GET /ping HTTP/1.1\r\nHost: x\r\nAuthorization: Token ab\xffcd\r\nConnection: close\r\n\r\n")
        await writer.drain()
        status, _, body = await rawhttp.read_response(reader, timeout=5)
        await rawhttp.hang_up(writer)
        statuses.append(status)
    assert statuses == [403, 403, 429]


# -- 12: odd values are 400s, odd messages do not kill a stream ------------------------------------------------

async def test_unicode_digit_endpointing_is_400(client: Any) -> None:
    resp = await client.get(f"{PCM}&endpointing=\u2460", headers=AUTH)
    assert resp.status == 400 and "endpointing" in (await resp.json())["err_msg"]


async def test_deeply_nested_json_message_is_ignored_and_the_stream_ends_normally(client: Any) -> None:
    ws = await client.ws_connect(f"{PCM}&sample_rate=16000", headers=AUTH)
    await ws.send_str("[" * 100_000 + "]" * 100_000)
    await ws.send_bytes(bytes(3200))
    await ws.send_str(json.dumps({"type": "CloseStream"}))
    received = await collect(ws)
    assert received.close_code == 1000 and received.of("Metadata")


# -- 3, 6, 8: live streams at shutdown, clients that do not read, pings are not activity ---------------------

async def test_shutdown_flushes_the_utterance_in_progress_then_closes_1001(aiohttp_server: Any) -> None:
    """SIGTERM used to close every stream with 1001 at once: no final for the words heard, no Metadata."""
    from stt.http.app import create_app
    from tests.conftest import make_settings
    from tests.live_helpers import load_pcm16

    server = await aiohttp_server(create_app(make_settings(limits={"shutdown_timeout_seconds": 10}),
                                             engine=FakeEngine()))
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.make_url(f"{PCM}&sample_rate=16000"), headers=AUTH)
        reader = asyncio.create_task(collect(ws))
        audio = load_pcm16("en/librispeech/1089-134686-0000.flac", 3)  # one sentence, no pause: no final before the end
        for i in range(0, len(audio), 3200):
            await ws.send_bytes(audio[i:i + 3200])
        await asyncio.sleep(1.0)  # let the server take in what was sent
        await asyncio.wait_for(server.close(), 15)
        received = await asyncio.wait_for(reader, 10)
    assert received.close_code == 1001 and "shutting down" in received.close_reason
    assert received.finals and received.final_text.strip(), received.messages
    assert received.messages[-1][1]["type"] == "Metadata"
    assert received.messages[-1][1]["duration"] == pytest.approx(3.0, abs=0.05)


def _ping_flooder(port: int, path: str, stop: Any) -> None:
    """A WebSocket client that sends pings as fast as it can and never reads a byte after the handshake."""
    import os
    import socket
    import struct

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                  f"Authorization: Token {TOKEN}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    payload = bytes(125)
    mask = os.urandom(4)
    frame = struct.pack("!BB", 0x89, 0x80 | len(payload)) + mask + bytes(b ^ mask[i % 4] for i, b in
                                                                         enumerate(payload))
    sock.settimeout(0.5)
    try:
        while not stop.is_set():
            try:
                sock.sendall(frame * 64)
            except TimeoutError:
                continue  # the server stopped reading: keep the socket open, keep not reading
    except OSError:
        pass  # the server cut the connection
    finally:
        sock.close()


async def test_a_client_that_never_reads_cannot_hold_shutdown(aiohttp_server: Any) -> None:
    """It kept the server alive > 60 s after SIGTERM with shutdown_timeout_seconds 10."""
    import threading
    import time

    from stt.http.app import create_app
    from tests.conftest import make_settings

    server = await aiohttp_server(create_app(make_settings(limits={"shutdown_timeout_seconds": 2,
                                                                   "stream_idle_seconds": 600}),
                                             engine=FakeEngine()))
    stop = threading.Event()
    flooder = threading.Thread(target=_ping_flooder, args=(server.port, f"{PCM}&sample_rate=16000", stop))
    flooder.start()
    try:
        await asyncio.sleep(3)  # long enough for the pongs to fill both socket buffers
        started = time.monotonic()
        await asyncio.wait_for(server.close(), 30)
        assert time.monotonic() - started < 2 + 3  # the budget, plus aiohttp's own handler wait
    finally:
        stop.set()
        await asyncio.to_thread(flooder.join, 10)


async def test_pings_do_not_keep_an_idle_stream_open(make_client: Any) -> None:
    """Idle means no audio and no KeepAlive: the old Deepgram SDK pings every 5 s and held a slot forever."""
    client = await make_client(FakeEngine(), limits={"stream_idle_seconds": 1})
    ws = await client.ws_connect(f"{PCM}&sample_rate=16000", headers=AUTH, autoping=False)
    started = asyncio.get_running_loop().time()

    async def ping() -> None:
        while True:
            await ws.ping()
            await asyncio.sleep(0.2)

    pinger = asyncio.create_task(ping())
    try:
        received = await asyncio.wait_for(collect(ws), 10)
    finally:
        pinger.cancel()
    assert received.close_code == 1011 and "no audio or KeepAlive" in received.close_reason
    assert asyncio.get_running_loop().time() - started < 3


# -- 4, 5: compressed and multipart bodies are inflated and parsed after auth, off the loop, bounded -------------

def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data, compresslevel=6)


_BOMB: list[bytes] = []


def gzip_bomb(gib: float = 0.25) -> bytes:
    """``gib`` GiB of zeros as one gzip member (0.25 GiB: 260 kB)."""
    if not _BOMB:
        import zlib

        packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        zeros = bytes(1 << 24)
        _BOMB.append(b"".join([packer.compress(zeros) for _ in range(int(gib * 64))] + [packer.flush()]))
    return _BOMB[0]


async def _slowest_ping_while(client: Any, attack: Any) -> float:
    """Seconds of the slowest /ping answered while ``attack`` runs."""
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(attack)
    slowest = 0.0
    while not task.done():
        started = loop.time()
        assert (await client.get("/ping", headers=AUTH)).status == 200
        slowest = max(slowest, loop.time() - started)
        await asyncio.sleep(0.01)
    await task
    return slowest


async def test_gzip_body_is_inflated_and_transcribed(client: Any) -> None:
    body = wav_bytes(tone(1.0))
    for encoding, packed in (("gzip", _gzip(body)), ("deflate", __import__("zlib").compress(body))):
        resp = await client.post("/stt", data=packed, headers={**AUTH, "Content-Encoding": encoding})
        assert resp.status == 200, (encoding, await resp.text())


async def test_gzip_bomb_without_a_token_is_401_and_never_inflated(client: Any) -> None:
    """It used to be inflated on the event loop before auth: three senders pushed /ping p50 to 1.3 s."""
    bomb = gzip_bomb()

    async def attack() -> None:
        for _ in range(3):
            resp = await client.post("/stt", data=bomb, headers={"Content-Encoding": "gzip"})
            assert resp.status == 401

    # What inflating it once costs on this machine now: the stall an inflating server would cause.
    import time
    import zlib

    started = time.perf_counter()
    zlib.decompress(bomb, 16 + zlib.MAX_WBITS)
    inflate_s = time.perf_counter() - started
    assert await _slowest_ping_while(client, attack()) < inflate_s / 2


async def test_gzip_bomb_with_a_token_is_413_once_over_the_limit(make_client: Any) -> None:
    engine = FakeEngine()
    client = await make_client(engine, http={"request_max_size": 10 * 1024 * 1024})
    resp = await client.post("/stt", data=gzip_bomb(), headers={**AUTH, "Content-Encoding": "gzip"})
    assert resp.status == 413 and "inflates" in (await resp.json())["message"]
    assert engine.calls == 0


async def test_unknown_or_broken_encodings_are_refused(client: Any) -> None:
    resp = await client.post("/stt", data=b"x" * 100, headers={**AUTH, "Content-Encoding": "br"})
    assert resp.status == 415
    resp = await client.post("/stt", data=_gzip(wav_bytes(tone()))[:-30], headers={**AUTH, "Content-Encoding": "gzip"})
    assert resp.status == 400 and "truncated" in (await resp.json())["message"]


async def test_multipart_with_200000_empty_parts_is_refused_without_stalling_the_loop(client: Any) -> None:
    """10.6 MB holding 200,000 empty parts took 17 s to refuse while /ping p50 was 2.4 s."""
    boundary = "b0undary"
    part = f"--{boundary}\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n\r\n".encode()
    body = part * 200_000 + f"--{boundary}--\r\n".encode()
    headers = {**AUTH, "Content-Type": f"multipart/form-data; boundary={boundary}"}

    async def attack() -> None:
        resp = await client.post("/stt", data=body, headers=headers)
        assert resp.status == 413 and "parts" in (await resp.json())["message"]

    assert await _slowest_ping_while(client, attack()) < 1.0  # aiohttp's reader: 17 s of loop time


async def test_gzipped_multipart_form_is_read(client: Any) -> None:
    from tests.bad_inputs import multipart

    body, content_type = multipart([("file", wav_bytes(tone())), ("language", b"en")])
    resp = await client.post("/stt", data=_gzip(body),
                             headers={**AUTH, "Content-Type": content_type, "Content-Encoding": "gzip"})
    assert resp.status == 200, await resp.text()


# -- 7: a bound on open connections, a clean refusal beyond it, no log flood -----------------------------------

async def test_connections_over_the_limit_get_a_503_and_are_closed(caplog: Any) -> None:
    import logging

    from aiohttp import web

    from stt.http.app import PARSER_OPTIONS, create_app
    from stt.http.connections import LimitedAppRunner
    from tests import rawhttp
    from tests.conftest import make_settings

    runner = LimitedAppRunner(create_app(make_settings(), engine=FakeEngine()), 3, **PARSER_OPTIONS)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    held = []
    try:
        for _ in range(3):  # three idle keep-alive connections, as a slow-loris client holds them
            reader, writer = await rawhttp.connect(port)
            writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            assert (await rawhttp.read_response(reader, timeout=5))[0] == 200
            held.append(writer)
        caplog.set_level(logging.INFO, logger="stt.http.connections")
        for _ in range(20):
            reader, writer = await rawhttp.connect(port)
            writer.write(f"GET /ping HTTP/1.1\r\nHost: x\r\nAuthorization: Token {TOKEN}\r\n\r\n".encode())
            status, headers, body = await rawhttp.read_response(reader, timeout=5)
            assert status == 503 and body["code"] == "overloaded" and headers["x-request-id"]
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
            await rawhttp.hang_up(writer)
        assert len([r for r in caplog.records if r.name == "stt.http.connections"]) == 1  # not one per refusal
        await rawhttp.hang_up(held.pop())
        await asyncio.sleep(0.1)
        reader, writer = await rawhttp.connect(port)
        writer.write(f"GET /ping HTTP/1.1\r\nHost: x\r\nAuthorization: Token {TOKEN}\r\n\r\n".encode())
        assert (await rawhttp.read_response(reader, timeout=5))[0] == 200
        held.append(writer)
    finally:
        for writer in held:
            await rawhttp.hang_up(writer)
        await runner.cleanup()


def test_failed_accepts_are_logged_once_a_minute_not_once_each(caplog: Any) -> None:
    import logging

    from stt.http.connections import quiet_accept_errors

    loop = asyncio.new_event_loop()
    try:
        quiet_accept_errors(loop)
        caplog.set_level(logging.INFO)
        for _ in range(100):
            loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                         "exception": OSError(24, "Too many open files")})
    finally:
        loop.close()
    assert len(caplog.records) == 1 and "out of file descriptors" in caplog.records[0].getMessage()


def test_max_connections_is_configurable_and_validated() -> None:
    from stt.settings import ConfigError
    from tests.conftest import make_settings

    assert make_settings().http.max_connections == 512
    assert make_settings(http={"max_connections": 100}).http.max_connections == 100
    with pytest.raises(ConfigError, match="max_connections"):
        make_settings(http={"max_connections": 0})


# -- 13: Expect answered after auth and the size check; every answer JSON with a request id ------------------

async def _expect_exchange(port: int, head: bytes, wait: float = 1.0) -> bytes:
    """Send only the head, then return what the server says before any body is sent."""
    from tests import rawhttp

    reader, writer = await rawhttp.connect(port)
    writer.write(head)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(4096), wait)
    except TimeoutError:
        return b""
    finally:
        await rawhttp.hang_up(writer)


async def test_100_continue_only_after_auth_and_size_checks(make_client: Any) -> None:
    client = await make_client(FakeEngine(), http={"request_max_size": 1024 * 1024})
    port = client.server.port

    def head(length: int, auth: str = "") -> bytes:
        return (f"POST /stt HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\nExpect: 100-continue\r\n"
                f"{auth}\r\n").encode()

    no_token = await _expect_exchange(port, head(1000))
    assert no_token.startswith(b"HTTP/1.1 401") and b"100 Continue" not in no_token
    too_big = await _expect_exchange(port, head(10 * 1024 * 1024, f"Authorization: Token {TOKEN}\r\n"))
    assert too_big.startswith(b"HTTP/1.1 413") and b"100 Continue" not in too_big
    fine = await _expect_exchange(port, head(1000, f"Authorization: Token {TOKEN}\r\n"))
    assert fine == b"HTTP/1.1 100 Continue\r\n\r\n"


async def test_100_continue_upload_is_transcribed(client: Any) -> None:
    resp = await client.post("/stt", data=wav_bytes(tone()), headers={**AUTH, "Expect": "100-continue"})
    assert resp.status == 200


async def test_unknown_expectation_is_a_json_417_with_a_request_id(client: Any) -> None:
    for path in ("/stt", "/no-such-route"):  # aiohttp makes a route of its own for a 404
        resp = await client.post(path, data=b"x", headers={**AUTH, "Expect": "200-ok"})
        assert resp.status == 417 and resp.headers["X-Request-Id"], path
        assert (await resp.json())["status"] == "failed"


# -- 14: what the public surfaces show ------------------------------------------------------------------------

async def test_server_header_names_no_versions(client: Any) -> None:
    for resp in (await client.get("/health"), await client.get("/ping", headers=AUTH), await client.get("/ping")):
        assert resp.headers["Server"] == "stt-server"


async def test_health_shows_the_model_name_not_its_path(make_client: Any) -> None:
    engine = FakeEngine()
    engine.model_name = "/srv/secret/models/whisper-base-ct2"
    client = await make_client(engine)
    body = await (await client.get("/health")).json()
    assert body["model"] == "whisper-base-ct2"


# -- 1 (queue): requests in flight hold a bounded amount of decoded audio --------------------------------------

async def test_decoded_audio_held_by_requests_in_flight_is_bounded(make_client: Any) -> None:
    """Queued requests kept their decoded audio: 64 queued 4 h uploads could hold 59 GB."""
    engine = FakeEngine(delay=1.0)
    client = await make_client(engine, limits={"max_held_audio_seconds": 3})
    body = wav_bytes(tone(2.0))
    first = asyncio.create_task(client.post("/stt", data=body, headers=AUTH))
    await asyncio.to_thread(engine.running.wait, 5)  # the first one's 2 s are held while it runs
    second = await client.post("/stt", data=body, headers=AUTH)
    assert second.status == 503 and second.headers["Retry-After"]
    assert "audio in flight" in (await second.json())["message"]
    assert (await first).status == 200
    third = await client.post("/stt", data=body, headers=AUTH)  # released when the first one answered
    assert third.status == 200
    alone = await client.post("/stt", data=wav_bytes(tone(5.0)), headers=AUTH)  # over the bound, but alone
    assert alone.status == 200


async def test_live_container_at_one_hertz_closes_1007_without_a_memory_bomb(client: Any) -> None:
    """Without encoding=linear16 the stream is a container: a WAV header declaring 1 Hz made every byte pair
    16,000 samples."""
    import resource

    ws = await client.ws_connect(f"{PCM.split('?')[0]}", headers=AUTH)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    await ws.send_bytes(wav_header(rate=1, channels=1, data_size=40_000) + bytes(40_000))
    await ws.send_str(json.dumps({"type": "CloseStream"}))
    received = await asyncio.wait_for(collect(ws), 20)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert received.close_code == 1007 and "sample rate: 1 Hz" in received.close_reason
    assert grown_mb < 100  # 20,000 samples at 1 Hz would be 320 M samples (1.3 GB) at 16 kHz


def test_pcm_decoder_refuses_rates_outside_the_range() -> None:
    from stt.live.audio_in import PcmDecoder

    for rate in (1, 7999, 192_001):
        with pytest.raises(AudioError, match="sample rate"):
            PcmDecoder(rate, 1)
