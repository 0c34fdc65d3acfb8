"""Speech a window's decoding left out: each stretch of the window no word was read in, decoded on its own.

Whisper's decoder sometimes reads a window only in part. It closes the text after a sentence and a pause as if
the window were over (with timestamps it marks the end there; without them it simply stops), or, decoding a
long window without timestamps, it starts with a later sentence and skips the first. Whisper's sequential
decoding starts its next 30 s window where the text stopped and reads the rest; a window here is cut from the
speech alone and read once, so the rest was lost. Measured on the shared sets joined in order with 1 s pauses
into ~60 s uploads (bench/bench_accuracy.py --joined): a FLEURS en window of 26.8 s read to its 15.8th second;
FLEURS de, fr and pt windows whose first 6-11 s were skipped; non-native English windows read to their 3rd of
14 s, or with their first 15 s skipped. The alignment shows where: no word in the stretch, or one word
stretched across it ("O" aligned from 0.0 to 6.0 s, over a whole skipped sentence).

A window's audio is all speech (the VAD's pieces, each padded by 0.4 s, pauses of 160 ms and more cut out):
the gaps between its aligned words are pauses within a piece, under 1 s on every shared set and the 276 s
chapter (no stretch over ``UNREAD_S`` in any of their 61 windows but those above). So a stretch of the window
over ``UNREAD_S`` with no word, or one word longer than that, is speech left out.

Such a stretch is decoded as Whisper decodes its next window: on its own, with the text before it as its
prompt (the decoder keeps the speaker's words and style), in the language the window was read in; its reading
replaces the stretch (a word stretched across it stays where the reading does not end with it). Its own
unread stretches are checked again, at most ``MAX_RESTS`` times: each is shorter than the window it came from,
and the stretches of one round are apart, so a round decodes at most the window's own audio again. A stretch
that is the whole window (a one-word text, which the alignment spans across the window) is not decoded again:
the same audio would read the same. A stretch the decoder judges silent, by
Whisper's own rule (no-speech probability above 0.6 and the text's average log-probability below -1), is left
as it was: a VAD piece can hold a cough or a chair. A function of the window alone, as every window's decoding
here: no transcript depends on what else the server decodes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from faster_whisper.transcribe import get_compression_ratio

from stt.audio import SAMPLE_RATE
from stt.engines.base import WindowRequest, WindowResult, WindowScores, Word
from stt.engines.repetition import LOG_PROB_THRESHOLD

UNREAD_S = 2.0  # a stretch of a window's speech this long with no word read in it was left out (see above)
MAX_RESTS = 3  # rounds of unread stretches decoded for one window, at most
NO_SPEECH = 0.6  # Whisper's no_speech_threshold
STRETCHED_WORD_S = 0.5  # the time given to a stretched word kept at the end of its stretch

Decode = Callable[[Sequence[WindowRequest]], list[WindowResult]]


@dataclasses.dataclass(frozen=True)
class Stretch:
    """Seconds of a window no word was read in; ``first``..``last``: the words it replaces (a word stretched
    across it, or none: ``first == last``), indices into the window's words."""

    start: float
    end: float
    first: int
    last: int


def with_rests(decode: Decode, requests: Sequence[WindowRequest], results: list[WindowResult],
               depth: int = 0) -> list[WindowResult]:
    """``results`` with each window's unread stretches decoded and put in their place (``decode``: the batched
    decoder itself, so the stretches of several windows share batches)."""
    todo = [(i, s) for i, (q, r) in enumerate(zip(requests, results)) for s in unread(q, r)]
    if not todo or depth >= MAX_RESTS:
        return results
    rests = [_rest_request(requests[i], results[i], s) for i, s in todo]
    decoded = with_rests(decode, rests, decode(rests), depth + 1)
    read: dict[int, list[tuple[Stretch, WindowResult]]] = {}
    for (i, stretch), rest in zip(todo, decoded):
        if _speech(rest):
            read.setdefault(i, []).append((stretch, rest))
    return [filled(results[i], read[i]) if i in read else result for i, result in enumerate(results)]


def unread(request: WindowRequest, result: WindowResult) -> list[Stretch]:
    """The stretches of a window's speech no word was read in, in order (none where its audio holds pauses
    or no word timings are known)."""
    if not request.all_speech or not request.words or not result.words:
        return []
    stretches: list[Stretch] = []
    read_to = 0.0
    for k, word in enumerate(result.words):
        if word.end - word.start > UNREAD_S:  # one word across a stretch of speech: the stretch was skipped
            stretches.append(Stretch(read_to, word.end, k, k + 1))
        elif word.start - read_to > UNREAD_S:
            stretches.append(Stretch(read_to, word.start, k, k))
        read_to = max(read_to, word.end)
    seconds = len(request.audio) / SAMPLE_RATE
    if seconds - read_to > UNREAD_S:
        stretches.append(Stretch(read_to, seconds, len(result.words), len(result.words)))
    return [s for s in stretches if not (s.start <= 0.0 and s.end >= seconds)]


def _rest_request(request: WindowRequest, result: WindowResult, stretch: Stretch) -> WindowRequest:
    before = "".join(w.word for w in result.words[:stretch.first]).strip()
    start, end = round(stretch.start * SAMPLE_RATE), round(stretch.end * SAMPLE_RATE)
    return dataclasses.replace(request, audio=request.audio[start:end],
                               prompt=" ".join(filter(None, (request.prompt, before))) or None,
                               language=result.language, languages=(), full_window=False)


def _speech(rest: WindowResult) -> bool:
    scores = rest.scores
    silent = scores is not None and scores.no_speech_prob > NO_SPEECH and scores.avg_logprob < LOG_PROB_THRESHOLD
    return bool(rest.text.strip()) and not silent


def filled(result: WindowResult, rests: Sequence[tuple[Stretch, WindowResult]]) -> WindowResult:
    """One window's reading with each stretch's reading (times from the stretch's start) in its place."""
    words: list[Word] = []
    taken = 0
    scores = result.scores
    for stretch, rest in rests:  # in order, and apart: ``unread`` gives them so
        words += result.words[taken:stretch.first]
        words += [Word(w.start + stretch.start, w.end + stretch.start, w.word, w.probability) for w in rest.words]
        if stretch.last < len(result.words):  # text follows: the stretched word was read where it resumed
            words += _stretched(result.words[stretch.first:stretch.last], words, stretch.end)
        taken = stretch.last
        scores = _scores(scores, rest.scores)
    words += result.words[taken:]
    text = "".join(w.word for w in words).strip()
    if scores is not None:
        scores = dataclasses.replace(scores, compression_ratio=get_compression_ratio(text))
    return dataclasses.replace(result, text=text, words=tuple(words), scores=scores)


def _stretched(replaced: Sequence[Word], words: Sequence[Word], end: float) -> list[Word]:
    """The word stretched across a stretch that text follows, kept unless the stretch's reading ends with it:
    the decoder read it where it started again after the speech it skipped (the stretch's end, right before the
    next word), and the stretch's audio, cut right after it, often loses it ("Er" of "Er griff auch alles an"
    after a skipped FLEURS de sentence). A stretch after the last word read holds its word at its start,
    whole: its reading has it."""
    if not replaced or (words and _bare(words[-1].word) == _bare(replaced[0].word)):
        return []
    start = max(end - STRETCHED_WORD_S, words[-1].end if words else 0.0)
    return [dataclasses.replace(replaced[0], start=min(start, end), end=end)]


def _bare(word: str) -> str:
    return "".join(ch for ch in word.lower() if ch.isalnum())


def _scores(first: WindowScores | None, rest: WindowScores | None) -> WindowScores | None:
    """Two readings' scores as one decoding's: log-probabilities summed over both texts' tokens, the first's
    no-speech probability (Whisper's is the window's first step's)."""
    if first is None or rest is None or first.logprob is None or rest.logprob is None:
        return first
    logprob = first.logprob + rest.logprob
    tokens = _tokens(first) + _tokens(rest)
    return dataclasses.replace(first, avg_logprob=logprob / (tokens + 1), logprob=logprob)


def _tokens(scores: WindowScores) -> int:
    """A reading's token count: avg_logprob averages over its tokens plus the end of text."""
    if not scores.logprob or not scores.avg_logprob:
        return 0
    return max(0, round(scores.logprob / scores.avg_logprob) - 1)
