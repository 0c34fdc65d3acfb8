"""Diarization on real speech with the real model: a labelled five-speaker conversation built from
../shared/audio (tests/diarization_audio.py), through the native API and the OpenAI and Deepgram SDKs."""

from __future__ import annotations

import json
from collections import Counter
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from deepgram import DeepgramClient
from deepgram.environment import DeepgramClientEnvironment
from openai import OpenAI

from stt.http.app import create_app
from stt.diarization.diarizer import shared_diarizer
from stt.diarization.pipeline import diarize
from stt.engines.base import Engine
from stt.live.speech_detector import FRAME, SpeechDetector
from tests.conftest import AUTH, make_settings
from tests.diarization_audio import Conversation, conversation, word_speaker_accuracy
from tests.helpers import AUDIO_DIR, TOKEN, manifest, wav, wer
from tests.live_server import serve_in_thread

pytestmark = pytest.mark.model
MIN_ACCURACY = 0.90  # the target on the clean file
LIVE_MIN_ACCURACY = 0.75  # live (measured 84 % replayed offline, 76-84 % streamed): under the batch target


@pytest.fixture(scope="module")
def clean() -> Conversation:
    return conversation(gap=0.6)


@pytest.fixture(scope="module")
def base_url(fw_base: Engine) -> Iterator[str]:
    with serve_in_thread(create_app(make_settings(), engine=fw_base)) as url:
        yield url


def speaker_count(conv: Conversation) -> int:
    """Speakers found in the audio itself (some turns may have no words: see test_word_accuracy...)."""
    diarizer = shared_diarizer()
    probabilities = SpeechDetector().probabilities(conv.audio, 0, len(conv.audio) // FRAME)
    return len({t.speaker for t in diarize(diarizer._encoder, conv.audio, probabilities, FRAME / 16000)})


def post_stt(url: str, audio: bytes, **params: str) -> dict[str, Any]:
    request = urllib.request.Request(f"{url}/stt?{urllib.parse.urlencode(params)}", data=audio, headers=AUTH)
    with urllib.request.urlopen(request, timeout=300) as resp:
        return json.load(resp)


def native_words(url: str, conv: Conversation) -> list[tuple[float, float, int]]:
    body = post_stt(url, wav(conv.audio), diarize="true", output="verbose_json")
    return [(w["start"], w["end"], w["speaker"]) for w in body["words"]]


@pytest.mark.parametrize("gap", [0.6, 0.2])
def test_word_accuracy_and_speaker_count(base_url: str, gap: float) -> None:
    conv = conversation(gap)
    words = native_words(base_url, conv)
    accuracy = word_speaker_accuracy(conv, words)
    found = speaker_count(conv)
    print(f"\ndiarization, {gap} s gaps: {len(words)} words, word speaker accuracy {accuracy:.1%}, "
          f"{found} speakers found of {len(conv.speakers)}")
    assert found == len(conv.speakers)
    # The 0.2 s file is reported above; it is held to a looser bar than the clean file's target.
    assert accuracy >= (MIN_ACCURACY if gap == 0.6 else 0.8)


def test_speaker_bounds_are_obeyed(base_url: str, clean: Conversation) -> None:
    body = post_stt(base_url, wav(clean.audio), diarize="true", max_speakers="2", output="verbose_json")
    assert {s["speaker"] for s in body["segments"]} <= {0, 1}  # the second may be a voice with no words


def test_openai_sdk_parses_diarized_json(base_url: str, clean: Conversation) -> None:
    client = OpenAI(api_key=TOKEN, base_url=f"{base_url}/v1", max_retries=0, timeout=300)
    result = client.audio.transcriptions.create(model="gpt-4o-transcribe-diarize", file=("talk.wav", wav(clean.audio)),
                                                response_format="diarized_json", chunking_strategy="auto")
    assert type(result).__name__ == "TranscriptionDiarized"
    assert {s.speaker for s in result.segments} >= {"A", "B"}
    words = [(s.start, s.end, ord(s.speaker) - ord("A")) for s in result.segments]
    assert word_speaker_accuracy(clean, words) >= MIN_ACCURACY  # per segment here


def test_deepgram_sdk_gets_diarized_words(base_url: str, clean: Conversation) -> None:
    ws = base_url.replace("http", "ws")
    env = DeepgramClientEnvironment(base=base_url, production=ws, agent=ws, agent_rest=base_url)
    response = DeepgramClient(api_key=TOKEN, environment=env).listen.v1.media.transcribe_file(
        request=wav(clean.audio), diarize=True, utterances=True, punctuate=True)
    words = response.results.channels[0].alternatives[0].words
    assert all(w.speaker is not None and 0 <= w.speaker_confidence <= 1 for w in words)
    assert word_speaker_accuracy(clean, [(w.start, w.end, w.speaker) for w in words]) >= MIN_ACCURACY
    assert len({u.speaker for u in response.results.utterances}) >= 2


def test_hotwords_spell_a_rare_name(base_url: str) -> None:
    """base spells LibriSpeech's "Birket Foster" as "Birke Foster" unless told the name (measured once each)."""
    clip = (AUDIO_DIR / "en/librispeech/1272-128104-0004-8k.wav").read_bytes()
    without = post_stt(base_url, clip, language="en")["text"]
    with_hotword = post_stt(base_url, clip, language="en", hotwords="Birket Foster")["text"]
    print(f"\nwithout hotwords: ...{without[110:170]}...\nwith 'Birket Foster': ...{with_hotword[110:170]}...")
    assert "Birket" not in without and "Birket Foster" in with_hotword
    ws = base_url.replace("http", "ws")
    env = DeepgramClientEnvironment(base=base_url, production=ws, agent=ws, agent_rest=base_url)
    response = DeepgramClient(api_key=TOKEN, environment=env).listen.v1.media.transcribe_file(
        request=clip, keyterm="Birket Foster", punctuate=True)
    assert "Birket Foster" in response.results.channels[0].alternatives[0].transcript


def test_deepgram_sdk_multichannel_call_recording(base_url: str) -> None:
    """stereo_diarization.wav: a different LibriSpeech speaker per channel (mixed, they overlap)."""
    clip = manifest()["edge/stereo_diarization.wav"]
    left, right = (part.split(": ", 1)[1] for part in clip.transcript.split(" | "))
    ws = base_url.replace("http", "ws")
    env = DeepgramClientEnvironment(base=base_url, production=ws, agent=ws, agent_rest=base_url)
    response = DeepgramClient(api_key=TOKEN, environment=env).listen.v1.media.transcribe_file(
        request=clip.path.read_bytes(), multichannel=True, language="en")
    channels = response.results.channels
    assert len(channels) == 2 and response.metadata.channels == 2
    assert wer(left, channels[0].alternatives[0].transcript) <= 0.2, channels[0].alternatives[0].transcript
    assert wer(right, channels[1].alternatives[0].transcript) <= 0.2, channels[1].alternatives[0].transcript


async def test_live_diarization_keeps_speaker_numbers(make_client: Any, fw_base: Engine, clean: Conversation) -> None:
    """The conversation streamed as linear16 with diarize=true: final words carry speakers, and a speaker who
    comes back (LibriSpeech 1089 speaks three times, 1272 twice) gets the number it had."""
    from tests.live_helpers import pcm16, stream

    client = await make_client(fw_base)
    ws = await client.ws_connect("/v1/listen?encoding=linear16&sample_rate=16000&diarize=true&language=en",
                                 protocols=("token", TOKEN))
    received = await stream(ws, pcm16(clean.audio), speed=4.0)
    every = [w for m in received.finals for w in m["channel"]["alternatives"][0]["words"]]
    words = [w for w in every if "speaker" in w]  # a final too short to hear (a few ms) has none
    assert len(words) >= 0.95 * len(every) and all(0 <= w["speaker_confidence"] <= 1 for w in words)
    labelled = [(w["start"], w["end"], w["speaker"]) for w in words]
    accuracy = word_speaker_accuracy(clean, labelled)
    by_turn: dict[int, Counter[int]] = {}
    for start, end, speaker in labelled:
        middle = (start + end) / 2
        turn = min(range(len(clean.turns)), key=lambda i: abs(middle - sum(clean.turns[i][:2]) / 2))
        by_turn.setdefault(turn, Counter())[speaker] += 1
    print(f"\nlive diarization: {len(words)} words, word speaker accuracy {accuracy:.1%}, speakers by turn "
          f"{ {clean.turns[t][2] + f'@{clean.turns[t][0]:.0f}s': dict(c) for t, c in sorted(by_turn.items())} }")
    # Below the batch figure (every final is labelled with only the audio heard so far): see README.
    assert accuracy >= LIVE_MIN_ACCURACY
    first_1089 = [by_turn[i].most_common(1)[0][0] for i, t in enumerate(clean.turns) if t[2] == "1089"]
    assert len(set(first_1089)) == 1, by_turn  # 1089 keeps its number over its three turns
