"""A window's transcript depends on that window alone, never on what it is batched with (issue 15).

``decode_batch`` encodes each window on an input of its own length (``window_seconds``), cuts no prompt to its
companions' and batches only windows that share every decoding input but their audio and prompt tokens.
CTranslate2's int8 encoder and beam search then give each row the very numbers it gets alone (measured:
bit-identical encoder outputs and scores), so the strongest equality is asserted: the whole WindowResult (text,
word timings and probabilities, language and its probability, decoder scores) is equal, alone or batched.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from stt.audio import decode_audio
from stt.engines.base import Engine, WindowRequest
from stt.engines.batched_windows import window_seconds
from tests.conftest import AUTH
from tests.helpers import Clip, manifest

pytestmark = pytest.mark.model

LIBRI = "en/librispeech/1089-134686-{}.flac"


def clip(name: str) -> Clip:
    return manifest()[name]


def audio(name: str) -> np.ndarray:
    return decode_audio(clip(name).path.read_bytes())


def windows() -> list[WindowRequest]:
    """Short and long, English and not, prompted and not, beam 5 (uploads) and 1 (live passes), a window
    longer than 25 s (decoded without timestamps), on their own encoder input and on a full 30 s one."""
    short, medium = audio(LIBRI.format("0003")), audio(LIBRI.format("0001"))
    long = audio(LIBRI.format("0000"))
    german = audio("eval/fleurs/de/de-001.ogg")
    joined = np.concatenate([long, audio(LIBRI.format("0005")), audio(LIBRI.format("0009"))])[:28 * 16000]
    prompt = "He hoped there would be stew for dinner, turnips and carrots."
    return [WindowRequest(short, beam_size=5), WindowRequest(medium, beam_size=5),
            WindowRequest(long, beam_size=5), WindowRequest(german, beam_size=5),
            WindowRequest(joined, beam_size=5),
            WindowRequest(medium, "en", prompt), WindowRequest(short, "en", prompt),
            WindowRequest(long, "en", prompt), WindowRequest(medium, "en", "Stew."),
            WindowRequest(short, None, None),
            WindowRequest(short, beam_size=5, full_window=True), WindowRequest(german, beam_size=5, full_window=True),
            WindowRequest(long, beam_size=5, full_window=True)]


def test_each_window_decodes_the_same_whatever_its_companions(fw_base: Engine) -> None:
    requests = windows()
    assert len({window_seconds(len(r.audio)) for r in requests}) >= 3  # inputs of several lengths
    alone = [fw_base.decode_windows([r])[0] for r in requests]
    assert all(r.text and r.scores for r in alone), alone
    everyone = fw_base.decode_windows(requests)
    backwards = fw_base.decode_windows(requests[::-1])[::-1]
    for i, request in enumerate(requests):
        assert everyone[i] == alone[i], (i, everyone[i], alone[i])
        assert backwards[i] == alone[i], (i, backwards[i], alone[i])
    # A window beside a copy of itself, beside one longer and one shorter, beside a prompted one.
    for i, j in ((0, 0), (0, 2), (2, 0), (1, 5), (5, 8), (3, 2), (4, 0), (10, 11), (11, 0), (12, 10)):
        pair = fw_base.decode_windows([requests[i], requests[j]])
        assert pair[0] == alone[i], (i, j, pair[0], alone[i])
        assert pair[1] == alone[j], (j, i, pair[1], alone[j])


async def test_a_clip_alone_and_among_three_others_in_flight_gives_the_same_answer(make_client: Any,
                                                                                    fw_base: Engine) -> None:
    client = await make_client(fw_base)
    target = clip(LIBRI.format("0001"))
    others = [clip(LIBRI.format("0000")), clip("eval/fleurs/fr/fr-002.ogg"), clip(LIBRI.format("0003"))]

    async def post(c: Clip) -> dict[str, Any]:
        resp = await client.post("/stt", params={"output": "verbose_json"}, data=c.path.read_bytes(),
                                 headers=AUTH)
        body = await resp.json()
        assert resp.status == 200, body
        return body

    alone = await post(target)
    together = await asyncio.gather(post(target), *(post(c) for c in others))
    shifted = await asyncio.gather(*(post(c) for c in others[::-1]), post(target))
    for body in (together[0], shifted[-1]):
        assert body["text"] == alone["text"], (body["text"], alone["text"])
        assert body["segments"] == alone["segments"]
        assert body["language"] == alone["language"]
    assert alone["text"]


def test_the_window_input_is_the_windows_own() -> None:
    seconds = [window_seconds(int(s * 16000)) for s in (0.5, 3.0, 7.9, 10.0, 24.9, 29.0, 30.0)]
    assert seconds == sorted(seconds) and all(s <= 30.0 for s in seconds)
    for s, padded in zip((0.5, 3.0, 7.9, 10.0, 24.9, 29.0, 30.0), seconds):
        assert padded >= min(30.0, s + 5.0)
