"""StreamSession logic on real audio with the real speech detector, and a scripted decoder (no Whisper)."""

from __future__ import annotations

import numpy as np

from stt.audio import SAMPLE_RATE, decode_audio
from stt.engines.base import Word
from stt.engines.windows import WindowResult
from stt.live.speech_detector import FRAME, SpeechDetector
from stt.live.session import StreamConfig, StreamSession, Transcribed
from tests.helpers import AUDIO_DIR

CHUNK = SAMPLE_RATE // 10
DETECTOR = SpeechDetector()


def clip(name: str) -> np.ndarray:
    return decode_audio((AUDIO_DIR / "en" / "librispeech" / name).read_bytes())


def scripted(audio: np.ndarray) -> WindowResult:
    """Two words per second of window, named by position: successive passes agree on what they share."""
    seconds = len(audio) / SAMPLE_RATE
    words = tuple(Word(i * 0.5, i * 0.5 + 0.4, f" w{i}", 0.9) for i in range(int(seconds * 2)))
    return WindowResult("".join(w.word for w in words).strip(), words, "en")


def run(session: StreamSession, audio: np.ndarray) -> tuple[list, int]:
    """Feed in 100 ms chunks, running each due pass at once; returns the events and passes per chunk index."""
    events = []
    for i in range(0, len(audio), CHUNK):
        events += session.feed(audio[i:i + CHUNK])
        while (step := session.next_pass()) is not None:
            events += session.apply(step, scripted(step.request.audio))
    return events, session.passes


def test_detector_scores_pieces_like_the_whole() -> None:
    audio = clip("1089-134686-0000.flac")
    n = len(audio) // FRAME
    whole = DETECTOR.probabilities(audio, 0, n)
    pieces = np.concatenate([DETECTOR.probabilities(audio, i, min(3, n - i)) for i in range(0, n, 3)])
    assert np.mean((whole > 0.5) == (pieces > 0.5)) > 0.97


def test_silence_is_never_decoded_and_not_kept() -> None:
    session = StreamSession(StreamConfig(), DETECTOR)
    events, passes = run(session, np.zeros(10 * SAMPLE_RATE, dtype=np.float32))
    assert events == [] and passes == 0
    assert len(session._audio) < 2 * SAMPLE_RATE  # only the pre-roll and the detector's look-back


def test_endpoint_gives_one_final_and_no_decoding_after_it() -> None:
    speech = clip("1089-134686-0030.flac")
    session = StreamSession(StreamConfig(endpointing_s=0.4), DETECTOR)
    events, _ = run(session, np.concatenate([speech, np.zeros(SAMPLE_RATE, dtype=np.float32)]))
    finals = [e for e in events if isinstance(e, Transcribed) and e.is_final]
    interims = [e for e in events if isinstance(e, Transcribed) and not e.is_final]
    assert len(finals) == 1 and finals[0].speech_final and interims
    assert finals[0].text and finals[0].end <= len(speech) / SAMPLE_RATE + 0.5
    passes = session.passes
    _, after = run(session, np.zeros(5 * SAMPLE_RATE, dtype=np.float32))
    assert after == passes  # nothing is decoded again once the utterance is final


def test_interims_keep_committed_words() -> None:
    session = StreamSession(StreamConfig(), DETECTOR)
    events, _ = run(session, clip("1089-134686-0000.flac"))
    interims = [e.text.split() for e in events if isinstance(e, Transcribed) and not e.is_final]
    assert len(interims) >= 5
    committed = 0
    for earlier, later in zip(interims, interims[1:]):
        shared = next((i for i, (a, b) in enumerate(zip(earlier, later)) if a != b), min(len(earlier), len(later)))
        committed = max(committed, shared)
    assert committed >= 10  # later interims extend earlier ones instead of rewriting them


def test_long_utterance_is_cut_at_committed_words_and_window_stays_bounded() -> None:
    session = StreamSession(StreamConfig(max_utterance_s=4.0, endpointing_s=None), DETECTOR)
    speech = clip("1089-134686-0000.flac")
    longest = 0
    events = []
    for i in range(0, len(speech), CHUNK):
        events += session.feed(speech[i:i + CHUNK])
        while (step := session.next_pass()) is not None:
            longest = max(longest, len(step.request.audio))
            events += session.apply(step, scripted(step.request.audio))
    cuts = [e for e in events if isinstance(e, Transcribed) and e.is_final]
    assert cuts and all(not e.speech_final for e in cuts)
    assert longest <= 4.5 * SAMPLE_RATE


def test_flush_finalizes_speech_that_is_still_open() -> None:
    session = StreamSession(StreamConfig(), DETECTOR)
    speech = clip("1089-134686-0001.flac")
    events, _ = run(session, speech[:int(2.0 * SAMPLE_RATE)])  # mid-sentence, no endpoint yet
    assert not [e for e in events if isinstance(e, Transcribed) and e.is_final]
    flushed = session.flush()
    while (step := session.next_pass()) is not None:
        flushed += session.apply(step, scripted(step.request.audio))
    finals = [e for e in flushed if isinstance(e, Transcribed) and e.is_final]
    assert len(finals) == 1 and finals[0].from_finalize and finals[0].text
    assert finals[0].end == 2.0  # the window reached the very last sample
    assert not session.busy


def test_close_after_speech_ended_needs_no_new_pass() -> None:
    """CloseStream after the speaker stopped (trailing silence shorter than endpointing): the last pass already
    heard the end of speech, so the final comes out at once, with no decoding pass for the client to wait on
    (Deepgram's Python SDK stops reading 0.5 s after CloseStream)."""
    speech = clip("1089-134686-0030.flac")
    session = StreamSession(StreamConfig(endpointing_s=None), DETECTOR)
    events, _ = run(session, np.concatenate([speech, np.zeros(SAMPLE_RATE // 2, dtype=np.float32)]))
    assert not [e for e in events if isinstance(e, Transcribed) and e.is_final]
    closing = session.flush(from_finalize=False)
    assert [e.is_final for e in closing if isinstance(e, Transcribed)] == [True]
    assert session.next_pass() is None


def test_close_while_speaking_decodes_to_the_very_end() -> None:
    speech = clip("1089-134686-0030.flac")
    session = StreamSession(StreamConfig(endpointing_s=None), DETECTOR)
    cut = len(speech) - SAMPLE_RATE // 2  # mid-word: speech is still open at the close
    run(session, speech[:cut])
    assert session.flush(from_finalize=False) == []
    step = session.next_pass()
    assert step is not None and step.end == cut and step.urgent


def test_the_end_of_speech_is_decoded_beside_an_interim_still_in_flight_and_the_late_interim_is_dropped() -> None:
    """An interim held in a slow batch of other streams' passes does not hold the final back: the pass that
    covers the end of speech starts beside it, and the interim, answered last, changes nothing."""
    speech = clip("1089-134686-0030.flac")
    session = StreamSession(StreamConfig(endpointing_s=0.4), DETECTOR)
    audio = np.concatenate([speech, np.zeros(SAMPLE_RATE, dtype=np.float32)])
    held = None
    events: list = []
    for i in range(0, len(audio), CHUNK):
        events += session.feed(audio[i:i + CHUNK])
        while (step := session.next_pass()) is not None:
            if held is None and not step.urgent and i > len(speech) // 2:
                held = step  # this interim's batch is slow: it answers only at the very end
                continue
            assert held is None or step.urgent  # never a second interim while one is in flight
            events += session.apply(step, scripted(step.request.audio))
    finals = [e for e in events if isinstance(e, Transcribed) and e.is_final]
    assert held is not None and len(finals) == 1 and finals[0].speech_final
    assert finals[0].end >= len(speech) / SAMPLE_RATE - 0.5  # the final heard the end while the interim waited
    assert session.apply(held, scripted(held.request.audio)) == []  # too late: nothing more comes out
    assert session.next_pass() is None
