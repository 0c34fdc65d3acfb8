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
    """A blocking file-like object: the event loop writes, FFmpeg's thread reads. Once the reader is gone
    (the container ended, or FFmpeg failed) what it held is freed and later writes are only counted."""

    def __init__(self) -> None:
        self._chunks = bytearray()
        self._closed = False
        self._reader_gone = False
        self.dropped = 0  # bytes written after the reader was gone
        self._ready = threading.Condition()

    @property
    def backlog(self) -> int:
        """Bytes written and not yet read."""
        return len(self._chunks)

    def write(self, data: bytes) -> None:
        with self._ready:
            if self._reader_gone:
                self.dropped += len(data)
                return
            self._chunks += data
            self._ready.notify()

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify()

    def reader_gone(self) -> None:
        with self._ready:
            self._reader_gone = True
            self._chunks = bytearray()

    def read(self, size: int = -1) -> bytes:
        with self._ready:
            while not self._chunks and not self._closed:
                self._ready.wait()
            size = len(self._chunks) if size < 0 else min(size, len(self._chunks))
            out = bytes(self._chunks[:size])
            del self._chunks[:size]
            return out


# Bytes sent after a container's end that are dropped quietly (a trailing metadata chunk); past this the stream
# is refused: FFmpeg stopped reading, and a client that keeps sending would otherwise be heard by no one.
TRAILER_BYTES = 256 * 1024
# Decoded samples waiting for the stream before FFmpeg's thread waits for it (bounds a highly compressed input).
MAX_DECODED = 10 * SAMPLE_RATE


class ContainerDecoder:
    """WebM/Opus (a browser's MediaRecorder), Ogg and other streamable containers, decoded as they arrive.

    Non-blocking for the event loop: ``write`` queues bytes for FFmpeg's thread, ``take`` returns what it has
    decoded. The caller bounds ``backlog`` (bytes FFmpeg has not read yet) by waiting, and the thread waits while
    ``MAX_DECODED`` samples are not taken, so neither side grows without bound.
    """

    def __init__(self) -> None:
        self._pipe = _Pipe()
        self._out: list[np.ndarray] = []
        self._out_samples = 0
        self._room = threading.Condition()  # the thread waits here while the decoded output is full
        self._unbounded = False  # end of input or client gone: the thread no longer waits for room
        self.error: str | None = None
        self.ended = False  # the thread is done (the container's end, or an error)
        self._thread = threading.Thread(target=self._decode, name="stt-live-demux", daemon=True)
        self._thread.start()

    @property
    def backlog(self) -> int:
        return self._pipe.backlog

    def write(self, data: bytes) -> None:
        """Queue bytes for FFmpeg. AudioError when it failed, or ended and audio keeps coming."""
        self._pipe.write(data)
        if self.ended and self.error:
            raise AudioError(self.error)
        if self._pipe.dropped > TRAILER_BYTES:
            raise AudioError("The audio container ended, but audio kept coming after its end: start a new stream "
                             "(or send Finalize before a new container)")

    def feed(self, data: bytes) -> np.ndarray:
        self.write(data)
        return self.take()

    def take(self) -> np.ndarray:
        """Everything decoded so far (AudioError when decoding failed and nothing is left)."""
        with self._room:
            chunks, self._out, self._out_samples = self._out, [], 0
            self._room.notify()
        if self.error and not chunks:
            raise AudioError(self.error)
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)

    def end_input(self) -> None:
        """No more bytes: FFmpeg decodes what it holds and ends (take the rest until ``ended``)."""
        self._pipe.close()

    def finish(self) -> np.ndarray:
        self.end_input()
        self._release()
        self._thread.join(timeout=10)
        return self.take()

    def close(self) -> None:
        """The client is gone: end the pipe so the demuxing thread and its FFmpeg container exit too."""
        self._pipe.close()
        self._release()
        with self._room:
            self._out, self._out_samples = [], 0

    def _release(self) -> None:
        with self._room:
            self._unbounded = True
            self._room.notify()

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
        finally:
            # FFmpeg reads no more (an AIFF or WAV ends at its data chunk's end): free what waits for it.
            self._pipe.reader_gone()
            self.ended = True

    def _emit(self, frames: list[av.AudioFrame]) -> None:
        if frames:
            samples = np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float32)
            with self._room:
                while self._out_samples >= MAX_DECODED and not self._unbounded:
                    self._room.wait()
                self._out.append(samples)
                self._out_samples += len(samples)
