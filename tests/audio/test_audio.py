"""Decoding and resampling on real files from ../shared/audio and on formats made from them."""

import numpy as np
import pytest
import soundfile as sf
import soxr

from stt.audio import SAMPLE_RATE, decode_audio
from stt.errors import AudioError, TooLarge
from tests.helpers import AUDIO_DIR, encode, manifest, tone, wav

pytestmark = pytest.mark.skipif(not AUDIO_DIR.is_dir(), reason="shared audio missing")


@pytest.mark.parametrize("name", [
    "en/jfk.flac",  # 44.1 kHz stereo 24-bit FLAC
    "en/librispeech/1272-141231-0002.mp3",
    "en/librispeech/1272-128104-0004-8k.wav",
    "edge/stereo_diarization.wav",
    "nonen/de_test_de.wav",
])
def test_shared_files_decode_to_16k_mono_of_the_right_length(name: str) -> None:
    clip = manifest()[name]
    audio = decode_audio(clip.path.read_bytes())
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) / SAMPLE_RATE - clip.seconds) < 0.1
    assert 0.01 < np.abs(audio).max() <= 1.0


@pytest.mark.parametrize(("fmt", "codec"), [("webm", "libopus"), ("ipod", "aac"), ("ogg", "libopus")])
def test_containers_via_pyav(fmt: str, codec: str) -> None:
    clip = manifest()["en/librispeech/1089-134686-0003.flac"]
    source, rate = sf.read(clip.path, dtype="float32")
    if codec == "libopus":  # Opus only takes 8/12/16/24/48 kHz; browsers send 48 kHz
        source, rate = soxr.resample(source, rate, 48000), 48000
    audio = decode_audio(encode(source, rate, fmt, codec))
    assert abs(len(audio) / SAMPLE_RATE - clip.seconds) < 0.15


def test_resampler_keeps_speech_band_and_removes_what_cannot_be_represented() -> None:
    # 1 kHz survives 44.1 -> 16 kHz; 12 kHz is above the new Nyquist (8 kHz) and must vanish, not alias to 4 kHz.
    audio = decode_audio(wav(tone(1000, 1.0, 44100) + tone(12000, 1.0, 44100), 44100, "FLOAT"))
    spectrum = np.abs(np.fft.rfft(audio[1000:-1000]))
    freqs = np.fft.rfftfreq(len(audio) - 2000, 1 / SAMPLE_RATE)
    at = lambda f: spectrum[np.argmin(np.abs(freqs - f))]  # noqa: E731
    assert at(1000) > 1000 * at(4000)


@pytest.mark.parametrize("data", [
    b"",
    b"\x00",
    bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8)),
    b"hello, this is a text file\n" * 100,
])
def test_garbage_is_an_audio_error(data: bytes) -> None:
    with pytest.raises(AudioError):
        decode_audio(data)


def test_truncated_wav_header_is_an_audio_error() -> None:
    with pytest.raises(AudioError):
        decode_audio(wav(tone(440, 1.0, 16000))[:30])


def test_nan_samples_are_refused() -> None:
    audio = tone(440, 0.5, 16000)
    audio[100] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        decode_audio(wav(audio, subtype="FLOAT"))


def test_declared_length_over_limit_is_refused_before_decoding() -> None:
    with pytest.raises(TooLarge):
        decode_audio(wav(tone(440, 3.0, 16000)), max_seconds=2.0)
