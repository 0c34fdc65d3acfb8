"""G.711 μ-law and A-law (8 kHz telephone audio, one byte a sample) decoded for live streams.

Python 3.13 removed ``audioop``; the 256 codes of each law are decoded once by FFmpeg's own G.711 decoders
(PyAV, already a dependency) into a lookup table, so a message costs one numpy indexing and no hand-written
companding formula. The 8 kHz samples are resampled to 16 kHz by soxr, as PCM streams are.
"""

from __future__ import annotations

import functools
from typing import Literal

import av
import numpy as np
import soxr

from stt.audio import SAMPLE_RATE

Law = Literal["ulaw", "alaw"]
G711_RATE = 8000
_CODECS = {"ulaw": "pcm_mulaw", "alaw": "pcm_alaw"}


@functools.cache
def table(law: Law) -> np.ndarray:
    """float32[256]: the sample each code stands for, in [-1, 1)."""
    ctx = av.CodecContext.create(_CODECS[law], "r")
    ctx.sample_rate, ctx.layout = G711_RATE, "mono"
    frames = ctx.decode(av.Packet(bytes(range(256))))
    pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in frames])
    if pcm.shape != (256,):  # FFmpeg answers one sample per code; anything else is a broken build
        raise RuntimeError(f"FFmpeg decoded {pcm.shape} samples from the 256 {law} codes")
    return (pcm.astype(np.float32) / 32768.0).astype(np.float32)


class G711Decoder:
    """A StreamDecoder (``feed``/``finish``) for raw G.711 bytes: 16 kHz mono float32 out."""

    def __init__(self, law: Law) -> None:
        self._table = table(law)
        self._resampler = soxr.ResampleStream(G711_RATE, SAMPLE_RATE, 1, dtype="float32")

    def feed(self, data: bytes) -> np.ndarray:
        codes = np.frombuffer(data, dtype=np.uint8)
        return self._resampler.resample_chunk(self._table[codes], last=False)

    def finish(self) -> np.ndarray:
        return self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
