"""The bad-inputs table: every kind of broken or hostile upload gets a 4xx JSON error, never reaches the engine,
and the server still answers /ping afterwards."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from tests.bad_inputs import BadInput, bad_inputs, body_over_limit
from tests.conftest import AUTH
from tests.helpers import AUDIO_DIR, FakeEngine

MAX_AUDIO_S = 600.0
BODY_LIMIT = 2 * 1024 * 1024
TABLE = bad_inputs(MAX_AUDIO_S) + [body_over_limit(BODY_LIMIT)] if (AUDIO_DIR / "manifest.tsv").is_file() else []


def test_table_covers_at_least_twenty_kinds() -> None:
    if not TABLE:
        pytest.skip("shared audio not found")
    assert len({b.name for b in TABLE}) >= 20


@pytest.fixture
async def hardened(make_client: Any) -> tuple[Any, FakeEngine]:
    engine = FakeEngine()
    client = await make_client(engine, http={"request_max_size": BODY_LIMIT},
                               limits={"max_audio_seconds": MAX_AUDIO_S})
    return client, engine


@pytest.mark.parametrize("bad", TABLE, ids=[b.name for b in TABLE])
async def test_bad_input_gets_4xx_json_and_server_stays_up(hardened: tuple[Any, FakeEngine], bad: BadInput) -> None:
    client, engine = hardened
    headers = {**AUTH, "Content-Type": bad.content_type, **dict(bad.headers)}
    resp = await client.post("/stt", data=bad.body, headers=headers)
    assert resp.status == bad.status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert body["status"] == "failed" and body["message"]
    assert resp.headers["X-Request-Id"]
    assert engine.calls == 0  # refused before any inference
    ping = await client.get("/ping", headers=AUTH)
    assert ping.status == 200 and (await ping.json())["text"] == "pong"


async def test_multipart_field_named_file_is_accepted(hardened: tuple[Any, FakeEngine]) -> None:
    """Control for the multipart rows above: the same form with one 'file' field is transcribed."""
    from tests.bad_inputs import multipart, tone, wav_bytes

    client, engine = hardened
    body, content_type = multipart([("file", wav_bytes(tone(2.0)))])
    resp = await client.post("/stt", data=body, headers={**AUTH, "Content-Type": content_type})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["duration"] == pytest.approx(2.0, abs=0.01)
    assert engine.calls == 1


async def test_wav_data_size_that_lies_high_decodes_only_what_is_there(hardened: tuple[Any, FakeEngine]) -> None:
    """Streaming writers (ffmpeg to a pipe) leave a huge or zero data size in the header: such a WAV is served,
    and the length is what the body holds, never what the header claims."""
    from tests.bad_inputs import tone, wav_bytes, wav_header

    client, _ = hardened
    good = wav_bytes(tone(1.5))
    lying = wav_header(rate=16000, channels=1, data_size=0xFFFFFFF0) + good[44:]
    resp = await client.post("/stt", data=lying, headers=AUTH)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["duration"] == pytest.approx(1.5, abs=0.01)


async def test_oversized_authorization_header_is_json_and_never_logs_the_token(
        hardened: tuple[Any, FakeEngine], caplog: pytest.LogCaptureFixture) -> None:
    """aiohttp refuses a header over 8 KiB before the app sees the request; its own answer and log line quote
    the header's first bytes, which here are the token (stt/http/aiohttp_patches.py)."""
    caplog.set_level(logging.DEBUG)
    client, engine = hardened
    secret = "tok-" + "s3cr3t" * 4
    resp = await client.post("/stt", data=b"RIFF", headers={"Authorization": f"Token {secret}{'x' * 9000}"})
    assert resp.status == 400
    assert resp.content_type == "application/json" and resp.headers["X-Request-Id"]
    body = await resp.json()
    assert body["status"] == "failed" and "over 8 KiB" in body["message"]
    assert secret not in json.dumps(body) and secret not in caplog.text
    assert "LineTooLong" in caplog.text  # the refusal is still logged
    assert engine.calls == 0
    assert (await client.get("/ping", headers=AUTH)).status == 200


async def test_request_line_over_8_kib_is_json(hardened: tuple[Any, FakeEngine]) -> None:
    client, _ = hardened
    resp = await client.post("/stt?initial_prompt=" + "a" * 9000, data=b"RIFF", headers=AUTH)
    assert resp.status == 400 and (await resp.json())["status"] == "failed"
