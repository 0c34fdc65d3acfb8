"""Fixtures: settings, the real app from create_app (fake or real engine), real engines loaded once."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from stt.http import aiohttp_patches
from stt.http.app import PARSER_OPTIONS, create_app
from stt.engines.base import Engine
from stt.settings import Settings, settings_from_dict
from tests.helpers import AUDIO_DIR, TOKEN, FakeEngine, tone, wav

AUTH = {"Authorization": f"Token {TOKEN}"}
aiohttp_patches.apply()  # as server.py does: the in-process servers of the tests behave as the real one


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not (AUDIO_DIR / "manifest.tsv").is_file():
        skip = pytest.mark.skip(reason=f"shared audio not found at {AUDIO_DIR} (set STT_AUDIO_DIR)")
        for item in items:
            if "model" in item.keywords:
                item.add_marker(skip)


def make_settings(**sections: dict[str, Any]) -> Settings:
    """Settings with the test token; ``http={...}``, ``asr={...}``, ``limits={...}`` override defaults."""
    http = {"allowed_tokens": [TOKEN], **sections.pop("http", {})}
    return settings_from_dict({"server": {"http": http}, **sections}, env={})


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
def wav_bytes() -> bytes:
    """One second of a 440 Hz tone as 16-bit WAV: valid audio for contract tests."""
    return wav(tone(440, 1.0, 16000))


@pytest.fixture
def fake_engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def make_client(aiohttp_client: Callable[..., Any]) -> Callable[..., Any]:
    """``await make_client(engine, **sections)``: a test client on create_app(settings, engine=engine)."""

    async def make(engine: Engine, **sections: dict[str, Any]) -> Any:
        # Started here because TestServer drops server options given to its constructor.
        server = TestServer(create_app(make_settings(**sections), engine=engine))
        await server.start_server(**PARSER_OPTIONS)
        return await aiohttp_client(server)

    return make


@pytest.fixture
async def client(make_client: Callable[..., Any], fake_engine: FakeEngine) -> Any:
    return await make_client(fake_engine)


def _load(engine: str, model: str) -> Engine:
    from stt.engines.factory import load_engine

    asr = make_settings(asr={"engine": engine, "model": model, "threads": 2}).asr
    return load_engine(asr)


@pytest.fixture(scope="session")
def fw_base() -> Engine:
    return _load("faster-whisper", "base")


@pytest.fixture(scope="session")
def ow_base() -> Engine:
    return _load("openai-whisper", "base")


@pytest.fixture(scope="session")
def fw_tiny() -> Engine:
    return _load("faster-whisper", "tiny.en")
