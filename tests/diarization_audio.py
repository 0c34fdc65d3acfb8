"""A labelled multi-speaker recording built at test time from ../shared/audio (never stored in the repo).

Five speakers: LibriSpeech 1089 and 1272 (each in several turns) and the Spanish, German and French speakers,
joined with a pause between turns. ``gap`` sets the pause: 0.6 s is the clean file, 0.2 s the hard one.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from stt.audio import decode_audio
from tests.helpers import AUDIO_DIR

TURNS = (  # (file, speaker)
    ("en/librispeech/1089-134686-0000.flac", "1089"),
    ("en/librispeech/1272-141231-0002.mp3", "1272"),
    ("nonen/es_test_es.wav", "es"),
    ("en/librispeech/1089-134686-0005.flac", "1089"),
    ("nonen/de_test_de.wav", "de"),
    ("en/librispeech/1272-128104-0004-8k.wav", "1272"),
    ("nonen/fr_test_fr.wav", "fr"),
    ("en/librispeech/1089-134686-0009.flac", "1089"),
)
RATE = 16000


@dataclasses.dataclass(frozen=True)
class Conversation:
    audio: np.ndarray  # 16 kHz mono float32
    turns: tuple[tuple[float, float, str], ...]  # (start s, end s, speaker)

    @property
    def speakers(self) -> set[str]:
        return {speaker for _, _, speaker in self.turns}

    def speaker_at(self, t: float) -> str:
        """The true speaker at ``t``; in a pause, the nearest turn's."""
        return min(self.turns, key=lambda turn: 0.0 if turn[0] <= t <= turn[1] else min(
            abs(t - turn[0]), abs(t - turn[1])))[2]


def conversation(gap: float = 0.6) -> Conversation:
    pieces: list[np.ndarray] = []
    turns: list[tuple[float, float, str]] = []
    at = 0
    silence = np.zeros(int(gap * RATE), dtype=np.float32)
    for file, speaker in TURNS:
        clip = decode_audio((AUDIO_DIR / file).read_bytes(), 600.0)
        clip = clip / max(float(np.abs(clip).max()), 1e-6) * 0.5  # even levels: who speaks, not how loud
        if pieces:
            pieces.append(silence)
            at += len(silence)
        turns.append((at / RATE, (at + len(clip)) / RATE, speaker))
        pieces.append(clip.astype(np.float32))
        at += len(clip)
    return Conversation(np.concatenate(pieces), tuple(turns))


def word_speaker_accuracy(conv: Conversation, words: list[tuple[float, float, int]]) -> float:
    """Share of words whose label maps to their true speaker, under the best one-to-one mapping."""
    from scipy.optimize import linear_sum_assignment

    truth = [conv.speaker_at((start + end) / 2) for start, end, _ in words]
    names = sorted(conv.speakers)
    labels = sorted({label for _, _, label in words})
    counts = np.zeros((len(labels), len(names)))
    for (_, _, label), name in zip(words, truth):
        counts[labels.index(label), names.index(name)] += 1
    rows, cols = linear_sum_assignment(-counts)
    return float(counts[rows, cols].sum() / max(len(words), 1))
