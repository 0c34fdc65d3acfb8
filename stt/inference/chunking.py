"""A client's say in how an upload is cut: OpenAI's ``chunking_strategy`` of type ``server_vad``.

The speech search (Silero VAD, stt/engines/speech.py) cuts at pauses of 160 ms and pads each piece of speech
with 400 ms on both sides. A client may ask for fewer cuts and more context:
- ``silence_s``: pauses shorter than this do not cut; the pieces either side become one piece (pause
  included) when that fits one 30 s window, so segments end only at longer pauses;
- ``padding_s``: at least this much audio kept before each piece of speech (Silero's own 400 ms already cover
  OpenAI's default 300 ms; more is taken from the audio before, never overlapping the piece before).
Silero's threshold is not a client's to change here: it is the one the shared evaluation sets were checked
with (a client's ``threshold`` is validated and accepted, and has no effect; the README says so).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from stt.audio import SAMPLE_RATE

MAX_PIECE = 30 * SAMPLE_RATE  # a piece must still fit one Whisper window


@dataclasses.dataclass(frozen=True)
class Chunking:
    silence_s: float = 0.0
    padding_s: float = 0.0

    def apply(self, speech: Sequence[tuple[int, int]], length: int) -> list[tuple[int, int]]:
        """Speech ranges [start, end) in order -> the ranges to cut windows from."""
        return _padded(_joined(speech, int(self.silence_s * SAMPLE_RATE)), int(self.padding_s * SAMPLE_RATE),
                       length)


def _joined(speech: Sequence[tuple[int, int]], min_gap: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in speech:
        if out and start - out[-1][1] < min_gap and end - out[-1][0] <= MAX_PIECE:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def _padded(speech: Sequence[tuple[int, int]], pad: int, length: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in speech:
        floor = max(out[-1][1] if out else 0, end - MAX_PIECE)
        out.append((min(start, max(floor, start - pad, 0)), min(end, length)))
    return out
