"""A window's language when detection is unsure between two: the window decoded in both, the likelier reading wins.

Whisper's language detector weighs what the audio sounds like, not what it says: on short clips of accented
English the base model answers Chinese, Japanese or Thai for about one clip in five (speechocean762: 38 of 200,
faster-whisper's own ``transcribe`` as often), and the transcript then comes back in another language. Its
probabilities say when it is unsure: in those clips English is mostly its second answer, close behind. Whisper
is a model of language and text together, so the principled choice between two readings is the joint one:

    P(language | audio) x P(text | audio, language)

the detector's probability times the decoder's probability of the text it decoded in that language (the sum of
its tokens' log-probabilities, ``WindowScores.logprob``). A reading in the wrong language is a strained one
(a Chinese rendering of English sounds), and the decoder says so. A reading that fails Whisper's own
repetition test (``looks_repeated``: "ni ni ni ni …") or says nothing does not compete: the decoder finds a loop
likely once it is in one, and an empty text is not a reading of speech.

When: the second language at least ``RIVAL_RATIO`` as likely as the first (within a factor of ten; a cost bound,
not a tuned threshold: measured on every shared set, the result hardly moves from a factor of 3 to 50, see the
README's accuracy section). Clear detections (native speech of any language: every FLEURS and LibriSpeech clip)
cost nothing more. Used where an upload's language is detected before its windows are decoded
(stt.inference.language_choice) and where a window asking for no language is detected on its own encoding
(stt.engines.batched_windows: a long first window, a live pass of a stream in any language).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from stt.engines.base import WindowResult
from stt.engines.languages import allowed_shares
from stt.engines.repetition import looks_repeated

RIVAL_RATIO = 0.1  # a second language at least this fraction as likely as the first is decoded too
MIN_PROBABILITY = 1e-9  # log() of a probability the detector rounds to zero


def rivals(ranked: Sequence[tuple[str, float]], allowed: Sequence[str] = ()) -> list[tuple[str, float]]:
    """The detection's first language, and its second when that is at least RIVAL_RATIO as likely; only
    ``allowed`` languages when given (their probabilities then shares among them, as ``choose_language``)."""
    kept = allowed_shares(ranked, allowed)
    if len(kept) > 1 and kept[1][1] >= RIVAL_RATIO * kept[0][1] and kept[1][1] > 0:
        return kept[:2]
    return kept[:1]


def likeliest(candidates: Sequence[tuple[str, float]], results: Sequence[WindowResult]) -> int:
    """The index of the reading with the highest joint log-probability among those that compete (text that
    does not repeat itself, with the decoder's score known); the detector's first when none does."""
    competing = [i for i, r in enumerate(results)
                 if r.text.strip() and r.scores is not None and r.scores.logprob is not None and not looks_repeated(r)]
    if not competing:
        return 0
    return max(competing, key=lambda i: math.log(max(candidates[i][1], MIN_PROBABILITY))
               + results[i].scores.logprob)  # type: ignore[union-attr,operator]
