"""StreamSession: one live stream's audio, speech detection and agreement of successive hypotheses.

Pure logic, no I/O: the caller feeds audio, asks for the next decoding pass, runs it on the shared
scheduler and hands the result back. Events come out of ``feed`` and ``apply``.

How it works:
- Silero VAD marks speech. Audio outside an utterance is dropped (a short pre-roll is kept), so silence is
  never decoded and nothing is re-decoded after an utterance is final: the CPU cost follows the speech.
- While an utterance is open, its whole window is decoded again every ``interim_interval_s`` of new speech.
  Words on which two successive hypotheses agree are committed (LocalAgreement-2): interims always show them
  as they were, followed by the newest hypothesis' unstable tail. (Forcing them as a decoding prefix was
  tried: the model then often says the whole utterance a second time after the prefix.)
- The utterance ends after ``endpointing_s`` of silence. When the latest pass already covered the end of
  speech, its text becomes the final at once, with no further decoding; otherwise one last pass runs. Passes
  are greedy; a final whose reading fails Whisper's own test of a decoding waits for one beam-search pass over
  the same audio and is the better reading of the two (``_FinalDue.draft``).
- At most one interim pass and one urgent pass (the one that covers the end of speech, or the final's) are
  in flight: a final does not wait for an interim still decoding in a big batch of other streams' passes.
  A result older than what an utterance already heard, or for an utterance already final, is dropped.
- An utterance longer than ``max_utterance_s`` is cut after its last committed word: those words go out as a
  final (not ``speech_final``) and the window restarts there, so a pass never grows past a bounded window and
  latency does not grow with the length of the session.

Turns. Speech after a pause opens a turn (``SpeechStarted`` with ``opened``); the utterances a cut in the middle of
speech continues (length, Finalize) belong to the same turn. Every turn ends exactly once: ``SpeechStopped`` at its
endpoint (or at the flush that ends it), and exactly one final with ``speech_final`` after it, possibly with no text
(noise, or speech that stopped right at a cut). Its other finals (cuts) are not ``speech_final``. A face that pairs
items with turns (OpenAI's Realtime) relies on this; every event names its turn.
"""

from __future__ import annotations

import dataclasses
import itertools
import re

import numpy as np

from stt.audio import SAMPLE_RATE
from stt.engines.base import Word
from stt.engines.repetition import MAX_COMPRESSION, fails_whisper_test
from stt.engines.windows import WindowRequest, WindowResult, WindowScores
from stt.live.speech_detector import FRAME, LOOKBACK, SpeechDetector

START_FRAMES = 3  # consecutive speech frames (96 ms) that open speech: one loud click does not
HANGOVER_S = 0.25  # silence that closes speech (the utterance itself waits for endpointing_s)
COVER_MARGIN_S = 0.15  # a pass must reach this far past the end of speech to stand as the final
FINAL_PAD_S = 0.3  # audio after the end of speech given to a final pass
MIN_ENDPOINTING_S = 0.25
SENTENCE_ENDS = ".!?…。！？"
PAST_AUDIO_S = 0.04  # two steps of Whisper's word alignment (20 ms frames)
SAME_WORD_S = 0.1  # Whisper's word ends from two windows differ by about this much for the same word
# A Finalize in the middle of speech: a final's last word that ends this close to the cut was still being said
# there (Whisper's aligner ends a word cut off by the window at the window's last frames). It is left to the
# continuation, whose window then starts this much before it: the word is heard whole once, not guessed from its
# first half by the final and heard again by the continuation ("and brews." + "Bruse potatoes").
SPLIT_WORD_S = 0.1
# openai-whisper's scores of a hallucinated segment (transcribe.py, word_anomaly_score): its first 8 words scored by
# how unlikely the decoder found each (probability under 0.15) and how little audio the aligner could give it (under
# 0.133 s) or how much (over 2 s).
ANOMALY_WORDS = 8
COPIED_WORDS = 3  # a run of this many words of the prompt, said again by a pass


@dataclasses.dataclass(frozen=True)
class StreamConfig:
    language: str | None = "en"
    endpointing_s: float | None = 0.4  # None: no endpointing; finals come at max length or on Finalize
    utterance_end_s: float | None = None  # send UtteranceEnd after this gap after the last word
    interim_interval_s: float = 0.3  # new audio between two passes over an open utterance
    min_speech_s: float = 0.3  # speech before the first pass of an utterance
    max_utterance_s: float = 15.0  # passes stay bounded; shorter cuts leave short, contextless tails (tested: 10 s)
    preroll_s: float = 0.5  # audio kept before the detected start of speech (Silero detects soft onsets late)
    vad_threshold: float = 0.5
    context_chars: int = 200  # earlier final text given as the prompt
    beam_size: int = 1
    careful_beam_size: int = 5  # a final whose reading fails Whisper's test is decoded again so (1: never)
    prompt: str = ""  # text said before the stream (OpenAI's transcription prompt): the first passes' context


@dataclasses.dataclass(frozen=True)
class SpeechStarted:
    timestamp: float
    opened: bool = True  # it opened a new turn (False: speech resumed inside the open one)
    turn: int = 0


@dataclasses.dataclass(frozen=True)
class SpeechStopped:
    """The turn ended (its endpoint, or a flush outside speech): its ``speech_final`` final follows."""

    timestamp: float  # where its speech ended
    turn: int = 0


@dataclasses.dataclass(frozen=True)
class Transcribed:
    start: float
    end: float
    text: str
    words: tuple[Word, ...]
    is_final: bool
    speech_final: bool = False  # the last final of its turn
    from_finalize: bool = False
    turn: int = 0

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)


@dataclasses.dataclass(frozen=True)
class UtteranceEnd:
    last_word_end: float


Event = SpeechStarted | SpeechStopped | Transcribed | UtteranceEnd


@dataclasses.dataclass
class _Utterance:
    id: int
    start: int  # absolute sample
    turn: int  # the id of the utterance that opened its turn (its own, unless it continues a cut)
    committed: list[Word] = dataclasses.field(default_factory=list)  # absolute times
    previous: list[str] = dataclasses.field(default_factory=list)  # last hypothesis, normalised words
    hypothesis: list[Word] = dataclasses.field(default_factory=list)
    covered: int = 0  # absolute sample the latest hypothesis reached
    unsure: WindowScores | None = None  # the latest hypothesis' scores when it failed Whisper's test (_unsure)
    # A continuation (cut by Finalize or by length in the middle of speech, no pause before it) starts its
    # own speech here; its window may start earlier (see flush). None: the utterance began after a pause.
    cut: int | None = None

    @property
    def continues(self) -> bool:
        return self.cut is not None

    @property
    def begins(self) -> int:
        """Where its own speech starts: the start its results report."""
        return max(self.start, self.cut or 0)


@dataclasses.dataclass(eq=False)
class _FinalDue:
    """An utterance's final, owed. Finals come out in the order their utterances ended (a turn's last one last),
    so one made early waits in ``event`` for those before it."""

    utterance: _Utterance
    end: int  # absolute sample the final pass decodes up to
    need: int  # an earlier pass that reached this far heard the whole utterance: it can be the final
    speech_final: bool
    from_finalize: bool = False
    event: Transcribed | None = None  # made, not out yet
    # The utterance a Finalize in the middle of speech opened at the cut: it takes the word the cut splits.
    continuation: _Utterance | None = None
    # A greedy reading that failed Whisper's test (_unsure), and its scores: the final waits for a beam-search
    # pass over the same audio and is the better of the two (_better).
    draft: list[Word] | None = None
    draft_scores: WindowScores | None = None


@dataclasses.dataclass(frozen=True)
class Pass:
    """One decoding pass the caller must run: ``request`` on the engine, then ``apply(pass, result)``."""

    request: WindowRequest
    utterance_id: int
    start: int  # absolute samples of the window
    end: int
    final: _FinalDue | None = None
    urgent: bool = False  # an utterance's final waits on it: run it before other streams' interims
    cut: int | None = None  # its utterance goes on from this cut in the middle of speech


class StreamSession:
    def __init__(self, config: StreamConfig, detector: SpeechDetector | None = None) -> None:
        self.config = config
        self._detector = detector or SpeechDetector()
        self._audio = np.zeros(0, dtype=np.float32)
        self._buf_start = 0  # absolute sample of _audio[0]
        self._total = 0  # samples fed so far
        self._vad_pos = 0  # absolute sample up to which speech was scored
        self._speech_run = 0
        self._in_speech = False
        self._speech_end = 0  # absolute sample where the last speech frame ended
        self._utt: _Utterance | None = None
        self._finals: list[_FinalDue] = []
        self._inflight: list[Pass] = []  # one interim and one urgent pass at most
        self._last_pass_end = 0
        self._context = ""
        self._said: list[Word] = []  # the words of the last final, absolute times (see _unsaid)
        self._last_word_end: float | None = None
        self._utterance_end_sent = True
        self._ids = itertools.count(1)
        self.passes = 0  # decoding passes run, for statistics
        self._context = config.prompt[-4 * config.context_chars:]

    # -- audio in -------------------------------------------------------------------------------------

    @property
    def seconds(self) -> float:
        return self._total / SAMPLE_RATE

    @property
    def busy(self) -> bool:
        """Speech is open or waiting for its final: the caller should keep asking for passes."""
        return self._utt is not None or bool(self._finals)

    def feed(self, samples: np.ndarray) -> list[Event]:
        self._audio = np.concatenate([self._audio, samples.astype(np.float32, copy=False)])
        self._total += len(samples)
        events = self._score_speech()
        events += self._check_endpoint()
        events += self._check_length()
        events += self._check_utterance_end()
        self._trim()
        return events

    def _score_speech(self, pad: bool = False) -> list[Event]:
        ready = (self._total - self._vad_pos) // FRAME
        if pad and (self._total - self._vad_pos) % FRAME:
            # The last partial frame is scored padded with silence (flush), so a word in it is not lost.
            self._audio = np.concatenate([self._audio, np.zeros(FRAME, dtype=np.float32)])
            ready += 1
        if ready <= 0:
            return []
        back = min(LOOKBACK, (self._vad_pos - self._buf_start) // FRAME)
        begin = self._vad_pos - back * FRAME - self._buf_start
        probs = self._detector.probabilities(self._audio[begin:], back, ready)
        if pad:
            self._audio = self._audio[:self._total - self._buf_start]
        events: list[Event] = []
        for p in probs:
            events += self._on_frame(float(p), self._vad_pos)
            self._vad_pos += FRAME
        self._vad_pos = min(self._vad_pos, self._total)
        return events

    def _on_frame(self, p: float, at: int) -> list[Event]:
        threshold = self.config.vad_threshold
        if p >= threshold or (self._in_speech and p >= threshold - 0.15):
            self._speech_run += 1
            if self._in_speech:
                self._speech_end = min(at + FRAME, self._total)
            elif self._speech_run >= START_FRAMES:
                return self._speech_started(at + FRAME - START_FRAMES * FRAME, at + FRAME)
            return []
        self._speech_run = 0
        if self._in_speech and at + FRAME - self._speech_end >= HANGOVER_S * SAMPLE_RATE:
            self._in_speech = False
        return []

    def _speech_started(self, start: int, end: int) -> list[Event]:
        self._in_speech = True
        self._speech_end = end
        self._utterance_end_sent = self.config.utterance_end_s is None
        if self._utt is not None:
            return [SpeechStarted(round(start / SAMPLE_RATE, 3), False, self._utt.turn)]
        begin = max(self._buf_start, start - int(self.config.preroll_s * SAMPLE_RATE))
        uid = next(self._ids)
        self._utt = _Utterance(uid, begin, uid)
        return [SpeechStarted(round(start / SAMPLE_RATE, 3), True, uid)]

    def _check_endpoint(self) -> list[Event]:
        utt, endpointing = self._utt, self.config.endpointing_s
        if utt is None or self._in_speech or endpointing is None:
            return []
        if self._vad_pos - self._speech_end < max(endpointing, MIN_ENDPOINTING_S) * SAMPLE_RATE:
            return []
        self._utt = None
        end = min(self._total, self._speech_end + int(FINAL_PAD_S * SAMPLE_RATE))
        need = min(end, self._speech_end + int(COVER_MARGIN_S * SAMPLE_RATE))
        stopped = SpeechStopped(round(self._speech_end / SAMPLE_RATE, 3), utt.turn)
        return [stopped, *self._finish(_FinalDue(utt, end, need, speech_final=True))]

    def _check_length(self) -> list[Event]:
        utt = self._utt
        if utt is None or self._total - utt.start < self.config.max_utterance_s * SAMPLE_RATE:
            return []
        cut = _seconds_to_sample(utt.committed[-1].end) if utt.committed else 0
        if cut - utt.start >= SAMPLE_RATE:  # at least a second of agreed words: they are the final
            due = _FinalDue(utt, cut, cut, speech_final=False)
            due.event = self._final_event(utt, utt.begins, cut, utt.committed, speech_final=False)
            self._utt = _Utterance(next(self._ids), cut, utt.turn, cut=cut)
            self._finals.append(due)
            return self._release()
        # Nothing agreed in a whole window (noise, or a hesitant model): decode it all once and move on.
        self._utt = _Utterance(next(self._ids), self._total, utt.turn, cut=self._total)
        return self._finish(_FinalDue(utt, self._total, self._total, speech_final=False))

    def _check_utterance_end(self) -> list[Event]:
        gap = self.config.utterance_end_s
        if (gap is None or self._utterance_end_sent or self._last_word_end is None or self.busy
                or self._total / SAMPLE_RATE - self._last_word_end < gap):
            return []
        self._utterance_end_sent = True
        return [UtteranceEnd(round(self._last_word_end, 3))]

    @property
    def held_seconds(self) -> float:
        """Audio this session still needs (open utterance, finals and passes waiting): what a caller's
        back-pressure bounds (it grows when audio arrives faster than it is decoded)."""
        return (self._total - max(self._buf_start, self._keep_from())) / SAMPLE_RATE

    def _keep_from(self) -> int:
        keep = self._vad_pos - LOOKBACK * FRAME - int(self.config.preroll_s * SAMPLE_RATE)
        starts = [u.utterance.start for u in self._finals] + ([self._utt.start] if self._utt else [])
        starts += [p.start for p in self._inflight]
        return min([keep, *starts])

    def _trim(self) -> None:
        keep = self._keep_from()
        drop = keep - self._buf_start
        if drop > 0:
            self._audio = self._audio[drop:]
            self._buf_start = keep

    # -- passes ---------------------------------------------------------------------------------------

    def next_pass(self) -> Pass | None:
        if any(p.urgent for p in self._inflight):
            return None
        due = next((f for f in self._finals if f.event is None), None)
        if due is not None:
            return self._start_pass(due.utterance, due.end, due, urgent=True)
        utt = self._utt
        if utt is None or self._speech_end - utt.begins < self.config.min_speech_s * SAMPLE_RATE:
            return None
        # Right after speech stops, a pass that covers its end lets the endpoint finalize without waiting.
        cover = self._speech_end + int(COVER_MARGIN_S * SAMPLE_RATE)
        if self._vad_pos >= cover > utt.covered:
            return self._start_pass(utt, self._total, None, urgent=True)
        new_speech = self._speech_end > self._last_pass_end
        interval = self._total - self._last_pass_end >= self.config.interim_interval_s * SAMPLE_RATE
        if not self._inflight and new_speech and interval:
            return self._start_pass(utt, self._total, None)
        return None

    def flush(self, from_finalize: bool = True) -> list[Event]:
        """Everything heard so far comes out as a final (nothing lost), and the stream goes on as before:
        speech still open continues in a new utterance that later audio extends (Deepgram's Finalize,
        OpenAI's commit). ``from_finalize=False`` is the flush at the end of the stream (CloseStream)."""
        events = self._score_speech(pad=True)
        utt = self._utt
        if utt is None:
            return events
        self._utt = None
        # When speech already stopped, a pass that heard its end (plus a margin) is the final: the client
        # is waiting (Deepgram's SDK stops listening 0.5 s after CloseStream), so nothing is re-decoded.
        need = self._total if self._in_speech else min(
            self._total, self._speech_end + int(COVER_MARGIN_S * SAMPLE_RATE))
        # A Finalize in the middle of speech is no pause: the turn goes on (at the end of the stream it ends).
        goes_on = from_finalize and self._in_speech
        if not goes_on:
            self._in_speech, self._speech_run = False, 0
            events.append(SpeechStopped(round(self._speech_end / SAMPLE_RATE, 3), utt.turn))
        due = _FinalDue(utt, self._total, need, speech_final=not goes_on, from_finalize=from_finalize)
        if goes_on:
            # The speaker goes on: the words after the cut belong to a new utterance of the same turn, opened now
            # (the speech detector does not report an onset in the middle of speech). Its window starts a pre-roll
            # before the cut, and before the word the cut splits when the final leaves it (_split_word); words the
            # final already holds are not said twice (see _unsaid).
            begin = max(self._buf_start, self._total - int(self.config.preroll_s * SAMPLE_RATE))
            self._utt = due.continuation = _Utterance(next(self._ids), begin, utt.turn, cut=self._total)
        return events + self._finish(due)

    def _start_pass(self, utt: _Utterance, end: int, due: _FinalDue | None, urgent: bool = False) -> Pass:
        end = max(end, utt.start)
        audio = self._audio[utt.start - self._buf_start:end - self._buf_start]
        beam = self.config.careful_beam_size if due is not None and due.draft is not None else self.config.beam_size
        request = WindowRequest(audio, self.config.language, self._prompt(utt), beam)
        step = Pass(request, utt.id, utt.start, end, due, urgent, utt.cut)
        self._inflight.append(step)
        self._last_pass_end = max(self._last_pass_end, end)
        self.passes += 1
        return step

    def _prompt(self, utt: _Utterance) -> str | None:
        """The earlier finals' text, the context Whisper spells names and style by. After a pause it is
        closed as a sentence: a prompt that stops mid-sentence makes Whisper read the new audio as its
        continuation and drop words it hears again ("... carrots and" + "And so my fellow" gave "so my
        fellow"). A continuation (cut by Finalize or length in the middle of speech) gets it as it is."""
        prompt = self._context[-self.config.context_chars:].strip()
        if prompt and not utt.continues and prompt[-1] not in SENTENCE_ENDS:
            prompt += "."
        return prompt or None

    def wants(self, step: Pass) -> bool:
        """Whether ``step``, not decoded yet, is still of use: an urgent pass always; an interim while its
        utterance is open or waits for its final (under load, an interim queued until after its utterance's
        final is dropped undecoded: ``apply(step, None)``)."""
        if step.urgent or step.final is not None:
            return True
        if self._utt is not None and self._utt.id == step.utterance_id:
            return True
        return any(f.utterance.id == step.utterance_id and f.event is None for f in self._finals)

    def apply(self, done: Pass, result: WindowResult | None) -> list[Event]:
        """The result of ``done`` (None when the pass failed: an interim is skipped, a final sent as heard)."""
        self._inflight = [p for p in self._inflight if p is not done]
        offset = done.start / SAMPLE_RATE
        words = [] if result is None else self._unsaid(_heard([
            Word(w.start + offset, min(w.end + offset, done.end / SAMPLE_RATE), w.word, w.probability)
            for w in result.words], done.end / SAMPLE_RATE), done.cut)
        if _anomalous(words) and _copies(words, done.request.prompt):
            words = []  # the decoder wrote its prompt again into what it heard as silence (see _copies)
        if done.final is not None:
            return self._final_pass(done, done.final, result, words)
        due = next((f for f in self._finals if f.utterance.id == done.utterance_id and f.event is None), None)
        utt = due.utterance if due else self._utt
        if utt is None or utt.id != done.utterance_id or result is None or done.end < utt.covered:
            return []  # a pass over an utterance already finalized, a failed interim, or an outrun one
        shown = self._agree(utt, words, done.end)
        utt.unsure = self._unsure(done, result, words)
        if due is not None and due.draft is None and done.end >= due.need:
            # This pass already heard the whole utterance: it is the final, no further decoding (unless unsure).
            if utt.unsure is not None:
                due.draft, due.draft_scores = words, utt.unsure
                return []
            due.event = self._made(due, done.end, words)
            return self._release()
        return [Transcribed(round(utt.begins / SAMPLE_RATE, 3), round(done.end / SAMPLE_RATE, 3),
                            _text(shown), tuple(shown), is_final=False, turn=utt.turn)] if shown else []

    def _final_pass(self, done: Pass, due: _FinalDue, result: WindowResult | None, words: list[Word]) -> list[Event]:
        """The result of a pass decoded for ``due``'s final: the final, or (a greedy reading that fails Whisper's
        test) its draft, while a beam-search pass decodes the same audio again; of the two the likelier reading."""
        if due.event is not None or due not in self._finals:
            return []  # a pass that ran beside it already made that final
        if due.draft is not None and done.request.beam_size >= self.config.careful_beam_size:  # the beam search
            scores = result.scores if result is not None else None
            words = words if scores is not None and _better(scores, due.draft_scores) else due.draft
        elif (unsure := self._unsure(done, result, words)) is not None:
            if due.draft is None or _better(unsure, due.draft_scores):  # (an interim beside it may have drafted)
                due.draft, due.draft_scores = words, unsure
            return []
        due.event = self._made(due, done.end, words or due.draft or due.utterance.hypothesis)
        return self._release()

    def _unsure(self, done: Pass, result: WindowResult | None, words: list[Word]) -> WindowScores | None:
        """The scores of a greedy reading with words that fails Whisper's own test of a decoding (too unlikely,
        or repeating itself: its cue for a fallback decoding); None when it passes or cannot be better decoded
        (no scores, already a beam search)."""
        scores = result.scores if result is not None else None
        if not words or scores is None or done.request.beam_size >= self.config.careful_beam_size:
            return None
        return scores if fails_whisper_test(scores) else None

    def _agree(self, utt: _Utterance, words: list[Word], end: int) -> list[Word]:
        """LocalAgreement-2: the longest common prefix of two successive hypotheses is committed. Returns
        what the interim shows: the committed words, then the new hypothesis' unstable tail."""
        current = [_normal(w.word) for w in words]
        agreed = _common_prefix(utt.previous, current)
        if agreed > len(utt.committed):
            utt.committed = words[:agreed]
        utt.previous, utt.hypothesis, utt.covered = current, words, end
        return utt.committed + words[_tail_start(utt.committed, words):]

    def _unsaid(self, words: list[Word], cut: int | None) -> list[Word]:
        """``words`` without the leading ones the last final already holds. A window that starts before the
        end of the previous final (a new utterance's pre-roll, the overlap after a cut in the middle of
        speech) hears the end of its words again. Compared by where Whisper places them, not by text alone,
        so an utterance that starts with the words the last one ended with ("... carrots and" / "And so ...")
        keeps them. The end of a word is what counts: Whisper stretches a window's first word back to the
        window's start, so its start says little; after a cut, the words kept start no earlier than it."""
        start = 0
        while start < len(words) and any(_already_said(words[start], w, cut is not None) for w in self._said):
            start += 1
        if cut is None:
            return words[start:]
        at = cut / SAMPLE_RATE
        return [Word(max(w.start, at), max(w.end, at), w.word, w.probability) for w in words[start:]]

    def _finish(self, due: _FinalDue) -> list[Event]:
        """The utterance's final: made now when its last pass heard it all, else by a final pass. Either way it
        comes out exactly once, after the finals owed before it: a turn's ``speech_final`` final ends it (see
        Turns above)."""
        utt = due.utterance
        if utt.cut is not None and self._speech_end - utt.cut < START_FRAMES * FRAME:
            # Speech stopped right at the cut: its pre-roll holds only words already final. Nothing to decode, but
            # its turn still ends with a final (an empty one).
            due.event = self._final_event(utt, utt.begins, due.end, [], due.speech_final, due.from_finalize)
        elif utt.hypothesis and utt.covered >= due.need and utt.unsure is not None:
            due.draft, due.draft_scores = utt.hypothesis, utt.unsure  # unsure: a beam search first
        elif utt.hypothesis and utt.covered >= due.need:
            due.event = self._made(due, utt.covered, utt.hypothesis)
        self._finals.append(due)
        return self._release()

    def _made(self, due: _FinalDue, end: int, words: list[Word]) -> Transcribed:
        """``due``'s final from a pass that heard its utterance up to ``end``, less the word a Finalize in the middle
        of speech split (_split_word): it then ends where that word starts."""
        words, end = self._split_word(due, words, end)
        return self._final_event(due.utterance, due.utterance.begins, end, words, due.speech_final,
                                 due.from_finalize)

    def _split_word(self, due: _FinalDue, words: list[Word], end: int) -> tuple[list[Word], int]:
        """``words`` without the last ones still being said at a Finalize's cut in the middle of speech (they end
        within SPLIT_WORD_S of it), and where the final then ends. The continuation opened at the cut takes them:
        its window and its own speech start at the first of them (before its first pass, which waits for this
        final's), so they are decoded once, whole, and not dropped as said (_unsaid compares with this final)."""
        cont = due.continuation
        if cont is None or cont.cut is None:
            return words, end
        keep = len(words)
        while keep and words[keep - 1].end >= due.end / SAMPLE_RATE - SPLIT_WORD_S:
            keep -= 1
        if keep == len(words):
            return words, end
        start = max(due.utterance.begins, _seconds_to_sample(words[keep].start))
        cont.cut = min(cont.cut, start)
        cont.start = max(self._buf_start, min(cont.start, start - int(SPLIT_WORD_S * SAMPLE_RATE)))
        return words[:keep], min(end, start)

    def _release(self) -> list[Event]:
        """The finals made, in the order owed, up to the first one still waiting for its pass. Their text is the
        context of the next passes and what a new window's overlap is compared with (_unsaid)."""
        out: list[Event] = []
        while self._finals and (event := self._finals[0].event) is not None:
            self._finals.pop(0)
            if event.text:
                self._context = (self._context + " " + event.text)[-4 * self.config.context_chars:]
                self._last_word_end = event.words[-1].end
                self._said = list(event.words)
            out.append(event)
        return out

    def _final_event(self, utt: _Utterance, start: int, end: int, words: list[Word], speech_final: bool,
                     from_finalize: bool = False) -> Transcribed:
        text = _text(words)
        return Transcribed(round(start / SAMPLE_RATE, 3), round(max(start, end) / SAMPLE_RATE, 3), text,
                           tuple(words), is_final=True, speech_final=speech_final, from_finalize=from_finalize,
                           turn=utt.turn)


def _heard(words: list[Word], end: float) -> list[Word]:
    """``words`` without the trailing ones Whisper's aligner places at the very end of the window, after all
    the audio: text the decoder went on writing into the silence padded after the window, typically its
    last words once more ("Mr. Burke. Mr. Burke." where the audio holds "Mr. Burke"). A word really spoken
    there could not be recognised from so little of it; the next pass hears it whole."""
    keep = len(words)
    while keep and words[keep - 1].start >= end - PAST_AUDIO_S:
        keep -= 1
    return words[:keep]


def _better(reading: WindowScores, draft: WindowScores | None) -> bool:
    """Whether a beam-search reading beats the greedy ``draft`` as Whisper picks among its fallback decodings: one
    that does not repeat itself (compression ratio at most MAX_COMPRESSION) first (a beam search can loop too, and
    a loop is likely to the decoder), then the higher avg_logprob."""
    if draft is None:
        return True
    return ((reading.compression_ratio <= MAX_COMPRESSION, reading.avg_logprob)
            >= (draft.compression_ratio <= MAX_COMPRESSION, draft.avg_logprob))


def _anomalous(words: list[Word]) -> bool:
    """The stricter half of openai-whisper's hallucination test for a segment (``is_segment_anomaly``): its first
    words score a point each on average, each unlikely to the decoder itself or squeezed by the aligner into (or
    stretched across) an implausible stretch. The other half (3 points in all) Whisper applies only to a segment
    with silence around it; on a pass it dropped real speech: tiny.en read JFK's "ask not what you can do for your
    country" as its prompt's "AS NOT! What" (probabilities 0.00-0.02) followed by five likely words."""
    scored = [w for w in words if _normal(w.word)][:ANOMALY_WORDS]
    return bool(scored) and sum(_anomaly(w) for w in scored) + 0.01 >= len(scored)


def _anomaly(word: Word) -> float:
    duration = word.end - word.start
    return float(word.probability < 0.15) + max(0.0, 0.133 - duration) * 15 + max(0.0, duration - 2.0)


def _copies(words: list[Word], prompt: str | None) -> bool:
    """``words`` say a run of COPIED_WORDS words of ``prompt`` again. With ``_anomalous`` it marks Whisper's known
    failure on a window of little or no speech: it writes out its prompt (the earlier finals) once more, with
    unlikely words the aligner has no audio for (the few tenths of a second left after a cut at 15 s of speech read
    "t he found an arid pleasure in following", the sentence's beginning). Each alone is no proof: people repeat
    themselves, and fast or accented speech has short or unlikely words."""
    said = [_normal(w) for w in (prompt or "").split()]
    heard = [_normal(w.word) for w in words]
    runs = {tuple(said[i:i + COPIED_WORDS]) for i in range(len(said) - COPIED_WORDS + 1)}
    return any(tuple(heard[i:i + COPIED_WORDS]) in runs for i in range(len(heard) - COPIED_WORDS + 1))


def _already_said(word: Word, said: Word, continues: bool) -> bool:
    """``word`` of a new window is ``said`` (a word of the last final) heard again: it ends within it. After a
    cut in the middle of speech (``continues``) a word the cut split in two may also be the same word said
    whole: the same text over overlapping audio (after a pause no word can straddle the boundary)."""
    if word.start < said.end and said.start - SAME_WORD_S <= word.end <= said.end + SAME_WORD_S:
        return True  # (a short word said just after the last final's end starts after it: it is new)
    return continues and _normal(word.word) == _normal(said.word) and word.start < said.end < word.end


def _text(words: list[Word] | tuple[Word, ...]) -> str:
    text = "".join(w.word for w in words).strip()
    return text if any(c.isalnum() for c in text) else ""  # a lone "." on a breath is no transcript


def _tail_start(committed: list[Word], words: list[Word]) -> int:
    """Index of the first word of ``words`` after the committed text. Compared letters only, so that a
    hypothesis that hyphenates or splits the committed words differently does not repeat them; when the new
    hypothesis words them otherwise ("Collier gives him" against "Coddier gives a"), the tail is what Whisper
    places after the last committed word (counting words by position repeated or dropped words there)."""
    target = _letters(committed)
    seen = ""
    for i, word in enumerate(words):
        if len(seen) >= len(target):
            return i if seen == target else _after(committed, words)
        seen += _letters([word])
    return len(words) if seen == target else _after(committed, words)


def _after(committed: list[Word], words: list[Word]) -> int:
    """Index of the first word of ``words`` said after the committed words: its middle lies past their end."""
    end = committed[-1].end if committed else 0.0
    return next((i for i, w in enumerate(words) if (w.start + w.end) / 2 > end), len(words))


def _letters(words: list[Word]) -> str:
    return "".join(c for w in words for c in w.word.lower() if c.isalnum())


def _common_prefix(a: list[str], b: list[str]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _normal(word: str) -> str:
    return re.sub(r"[^\w']", "", word.lower())


def _seconds_to_sample(seconds: float) -> int:
    return int(round(seconds * SAMPLE_RATE))
