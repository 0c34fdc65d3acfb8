"""StreamSession logic on real audio with the real speech detector, and a scripted decoder (no Whisper)."""

from __future__ import annotations

import itertools

import numpy as np

from stt.audio import SAMPLE_RATE, decode_audio
from stt.engines.base import Word
from stt.engines.windows import WindowResult, WindowScores
from stt.live.speech_detector import FRAME, SpeechDetector
from stt.live.session import Pass, SpeechStarted, SpeechStopped, StreamConfig, StreamSession, Transcribed
from tests.helpers import AUDIO_DIR
from tests.live_helpers import finalized_stream

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


def drain(session: StreamSession, events: list) -> list:
    while (step := session.next_pass()) is not None:
        events += session.apply(step, scripted(step.request.audio))
    return events


def finals_of(events: list) -> list[Transcribed]:
    return [e for e in events if isinstance(e, Transcribed) and e.is_final]


def test_flush_in_the_middle_of_speech_finalizes_it_and_the_stream_goes_on() -> None:
    """Deepgram's Finalize: what was heard comes out as a final, and the speech after it is still transcribed
    (before, the utterance was closed while the detector still heard speech, and nothing more came out)."""
    session = StreamSession(StreamConfig(), DETECTOR)
    speech = clip("1089-134686-0001.flac")
    cut = int(2.0 * SAMPLE_RATE)
    events, _ = run(session, speech[:cut])  # mid-sentence, no endpoint yet
    assert not finals_of(events)
    flushed = finals_of(drain(session, session.flush()))
    assert len(flushed) == 1 and flushed[0].from_finalize and flushed[0].text
    assert flushed[0].end == 2.0  # the window reached the very last sample
    assert not flushed[0].speech_final  # the speaker did not pause
    assert session.next_pass() is None  # nothing waits: the rest of the speech needs new audio
    rest, _ = run(session, np.concatenate([speech[cut:], np.zeros(SAMPLE_RATE, dtype=np.float32)]))
    later = finals_of(rest)
    assert len(later) == 1 and later[0].speech_final and not later[0].from_finalize and later[0].text
    assert later[0].start == 2.0 and all(w.start >= 2.0 for w in later[0].words)
    again = finals_of(drain(session, session.flush()))
    assert again == [] and not session.busy  # a second Finalize after the endpoint has nothing left


def test_flush_at_the_end_of_speech_leaves_nothing_to_decode_in_the_silence_after_it() -> None:
    """A Finalize right as the speaker stops: the detector still counts the last frames as speech, but no
    speech follows the cut, so the overlap kept for a continuation is never decoded (it would only repeat
    the final's last word or invent one in the silence). Its turn still ends once: SpeechStopped, then one
    empty speech_final final."""
    session = StreamSession(StreamConfig(), DETECTOR)
    speech = clip("1089-134686-0030.flac")
    end = int(np.nonzero(np.abs(speech) > 0.02)[0][-1])
    run(session, speech[:end])
    flushed = finals_of(drain(session, session.flush()))
    assert len(flushed) == 1 and flushed[0].text
    passes = session.passes
    events, after = run(session, np.zeros(3 * SAMPLE_RATE, dtype=np.float32))
    events = drain(session, events + session.flush(from_finalize=False))
    assert [(e.text, e.speech_final, e.turn) for e in finals_of(events)] == [("", True, flushed[0].turn)]
    assert [type(e) for e in events] == [SpeechStopped, Transcribed]
    assert session.passes == passes


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
    assert [type(e) for e in session.flush(from_finalize=False)] == [SpeechStopped]  # its final needs a pass
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
    assert not session.wants(held)  # not decoded yet, it would be of no use: under load it is shed (None)
    assert session.apply(held, scripted(held.request.audio)) == []  # too late: nothing more comes out
    assert session.next_pass() is None


def test_an_interim_is_wanted_while_its_utterance_is_open_and_shed_as_none_after_its_final() -> None:
    speech = clip("1089-134686-0030.flac")
    session = StreamSession(StreamConfig(endpointing_s=0.4), DETECTOR)
    audio = np.concatenate([speech, np.zeros(SAMPLE_RATE, dtype=np.float32)])
    held = None
    events: list = []
    for i in range(0, len(audio), CHUNK):
        events += session.feed(audio[i:i + CHUNK])
        while (step := session.next_pass()) is not None:
            if held is None and not step.urgent:
                held = step
                assert session.wants(held)  # its utterance is open
                continue
            events += session.apply(step, scripted(step.request.audio))
    assert held is not None and not session.wants(held)
    assert session.apply(held, None) == []  # shed: answered None, nothing comes out
    assert [e for e in events if isinstance(e, Transcribed) and e.is_final][0].text  # the final came anyway
    assert session.next_pass() is None


def check_turns(events: list) -> int:
    """Every turn: opened once, then stopped once, then exactly one speech_final final (its last), and one turn
    open at a time (started and stopped alternate). Returns the number of turns."""
    open_turn, ended, stopped = None, set(), set()
    for e in events:
        if isinstance(e, SpeechStarted):
            assert e.opened == (open_turn is None), (e, open_turn)
            assert e.opened or e.turn == open_turn
            if e.opened:
                assert e.turn not in stopped
                open_turn = e.turn
        elif isinstance(e, SpeechStopped):
            assert e.turn == open_turn, (e, open_turn)
            stopped.add(e.turn)
            open_turn = None
        elif isinstance(e, Transcribed) and e.is_final:
            assert e.turn not in ended, e  # nothing of a turn after its last final
            if e.speech_final:
                assert e.turn in stopped, e
                ended.add(e.turn)
    assert open_turn is None and ended == stopped
    return len(ended)


def hesitant(audio: np.ndarray, rng: np.random.Generator) -> WindowResult:
    """``scripted``, but one pass in three hears other words: at times nothing is agreed before a length cut."""
    if rng.random() >= 1 / 3:
        return scripted(audio)
    words = tuple(Word(w.start, w.end, f" x{rng.integers(1000)}", 0.5) for w in scripted(audio).words)
    return WindowResult("".join(w.word for w in words).strip(), words, "en")


def test_every_turn_is_stopped_once_and_ends_with_one_speech_final_final() -> None:
    """A chapter read with its pauses, cut by length (4 s, with and without agreed words) and by Finalize at odd
    moments, its passes answered late and out of order: each turn still has one start, one stop and one
    speech_final final, its last."""
    audio = decode_audio((AUDIO_DIR / "long" / "1089-134686_full_chapter.flac").read_bytes())[: 60 * SAMPLE_RATE]
    rng = np.random.default_rng(7)
    session = StreamSession(StreamConfig(max_utterance_s=4.0, endpointing_s=0.4), DETECTOR)
    events: list = []
    held: list = []
    for i in range(0, len(audio), CHUNK):
        events += session.feed(audio[i:i + CHUNK])
        if rng.random() < 0.03:
            events += session.flush()
        while (step := session.next_pass()) is not None:
            held.append(step)
        while held and rng.random() < 0.6:  # a pass answers now, or later than the next one
            step = held.pop(int(rng.integers(len(held))))
            events += session.apply(step, hesitant(step.request.audio, rng))
    events += session.flush(from_finalize=False)
    while held or (step := session.next_pass()) is not None:
        if not held:
            held.append(step)
        step = held.pop()
        events += session.apply(step, scripted(step.request.audio))
        while (step := session.next_pass()) is not None:
            held.append(step)
    assert check_turns(events) >= 10
    assert any(isinstance(e, Transcribed) and e.is_final and not e.speech_final and not e.from_finalize
               for e in events)  # a length cut happened
    assert any(isinstance(e, Transcribed) and e.from_finalize and not e.speech_final for e in events)


def test_a_final_owed_before_the_end_of_a_turn_comes_out_before_it() -> None:
    """A 15.7 s sentence: at 15 s nothing is agreed (every pass hears other words), so the whole window is owed
    a final pass; the speaker stops right at that cut, so the turn's end needs no decoding. Passes answer 0.8 s
    late: the turn's empty speech_final final waits for the owed one (it came first, and the Realtime face
    completed the item empty and lost the sentence)."""
    audio = np.concatenate([clip("1089-134686-0018.flac"), np.zeros(SAMPLE_RATE, np.float32)])
    session = StreamSession(StreamConfig(endpointing_s=0.5), DETECTOR)
    events: list = []
    held: list = []
    answers = itertools.count()
    for i in range(0, len(audio), CHUNK):
        events += session.feed(audio[i:i + CHUNK])
        while (step := session.next_pass()) is not None:
            held.append((i, step))
        while held and held[0][0] <= i - 8 * CHUNK:
            step = held.pop(0)[1]
            n = next(answers)  # other words on every pass: nothing agreed
            words = tuple(Word(w.start, w.end, f" p{n}w{j}", 0.9)
                          for j, w in enumerate(scripted(step.request.audio).words))
            events += session.apply(step, WindowResult("", words, "en"))
    finals = finals_of(events)
    assert check_turns(events) == 1 and len(finals) == 2
    assert finals[0].text and not finals[0].speech_final and finals[1].speech_final  # the owed one first


def on_grid(step: Pass) -> WindowResult:
    """A decoder over a fixed script of words on the stream's own timeline (w0 at 0.0-0.45 s, w1 at 0.5-0.95 s,
    ...), as Whisper reads them: the words a window holds, a word its end cuts off ending at the window's end and
    misread ("w4~": Whisper guesses a word from its first half)."""
    start, end = step.start / SAMPLE_RATE, step.end / SAMPLE_RATE
    words = []
    for k in range(int(start / 0.5), int(end / 0.5) + 1):
        begin, finish = k * 0.5, k * 0.5 + 0.45
        if begin < start or begin >= end - 0.05:
            continue
        cut_off = finish > end
        words.append(Word(begin - start, min(finish, end) - start, f" w{k}" + ("~" if cut_off else ""), 0.9))
    return WindowResult("", tuple(words), "en")


def test_a_word_a_finalize_cuts_in_two_is_left_to_the_speech_after_it_and_said_once_whole() -> None:
    """Deepgram's Finalize in the middle of a word: the final's window ends in it, so the decoder can only guess
    the word from its first half ("and brews." for "and bruised"), and the speech after the cut heard it again
    whole ("Bruse potatoes"). The final now stops before that word; the next utterance's window starts before it,
    and the word comes out once, whole, in order."""
    speech = clip("1089-134686-0001.flac")
    session = StreamSession(StreamConfig(endpointing_s=0.5), DETECTOR)
    cut = int(2.2 * SAMPLE_RATE)  # inside w4 (2.0-2.45 s)
    windows: list[tuple[int, int]] = []

    def decode(step: Pass) -> WindowResult:
        windows.append((step.start, step.end))
        return on_grid(step)

    finals = finals_of(finalized_stream(session, decode, speech[:cut + 2 * SAMPLE_RATE], cut))
    assert finals[0].from_finalize
    assert finals[0].text.split()[-1] == "w3" and finals[0].end == 2.0  # it ends where the cut word starts
    assert min(start for start, end in windows if end > cut) <= int(1.9 * SAMPLE_RATE)  # after it: w4 whole
    said = " ".join(f.text for f in finals).split()
    assert "w4" in said and not any(w.endswith("~") for w in said)
    assert said == sorted(set(said), key=lambda w: int(w[1:]))  # each word once, in order
    assert finals[1].start == 2.0


def copied(text: str, probability: float, seconds: float, likely: str = "") -> WindowResult:
    """``text`` as unlikely words of ``seconds`` each, then ``likely`` words of 0.3 s."""
    words = [Word(i * seconds, (i + 1) * seconds, " " + w, probability) for i, w in enumerate(text.split())]
    at = words[-1].end if words else 0.0
    words += [Word(at + i * 0.3, at + (i + 1) * 0.3, " " + w, 0.9) for i, w in enumerate(likely.split())]
    return WindowResult("", tuple(words), "en")


def test_a_pass_that_writes_its_prompt_again_into_silence_is_dropped_but_a_real_repetition_is_kept() -> None:
    """Whisper's failure on a window of little speech (the tenths of a second left after a cut at 15 s): it writes
    its prompt out again, unlikely words crammed into no time ("t he found an arid pleasure in following"). Such
    text is no final. The same words said again as speech (likely, each given its time) are kept."""
    speech = clip("1089-134686-0001.flac")
    # The third: a copy of the prompt's start said unlikely, then five likely words (tiny.en on JFK's "ask not what
    # you can do for your country" after its own "AS NOT! What your country can do for you"): real speech, kept.
    cases = ((0.02, 0.0, "", False), (0.9, 0.3, "", True), (0.02, 0.3, "to it in the end", True))
    for probability, seconds, likely, kept in cases:
        session = StreamSession(StreamConfig(endpointing_s=0.5, prompt="he found an arid pleasure in following"),
                                DETECTOR)
        events: list = []
        for i in range(0, 3 * SAMPLE_RATE, CHUNK):
            events += session.feed(speech[i:i + CHUNK])
            while (step := session.next_pass()) is not None:
                assert step.request.prompt and "arid pleasure" in step.request.prompt
                events += session.apply(step, copied("found an arid pleasure", probability, seconds, likely))
        events += session.flush()
        while (step := session.next_pass()) is not None:
            events += session.apply(step, copied("found an arid pleasure", probability, seconds, likely))
        said = " ".join(["found an arid pleasure", likely]).strip()
        assert [f.text for f in finals_of(events)] == ([said] if kept else [""])


def greedy_or_beam(unsure: float, careful: float, loops: bool = False) -> tuple[list[int], object]:
    """A decoder whose greedy reading scores ``unsure`` (avg_logprob) and says "the the the", and whose
    beam-search reading scores ``careful`` and says "lee lilly" (repeating itself by Whisper's compression test
    when it ``loops``); it records each pass's beam width."""
    beams: list[int] = []

    def decode(step: Pass) -> WindowResult:
        beams.append(step.request.beam_size)
        careful_pass = step.request.beam_size > 1
        text, logprob = ("lee lilly", careful) if careful_pass else ("the the the", unsure)
        words = tuple(Word(0.1 + 0.4 * i, 0.45 + 0.4 * i, " " + w, 0.5) for i, w in enumerate(text.split()))
        compression = 3.0 if careful_pass and loops else 1.2
        return WindowResult(text, words, "en", scores=WindowScores(logprob, compression, 0.1))
    return beams, decode


def test_a_final_whose_greedy_reading_fails_whispers_test_is_decoded_again_with_beam_search() -> None:
    """Live passes are greedy. A final whose reading Whisper would not accept (avg_logprob under -1: its cue for
    a fallback decoding) waits for one beam-search pass over the same audio, and is the likelier of the two
    readings (one that repeats itself loses, as in Whisper's choice among its fallbacks); a sure reading is the
    final at once, as before. Interims stay greedy."""
    speech = clip("1089-134686-0001.flac")[:2 * SAMPLE_RATE]
    audio = np.concatenate([speech, np.zeros(SAMPLE_RATE, np.float32)])
    for unsure, careful, loops, said, beam_passes in ((-1.3, -0.6, False, "lee lilly", 1),
                                                      (-1.3, -1.6, False, "the the the", 1),
                                                      (-1.3, -0.2, True, "the the the", 1),
                                                      (-0.4, -0.1, False, "the the the", 0)):
        beams, decode = greedy_or_beam(unsure, careful, loops)
        session = StreamSession(StreamConfig(endpointing_s=0.5), DETECTOR)
        events: list = []
        for i in range(0, len(audio), CHUNK):
            events += session.feed(audio[i:i + CHUNK])
            while (step := session.next_pass()) is not None:
                events += session.apply(step, decode(step))
        assert [f.text for f in finals_of(events)] == [said], (unsure, careful)
        assert beams.count(5) == beam_passes and beams[-1] == (5 if beam_passes else 1)
        assert all(not e.text.startswith("lee") for e in events if isinstance(e, Transcribed) and not e.is_final)
    beams, decode = greedy_or_beam(-1.3, -0.6)  # careful_beam_size=1: never
    session = StreamSession(StreamConfig(endpointing_s=0.5, careful_beam_size=1), DETECTOR)
    events = []
    for i in range(0, len(audio), CHUNK):
        events += session.feed(audio[i:i + CHUNK])
        while (step := session.next_pass()) is not None:
            events += session.apply(step, decode(step))
    assert [f.text for f in finals_of(events)] == ["the the the"] and set(beams) == {1}
