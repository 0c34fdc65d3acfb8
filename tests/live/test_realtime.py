"""OpenAI's Realtime API (transcription sessions) at /v1/realtime over raw WebSockets, on the real app with a fake
engine (the speech detector is real: the audio is real speech). Every server event is checked against the
official OpenAI SDK's own event models."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import aiohttp
import numpy as np
import pydantic
import pytest
from openai.types.realtime import RealtimeServerEvent

from stt.audio import SAMPLE_RATE, decode_audio
from stt.http.keys import LIVE_STREAMS
from stt.http.faces.realtime.config import SessionConfig
from stt.http.faces.realtime.connection import stream_config
from stt.live.runner import MAX_PENDING_SECONDS
from stt.live.session import StreamSession
from stt.live.g711 import G711Decoder, table
from tests.conftest import AUTH
from tests.helpers import AUDIO_DIR, TOKEN, FakeEngine
from tests.realtime_helpers import (COMMITTED, COMPLETED, DELTA, STARTED, STOPPED, append, check_items, clip_pcm24,
                                    events_until_close, g711, receive_until, send_audio)

PATH = "/v1/realtime?intent=transcription"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
CLIP = "en/librispeech/1089-134686-0000.flac"  # 10.4 s, one sentence
GA = pydantic.TypeAdapter(RealtimeServerEvent)
MANUAL = {"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
    "turn_detection": None}}}}


def check(event: dict[str, Any]) -> dict[str, Any]:
    """The event parses as the SDK's model of its type (every field OpenAI requires, of the right type)."""
    GA.validate_python(event)
    assert event["event_id"]
    return event


async def connect(client: Any, **kwargs: Any) -> aiohttp.ClientWebSocketResponse:
    ws = await client.ws_connect(PATH, **({"headers": BEARER} | kwargs))
    created = check(json.loads((await ws.receive()).data))
    assert created["type"] == "session.created"
    return ws


async def refused(client: Any, path: str = PATH, **kwargs: Any) -> int:
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect(path, **kwargs)
    return info.value.status


async def send(ws: aiohttp.ClientWebSocketResponse, event: dict[str, Any]) -> None:
    await ws.send_str(json.dumps(event))


# -- the handshake ---------------------------------------------------------------------------------------

async def test_auth_before_the_upgrade(client: Any) -> None:
    assert await refused(client) == 401
    assert await refused(client, headers={"Authorization": "Bearer nope"}) == 401
    assert await refused(client, protocols=("realtime", "openai-insecure-api-key.nope")) == 401
    resp = await client.get(PATH, headers={"Authorization": "Bearer nope"})
    body = await resp.json()
    assert resp.status == 401 and body["error"]["code"] == "invalid_api_key"  # OpenAI's error shape


async def test_browser_subprotocol_key_is_accepted_and_realtime_echoed(client: Any) -> None:
    ws = await client.ws_connect(PATH, protocols=("realtime", f"openai-insecure-api-key.{TOKEN}"))
    assert ws.protocol == "realtime"
    assert check(json.loads((await ws.receive()).data))["type"] == "session.created"
    await ws.close()


async def test_intent_is_required_and_plain_get_is_400(client: Any) -> None:
    resp = await client.get("/v1/realtime", headers=BEARER)
    body = await resp.json()
    assert resp.status == 400 and body["error"]["param"] == "intent"
    resp = await client.get(PATH, headers=BEARER)
    assert resp.status == 400 and "WebSocket" in (await resp.json())["error"]["message"]


async def test_session_created_has_openai_defaults(client: Any) -> None:
    ws = await client.ws_connect(PATH, headers=BEARER)
    session = check(json.loads((await ws.receive()).data))["session"]
    assert session["type"] == "transcription"
    inp = session["audio"]["input"]
    assert inp["format"] == {"type": "audio/pcm", "rate": 24000}
    assert inp["turn_detection"] == {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                                     "silence_duration_ms": 500}
    await ws.close()


async def test_beta_clients_get_the_beta_shape(client: Any) -> None:
    ws = await client.ws_connect(PATH, headers=BEARER | {"OpenAI-Beta": "realtime=v1"})
    created = json.loads((await ws.receive()).data)
    assert created["type"] == "transcription_session.created"
    assert created["session"]["input_audio_format"] == "pcm16"
    await send(ws, {"type": "transcription_session.update", "session": {
        "input_audio_format": "g711_ulaw", "input_audio_transcription": {"model": "gpt-4o-transcribe",
                                                                        "language": "en", "prompt": "Joyce"},
        "turn_detection": {"type": "server_vad", "silence_duration_ms": 700}}})
    # (The SDK's beta model of this event wants a REST session's client_secret: not checked against it.)
    updated = await receive_until(ws, "transcription_session.updated")
    session = updated["session"]
    assert session["input_audio_format"] == "g711_ulaw"
    assert session["input_audio_transcription"] == {"model": "gpt-4o-transcribe", "language": "en",
                                                    "prompt": "Joyce"}
    assert session["turn_detection"]["silence_duration_ms"] == 700
    assert session["turn_detection"]["threshold"] == 0.5  # fields not named keep their values
    await ws.close()


# -- session.update ---------------------------------------------------------------------------------------

async def test_ga_session_update_is_echoed_in_full(client: Any) -> None:
    ws = await connect(client)
    await send(ws, {"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
        "format": {"type": "audio/pcma"}, "transcription": {"model": "whisper-1", "language": "de"},
        "turn_detection": None}}}})
    session = check(await receive_until(ws, "session.updated"))["session"]
    inp = session["audio"]["input"]
    assert inp["format"] == {"type": "audio/pcma"} and inp["turn_detection"] is None
    assert inp["transcription"]["language"] == "de"
    await ws.close()


@pytest.mark.parametrize("session, param", [
    ({"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}},
     "session.audio.input.format.rate"),
    ({"type": "transcription", "audio": {"input": {"format": {"type": "audio/opus"}}}},
     "session.audio.input.format.type"),
    ({"type": "transcription", "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 2}}}},
     "session.audio.input.turn_detection.threshold"),
    ({"type": "transcription", "audio": {"input": {"turn_detection": {"type": "semantic_vad"}}}},
     "session.audio.input.turn_detection.type"),
    ({"type": "transcription", "audio": {"input": {"transcription": {"language": "klingon"}}}},
     "session.audio.input.transcription.language"),
    ({"type": "transcription", "audio": {"input": {"transcription": {"prompt": "x" * 5000}}}},
     "session.audio.input.transcription.prompt"),
    ({"type": "realtime"}, "session.type"),
    ({"input_audio_format": "mp3"}, "session.input_audio_format"),
])
async def test_bad_session_update_is_an_error_event_naming_the_field(client: Any, session: dict[str, Any],
                                                                      param: str) -> None:
    ws = await connect(client)
    await send(ws, {"type": "session.update", "event_id": "evt_mine", "session": session})
    error = check(await receive_until(ws, "error"))["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param, error
    assert error["event_id"] == "evt_mine" and error["message"]
    # The session keeps its configuration and stays open.
    await send(ws, {"type": "session.update", "session": {"type": "transcription"}})
    inp = (await receive_until(ws, "session.updated"))["session"]["audio"]["input"]
    assert inp["format"] == {"type": "audio/pcm", "rate": 24000} and inp["turn_detection"]["threshold"] == 0.5
    await ws.close()


@pytest.mark.parametrize("message, code", [
    ("not json", "invalid_json"),
    (json.dumps([1, 2]), "invalid_value"),
    (json.dumps({"type": "response.create"}), "invalid_value"),
    (json.dumps({"type": "nope"}), "invalid_value"),
    (json.dumps({"type": "input_audio_buffer.append", "audio": "***"}), "invalid_value"),
    (json.dumps({"type": "input_audio_buffer.append"}), "missing_required_parameter"),
    (json.dumps({"type": "session.update"}), "missing_required_parameter"),
])
async def test_bad_events_are_error_events_and_the_session_goes_on(client: Any, message: str, code: str) -> None:
    ws = await connect(client)
    await ws.send_str(message)
    assert check(await receive_until(ws, "error"))["error"]["code"] == code
    await ws.send_bytes(b"\x00\x01")  # binary frames are not the Realtime API either
    assert "base64" in (await receive_until(ws, "error"))["error"]["message"]
    await send(ws, {"type": "session.update", "session": {"type": "transcription"}})
    await receive_until(ws, "session.updated")
    await ws.close()


# -- the input audio buffer ---------------------------------------------------------------------------------

async def test_server_vad_commits_each_utterance_with_its_events(client: Any) -> None:
    ws = await connect(client)
    events: list[dict[str, Any]] = []
    await send_audio(ws, clip_pcm24(CLIP, silence_after_s=1.5) * 2, speed=0)
    first = await receive_until(ws, "conversation.item.input_audio_transcription.completed", into=events)
    second = await receive_until(ws, "conversation.item.input_audio_transcription.completed", into=events)
    for event in events:
        check(event)
    # Per item: started, stopped, committed, delta, completed (the second item may start before the first one's
    # transcript is out, as with OpenAI).
    assert list(check_items(events)) == [first["item_id"], second["item_id"]]
    kinds = [(e["type"], e.get("item_id")) for e in events]
    assert [k for k in kinds if k[1] == first["item_id"]] == [(k, first["item_id"]) for k in (
        STARTED, STOPPED, COMMITTED, DELTA, COMPLETED)], kinds
    by_kind = {(e["type"], e["item_id"]): e for e in events}
    started, stopped = by_kind[STARTED, first["item_id"]], by_kind[STOPPED, first["item_id"]]
    committed, delta = by_kind[COMMITTED, first["item_id"]], by_kind[DELTA, first["item_id"]]
    assert committed["previous_item_id"] is None
    assert by_kind[COMMITTED, second["item_id"]]["previous_item_id"] == first["item_id"]
    assert second["item_id"] != first["item_id"]
    # On the audio's own timeline: the clip's speech starts near 0 and ends near 10.4 s; the second copy
    # begins 11.9 s in.
    assert 0 <= started["audio_start_ms"] < 1000 and 9500 < stopped["audio_end_ms"] < 11900
    assert 11000 < by_kind[STARTED, second["item_id"]]["audio_start_ms"] < 13000
    assert first["transcript"] == delta["delta"] and "hello world" in first["transcript"]
    assert first["content_index"] == delta["content_index"] == 0
    assert first["usage"]["type"] == "duration" and 9 < first["usage"]["seconds"] < 12
    assert len({e["event_id"] for e in events}) == len(events)
    await ws.close()


async def test_manual_commit_transcribes_the_buffer_as_one_item(client: Any) -> None:
    ws = await connect(client)
    await send(ws, MANUAL)
    await receive_until(ws, "session.updated")
    events: list[dict[str, Any]] = []
    await send_audio(ws, clip_pcm24(CLIP, silence_after_s=0.5), speed=0)
    await send(ws, {"type": "input_audio_buffer.commit"})
    done = await receive_until(ws, "conversation.item.input_audio_transcription.completed", into=events)
    for event in events:
        check(event)
    kinds = [e["type"] for e in events]
    assert "input_audio_buffer.speech_started" not in kinds  # no VAD events without turn detection
    assert kinds[0] == "input_audio_buffer.committed" and kinds[-1].endswith("completed")
    deltas = [e["delta"] for e in events if e["type"].endswith("delta")]
    assert deltas and "".join(deltas) == done["transcript"] and "hello world" in done["transcript"]
    # The stream goes on after a commit: the next buffer is the next item.
    await send_audio(ws, clip_pcm24(CLIP, silence_after_s=0.5), speed=0)
    await send(ws, {"type": "input_audio_buffer.commit"})
    committed = await receive_until(ws, "input_audio_buffer.committed")
    assert committed["previous_item_id"] == done["item_id"]
    assert "hello world" in (await receive_until(ws, "conversation.item.input_audio_transcription.completed"))[
        "transcript"]
    await ws.close()


async def test_commit_of_an_empty_buffer_is_openais_error(client: Any) -> None:
    ws = await connect(client)
    await send(ws, {"type": "input_audio_buffer.commit", "event_id": "c1"})
    error = check(await receive_until(ws, "error"))["error"]
    assert error["code"] == "input_audio_buffer_commit_empty" and error["event_id"] == "c1"
    await ws.close()


async def test_clear_drops_the_buffer(client: Any) -> None:
    ws = await connect(client)
    await send(ws, MANUAL)
    await receive_until(ws, "session.updated")
    await send_audio(ws, clip_pcm24(CLIP)[: 24000 * 2 * 4], speed=0)  # 4 s of speech
    await send(ws, {"type": "input_audio_buffer.clear"})
    check(await receive_until(ws, "input_audio_buffer.cleared"))
    await send(ws, {"type": "input_audio_buffer.commit"})
    assert (await receive_until(ws, "error"))["error"]["code"] == "input_audio_buffer_commit_empty"
    await ws.close()


@pytest.mark.parametrize("fmt, law", [("audio/pcmu", "ulaw"), ("audio/pcma", "alaw")])
async def test_g711_audio_is_heard(client: Any, fmt: str, law: str) -> None:
    ws = await connect(client)
    await send(ws, {"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
        "format": {"type": fmt}}}}})
    await receive_until(ws, "session.updated")
    audio = decode_audio((AUDIO_DIR / CLIP).read_bytes())
    data = g711(np.concatenate([audio, np.zeros(SAMPLE_RATE * 2, np.float32)]), law)
    events: list[dict[str, Any]] = []
    await send_audio(ws, data, speed=0, bytes_per_second=8000)
    done = await receive_until(ws, "conversation.item.input_audio_transcription.completed", into=events)
    started = next(e for e in events if e["type"] == "input_audio_buffer.speech_started")
    assert started["audio_start_ms"] < 1000 and "hello world" in done["transcript"]
    await ws.close()


def test_g711_tables_are_the_standard_laws() -> None:
    """Known code points of ITU-T G.711 (μ-law 0xFF and A-law 0xD5 are the smallest positive steps)."""
    ulaw, alaw = table("ulaw") * 32768, table("alaw") * 32768
    assert ulaw[0xFF] == 0 and ulaw[0x00] == -32124 and ulaw[0x80] == 32124
    assert alaw[0xD5] == 8 and alaw[0x55] == -8 and alaw[0xAA] == 32256
    # A round trip through FFmpeg's encoder keeps a tone within G.711's quantisation error.
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(SAMPLE_RATE) / SAMPLE_RATE)).astype(np.float32)
    for law in ("ulaw", "alaw"):
        decoder = G711Decoder(law)  # type: ignore[arg-type]
        out = np.concatenate([decoder.feed(g711(tone, law)), decoder.finish()])
        assert abs(len(out) - len(tone)) < 200
        n = min(len(out), len(tone)) - 400
        corr = np.corrcoef(out[200:200 + n], tone[200:200 + n])[0, 1]
        assert corr > 0.99, (law, corr)


# -- limits, shared with /v1/listen --------------------------------------------------------------------------

async def test_the_stream_limit_counts_both_live_faces(make_client: Any) -> None:
    client = await make_client(FakeEngine(), limits={"max_streams": 1})
    listen = await client.ws_connect("/v1/listen?encoding=linear16&sample_rate=16000", headers=AUTH)
    ws = await client.ws_connect(PATH, headers=BEARER)
    events = await events_until_close(ws)
    assert events[-1]["type"] == "error" and "limit is 1" in events[-1]["error"]["message"]
    assert ws.close_code == 1013
    await listen.send_str(json.dumps({"type": "CloseStream"}))
    await listen.close()


async def test_idle_session_is_closed(make_client: Any) -> None:
    client = await make_client(FakeEngine(), limits={"stream_idle_seconds": 1})
    ws = await connect(client)
    events = await events_until_close(ws, timeout=10)
    assert events[-1]["error"]["code"] == "idle_timeout" and ws.close_code == 1011


async def test_audio_limit_commits_what_was_heard_then_closes(make_client: Any) -> None:
    client = await make_client(FakeEngine(), limits={"max_stream_seconds": 3})
    ws = await connect(client)
    await send_audio(ws, clip_pcm24(CLIP)[: 24000 * 2 * 4], speed=0)
    events = await events_until_close(ws)
    kinds = [e["type"] for e in events]
    assert "conversation.item.input_audio_transcription.completed" in kinds, kinds
    assert events[-1]["error"]["code"] == "audio_limit_reached" and ws.close_code == 1008


async def test_a_big_append_is_split_for_the_session(client: Any) -> None:
    """One append of the whole clip (twice, 23 s) is heard as the same two utterances as small appends."""
    ws = await connect(client)
    data = clip_pcm24(CLIP, silence_after_s=1.5) * 2
    await ws.send_str(append(data))
    first = await receive_until(ws, "conversation.item.input_audio_transcription.completed")
    second = await receive_until(ws, "conversation.item.input_audio_transcription.completed")
    assert first["item_id"] != second["item_id"]
    await ws.close()


async def test_append_with_odd_bytes_carries_the_half_sample(client: Any) -> None:
    ws = await connect(client)
    await send(ws, MANUAL)
    await receive_until(ws, "session.updated")
    data = clip_pcm24(CLIP, silence_after_s=0.3)
    for i in range(0, len(data), 4801):  # odd-sized pieces: samples split across appends
        await send(ws, {"type": "input_audio_buffer.append", "audio": base64.b64encode(data[i:i + 4801]).decode()})
    await send(ws, {"type": "input_audio_buffer.commit"})
    done = await receive_until(ws, "conversation.item.input_audio_transcription.completed")
    assert "hello world" in done["transcript"]
    await asyncio.sleep(0)
    await ws.close()


async def test_a_message_over_4_mib_closes_the_socket(client: Any) -> None:
    """The largest event the server parses is bounded before any JSON or base64 work (aiohttp refuses it)."""
    ws = await connect(client)
    try:
        await ws.send_str(json.dumps({"type": "input_audio_buffer.append", "audio": "A" * (5 * 1024 * 1024)}))
    except ConnectionError:
        pass  # the server closed the socket while the message was still being written
    events = await events_until_close(ws, timeout=20)
    assert ws.closed and ws.close_code in (1006, 1009) and not events  # 1006: reset while writing
    assert (await client.get("/health")).status == 200


async def test_a_sender_faster_than_decoding_is_paced_and_loses_nothing(make_client: Any) -> None:
    """Back-pressure as on /v1/listen: the session stops reading while over MAX_PENDING_SECONDS of undecoded
    audio, so what a fast sender pushes waits in TCP, not in the server's memory."""
    client = await make_client(FakeEngine(delay=0.3))  # every pass 0.3 s: far slower than this sender
    streams = client.server.app[LIVE_STREAMS]
    ws = await connect(client)
    data = clip_pcm24(CLIP, silence_after_s=1.5) * 10  # 119 s, ten turns
    most = 0.0
    sending = asyncio.create_task(send_audio(ws, data, speed=0))
    while not sending.done():
        most = max([most, *(s.pending_seconds for s in streams)])
        await asyncio.sleep(0.01)
    sending.result()
    assert most <= MAX_PENDING_SECONDS + 1, most
    texts: list[str] = []
    events: list[dict[str, Any]] = []
    while len(texts) < 10:
        texts.append((await receive_until(ws, COMPLETED, timeout=120, into=events))["transcript"])
    assert all("hello world" in t for t in texts), texts
    assert list(check_items(events).values()) == texts  # slow passes: turns open before the last is decoded
    await ws.close()


def test_the_prompt_is_the_first_passes_context() -> None:
    """transcription.prompt reaches the decoder as the text said before the stream (Whisper's previous text)."""
    session = StreamSession(stream_config(SessionConfig(prompt="Stephen Dedalus")))
    session.feed(decode_audio((AUDIO_DIR / CLIP).read_bytes())[: 3 * SAMPLE_RATE])
    step = session.next_pass()
    assert step is not None and step.request.prompt is not None and "Stephen Dedalus" in step.request.prompt
    plain = StreamSession(stream_config(SessionConfig()))
    plain.feed(decode_audio((AUDIO_DIR / CLIP).read_bytes())[: 3 * SAMPLE_RATE])
    step = plain.next_pass()
    assert step is not None and not step.request.prompt


async def test_an_update_in_the_middle_of_a_buffer_keeps_what_was_heard(client: Any) -> None:
    """Switching from client commits to server VAD commits what the old settings heard; nothing is lost and the
    next turn is its own item."""
    ws = await connect(client)
    await send(ws, MANUAL)
    await receive_until(ws, "session.updated")
    await send_audio(ws, clip_pcm24(CLIP, silence_after_s=1.0), speed=0)
    events: list[dict[str, Any]] = []
    await send(ws, {"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
        "turn_detection": {"type": "server_vad"}}}}})
    await receive_until(ws, "session.updated", into=events)
    first = next(e for e in events if e["type"].endswith("completed"))
    assert "hello world" in first["transcript"]
    await send_audio(ws, clip_pcm24(CLIP, silence_after_s=1.5), speed=0)
    started = await receive_until(ws, "input_audio_buffer.speech_started")
    second = await receive_until(ws, "conversation.item.input_audio_transcription.completed")
    assert second["item_id"] == started["item_id"] != first["item_id"] and "hello world" in second["transcript"]
    await ws.close()
