"""Mutation fuzzing of uploads: small valid files in every supported container, then byte-level damage.

Shared by tests/security/test_fuzz.py (a bounded run in CI) and bench/fuzz_long.py (a long run).
"""

from __future__ import annotations

import functools
import io
import struct

import av
import numpy as np
import soundfile as sf
from hypothesis import strategies as st

INTERESTING_U32 = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


def _signal(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32)


def _soundfile(fmt: str, subtype: str, rate: int = 16000, channels: int = 1) -> bytes:
    buf = io.BytesIO()
    audio = np.repeat(_signal(0.25, rate)[:, None], channels, axis=1)
    sf.write(buf, audio, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def _webm_opus() -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="webm") as container:
        stream = container.add_stream("libopus", rate=48000)
        stream.layout = "mono"
        samples = _signal(0.25, 48000)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
        frame.sample_rate = 48000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


@functools.cache
def seeds() -> tuple[bytes, ...]:
    files = [
        _soundfile("WAV", "PCM_16"), _soundfile("WAV", "PCM_24", 44100, 2), _soundfile("WAV", "FLOAT", 8000),
        _soundfile("FLAC", "PCM_16"), _soundfile("FLAC", "PCM_24", 48000, 2), _soundfile("OGG", "VORBIS"),
        _soundfile("OGG", "OPUS", 48000), _soundfile("MP3", "MPEG_LAYER_III", 22050), _soundfile("AIFF", "PCM_16"),
    ]
    try:
        files.append(_webm_opus())
    except (av.FFmpegError, ValueError):  # an FFmpeg build without libopus: fuzz the rest
        pass
    return tuple(files)


def _apply(data: bytearray, op: tuple) -> bytearray:  # type: ignore[type-arg]
    kind, pos, arg = op
    if not data:
        return bytearray(arg if isinstance(arg, bytes) else b"")
    pos %= len(data)
    if kind == "flip":
        data[pos] ^= 1 << (arg % 8)
    elif kind == "byte":
        data[pos] = arg % 256
    elif kind == "u32":
        data[pos:pos + 4] = struct.pack("<I", INTERESTING_U32[arg % len(INTERESTING_U32)])
    elif kind == "insert":
        data[pos:pos] = arg
    elif kind == "delete":
        del data[pos:pos + arg]
    elif kind == "truncate":
        del data[pos:]
    elif kind == "repeat":  # duplicate a slice: stresses frame counts and chunk parsers
        data[pos:pos] = data[pos:pos + arg] * 8
    return data


_ops = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 20), st.integers(0, 7)),
    st.tuples(st.just("byte"), st.integers(0, 1 << 20), st.integers(0, 255)),
    st.tuples(st.just("u32"), st.integers(0, 1 << 20), st.integers(0, 100)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 20), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 20), st.integers(1, 512)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 20), st.none()),
    st.tuples(st.just("repeat"), st.integers(0, 1 << 20), st.integers(1, 256)),
)


@st.composite
def mutated_audio(draw: st.DrawFn) -> bytes:
    """A seed file with 0-8 mutations, or (rarely) plain random bytes."""
    if draw(st.integers(0, 19)) == 0:
        return draw(st.binary(max_size=2048))
    data = bytearray(draw(st.sampled_from(seeds())))
    for op in draw(st.lists(_ops, max_size=8)):
        data = _apply(data, op)
    return bytes(data)
