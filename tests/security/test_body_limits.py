"""Issue 9, request bodies: compressed and multipart bodies inflated and parsed after auth, off the loop,
bounded; Expect answered after auth and the size check."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.bad_inputs import tone, wav_bytes
from tests.conftest import AUTH
from tests.helpers import TOKEN, FakeEngine


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
