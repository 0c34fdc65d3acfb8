"""StreamSession with the real model (base) and the real speech detector, in process: a Finalize in the middle of
speech and a length cut lose no word and add none (issue 17's Finalize, issue 15's live finals)."""

from __future__ import annotations

import jiwer
import pytest

from stt.audio import decode_audio
from stt.engines.base import Engine
from stt.live.session import StreamConfig, StreamSession, Transcribed
from stt.live.speech_detector import SpeechDetector
from tests.helpers import _EN, AUDIO_DIR, manifest
from tests.live_helpers import finalized_stream

pytestmark = pytest.mark.model


def stream(engine: Engine, name: str, cut_at: float | None) -> str:
    """The clip as issue 17's client sends it, with a Finalize at ``cut_at`` (a fraction of the clip) or none; the
    finals' text, normalised."""
    audio = decode_audio((AUDIO_DIR / name).read_bytes())
    cut = None if cut_at is None else int(cut_at * len(audio))
    events = finalized_stream(StreamSession(StreamConfig(), SpeechDetector()),
                              lambda step: engine.decode_windows([step.request])[0], audio, cut)
    return _EN(" ".join(e.text for e in events if isinstance(e, Transcribed) and e.is_final and e.text))


def reference(name: str) -> str:
    return _EN(next(c for c in manifest().values() if c.file == name).transcript)


# Cut points where the model test failed before: a Finalize inside "and carrots" and inside "the words the words"
# (the words after the cut lost: the continuation's decoder took them for its prompt's end), inside "bruised"
# ("brews bruse potatoes": the word guessed from its first half, then heard whole).
FINALIZED = [("en/librispeech/1089-134686-0000.flac", 0.3), ("en/librispeech/1089-134686-0000.flac", 0.4),
             ("en/librispeech/1089-134686-0005.flac", 0.3), ("en/librispeech/1089-134686-0009.flac", 0.6)]


def test_a_finalize_in_the_middle_of_speech_loses_no_word_and_says_none_twice(fw_base: Engine) -> None:
    refs = [reference(name) for name, _ in FINALIZED]
    plain = jiwer.process_words(refs, [stream(fw_base, name, None) for name, _ in FINALIZED])
    cut = jiwer.process_words(refs, [stream(fw_base, name, at) for name, at in FINALIZED])
    assert cut.deletions <= plain.deletions, (cut.deletions, plain.deletions)  # the code before: 4 against 0
    # A cut also changes the context of what follows it (the prompt, where windows end): a word or two elsewhere.
    assert cut.wer <= plain.wer + 0.03, (cut.wer, plain.wer)


def test_the_tail_after_a_cut_at_15_s_of_speech_is_not_the_prompt_again(fw_base: Engine) -> None:
    """A 15.7 s sentence is cut at 15 s after its last agreed word; the few tenths of a second after it were read as
    the sentence's beginning once more ("... his own condemnation t he found an arid pleasure in following")."""
    name = "en/librispeech/1089-134686-0018.flac"
    out = jiwer.process_words(reference(name), stream(fw_base, name, None))
    assert out.insertions <= 1 and out.wer <= 0.08, (out.insertions, out.wer)
