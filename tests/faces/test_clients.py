"""Proof with the real client libraries, unchanged, pointed at this server: the `openai` and `deepgram-sdk`
packages against the real app with real models (tiny.en for English, multilingual base for translation)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import srt
import webvtt
from deepgram import DeepgramClient
from deepgram.environment import DeepgramClientEnvironment
from openai import OpenAI

from stt.http.app import create_app
from stt.engines.base import Engine
from tests.conftest import make_settings
from tests.helpers import TOKEN, manifest, wer
from tests.live_server import serve_in_thread

pytestmark = pytest.mark.model

SHORT = "en/librispeech/1089-134686-0001.flac"  # 3.3 s
JFK = "en/jfk.flac"  # 11 s, 44.1 kHz stereo
GERMAN = "nonen/de_test_de.wav"
# tiny.en on these single short utterances: 0-12% measured; 25% leaves room for a word or two of drift
# without letting a wrong or garbled transcript through.
MAX_WER = 0.25


@pytest.fixture(scope="module")
def tiny_url(fw_tiny: Engine) -> Iterator[str]:
    with serve_in_thread(create_app(make_settings(asr={"model": "tiny.en"}), engine=fw_tiny)) as url:
        yield url


@pytest.fixture(scope="module")
def base_url(fw_base: Engine) -> Iterator[str]:
    with serve_in_thread(create_app(make_settings(), engine=fw_base)) as url:
        yield url


def openai_client(url: str) -> OpenAI:
    return OpenAI(api_key=TOKEN, base_url=f"{url}/v1", max_retries=0, timeout=120)


def audio(name: str) -> tuple[str, bytes]:
    clip = manifest()[name]
    return clip.path.name, clip.path.read_bytes()


@pytest.mark.parametrize("fmt", ["json", "text", "srt", "vtt", "verbose_json"])
def test_openai_sdk_transcription_every_format(tiny_url: str, fmt: str) -> None:
    clip = manifest()[SHORT]
    kwargs: dict[str, Any] = {"timestamp_granularities": ["word", "segment"]} if fmt == "verbose_json" else {}
    result = openai_client(tiny_url).audio.transcriptions.create(
        model="whisper-1", file=audio(SHORT), response_format=fmt, **kwargs)  # type: ignore[call-overload]
    if fmt == "json":
        text = result.text
    elif fmt == "verbose_json":
        text = result.text
        assert result.language == "english" and abs(result.duration - clip.seconds) < 0.05  # OpenAI names it
        assert result.segments and result.words
        starts = [w.start for w in result.words]
        assert starts == sorted(starts) and result.words[-1].end <= clip.seconds
    elif fmt == "text":
        text = result
    elif fmt == "srt":
        cues = list(srt.parse(result))
        assert cues
        text = " ".join(c.content for c in cues)
    else:
        cues = webvtt.from_string(result).captions
        assert cues
        text = " ".join(c.text for c in cues)
    assert isinstance(text, str) and wer(clip.transcript, text) <= MAX_WER, text


def test_openai_sdk_translation_of_german(base_url: str) -> None:
    clip = manifest()[GERMAN]
    result = openai_client(base_url).audio.translations.create(model="whisper-1", file=audio(GERMAN))
    assert_english_translation(result.text, clip.transcript)


def test_openai_sdk_models_and_errors(tiny_url: str) -> None:
    import openai

    client = openai_client(tiny_url)
    assert "whisper-1" in [m.id for m in client.models.list()]
    with pytest.raises(openai.BadRequestError) as err:  # the SDK parses our OpenAI-shaped error
        client.audio.transcriptions.create(model="whisper-1", file=("x.wav", b"not audio"))
    assert err.value.status_code == 400 and err.value.body["type"] == "invalid_request_error"  # type: ignore
    with pytest.raises(openai.AuthenticationError):
        OpenAI(api_key="wrong", base_url=f"{tiny_url}/v1", max_retries=0).models.list()


ENGLISH_FUNCTION_WORDS = {"the", "a", "an", "of", "in", "on", "as", "was", "is", "and", "this", "it", "to", "with"}


def assert_english_translation(text: str, source_reference: str) -> None:
    """English, not the source language: English function words, little overlap with the source words."""
    words = [w.strip(".,!?;:").lower() for w in text.split()]
    assert len(words) >= 4, text
    assert sum(w in ENGLISH_FUNCTION_WORDS for w in words) >= 2, text
    assert wer(source_reference, text, lang="de") >= 0.8, text  # nearly every source word replaced


def test_deepgram_sdk_prerecorded(tiny_url: str) -> None:
    clip = manifest()[JFK]
    env = DeepgramClientEnvironment(base=tiny_url, production=tiny_url.replace("http", "ws"),
                                    agent=tiny_url.replace("http", "ws"), agent_rest=tiny_url)
    client = DeepgramClient(api_key=TOKEN, environment=env)
    response = client.listen.v1.media.transcribe_file(request=clip.path.read_bytes(), model="nova-3",
                                                      smart_format=True, language="en")
    alt = response.results.channels[0].alternatives[0]
    assert wer(clip.transcript, alt.transcript) <= MAX_WER, alt.transcript
    assert 0 < alt.confidence <= 1
    assert abs(response.metadata.duration - clip.seconds) < 0.05 and response.metadata.channels == 1
    starts = [w.start for w in alt.words]
    assert starts == sorted(starts) and alt.words[-1].end <= clip.seconds
    assert " ".join(w.punctuated_word for w in alt.words).strip() == alt.transcript.strip()


def test_deepgram_sdk_detects_language(base_url: str) -> None:
    clip = manifest()["nonen/es_test_es.wav"]
    env = DeepgramClientEnvironment(base=base_url, production=base_url.replace("http", "ws"),
                                    agent=base_url.replace("http", "ws"), agent_rest=base_url)
    response = DeepgramClient(api_key=TOKEN, environment=env).listen.v1.media.transcribe_file(
        request=clip.path.read_bytes(), detect_language=True, punctuate=True)
    channel = response.results.channels[0]
    assert channel.detected_language == "es"
    assert wer(clip.transcript, channel.alternatives[0].transcript, lang="es") <= 0.3
