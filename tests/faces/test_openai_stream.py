"""OpenAI's `stream=true` (Server-Sent Events) and `chunking_strategy` on the real app with a fake engine whose
speech windows are known: deltas in order as each window is decoded, errors midway, what does not stream."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Sequence
from typing import Any

import aiohttp
import numpy as np
import pytest
import soundfile as sf

from stt.audio import SAMPLE_RATE
from stt.engines.base import WindowRequest, WindowResult, Word
from stt.http.openapi import build_spec
from tests.helpers import TOKEN, FakeEngine

BEARER = {"Authorization": f"Bearer {TOKEN}"}
# Speech pieces of 21, 22 and 23 s with pauses between: three windows (two never fit one 30 s window).
PIECES_S = ((1.0, 22.0), (24.0, 46.0), (48.0, 71.0))
LENGTH_S = 72.0


class WindowedEngine(FakeEngine):
    """Speech where PIECES_S say; each window answers " window <its length in s>." with one word per token, so
    the text tells which window it came from. ``hold`` blocks every window but the first until set;
    ``fail_at``: the window (by length) whose decoding fails."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = threading.Event()
        self.hold.set()
        self.fail_at: int | None = None
        self.decoded: list[int] = []

    def find_speech(self, audio: np.ndarray) -> list[tuple[int, int]]:
        return [(int(s * SAMPLE_RATE), int(e * SAMPLE_RATE)) for s, e in PIECES_S]

    def decode_windows(self, requests: Sequence[WindowRequest]) -> list[WindowResult]:
        out = []
        for request in requests:
            seconds = round(len(request.audio) / SAMPLE_RATE)
            if seconds != 21:
                assert self.hold.wait(30)
            if seconds == self.fail_at:
                raise RuntimeError("injected engine fault")
            self.decoded.append(seconds)
            words = (Word(0.5, 1.0, " window", 0.5), Word(1.0, 2.0, f" {seconds}.", 1.0))
            out.append(WindowResult(f" window {seconds}.", words, "en"))
        return out


def tone_wav(seconds: float) -> bytes:
    buf = io.BytesIO()
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    sf.write(buf, 0.1 * np.sin(2 * np.pi * 440 * t), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


AUDIO = tone_wav(LENGTH_S)


def form(**fields: Any) -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field("file", AUDIO, filename="a.wav", content_type="audio/wav")
    data.add_field("model", "whisper-1")
    for name, value in fields.items():
        data.add_field(name, str(value))
    return data


async def read_events(resp: aiohttp.ClientResponse) -> list[dict[str, Any]]:
    """SSE as any client parses it: events split by a blank line, each `data:` line's JSON."""
    text = (await resp.read()).decode()
    assert text.endswith("\n\n")
    events = []
    for block in text.split("\n\n")[:-1]:
        lines = block.split("\n")
        assert all(line.startswith("data: ") for line in lines), block
        events.append(json.loads("\n".join(line[6:] for line in lines)))
    return events


async def next_event(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    line = await resp.content.readline()
    assert line.startswith(b"data: ") and await resp.content.readline() == b"\n"
    return json.loads(line[6:])


@pytest.fixture
def engine() -> WindowedEngine:
    return WindowedEngine()


async def test_deltas_in_order_then_done(make_client: Any, engine: WindowedEngine) -> None:
    client = await make_client(engine)
    resp = await client.post("/v1/audio/transcriptions", data=form(stream="true"), headers=BEARER)
    assert resp.status == 200 and resp.content_type == "text/event-stream"
    assert resp.headers["Cache-Control"] == "no-cache"
    events = await read_events(resp)
    assert [e["type"] for e in events] == ["transcript.text.delta"] * 3 + ["transcript.text.done"]
    assert [e["delta"] for e in events[:3]] == ["window 21.", " window 22.", " window 23."]
    done = events[-1]
    assert done["text"] == "window 21. window 22. window 23." == "".join(e["delta"] for e in events[:3])
    assert done["usage"] == {"type": "duration", "seconds": LENGTH_S}
    assert "logprobs" not in events[0]
    # The same text as without streaming.
    plain = await client.post("/v1/audio/transcriptions", data=form(stream="false"), headers=BEARER)
    assert (await plain.json())["text"] == done["text"]


async def test_first_delta_before_the_other_windows_are_decoded(make_client: Any, engine: WindowedEngine) -> None:
    engine.hold.clear()  # windows 2 and 3 wait until the first delta has arrived
    client = await make_client(engine)
    resp = await client.post("/v1/audio/transcriptions", data=form(stream="true"), headers=BEARER)
    assert resp.status == 200
    first = await next_event(resp)
    assert first == {"type": "transcript.text.delta", "delta": "window 21."} and engine.decoded == [21]
    engine.hold.set()
    rest = await read_events(resp)
    assert [e.get("delta") for e in rest] == [" window 22.", " window 23.", None]


async def test_logprobs_on_deltas_and_json(make_client: Any, engine: WindowedEngine) -> None:
    client = await make_client(engine)
    resp = await client.post("/v1/audio/transcriptions", data=form(stream="true", **{"include[]": "logprobs"}),
                             headers=BEARER)
    events = await read_events(resp)
    first = events[0]["logprobs"]
    assert [p["token"] for p in first] == [" window", " 21."]
    assert first[0]["logprob"] == pytest.approx(np.log(0.5)) and first[1]["logprob"] == 0.0
    assert first[0]["bytes"] == list(b" window")
    assert len(events[-1]["logprobs"]) == 6
    plain = await client.post("/v1/audio/transcriptions", data=form(**{"include[]": "logprobs"}), headers=BEARER)
    assert [p["token"] for p in (await plain.json())["logprobs"]][-1] == " 23."


async def test_error_midway_is_an_error_event_then_the_end(make_client: Any, engine: WindowedEngine) -> None:
    engine.fail_at = 22
    client = await make_client(engine)
    resp = await client.post("/v1/audio/transcriptions", data=form(stream="true"), headers=BEARER)
    assert resp.status == 200
    events = await read_events(resp)
    assert [e["type"] for e in events] == ["transcript.text.delta", "error"]
    error = events[1]["error"]
    assert error["type"] == "server_error" and error["code"] == "engine_error" and error["message"]
    # The server is fine: the next request streams in full.
    engine.fail_at = None
    again = await client.post("/v1/audio/transcriptions", data=form(stream="true"), headers=BEARER)
    assert (await read_events(again))[-1]["type"] == "transcript.text.done"


async def test_error_before_any_text_is_a_plain_http_error(make_client: Any, engine: WindowedEngine) -> None:
    engine.fail_at = 21
    client = await make_client(engine)
    resp = await client.post("/v1/audio/transcriptions", data=form(stream="true"), headers=BEARER)
    assert resp.status == 500 and resp.content_type == "application/json"
    assert (await resp.json())["error"]["code"] == "engine_error"


@pytest.mark.parametrize(("fmt", "content_type"), [("text", "text/plain"), ("srt", "application/x-subrip"),
                                                    ("vtt", "text/vtt"), ("verbose_json", "application/json")])
async def test_formats_that_cannot_stream_ignore_it(make_client: Any, engine: WindowedEngine, fmt: str,
                                                    content_type: str) -> None:
    client = await make_client(engine)
    resp = await client.post("/v1/audio/transcriptions", data=form(stream="true", response_format=fmt),
                             headers=BEARER)
    assert resp.status == 200 and resp.content_type == content_type
    assert "window 23" in await resp.text()


class SilentEngine(FakeEngine):
    def find_speech(self, audio: np.ndarray) -> list[tuple[int, int]]:
        return []


async def test_silence_streams_only_done(make_client: Any) -> None:
    client = await make_client(SilentEngine())
    resp = await client.post("/v1/audio/transcriptions", data=form(stream="true"), headers=BEARER)
    events = await read_events(resp)
    assert events == [{"type": "transcript.text.done", "text": "",
                       "usage": {"type": "duration", "seconds": LENGTH_S}}]


async def test_stream_is_not_a_translation_parameter(make_client: Any, engine: WindowedEngine) -> None:
    client = await make_client(engine)
    resp = await client.post("/v1/audio/translations", data=form(stream="true"), headers=BEARER)
    assert resp.status == 400 and (await resp.json())["error"]["param"] == "stream"


@pytest.mark.parametrize("fields", [
    {"chunking_strategy": "auto"},
    {"chunking_strategy": '{"type": "server_vad", "silence_duration_ms": 500, "prefix_padding_ms": 300, '
                          '"threshold": 0.5}'},
    {"chunking_strategy[type]": "server_vad", "chunking_strategy[silence_duration_ms]": "500",
     "chunking_strategy[prefix_padding_ms]": "300", "chunking_strategy[threshold]": "0.5"},
    {"chunking_strategy[type]": "auto"},
])
async def test_chunking_strategy_forms_accepted(make_client: Any, engine: WindowedEngine,
                                                fields: dict[str, str]) -> None:
    client = await make_client(engine)
    resp = await client.post("/v1/audio/transcriptions", data=form(**fields), headers=BEARER)
    assert resp.status == 200, await resp.text()


@pytest.mark.parametrize(("fields", "param"), [
    ({"chunking_strategy": "bogus"}, "chunking_strategy"),
    ({"chunking_strategy": '{"silence_duration_ms": 500}'}, "chunking_strategy"),
    ({"chunking_strategy": '{"type": "server_vad", "silence_duration_ms": -1}'},
     "chunking_strategy[silence_duration_ms]"),
    ({"chunking_strategy": '{"type": "server_vad", "nope": 1}'}, "chunking_strategy"),
    ({"chunking_strategy[silence_duration_ms]": "500"}, "chunking_strategy[type]"),
    ({"chunking_strategy[type]": "server_vad", "chunking_strategy[threshold]": "2"},
     "chunking_strategy[threshold]"),
    ({"chunking_strategy": "auto", "chunking_strategy[type]": "server_vad"}, "chunking_strategy"),
])
async def test_chunking_strategy_bad_values(make_client: Any, engine: WindowedEngine, fields: dict[str, str],
                                            param: str) -> None:
    client = await make_client(engine)
    resp = await client.post("/v1/audio/transcriptions", data=form(**fields), headers=BEARER)
    assert resp.status == 400 and (await resp.json())["error"]["param"] == param


async def test_server_vad_parameters_reach_the_windows(make_client: Any, engine: WindowedEngine) -> None:
    """Pauses of 2 s between the pieces: a silence_duration_ms of 1 s joins none of them (joining is proved in
    tests/inference/test_chunking.py); prefix_padding_ms adds audio before each."""
    client = await make_client(engine)
    seen: list[int] = []
    original = engine.decode_windows
    engine.decode_windows = lambda requests: (seen.extend(len(r.audio) for r in requests),  # type: ignore
                                              original(requests))[1]
    resp = await client.post("/v1/audio/transcriptions", headers=BEARER, data=form(**{
        "chunking_strategy[type]": "server_vad", "chunking_strategy[silence_duration_ms]": "1000",
        "chunking_strategy[prefix_padding_ms]": "500"}))
    assert resp.status == 200
    # 500 ms more audio before the 2nd and 3rd pieces (the 1st starts at 1 s: 500 ms before it too).
    assert seen == [int(21.5 * SAMPLE_RATE), int(22.5 * SAMPLE_RATE), int(23.5 * SAMPLE_RATE)]


def test_openapi_documents_stream_and_chunking() -> None:
    spec = build_spec()
    op = spec["paths"]["/v1/audio/transcriptions"]["post"]
    props = op["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    for name in ("stream", "include[]", "chunking_strategy", "chunking_strategy[type]",
                 "chunking_strategy[silence_duration_ms]", "chunking_strategy[prefix_padding_ms]",
                 "chunking_strategy[threshold]"):
        assert name in props and props[name]["description"], name
    assert "text/event-stream" in op["responses"]["200"]["content"]
    translation = spec["paths"]["/v1/audio/translations"]["post"]
    assert "stream" not in translation["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]


def test_openai_sdk_iterator_yields_the_events_and_raises_the_error_event() -> None:
    """The official SDK's stream=True iterator parses these events into its own types, and turns an error event
    midway into an APIError after the deltas before it."""
    import openai

    from stt.http.app import create_app
    from tests.conftest import make_settings
    from tests.live_server import serve_in_thread

    engine = WindowedEngine()
    with serve_in_thread(create_app(make_settings(), engine=engine)) as url:
        client = openai.OpenAI(api_key=TOKEN, base_url=f"{url}/v1", max_retries=0, timeout=60)
        events = list(client.audio.transcriptions.create(model="whisper-1", file=("a.wav", AUDIO), stream=True))
        assert [type(e).__name__ for e in events] == ["TranscriptionTextDeltaEvent"] * 3 + [
            "TranscriptionTextDoneEvent"]
        assert events[-1].text == "window 21. window 22. window 23."
        engine.fail_at = 23
        got: list[str] = []
        with pytest.raises(openai.APIError, match="Transcription failed"):
            for event in client.audio.transcriptions.create(model="whisper-1", file=("a.wav", AUDIO),
                                                            stream=True):
                got.append(event.delta)  # type: ignore[union-attr]
        assert got == ["window 21."]  # windows 22 and 23 were decoded in one batch: both failed



class TwoSpeakers:
    """A stand-in diarizer: the first window's segments are speaker 0, the others speaker 1."""

    def label(self, transcript: Any, audio: Any, options: Any) -> Any:
        import dataclasses

        def speaker(start: float) -> int:
            return 0 if start < 23 else 1

        return dataclasses.replace(transcript, segments=tuple(
            dataclasses.replace(s, speaker=speaker(s.start), words=tuple(
                dataclasses.replace(w, speaker=speaker(w.start)) for w in s.words)) for s in transcript.segments))


async def test_diarized_json_streams_deltas_then_segments_then_done(make_client: Any,
                                                                    engine: WindowedEngine) -> None:
    from stt.http.keys import TRANSCRIBER

    client = await make_client(engine)
    client.app[TRANSCRIBER].diarizer.get = TwoSpeakers  # type: ignore[method-assign]
    resp = await client.post("/v1/audio/transcriptions", data=form(stream="true", response_format="diarized_json"),
                             headers=BEARER)
    events = await read_events(resp)
    assert [e["type"] for e in events] == ["transcript.text.delta"] * 3 + ["transcript.text.segment"] * 3 + [
        "transcript.text.done"]
    segments = events[3:6]
    assert [(s["id"], s["speaker"], s["text"]) for s in segments] == [
        ("seg_0", "A", "window 21."), ("seg_1", "B", "window 22."), ("seg_2", "B", "window 23.")]
    assert segments[1]["start"] >= 24.0 and segments[2]["end"] <= LENGTH_S
    assert events[-1]["text"] == "window 21. window 22. window 23."
