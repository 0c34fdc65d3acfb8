"""Issue 19 (P5): an inflated body, and a form's audio field, are written into one buffer as they come, not kept
as pieces and joined: the body is held once (a request's peak was twice its inflated size), and no piece is
left freed-but-resident in a heap arena while the budget counts it as given back (16 concurrent gzip bombs
peaked 40-140 MiB over the budget's own count that way). Each buffer is reserved before it is allocated."""

from __future__ import annotations

import collections
import gzip
import os
import zlib
from typing import Any

import pytest

from stt.errors import TooLarge
from stt.http.audio_budget import AUDIO_BUDGET
from stt.http.bodies import INFLATE_CHUNK, _parse
from stt.memory_budget import MemoryBudget
from tests.helpers import TOKEN, FakeEngine, tone, wav

AUTH = {"Authorization": f"Token {TOKEN}"}

MiB = 1 << 20
LIMIT = 100 * MiB


def _chunks(data: bytes, step: int = 256 * 1024) -> collections.deque[bytes]:
    return collections.deque(data[i:i + step] for i in range(0, len(data), step))


def _parsed(body: bytes, encoding: str, boundary: str | None = None,
            limit: int = LIMIT) -> tuple[bytes, MemoryBudget, int]:
    """(the audio, the budget, what the hold still held once parsed); the body's chunks reserved as read."""
    budget = MemoryBudget(1 << 40)
    hold = budget.hold()
    hold.take(len(body))
    upload = _parse(_chunks(body), encoding, boundary, "file", limit, hold)
    return bytes(upload.audio), budget, hold.held


def _form(audio: bytes, boundary: str = "xyz") -> bytes:
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nbase\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
            f"Content-Type: audio/wav\r\n\r\n").encode() + audio + f"\r\n--{boundary}--\r\n".encode()


def test_a_gzip_body_is_held_once_not_as_pieces_plus_their_join() -> None:
    inflated = os.urandom(16 * 1024) * (40 * 64)  # 40 MiB; compresses (repeats within 32 KiB), not zeros
    audio, budget, held = _parsed(gzip.compress(inflated, 6), "gzip")
    assert audio == inflated
    # One buffer of the inflated size, plus zlib's piece and its working copy: before, the pieces and their
    # joined copy were held together at the end (2x the inflated size, 80 MiB here).
    assert budget.peak <= len(inflated) + 2 * INFLATE_CHUNK + len(gzip.compress(inflated, 6)), budget.peak / MiB
    assert held <= len(inflated) + 2 * MiB  # what stays held is the body (less the untouched tail)


@pytest.mark.parametrize("encoding", ["deflate", "raw-deflate", "gzip-two-members"])
def test_a_body_without_a_true_size_grows_and_is_exact(encoding: str) -> None:
    inflated = os.urandom(16 * 1024) * 800  # 12.5 MiB
    if encoding == "deflate":
        body = zlib.compress(inflated)
    elif encoding == "raw-deflate":
        packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        body = packer.compress(inflated) + packer.flush()
    else:  # a second gzip member (ignored) whose trailer gives 1 byte: the size is a hint, the buffer grows
        body = gzip.compress(inflated) + gzip.compress(b"x")
    audio, budget, held = _parsed(body, "gzip" if encoding.startswith("gzip") else "deflate")
    assert audio == inflated
    assert held <= 1.5 * len(inflated) + 2 * MiB
    # Grown by half at a time: the old and the new buffer are reserved together while one is copied.
    assert budget.peak <= 2.5 * len(inflated) + 2 * INFLATE_CHUNK + len(body)


def test_a_gzip_size_claiming_more_than_the_limit_sizes_the_buffer_at_the_limit() -> None:
    body = gzip.compress(bytes(8 * MiB))[:-4] + (0xFFFFFFFF).to_bytes(4, "little")  # claims 4 GiB
    budget = MemoryBudget(1 << 40)
    hold = budget.hold()
    with pytest.raises(TooLarge):  # over the limit before zlib reaches the (lying) trailer
        _parse(_chunks(body), "gzip", None, "file", 2 * MiB, hold)
    assert budget.peak <= 2 * MiB + 2 * INFLATE_CHUNK


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_a_form_audio_field_is_held_once(encoding: str) -> None:
    inflated = os.urandom(16 * 1024) * (30 * 64)
    form = _form(inflated)
    body = form if encoding == "identity" else gzip.compress(form, 6)
    budget = MemoryBudget(1 << 40)
    hold = budget.hold()
    hold.take(len(body))
    upload = _parse(_chunks(body), encoding, "xyz", "file", LIMIT, hold)
    assert bytes(upload.audio) == inflated and dict(upload.items) == {"model": "base"}
    # The body's chunks (given back as they are parsed) and one buffer the size of the form: before, the
    # field's pieces and their joined copy were held together (2x the field, on top of the chunks left).
    assert budget.peak <= len(body) + len(form) + 2 * INFLATE_CHUNK, budget.peak / MiB


async def test_a_declared_raw_body_is_read_straight_into_one_buffer(make_client: Any) -> None:
    """Before, its socket reads (heap pieces of up to 256 KiB) were kept, then joined: 2x the body at once."""
    client = await make_client(FakeEngine(), limits={"max_held_bytes": 1 << 30})
    budget = client.server.app[AUDIO_BUDGET].memory
    body = os.urandom(64 * 1024) * 480  # 30 MiB, no audio: refused by the decoder (400)
    resp = await client.post("/stt", data=body, headers=AUTH)
    assert resp.status == 400
    assert budget.peak <= len(body) + 2 * MiB, budget.peak / MiB
    assert budget.held == 0
    good = await client.post("/stt", data=wav(tone(440.0, 30.0, 16000)), headers=AUTH)  # and audio still works
    assert good.status == 200 and budget.held == 0
