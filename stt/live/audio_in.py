"""Incremental audio decoding for live streams: raw PCM frames, or a container (WebM/Opus, Ogg) in pieces.

Both turn whatever bytes arrived into 16 kHz mono float32 samples. Containers are demuxed by FFmpeg (PyAV)
on a thread of their own that reads from a pipe the WebSocket writes into, because FFmpeg pulls its input
and would otherwise block the event loop waiting for the next chunk.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

import av
import numpy as np
import soxr

from stt.audio import SAMPLE_RATE, check_source_format
from stt.errors import AudioError

log = logging.getLogger("stt.live.audio_in")


class StreamDecoder(Protocol):
    def feed(self, data: bytes) -> np.ndarray: ...

    def finish(self) -> np.ndarray:
        """Blocking: the samples still inside the decoder at the end of the stream."""
        ...


class PcmDecoder:
    """Little-endian signed 16-bit PCM (Deepgram's ``linear16``), interleaved channels, any rate. Mixed down to
    mono, or with ``keep_channels`` returned as (channels, samples) for multichannel streams."""

    def __init__(self, rate: int, channels: int, keep_channels: bool = False) -> None:
        check_source_format(rate, channels)  # callers validate too; this is where the memory would go
        self._channels = channels
        self._keep = keep_channels and channels > 1
        self._carry = b""  # a frame split across two messages
        lanes = channels if self._keep else 1
        self._resampler = soxr.ResampleStream(rate, SAMPLE_RATE, lanes, dtype="float32") if rate != SAMPLE_RATE \
            else None

    def feed(self, data: bytes) -> np.ndarray:
        data = self._carry + data
        whole = len(data) - len(data) % (2 * self._channels)
        self._carry = data[whole:]
        pcm = np.frombuffer(data[:whole], dtype="<i2").astype(np.float32) / 32768.0
        if self._keep:
            return self._resample(pcm.reshape(-1, self._channels), last=False)
        mono = pcm.reshape(-1, self._channels).mean(axis=1) if self._channels > 1 else pcm
        return self._resample(mono, last=False)

    def finish(self) -> np.ndarray:
        empty = np.zeros((0, self._channels) if self._keep else 0, dtype=np.float32)
        return self._resample(empty, last=True)

    def _resample(self, samples: np.ndarray, last: bool) -> np.ndarray:
        """(frames,) mono, or (frames, channels) -> (channels, frames)."""
        out = samples if self._resampler is None else self._resampler.resample_chunk(samples, last=last)
        return np.ascontiguousarray(out.T) if self._keep else out


class _Pipe:
    """A blocking file-like object: the event loop writes, FFmpeg's thread reads."""

    def __init__(self) -> None:
        self._chunks = bytearray()
        self._closed = False
        self._ready = threading.Condition()

    def write(self, data: bytes) -> None:
        with self._ready:
            self._chunks += data
            self._ready.notify()

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify()

    def read(self, size: int = -1) -> bytes:
        with self._ready:
            while not self._chunks and not self._closed:
                self._ready.wait()
            size = len(self._chunks) if size < 0 else min(size, len(self._chunks))
            out = bytes(self._chunks[:size])
            del self._chunks[:size]
            return out


class ContainerDecoder:
    """WebM/Opus (a browser's MediaRecorder), Ogg and other streamable containers, decoded as they arrive."""

    def __init__(self) -> None:
        self._pipe = _Pipe()
        self._out: list[np.ndarray] = []
        self._lock = threading.Lock()
        self.error: str | None = None
        self._thread = threading.Thread(target=self._decode, name="stt-live-demux", daemon=True)
        self._thread.start()

    def feed(self, data: bytes) -> np.ndarray:
        self._pipe.write(data)
        return self._take()

    def finish(self) -> np.ndarray:
        self._pipe.close()
        self._thread.join(timeout=10)
        return self._take()

    def close(self) -> None:
        """The client is gone: end the pipe so the demuxing thread and its FFmpeg container exit too."""
        self._pipe.close()

    def _take(self) -> np.ndarray:
        with self._lock:
            chunks, self._out = self._out, []
        if self.error and not chunks:
            raise AudioError(self.error)
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)

    def _decode(self) -> None:
        try:
            with av.open(self._pipe, mode="r") as container:
                stream = container.streams.audio[0]
                resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
                for frame in container.decode(stream):
                    # A container may declare any rate (a WAV header at 1 Hz): each of its samples would
                    # become 16,000 here. Same range as uploads, checked per frame (the rate may change).
                    check_source_format(frame.sample_rate, len(frame.layout.channels))
                    self._emit(resampler.resample(frame))
                self._emit(resampler.resample(None))
        except AudioError as exc:
            self.error = exc.message
        except (av.FFmpegError, ValueError, IndexError, OSError) as exc:
            log.info("live container stream ended with a decoding error: %s", exc)
            self.error = "Could not decode the streamed audio: send WebM/Ogg, or linear16 with encoding=linear16"

    def _emit(self, frames: list[av.AudioFrame]) -> None:
        if frames:
            samples = np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float32)
            with self._lock:
                self._out.append(samples)
