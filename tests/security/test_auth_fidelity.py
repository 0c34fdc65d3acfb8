"""Issue 9 and issue 11's auth items: 401 from the OpenAI and Deepgram SDKs, the native face's 401/403 split,
browser subprotocols, a token with a non-UTF-8 byte."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.bad_inputs import tone, wav_bytes
from tests.hardening_helpers import PCM
from tests.helpers import TOKEN, FakeEngine
from tests.live_helpers import collect


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
