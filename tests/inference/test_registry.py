"""The model registry with a fake engine factory: load on first use (once for concurrent first requests), TTL
unload, LRU eviction within max_loaded_models, busy and pinned models kept, and the per-face `model` parameter
(unknown names answered in each face's shape)."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from stt.errors import EngineError, Overloaded, UnknownModel
from stt.http.app import PARSER_OPTIONS, create_app, model_sources
from stt.http.keys import MODELS
from stt.inference.registry import ModelRegistry, Policy
from stt.inference.transcriber import Budget, Transcriber
from stt.settings import AsrSettings, ConfigError
from tests.conftest import AUTH, make_settings
from tests.faces.test_api_contract import BEARER, form, wav
from tests.helpers import FakeEngine

BUDGET = Budget(workers=1, reserved_workers=0, max_queue=8, queue_timeout_s=5.0, upload_batch_s=60.0)
CONFIGURED = {"base": "base", "tiny.en": "tiny.en", "small": "/models/small"}


class Loads:
    """A fake engine factory: counts its loads and closes, optionally slow or failing."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.loaded: list[str] = []
        self.closed: list[str] = []
        self.fail: set[str] = set()
        self.lock = threading.Lock()

    def engine(self, asr: AsrSettings) -> FakeEngine:
        time.sleep(self.delay)
        if asr.model in self.fail:
            raise RuntimeError("weights missing")
        with self.lock:
            self.loaded.append(asr.model)
        engine = FakeEngine()
        engine.model_name = asr.model  # type: ignore[misc]
        engine.multilingual = not asr.model.endswith(".en")  # type: ignore[misc]
        engine.close = lambda: self.closed.append(asr.model)  # type: ignore[method-assign]
        return engine

    def loader(self, name: str, source: str) -> Transcriber:
        return Transcriber(self.engine(AsrSettings(model=source)), BUDGET)


def registry(loads: Loads, **policy: Any) -> ModelRegistry:
    return ModelRegistry(CONFIGURED, "base", loads.loader, Policy(**{"pin_default": False, **policy}))


def loaded(reg: ModelRegistry) -> set[str]:
    return {s.name for s in reg.states() if s.loaded}


async def until(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


# --- the registry ---------------------------------------------------------------------------------------------

async def test_loads_on_first_use_and_concurrent_first_requests_share_one_load() -> None:
    loads = Loads(delay=0.3)
    reg = registry(loads)
    assert loaded(reg) == set() and loads.loaded == []

    async def use() -> str:
        async with reg.lease("tiny.en") as transcriber:
            return transcriber.engine.model_name

    assert await asyncio.gather(*(use() for _ in range(8))) == ["tiny.en"] * 8
    assert loads.loaded == ["tiny.en"] and loaded(reg) == {"tiny.en"}
    await reg.close(1.0)


async def test_unknown_name_is_refused_before_any_load() -> None:
    loads = Loads()
    reg = registry(loads)
    with pytest.raises(UnknownModel):
        await reg.acquire("large-v3")
    assert reg.resolve(None) == "base" and loads.loaded == []


async def test_idle_model_unloaded_after_ttl_busy_one_kept() -> None:
    loads = Loads()
    reg = registry(loads, ttl_s=0.2)
    reg.start()
    async with reg.lease("tiny.en"):
        async with reg.lease("base"):
            pass
        await until(lambda: "base" not in loaded(reg))  # idle past the TTL
        await asyncio.sleep(0.5)
        assert "tiny.en" in loaded(reg)  # work in flight (a lease held 0.5 s past the TTL): never unloaded
    await until(lambda: sorted(loads.closed) == ["base", "tiny.en"])  # closed in the unload's thread
    assert loaded(reg) == set()
    await reg.close(1.0)


async def test_pinned_default_never_unloaded() -> None:
    loads = Loads()
    reg = registry(loads, ttl_s=0.1, pin_default=True)
    reg.start()
    async with reg.lease(None):
        pass
    async with reg.lease("tiny.en"):
        pass
    await until(lambda: "tiny.en" not in loaded(reg))
    await asyncio.sleep(0.3)
    assert loaded(reg) == {"base"}
    await reg.close(1.0)


async def test_least_recently_used_idle_model_makes_room() -> None:
    loads = Loads()
    reg = registry(loads, max_loaded=2)
    for name in ("base", "tiny.en", "base", "small"):  # tiny.en is the least recently used when small comes
        async with reg.lease(name):
            pass
    await until(lambda: loads.closed == ["tiny.en"])
    assert loaded(reg) == {"base", "small"}
    assert reg.loaded_count() <= 2
    await reg.close(1.0)


async def test_all_busy_waits_for_room_then_503() -> None:
    loads = Loads()
    reg = registry(loads, max_loaded=1)
    entry = await reg.acquire("base")
    with pytest.raises(Overloaded) as refused:
        await reg.acquire("tiny.en", wait_s=0.2)
    assert refused.value.retry_after_s and loaded(reg) == {"base"}
    waiting = asyncio.ensure_future(reg.acquire("tiny.en", wait_s=5.0))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    reg.release(entry)  # base goes idle: evicted, tiny.en loads
    tiny = await waiting
    assert tiny.transcriber is not None and loaded(reg) == {"tiny.en"}
    await until(lambda: loads.closed == ["base"])
    reg.release(tiny)
    await reg.close(1.0)


async def test_failed_load_is_an_engine_error_and_retried_next_time() -> None:
    loads = Loads()
    loads.fail.add("/models/small")
    reg = registry(loads)
    with pytest.raises(EngineError):
        async with reg.lease("small"):
            pass
    assert loaded(reg) == set() and reg.loaded_count() == 0
    loads.fail.clear()
    async with reg.lease("small") as transcriber:
        assert transcriber.engine.model_name == "/models/small"
    await reg.close(1.0)


def test_old_configs_keep_one_model() -> None:
    assert model_sources(make_settings(asr={"model": "tiny.en"}).asr) == ({"tiny.en": "tiny.en"}, "tiny.en")
    asr = make_settings(asr={"model": "fast", "models": {"fast": "tiny.en", "base": "base"}}).asr
    assert model_sources(asr) == ({"fast": "tiny.en", "base": "base"}, "fast")
    asr = make_settings(asr={"model": "base", "models": {"fast": "tiny.en"}}).asr
    assert model_sources(asr) == ({"base": "base", "fast": "tiny.en"}, "base")


# --- the faces ------------------------------------------------------------------------------------------------

@pytest.fixture
async def served(aiohttp_client: Callable[..., Any]) -> Any:
    loads = Loads()
    settings = make_settings(asr={"model": "base", "models": CONFIGURED, "max_loaded_models": 2})
    server = TestServer(create_app(settings, engine_factory=loads.engine))
    await server.start_server(**PARSER_OPTIONS)
    client = await aiohttp_client(server)
    client.loads = loads
    return client


async def test_each_face_selects_a_configured_model(served: Any) -> None:
    assert served.loads.loaded == ["base"]  # the default, at start
    resp = await served.post("/stt", params={"model": "tiny.en"}, data=wav(), headers=AUTH)
    assert resp.status == 200 and served.loads.loaded == ["base", "tiny.en"]
    resp = await served.post("/v1/audio/transcriptions", data=form(wav(), model="tiny.en"), headers=BEARER)
    assert resp.status == 200
    resp = await served.post("/v1/listen", params={"model": "tiny.en"}, data=wav(),
                             headers={**AUTH, "Content-Type": "audio/wav"})
    assert resp.status == 200
    assert served.loads.loaded == ["base", "tiny.en"]  # loaded once, shared by the faces
    # The faces' own names mean the default; an English-only model is refused a translation.
    for path, data in (("/v1/audio/transcriptions", form(wav(), model="whisper-1")),
                       ("/v1/audio/translations", form(wav(), model="gpt-4o-transcribe"))):
        assert (await served.post(path, data=data, headers=BEARER)).status == 200
    resp = await served.post("/v1/listen", params={"model": "nova-2-meeting"}, data=wav(),
                             headers={**AUTH, "Content-Type": "audio/wav"})
    assert resp.status == 200
    resp = await served.post("/stt", params={"model": "tiny.en", "task": "translate"}, data=wav(), headers=AUTH)
    assert resp.status == 400 and "English-only" in (await resp.json())["message"]
    resp = await served.post("/v1/audio/transcriptions", data=form(wav(), model="small"), headers=BEARER)
    assert resp.status == 200
    await until(lambda: served.loads.closed == ["tiny.en"])  # the LRU idle one evicted (2 at most)


async def test_deepgram_metadata_names_the_model(served: Any) -> None:
    resp = await served.post("/v1/listen", params={"model": "tiny.en"}, data=wav(),
                             headers={**AUTH, "Content-Type": "audio/wav"})
    body = await resp.json()
    assert resp.status == 200 and "tiny.en" in str(body["metadata"])


async def test_unknown_model_per_face(served: Any) -> None:
    resp = await served.post("/stt", params={"model": "large-v3"}, data=wav(), headers=AUTH)
    body = await resp.json()
    assert resp.status == 400 and body["code"] == "unknown_model" and body["param"] == "model"
    assert "unknown model 'large-v3'" in body["message"] and "tiny.en" in body["message"]
    resp = await served.post("/detect-language", params={"model": "large-v3"}, data=wav(), headers=AUTH)
    assert resp.status == 400
    resp = await served.post("/v1/audio/transcriptions", data=form(wav(), model="large-v3"), headers=BEARER)
    error = (await resp.json())["error"]
    assert resp.status == 404 and error["code"] == "model_not_found" and error["param"] == "model"
    assert error["type"] == "invalid_request_error"
    resp = await served.post("/v1/listen", params={"model": "large-v3"}, data=wav(),
                             headers={**AUTH, "Content-Type": "audio/wav"})
    body = await resp.json()
    assert resp.status == 400 and "large-v3" in body["err_msg"] and "nova-3" in body["err_msg"]
    resp = await served.get("/v1/listen", params={"model": "large-v3", "encoding": "linear16"}, headers=AUTH)
    assert resp.status == 400  # live: refused before the upgrade
    assert served.loads.loaded == ["base"]


async def test_live_stream_picks_its_model_at_connect_and_holds_it(served: Any) -> None:
    async with served.ws_connect("/v1/listen?model=tiny.en&encoding=linear16&sample_rate=16000",
                                 headers=AUTH) as ws:
        assert served.loads.loaded == ["base", "tiny.en"]
        states = {s.name: s for s in served.app[MODELS].states()}
        assert states["tiny.en"].leases == 1  # held while the stream is open: never unloaded under it
        await ws.send_str('{"type": "CloseStream"}')
        async for _ in ws:
            pass
    await until(lambda: {s.name: s for s in served.app[MODELS].states()}["tiny.en"].leases == 0)


async def test_models_list_health_and_metrics(served: Any) -> None:
    body = await (await served.get("/v1/models", headers=BEARER)).json()
    assert [(m["id"], m["loaded"], m["default"]) for m in body["data"]] == [
        ("whisper-1", True, True), ("base", True, True), ("tiny.en", False, False), ("small", False, False)]
    await served.post("/stt", params={"model": "tiny.en"}, data=wav(), headers=AUTH)
    one = await (await served.get("/v1/models/tiny.en", headers=BEARER)).json()
    assert one["loaded"] is True
    health = await (await served.get("/health")).json()
    assert health["models_loaded"] == ["base", "tiny.en"]
    text = await (await served.get("/metrics", headers=AUTH)).text()
    assert 'stt_model_loads_total{model="tiny.en"}' in text and "stt_models_loaded 2.0" in text



@pytest.mark.parametrize(("asr", "message"), [
    ({"models": {"fast": 3}}, "asr.models: expected an object of strings"),
    ({"models": ["tiny.en"]}, "asr.models: expected an object of strings"),
    ({"models": {"": "tiny.en"}}, "asr.models: names and sources must not be empty"),
    ({"max_loaded_models": 0}, "asr.max_loaded_models: must be at least 1"),
    ({"model_ttl_seconds": 0}, "asr.model_ttl_seconds: must be more than 0"),
])
def test_model_settings_are_validated(asr: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_settings(asr=asr)


def test_ttl_may_be_null() -> None:
    assert make_settings(asr={"model_ttl_seconds": None}).asr.model_ttl_seconds is None


async def test_openai_stream_runs_on_the_chosen_model_and_releases_it(served: Any) -> None:
    resp = await served.post("/v1/audio/transcriptions", data=form(wav(), model="tiny.en", stream="true"),
                             headers=BEARER)
    assert resp.status == 200 and resp.content_type == "text/event-stream"
    assert "transcript.text.done" in await resp.text()
    assert served.loads.loaded == ["base", "tiny.en"]
    await until(lambda: all(s.leases == 0 for s in served.app[MODELS].states()))


async def test_realtime_picks_its_model_at_connect_and_switches_before_audio(served: Any) -> None:
    url = "/v1/realtime?intent=transcription"
    states = lambda: {s.name: s for s in served.app[MODELS].states()}  # noqa: E731
    resp = await served.get(f"{url}&model=large-v3", headers=BEARER)  # unknown: refused before the upgrade
    error = (await resp.json())["error"]
    assert resp.status == 404 and error["code"] == "model_not_found" and error["param"] == "model"
    assert served.loads.loaded == ["base"]
    async with served.ws_connect(f"{url}&model=tiny.en", headers=BEARER) as ws:
        created = await ws.receive_json()
        assert created["session"]["audio"]["input"]["transcription"]["model"] == "tiny.en"
        assert served.loads.loaded == ["base", "tiny.en"] and states()["tiny.en"].leases == 1
        # whisper-1 (an OpenAI name) keeps the model; an unknown name is model_not_found, the model stays
        await ws.send_json({"type": "session.update", "session": {"type": "transcription", "audio": {
            "input": {"transcription": {"model": "whisper-1"}}}}})
        assert (await ws.receive_json())["type"] == "session.updated" and states()["tiny.en"].leases == 1
        await ws.send_json({"type": "session.update", "session": {"type": "transcription", "audio": {
            "input": {"transcription": {"model": "large-v3"}}}}})
        error = (await ws.receive_json())["error"]
        assert error["code"] == "model_not_found" and error["param"] == "session.audio.input.transcription.model"
        # Before any audio: the lease switches (beta shape here)
        await ws.send_json({"type": "transcription_session.update", "session": {
            "input_audio_transcription": {"model": "small"}}})
        updated = await ws.receive_json()
        assert updated["type"] == "transcription_session.updated"
        assert updated["session"]["input_audio_transcription"]["model"] == "small"
        assert states()["small"].leases == 1 and states()["tiny.en"].leases == 0
        # After audio: an error naming the param, the model stays
        await ws.send_json({"type": "input_audio_buffer.append", "audio": base64.b64encode(bytes(4800)).decode()})
        await ws.send_json({"type": "transcription_session.update", "session": {
            "input_audio_transcription": {"model": "base"}}})
        error = (await ws.receive_json())["error"]
        assert error["param"] == "session.input_audio_transcription.model" and "before audio" in error["message"]
        assert states()["small"].leases == 1
    await until(lambda: all(s.leases == 0 for s in served.app[MODELS].states()))


async def test_realtime_switch_to_english_only_model_checks_the_language(served: Any) -> None:
    async with served.ws_connect("/v1/realtime?intent=transcription", headers=BEARER) as ws:
        await ws.receive_json()
        await ws.send_json({"type": "session.update", "session": {"type": "transcription", "audio": {
            "input": {"transcription": {"model": "whisper-1", "language": "de"}}}}})
        assert (await ws.receive_json())["type"] == "session.updated"
        await ws.send_json({"type": "session.update", "session": {"type": "transcription", "audio": {
            "input": {"transcription": {"model": "tiny.en"}}}}})
        error = (await ws.receive_json())["error"]
        assert error["param"] == "session.audio.input.transcription.language"
        assert {s.name: s.leases for s in served.app[MODELS].states()} == {"base": 1, "tiny.en": 0, "small": 0}
