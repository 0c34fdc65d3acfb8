"""OpenAI's server_vad parameters applied to the speech search's pieces: joined across short pauses, padded."""

from __future__ import annotations

from stt.audio import SAMPLE_RATE
from stt.inference.chunking import Chunking

S = SAMPLE_RATE


def test_default_changes_nothing() -> None:
    speech = [(S, 2 * S), (3 * S, 4 * S)]
    assert Chunking().apply(speech, 10 * S) == speech


def test_pauses_shorter_than_silence_join_pieces() -> None:
    speech = [(0, S), (S + S // 4, 2 * S), (3 * S, 4 * S)]  # pauses of 250 ms and 1 s
    assert Chunking(silence_s=0.5).apply(speech, 10 * S) == [(0, 2 * S), (3 * S, 4 * S)]
    assert Chunking(silence_s=1.5).apply(speech, 10 * S) == [(0, 4 * S)]
    assert Chunking(silence_s=0.2).apply(speech, 10 * S) == speech


def test_a_joined_piece_never_exceeds_one_window() -> None:
    speech = [(0, 20 * S), (20 * S + 100, 35 * S)]
    assert Chunking(silence_s=1.0).apply(speech, 40 * S) == speech


def test_padding_never_overlaps_the_piece_before_nor_the_start() -> None:
    speech = [(S // 10, S), (S + S // 10, 2 * S), (5 * S, 6 * S)]
    assert Chunking(padding_s=0.5).apply(speech, 10 * S) == [(0, S), (S, 2 * S), (5 * S - S // 2, 6 * S)]


def test_padding_keeps_a_piece_within_one_window() -> None:
    speech = [(10 * S, 39 * S)]  # 29 s: only 1 s more fits
    assert Chunking(padding_s=5.0).apply(speech, 40 * S) == [(9 * S, 39 * S)]
