"""Hostile and broken uploads, made in code (no binary fixtures): shared by the tests and bench/load.py."""

from __future__ import annotations

import dataclasses
import io
import random
import struct
import zlib

import numpy as np
import soundfile as sf

from tests.helpers import AUDIO_DIR


@dataclasses.dataclass(frozen=True)
class BadInput:
    name: str
    body: bytes
    status: int  # the status the server must answer with
    content_type: str = "application/octet-stream"
    headers: tuple[tuple[str, str], ...] = ()
    parsed: bool = True  # False: refused by the HTTP parser, so the client's X-Request-Id is never read


def wav_header(*, rate: int, channels: int, bits: int = 16, fmt: int = 1, data_size: int) -> bytes:
    """A canonical 44-byte RIFF/WAVE header; the fields may lie (that is the point)."""
    block_align = channels * bits // 8
    byte_rate = rate * block_align
    return (b"RIFF" + struct.pack("<I", min(36 + data_size, 0xFFFFFFFF)) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, fmt, channels, rate, byte_rate & 0xFFFFFFFF,
                                    block_align & 0xFFFF, bits)
            + b"data" + struct.pack("<I", data_size))


def wav_bytes(samples: np.ndarray, rate: int = 16000, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="WAV", subtype=subtype)
    return buf.getvalue()


def float_wav(values: list[float], rate: int = 16000) -> bytes:
    data = np.array(values * 400, dtype="<f4").tobytes()
    return wav_header(rate=rate, channels=1, bits=32, fmt=3, data_size=len(data)) + data


def tone(seconds: float = 1.0, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def silent_flac(seconds: float, rate: int = 8000, block: int = 1 << 20) -> bytes:
    """Hours of digital silence compress to a few hundred kB of FLAC: a zip bomb for a naive decoder."""
    buf = io.BytesIO()
    zeros = np.zeros(block, dtype=np.int16)
    with sf.SoundFile(buf, "w", rate, 1, format="FLAC", subtype="PCM_16") as f:
        left = int(seconds * rate)
        while left > 0:
            f.write(zeros[:min(block, left)])
            left -= block
    return buf.getvalue()


def png_bytes() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
            + chunk(b"IEND", b""))


def multipart(parts: list[tuple[str, bytes]], boundary: str = "b0undary") -> tuple[bytes, str]:
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.bin"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"
        for name, data in parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _shared(path: str) -> bytes:
    return (AUDIO_DIR / path).read_bytes()


def bad_inputs(max_audio_seconds: float) -> list[BadInput]:
    """At least 20 kinds of bad upload and the status each must get. ``max_audio_seconds``: the server's
    limit, which the zip bomb and the lying header exceed many times over."""
    rng = random.Random(1234)
    good_wav = wav_bytes(tone())
    flac = _shared("en/librispeech/1089-134686-0014.flac")
    mp3 = _shared("en/librispeech/1272-141231-0002.mp3")
    no_file, no_file_type = multipart([("language", b"en")])
    dup_file, dup_file_type = multipart([("file", good_wav), ("file", good_wav)])
    items = [
        BadInput("empty body", b"", 400),
        BadInput("one byte", b"\x00", 400),
        BadInput("random bytes", rng.randbytes(4096), 400),
        BadInput("truncated WAV header", good_wav[:30], 400),
        BadInput("WAV header only, no samples", good_wav[:44], 400),
        BadInput("truncated FLAC", flac[:60], 400),
        BadInput("truncated MP3", mp3[:200], 400),
        BadInput("WAV header that lies about its fmt chunk size",
                 good_wav[:16] + struct.pack("<I", 0xFFFFFF00) + good_wav[20:], 400),
        BadInput("WAV header with 0 bits per sample", good_wav[:34] + struct.pack("<H", 0) + good_wav[36:], 400),
        BadInput("WAV at 0 Hz", wav_header(rate=0, channels=1, data_size=32000) + good_wav[44:32044], 400),
        BadInput("WAV at 10 MHz",
                 wav_header(rate=10_000_000, channels=1, data_size=32000) + good_wav[44:32044], 400),
        BadInput("WAV with 64 channels", wav_bytes(np.zeros((1600, 64), dtype=np.float32)), 400),
        BadInput("float WAV with NaN", float_wav([0.1, float("nan"), -0.1]), 400),
        BadInput("float WAV with Inf", float_wav([0.1, float("inf"), -0.1]), 400),
        BadInput("text file", b"This is not audio, it is a note about audio.\n" * 20, 400, "text/plain"),
        BadInput("PNG image", png_bytes(), 400, "image/png"),
        BadInput("JSON body", b'{"audio": "aGVsbG8=", "language": "en"}', 400, "application/json"),
        BadInput("multipart form without 'file'", no_file, 400, no_file_type),
        BadInput("multipart form with two 'file' fields", dup_file, 400, dup_file_type),
        BadInput("multipart without a closing boundary", no_file[:-20], 400, no_file_type),
        BadInput("multipart content type, raw body", good_wav, 400, "multipart/form-data; boundary=zzz"),
        BadInput("zip-bomb-like FLAC: hours of silence", silent_flac(max_audio_seconds * 6), 413, "audio/flac"),
        BadInput("header of 64 KiB", good_wav, 400, headers=(("X-Padding", "a" * 64 * 1024),), parsed=False),
        BadInput("OGG page header only", b"OggS\x00\x02" + bytes(22), 400, "audio/ogg"),
        BadInput("MP4 box with garbage", struct.pack(">I", 24) + b"ftypM4A " + rng.randbytes(512), 400),
    ]
    return items


def body_over_limit(limit: int) -> BadInput:
    return BadInput("body over request_max_size", bytes(limit + 1), 413)


