"""HTTP contract of the API faces on the real app with a fake engine: options, formats, error shapes, docs."""

from __future__ import annotations

import io
import uuid
from typing import Any

import aiohttp
import numpy as np
import pytest
import soundfile as sf

from stt.http.openapi import build_spec
from tests.conftest import AUTH
from tests.helpers import FakeEngine


def wav(seconds: float = 1.0) -> bytes:
    buf = io.BytesIO()
    t = np.arange(int(16000 * seconds)) / 16000
    sf.write(buf, 0.1 * np.sin(2 * np.pi * 440 * t), 16000, format="WAV")
    return buf.getvalue()


def form(audio: bytes, **fields: Any) -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field("file", audio, filename="a.wav", content_type="audio/wav")
    for name, value in fields.items():
        for v in value if isinstance(value, list) else [value]:
            data.add_field(name, str(v))
    return data


async def test_stt_default_json_unchanged(client: Any) -> None:
    resp = await client.post("/stt", data=wav(), headers=AUTH)
    body = await resp.json()
    assert resp.status == 200 and body["text"] == "hello world" and body["status"] == "success"
    assert set(body) == {"text", "proc_duration", "status", "language", "duration"}


@pytest.mark.parametrize(("output", "content_type", "start"), [
    ("text", "text/plain", "hello world\n"),
    ("srt", "application/x-subrip", "1\n00:00:00,000 --> 00:00:02,000\nhello world\n"),
    ("vtt", "text/vtt", "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\nhello world\n"),
])
async def test_stt_text_outputs(client: Any, output: str, content_type: str, start: str) -> None:
    resp = await client.post("/stt", params={"output": output}, data=wav(2.0), headers=AUTH)
    assert resp.status == 200 and resp.content_type == content_type
    assert await resp.text() == start


async def test_stt_options_as_multipart_fields(make_client: Any) -> None:
    engine = FakeEngine()
    seen: list[Any] = []
    original = engine.transcribe
    engine.transcribe = lambda audio, options: (seen.append(options), original(audio, options))[1]  # type: ignore
    client = await make_client(engine)
    resp = await client.post("/stt", data=form(wav(), output="verbose_json", word_timestamps="true",
                                               language="de", beam_size=3, temperature="0.6",
                                               initial_prompt="Hi"), headers=AUTH)
    body = await resp.json()
    assert resp.status == 200, body
    assert [w["word"] for w in body["words"]] == ["hello", "world"]
    assert body["segments"][0]["words"][0]["word"] == "hello" and body["task"] == "transcribe"
    (options,) = seen
    assert (options.language, options.beam_size, options.initial_prompt, options.temperature) == (
        "de", 3, "Hi", (0.6, 0.8, 1.0))


@pytest.mark.parametrize(("params", "param"), [({"bogus": "1"}, "bogus"), ({"output": "pdf"}, "output"),
                                               ({"vad_filter": "perhaps"}, "vad_filter")])
async def test_stt_bad_option_is_400_naming_it(client: Any, fake_engine: FakeEngine, params: dict[str, str],
                                               param: str) -> None:
    resp = await client.post("/stt", params=params, data=wav(), headers=AUTH)
    body = await resp.json()
    assert resp.status == 400 and body["status"] == "failed" and body["param"] == param
    assert param in body["message"]
    assert fake_engine.calls == 0  # refused before any inference


async def test_option_in_query_and_form_is_refused(client: Any) -> None:
    resp = await client.post("/stt", params={"output": "text"}, data=form(wav(), output="srt"), headers=AUTH)
    assert resp.status == 400 and (await resp.json())["param"] == "output"


async def test_english_only_model_refuses_translate(make_client: Any) -> None:
    engine = FakeEngine()
    engine.multilingual = False  # type: ignore[misc]
    client = await make_client(engine)
    resp = await client.post("/stt", params={"task": "translate"}, data=wav(), headers=AUTH)
    assert resp.status == 400 and (await resp.json())["param"] == "task"


async def test_detect_language(client: Any) -> None:
    resp = await client.post("/detect-language", params={"top": "1"}, data=wav(), headers=AUTH)
    body = await resp.json()
    assert resp.status == 200 and body["language"] == "en" and len(body["languages"]) == 1
    bad = await client.post("/detect-language", params={"top": "0"}, data=wav(), headers=AUTH)
    assert bad.status == 400 and (await bad.json())["param"] == "top"


# --- OpenAI face ---------------------------------------------------------------------------------------------

BEARER = {"Authorization": AUTH["Authorization"].replace("Token", "Bearer")}


async def test_openai_transcription_json(client: Any) -> None:
    resp = await client.post("/v1/audio/transcriptions", data=form(wav(), model="whisper-1"), headers=BEARER)
    body = await resp.json()
    assert resp.status == 200 and body["text"] == "hello world" and body["usage"]["type"] == "duration"


async def test_openai_verbose_words(client: Any) -> None:
    resp = await client.post("/v1/audio/transcriptions", headers=BEARER, data=form(
        wav(), model="whisper-1", response_format="verbose_json",
        **{"timestamp_granularities[]": ["word", "segment"]}))
    body = await resp.json()
    assert resp.status == 200 and len(body["words"]) == 2 and len(body["segments"]) == 1


@pytest.mark.parametrize(("fields", "headers", "status", "param", "code"), [
    ({}, BEARER, 400, "model", "bad_request"),
    ({"model": "whisper-1", "response_format": "docx"}, BEARER, 400, "response_format", "bad_request"),
    ({"model": "whisper-1"}, {}, 401, None, "invalid_api_key"),
    ({"model": "whisper-1"}, {"Authorization": "Bearer nope"}, 401, None, "invalid_api_key"),
])
async def test_openai_error_shape(client: Any, fields: dict[str, str], headers: dict[str, str], status: int,
                                  param: str | None, code: str) -> None:
    resp = await client.post("/v1/audio/transcriptions", data=form(wav(), **fields), headers=headers)
    body = await resp.json()
    assert resp.status == status
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["param"] == param and body["error"]["code"] == code


async def test_openai_bad_audio_is_400_in_openai_shape(client: Any) -> None:
    resp = await client.post("/v1/audio/translations", data=form(b"not audio", model="whisper-1"), headers=BEARER)
    body = await resp.json()
    assert resp.status == 400 and body["error"]["type"] == "invalid_request_error"


async def test_openai_models(client: Any) -> None:
    resp = await client.get("/v1/models", headers=BEARER)
    body = await resp.json()
    assert body["object"] == "list" and [m["id"] for m in body["data"]] == ["whisper-1", "fake"]
    one = await client.get("/v1/models/whisper-1", headers=BEARER)
    assert (await one.json())["object"] == "model"
    missing = await client.get("/v1/models/gpt-9", headers=BEARER)
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "model_not_found"


# --- Deepgram face -------------------------------------------------------------------------------------------

async def test_deepgram_listen_shape(client: Any) -> None:
    resp = await client.post("/v1/listen", params={"punctuate": "TRUE", "model": "nova-3"}, data=wav(),
                             headers={**AUTH, "Content-Type": "audio/wav"})
    body = await resp.json()
    assert resp.status == 200
    meta = body["metadata"]
    assert uuid.UUID(meta["request_id"]) and meta["channels"] == 1 and meta["duration"] == 1.0
    assert resp.headers["dg-request-id"] == meta["request_id"]
    alt = body["results"]["channels"][0]["alternatives"][0]
    assert alt["transcript"] == "hello world" and alt["confidence"] == 0.85
    assert set(alt["words"][0]) == {"word", "start", "end", "confidence", "punctuated_word"}


async def test_deepgram_error_shape(client: Any) -> None:
    for params, headers, status in (({"punctuate": "maybe"}, AUTH, 400), ({}, {}, 401)):
        resp = await client.post("/v1/listen", params=params, data=wav(), headers=headers)
        body = await resp.json()
        assert resp.status == status and set(body) == {"err_code", "err_msg", "request_id"}
        uuid.UUID(body["request_id"])
    assert body["err_code"] == "INVALID_AUTH"


# --- docs ----------------------------------------------------------------------------------------------------

async def test_openapi_and_docs_are_public_and_agree(client: Any) -> None:
    spec = await (await client.get("/openapi.json")).json()
    assert spec == build_spec() and spec["openapi"].startswith("3.")
    page = await client.get("/docs")
    assert page.status == 200 and page.content_type == "text/html"
    html = await page.text()
    assert "<script" not in html and "http" not in html.split("<body>")[1].replace("href=\"/openapi.json\"", "")
    for path in spec["paths"]:
        assert f"<code>{path}</code>" in html
    stt_params = [p["name"] for p in spec["paths"]["/stt"]["post"]["parameters"]]
    assert stt_params == ["language", "task", "output", "word_timestamps", "vad_filter", "beam_size",
                          "initial_prompt", "temperature", "hotwords", "diarize", "min_speakers", "max_speakers",
                          "model"]
    for name in stt_params:
        assert f"<code>{name}</code>" in html


async def test_every_route_is_documented(client: Any) -> None:
    spec = build_spec()
    for route in client.server.app.router.routes():
        if route.method in ("HEAD", "OPTIONS"):
            continue
        path = route.resource.canonical
        assert route.method.lower() in spec["paths"].get(path, {}), f"{route.method} {path} not in the spec"
