"""Deepgram's multichannel=true: every channel decoded and transcribed on its own."""

from __future__ import annotations

import io
from typing import Any

import av
import numpy as np
import pytest

from stt.audio import decode_audio, decode_channels
from stt.errors import AudioError
from tests.conftest import AUTH
from tests.helpers import tone, wav


def stereo() -> np.ndarray:
    return np.stack([tone(440, 1.0, 16000), tone(1000, 1.0, 16000, amplitude=0.2)], axis=1)


def webm_stereo(audio: np.ndarray, rate: int = 48000) -> bytes:
    """(samples, 2) float -> WebM/Opus stereo: a format only the PyAV path reads."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="webm") as out:
        stream = out.add_stream("libopus", rate=rate, layout="stereo")
        pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm.reshape(1, -1)), format="s16", layout="stereo")
        frame.sample_rate, frame.pts = 16000, 0
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x[2000:-2000] ** 2)))


@pytest.mark.parametrize("encode", [lambda a: wav(a, rate=44100), webm_stereo], ids=["wav-soundfile", "webm-pyav"])
def test_channels_stay_apart(encode: Any) -> None:
    audio = stereo()
    if encode is not webm_stereo:
        import soxr
        audio = soxr.resample(audio, 16000, 44100)
    channels = decode_channels(encode(audio), 60.0, 8)
    assert channels.shape[0] == 2 and abs(channels.shape[1] - 16000) < 800
    assert rms(channels[0]) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)  # each channel its own level
    assert rms(channels[1]) == pytest.approx(0.2 / np.sqrt(2), rel=0.1)
    mono = decode_audio(encode(audio), 60.0)
    assert mono.shape[0] == channels.shape[1]


def test_channel_bound() -> None:
    many = np.zeros((16000, 9), dtype=np.float32)
    with pytest.raises(AudioError, match="at most 8"):
        decode_channels(wav(many), 60.0, 8)


async def test_deepgram_multichannel_has_one_result_per_channel(client: Any) -> None:
    resp = await client.post("/v1/listen", params={"multichannel": "true", "utterances": "true"},
                             data=wav(stereo()), headers=AUTH)
    body = await resp.json()
    assert resp.status == 200, body
    assert len(body["results"]["channels"]) == 2 and body["metadata"]["channels"] == 2
    assert sorted({u["channel"] for u in body["results"]["utterances"]}) == [0, 1]
    resp = await client.post("/v1/listen", data=wav(stereo()), headers=AUTH)
    body = await resp.json()
    assert len(body["results"]["channels"]) == 1 and body["metadata"]["channels"] == 1


# -- live: multichannel=true on linear16 ---------------------------------------------------------------

async def test_live_multichannel_needs_linear16(client: Any) -> None:
    import aiohttp

    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect("/v1/listen?multichannel=true", headers=AUTH)
    assert info.value.status == 400


def test_pcm_decoder_keeps_channels_apart() -> None:
    from stt.live.audio_in import PcmDecoder

    left, right = tone(440, 0.5, 8000), tone(1000, 0.5, 8000, amplitude=0.2)
    pcm = (np.stack([left, right], axis=1) * 32767).astype("<i2").tobytes()
    decoder = PcmDecoder(8000, 2, keep_channels=True)
    out = np.concatenate([decoder.feed(pcm[:1001]), decoder.feed(pcm[1001:]), decoder.finish()], axis=1)
    assert out.shape[0] == 2 and abs(out.shape[1] - 8000) < 100  # resampled to 16 kHz, frames kept whole
    assert rms(out[0]) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)
    assert rms(out[1]) == pytest.approx(0.2 / np.sqrt(2), rel=0.1)


@pytest.mark.model
async def test_live_multichannel_call_recording(make_client: Any, fw_tiny: Any) -> None:
    """stereo_diarization.wav streamed in real time as 2-channel linear16: each speaker on its own channel."""
    from tests.helpers import TOKEN, manifest, wer
    from tests.live_helpers import stream, transcript

    clip = manifest()["edge/stereo_diarization.wav"]
    left, right = (part.split(": ", 1)[1] for part in clip.transcript.split(" | "))
    channels = decode_channels(clip.path.read_bytes(), 60.0, 2)
    pcm = (np.clip(channels.T, -1, 1) * 32767).astype("<i2").tobytes()
    client = await make_client(fw_tiny)
    ws = await client.ws_connect("/v1/listen?encoding=linear16&sample_rate=16000&channels=2&multichannel=true",
                                 protocols=("token", TOKEN))
    received = await stream(ws, pcm, speed=1.0, chunk_bytes=6400, bytes_per_second=64000)
    by_channel = {0: "", 1: ""}
    for message in received.finals:
        assert message["channel_index"][1] == 2
        by_channel[message["channel_index"][0]] += " " + transcript(message)
    assert wer(left, by_channel[0]) <= 0.3, by_channel
    assert wer(right, by_channel[1]) <= 0.3, by_channel
    assert received.of("Metadata")[0]["channels"] == 2


def test_multichannel_limit_is_on_channel_seconds() -> None:
    """Kept channels cost memory each: a stereo upload may last half the mono limit (413 past it)."""
    from stt.errors import TooLarge

    two_seconds_stereo = wav(np.zeros((32000, 2), dtype=np.float32))
    assert decode_channels(two_seconds_stereo, 4.0, 8).shape == (2, 32000)
    with pytest.raises(TooLarge):
        decode_channels(two_seconds_stereo, 3.0, 8)
    assert decode_audio(two_seconds_stereo, 3.0).shape == (32000,)  # mixed down: the plain limit
