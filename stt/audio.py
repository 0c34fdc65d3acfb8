"""Uploaded bytes -> 16 kHz mono float32, the only input the engines accept.

libsndfile (soundfile) reads WAV, FLAC, OGG/Vorbis, OGG/Opus and MP3 directly; what it cannot read (WebM/Opus
from browsers, M4A/AAC, ...) goes through FFmpeg via PyAV. Resampling uses soxr, a band-limited resampler:
naive slicing or linear interpolation would alias high frequencies into the speech band.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable

import av
import numpy as np
import soundfile as sf
import soxr

from stt.errors import AudioError, TooLarge
from stt.logs import safe

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

GROWTH = 1.5  # an output buffer whose estimate fell short grows by half (the old one is dropped at once)
log = logging.getLogger("stt.audio")
Reserve = Callable[[int], None]  # called with a number of bytes before they are allocated; may raise to refuse


def decode_audio(data: bytes | memoryview, max_seconds: float = float("inf"), reserve: Reserve | None = None) -> np.ndarray:
    """Decode any supported container to mono float32 at SAMPLE_RATE; AudioError (400) or TooLarge (413).
    ``reserve(n)`` is called before each buffer of the result is allocated (the memory budget)."""
    return _decode(data, max_seconds, keep_channels=False, reserve=reserve)


def decode_channels(data: bytes | memoryview, max_seconds: float = float("inf"),
                    max_channels: int = MAX_CHANNELS, reserve: Reserve | None = None) -> np.ndarray:
    """Like decode_audio, but each channel on its own: (channels, samples) float32 at SAMPLE_RATE (Deepgram's
    multichannel: agent and customer of a call recording on separate channels). ``max_seconds`` bounds the
    channel-seconds (a stereo file may last half as long), so the memory is that of the longest mono upload."""
    return _decode(data, max_seconds, keep_channels=True, max_channels=max_channels, reserve=reserve)


class _Output:
    """The decoded samples, written into one preallocated (channels, samples) array as they are decoded: the
    audio exists once, not as decoded pieces plus their concatenation (which doubled the peak). The array is
    sized from the header's length; when that falls short it grows by half. Every allocation is reserved first;
    pieces are checked for NaN/Inf as they come (the resampler can overflow finite samples to inf)."""

    def __init__(self, channels: int, expected: int, reserve: Reserve | None) -> None:
        self._reserve = reserve or (lambda nbytes: None)
        self._channels = channels
        self.size = 0
        self._buffer = self._allocate(max(expected, SAMPLE_RATE))

    def _allocate(self, samples: int) -> np.ndarray:
        try:
            self._reserve(samples * self._channels * 4)
        except Exception as exc:  # the budget said no: the caller's answer, not a corrupt upload
            raise _Refused from exc
        return np.empty((self._channels, samples), dtype=np.float32)

    def write(self, piece: np.ndarray) -> None:
        """``piece``: (samples,) mono or (channels, samples)."""
        piece = piece.reshape(self._channels, -1)
        if not np.isfinite(piece).all():
            raise AudioError("Audio contains NaN or infinite samples")
        end = self.size + piece.shape[1]
        if end > self._buffer.shape[1]:
            grown = self._allocate(max(end, int(self._buffer.shape[1] * GROWTH)))
            grown[:, :self.size] = self._buffer[:, :self.size]
            self._buffer = grown
        self._buffer[:, self.size:end] = piece
        self.size = end

    def result(self, keep_channels: bool) -> np.ndarray:
        if self.size == 0:
            raise AudioError("Audio has no samples")
        out = self._buffer[:, :self.size]
        if self.size < 0.9 * self._buffer.shape[1]:  # an estimate far too high: keep only what was decoded
            out = self._allocate(self.size)
            out[:] = self._buffer[:, :self.size]
            self._buffer = out
        return out if keep_channels else out[0]


def _decode(data: bytes | memoryview, max_seconds: float, keep_channels: bool, max_channels: int = MAX_CHANNELS,
            reserve: Reserve | None = None) -> np.ndarray:
    if len(data) == 0:
        raise AudioError("Empty audio: the request body has no bytes")
    try:
        try:
            audio = _read_soundfile(data, max_seconds, keep_channels, max_channels, reserve)
        except (sf.LibsndfileError, _UseFFmpeg):
            audio = _read_pyav(data, max_seconds, keep_channels, max_channels, reserve)
        return audio
    except (AudioError, TooLarge):
        raise
    except _Refused as exc:
        raise exc.__cause__ from None  # type: ignore[misc]
    except MemoryError as exc:
        raise TooLarge("Audio is too large to decode") from exc
    except Exception as exc:  # C decoders parsing hostile bytes: any other failure is still the upload's fault
        log.warning("decoder failed on an upload: %s: %s", type(exc).__name__, safe(exc))
        raise AudioError("Unsupported or corrupt audio: could not decode the upload") from exc


class _ClampedBytesIO(io.BytesIO):
    """libsndfile asks corrupt files to seek before their start; BytesIO raises from inside a C callback
    (printed as "Exception ignored", then the seek reports position 0). Clamp to 0 instead, quietly."""

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        # BytesIO itself clamps negative SEEK_CUR/SEEK_END results to 0; only SEEK_SET raises. (Measuring
        # the length with getbuffer() would copy the whole upload on every seek to the end.)
        return super().seek(max(0, offset) if whence == io.SEEK_SET else offset, whence)


class _ViewReader(io.RawIOBase):
    """A read-only file over a memoryview, without the copy that BytesIO makes of anything but bytes (a GIL-
    holding copy of the whole upload). Seeks before the start clamp to 0, as _ClampedBytesIO's do."""

    def __init__(self, view: memoryview) -> None:
        super().__init__()
        self._view = view.cast("B")
        self._at = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def,override]
        n = max(0, min(len(buffer), len(self._view) - self._at))
        buffer[:n] = self._view[self._at:self._at + n]
        self._at += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._at, io.SEEK_END: len(self._view)}[whence]
        self._at = max(0, base + offset)
        return self._at

    def tell(self) -> int:
        return self._at


def _reader(data: bytes | memoryview) -> io.IOBase:
    return _ClampedBytesIO(data) if isinstance(data, bytes) else _ViewReader(memoryview(data))


class _Refused(Exception):
    """``reserve`` refused a buffer; its exception is re-raised as it was (``__cause__``)."""


class _UseFFmpeg(Exception):
    """libsndfile opened the file but would not decode all of it: FFmpeg (PyAV) reads it instead."""


def _read_soundfile(data: bytes | memoryview, max_seconds: float, keep_channels: bool = False,
                    max_channels: int = MAX_CHANNELS, reserve: Reserve | None = None) -> np.ndarray:
    source = _reader(data)
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
            expected = int(f.frames * SAMPLE_RATE / f.samplerate) + SAMPLE_RATE if known else 0
            audio = _read_blocks(f, max_seconds, keep_channels, _Output(f.channels if keep_channels else 1,
                                                                        expected, reserve))
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioError(f"Could not decode audio: {exc}") from exc
        if f.format == "FLAC" and source.tell() < len(data) - FLAC_TAIL_SLACK:
            # libsndfile stops at the STREAMINFO sample count: a header that lies low would silently drop
            # the rest of the file. FFmpeg decodes the frames that are there (still bounded by max_seconds).
            raise _UseFFmpeg
        return audio


def _read_blocks(f: sf.SoundFile, max_seconds: float, keep_channels: bool, out: _Output) -> np.ndarray:
    """Downmix and resample block by block: memory stays at the 16 kHz mono result, however many channels
    at whatever rate a small (highly compressible) upload declares. ``keep_channels``: (samples, channels)
    at 16 kHz, no downmix (the caller bounds the channel count)."""
    limit = min(max_seconds * f.samplerate, max_seconds * SOURCE_SAMPLES_PER_ALLOWED_S / f.channels)
    stream = soxr.ResampleStream(f.samplerate, SAMPLE_RATE, f.channels if keep_channels else 1, dtype="float32",
                                 quality="HQ")
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
        out.write(stream.resample_chunk(mono).T)
    if frames == 0:
        raise AudioError("Audio has no samples")
    empty = np.zeros((0, f.channels) if keep_channels else 0, dtype=np.float32)
    out.write(stream.resample_chunk(empty, last=True).T)
    return out.result(keep_channels)


def _read_pyav(data: bytes | memoryview, max_seconds: float, keep_channels: bool = False,
               max_channels: int = MAX_CHANNELS, reserve: Reserve | None = None) -> np.ndarray:
    try:
        with av.open(_reader(data), mode="r") as container:
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
            output = _Output(stream.channels if keep_channels else 1,
                             _expected_samples(container, stream, max_seconds), reserve)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    output.write(_frame_array(out, keep_channels))
                if output.size > max_seconds * SAMPLE_RATE:
                    raise _too_long(output.size / SAMPLE_RATE, max_seconds)
            for out in resampler.resample(None):
                output.write(_frame_array(out, keep_channels))
    except (av.FFmpegError, ValueError, IndexError, OSError) as exc:
        raise AudioError("Unsupported or corrupt audio: could not decode the upload "
                         "(WAV, FLAC, OGG, MP3, WebM, M4A and other FFmpeg formats are accepted)") from exc
    return output.result(keep_channels)


def _expected_samples(container: av.container.InputContainer, stream: av.audio.AudioStream,
                      max_seconds: float) -> int:
    """The output's length as the container declares it (0 when it does not), at most ``max_seconds``."""
    seconds = 0.0
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration:
        seconds = container.duration / av.time_base
    return int(min(max(seconds, 0.0), max_seconds) * SAMPLE_RATE) + SAMPLE_RATE


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


def duration_seconds(audio: np.ndarray) -> float:
    return audio.shape[-1] / SAMPLE_RATE
