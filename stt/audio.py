"""Uploaded bytes -> 16 kHz mono float32, the only input the engines accept.

libsndfile (soundfile) reads WAV, FLAC, OGG/Vorbis, OGG/Opus and MP3 directly; what it cannot read (WebM/Opus
from browsers, M4A/AAC, ...) goes through FFmpeg via PyAV. Resampling uses soxr, a band-limited resampler:
naive slicing or linear interpolation would alias high frequencies into the speech band.
"""

from __future__ import annotations

import io
import logging

import av
import numpy as np
import soundfile as sf
import soxr

from stt.errors import AudioError, TooLarge

SAMPLE_RATE = 16000  # Hz, what Whisper was trained on
MAX_CHANNELS = 32
# The one range of source sample rates accepted wherever audio enters (uploads, live query, live handshake):
# 8 kHz is telephony, the lowest rate speech is recorded at; 192 kHz the highest studio rate. A lower rate is
# a memory bomb, not audio: 1 Hz makes a 28 KB WAV decode to 4 hours at 16 kHz (0.9 GB).
MIN_SOURCE_RATE = 8_000  # Hz
MAX_SOURCE_RATE = 192_000  # Hz
UNKNOWN_FRAMES = 1 << 62  # libsndfile's frame count for a stream of unknown length (SF_COUNT_MAX)
FLAC_TAIL_SLACK = 4096  # bytes a FLAC may hold after its last frame (libsndfile reads an honest one to the end)
READ_BLOCK_FRAMES = 64 * 1024  # source frames decoded at a time
# Decoding work allowed per second of max_audio_seconds, in source samples (all channels): 96 kHz stereo.
# Bounds the CPU a small upload of many channels at a high rate (compressed silence) can cost.
SOURCE_SAMPLES_PER_ALLOWED_S = 2 * 96_000

log = logging.getLogger("stt.audio")


def decode_audio(data: bytes, max_seconds: float = float("inf")) -> np.ndarray:
    """Decode any supported container to mono float32 at SAMPLE_RATE; AudioError (400) or TooLarge (413)."""
    return _decode(data, max_seconds, keep_channels=False)


def decode_channels(data: bytes, max_seconds: float = float("inf"),
                    max_channels: int = MAX_CHANNELS) -> np.ndarray:
    """Like decode_audio, but each channel on its own: (channels, samples) float32 at SAMPLE_RATE (Deepgram's
    multichannel: agent and customer of a call recording on separate channels). ``max_seconds`` bounds the
    channel-seconds (a stereo file may last half as long), so the memory is that of the longest mono upload."""
    return _decode(data, max_seconds, keep_channels=True, max_channels=max_channels)


def _decode(data: bytes, max_seconds: float, keep_channels: bool, max_channels: int = MAX_CHANNELS) -> np.ndarray:
    if not data:
        raise AudioError("Empty audio: the request body has no bytes")
    try:
        try:
            audio = _read_soundfile(data, max_seconds, keep_channels, max_channels)
        except (sf.LibsndfileError, _UseFFmpeg):
            audio = _read_pyav(data, max_seconds, keep_channels, max_channels)
        return _finish(audio)
    except (AudioError, TooLarge):
        raise
    except MemoryError as exc:
        raise TooLarge("Audio is too large to decode") from exc
    except Exception as exc:  # C decoders parsing hostile bytes: any other failure is still the upload's fault
        log.warning("decoder failed on an upload: %s: %s", type(exc).__name__, exc)
        raise AudioError("Unsupported or corrupt audio: could not decode the upload") from exc


class _ClampedBytesIO(io.BytesIO):
    """libsndfile asks corrupt files to seek before their start; BytesIO raises from inside a C callback
    (printed as "Exception ignored", then the seek reports position 0). Clamp to 0 instead, quietly."""

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        # BytesIO itself clamps negative SEEK_CUR/SEEK_END results to 0; only SEEK_SET raises. (Measuring
        # the length with getbuffer() would copy the whole upload on every seek to the end.)
        return super().seek(max(0, offset) if whence == io.SEEK_SET else offset, whence)


class _UseFFmpeg(Exception):
    """libsndfile opened the file but would not decode all of it: FFmpeg (PyAV) reads it instead."""


def _read_soundfile(data: bytes, max_seconds: float, keep_channels: bool = False,
                    max_channels: int = MAX_CHANNELS) -> np.ndarray:
    source = _ClampedBytesIO(data)
    with sf.SoundFile(source) as f:
        _check_format(f.samplerate, f.channels, max_channels)
        if keep_channels:  # every channel is kept: the limit is on channel-seconds, so memory stays as mono's
            max_seconds /= f.channels
        # libsndfile reports "unknown length" (a FLAC written to a pipe) as a huge frame count.
        known = 0 < f.frames < UNKNOWN_FRAMES
        # The header's frame count is checked before decoding, so a tiny file that claims hours of audio
        # costs nothing. A header that lies low is caught while reading, block by block.
        if known and f.frames / f.samplerate > max_seconds:
            raise _too_long(f.frames / f.samplerate, max_seconds)
        if known and f.frames * f.channels > max_seconds * SOURCE_SAMPLES_PER_ALLOWED_S:
            raise _too_heavy(f.channels, f.samplerate, f.frames / f.samplerate)
        if f.format == "FLAC" and not known:
            raise _UseFFmpeg  # libsndfile cannot read a FLAC with no sample count; FFmpeg can, bounded
        try:
            audio = _read_blocks(f, max_seconds, keep_channels)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioError(f"Could not decode audio: {exc}") from exc
        if f.format == "FLAC" and source.tell() < len(data) - FLAC_TAIL_SLACK:
            # libsndfile stops at the STREAMINFO sample count: a header that lies low would silently drop
            # the rest of the file. FFmpeg decodes the frames that are there (still bounded by max_seconds).
            raise _UseFFmpeg
        return audio


def _read_blocks(f: sf.SoundFile, max_seconds: float, keep_channels: bool = False) -> np.ndarray:
    """Downmix and resample block by block: memory stays at the 16 kHz mono result, however many channels
    at whatever rate a small (highly compressible) upload declares. ``keep_channels``: (samples, channels)
    at 16 kHz, no downmix (the caller bounds the channel count)."""
    limit = min(max_seconds * f.samplerate, max_seconds * SOURCE_SAMPLES_PER_ALLOWED_S / f.channels)
    stream = soxr.ResampleStream(f.samplerate, SAMPLE_RATE, f.channels if keep_channels else 1, dtype="float32",
                                 quality="HQ")
    chunks: list[np.ndarray] = []
    frames = 0
    for block in f.blocks(blocksize=READ_BLOCK_FRAMES, dtype="float32", always_2d=True):
        frames += len(block)
        if frames > limit:
            if frames > max_seconds * f.samplerate:
                raise _too_long(frames / f.samplerate, max_seconds)
            raise _too_heavy(f.channels, f.samplerate, frames / f.samplerate)
        with np.errstate(invalid="ignore", over="ignore"):  # NaN/Inf are refused just below
            mono = block if keep_channels else block.mean(axis=1)
        if not np.isfinite(mono).all():  # checked before resampling, which would smear a NaN around
            raise AudioError("Audio contains NaN or infinite samples")
        chunks.append(stream.resample_chunk(mono))
    if frames == 0:
        raise AudioError("Audio has no samples")
    empty = np.zeros((0, f.channels) if keep_channels else 0, dtype=np.float32)
    chunks.append(stream.resample_chunk(empty, last=True))
    out = np.concatenate(chunks)
    return np.ascontiguousarray(out.T) if keep_channels else out


def _read_pyav(data: bytes, max_seconds: float, keep_channels: bool = False,
               max_channels: int = MAX_CHANNELS) -> np.ndarray:
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise AudioError("Unsupported or corrupt audio: no audio stream found")
            stream = container.streams.audio[0]
            # A corrupt header can leave these unset (or make them raise): then the stream is unusable.
            _check_format(getattr(stream, "rate", 0) or 0, getattr(stream, "channels", 0) or 0, max_channels)
            if keep_channels:  # channel-seconds, as above
                max_seconds /= stream.channels
            # FFmpeg's resampler converts to mono float at the target rate while decoding (planar float per
            # channel when the channels are kept).
            resampler = (av.AudioResampler(format="fltp", layout=stream.layout, rate=SAMPLE_RATE) if keep_channels
                         else av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE))
            chunks: list[np.ndarray] = []
            total = 0
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunk = _frame_array(out, keep_channels)
                    chunks.append(chunk)
                    total += chunk.shape[-1]
                if total > max_seconds * SAMPLE_RATE:
                    raise _too_long(total / SAMPLE_RATE, max_seconds)
            for out in resampler.resample(None):
                chunks.append(_frame_array(out, keep_channels))
    except (av.FFmpegError, ValueError, IndexError, OSError) as exc:
        raise AudioError("Unsupported or corrupt audio: could not decode the upload "
                         "(WAV, FLAC, OGG, MP3, WebM, M4A and other FFmpeg formats are accepted)") from exc
    if not chunks:
        raise AudioError("Audio has no samples")
    return np.concatenate(chunks, axis=-1).astype(np.float32, copy=False)


def _frame_array(frame: av.AudioFrame, keep_channels: bool) -> np.ndarray:
    """A resampled frame: (samples,) mono, or (channels, samples) planar."""
    array = frame.to_ndarray()
    return array if keep_channels else array.reshape(-1)


def _check_format(rate: int, channels: int, max_channels: int = MAX_CHANNELS) -> None:
    if not MIN_SOURCE_RATE <= rate <= MAX_SOURCE_RATE:
        raise AudioError(f"Unsupported sample rate: {rate} Hz (accepted: {MIN_SOURCE_RATE} to {MAX_SOURCE_RATE} Hz)")
    if not 0 < channels <= max_channels:
        raise AudioError(f"Unsupported channel count: {channels} (at most {max_channels})")


# Public: the live decoders (stt/live/audio_in.py) check the same range as uploads.
check_source_format = _check_format


def _too_long(seconds: float, max_seconds: float) -> TooLarge:
    return TooLarge(f"Audio is too long: {seconds:.0f} s (limit {max_seconds:.0f} s)")


def _too_heavy(channels: int, rate: int, seconds: float) -> TooLarge:
    return TooLarge(f"Audio is too large to decode: {channels} channels at {rate} Hz for {seconds:.0f} s")


def _finish(audio: np.ndarray) -> np.ndarray:
    """Both readers already return 16 kHz mono; this checks what the engines will see."""
    if audio.size == 0:
        raise AudioError("Audio has no samples")
    # Not redundant with the per-block check on the soundfile path: finite samples near the float32 limit can
    # overflow to inf in the resampler (the fuzz test finds such files), and PyAV's output is unchecked.
    if not np.isfinite(audio).all():
        raise AudioError("Audio contains NaN or infinite samples")
    return np.ascontiguousarray(audio, dtype=np.float32)


def duration_seconds(audio: np.ndarray) -> float:
    return audio.shape[-1] / SAMPLE_RATE
