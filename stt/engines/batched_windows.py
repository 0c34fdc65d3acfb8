"""Batched window decoding on faster-whisper's CTranslate2 model (uploads' windows and the live streams' passes).

A window (a piece of an upload, a live pass) is encoded as its audio plus at least PAD_S of silence, rounded
up to STEP_S (``window_seconds``), a fraction of a full 30 s window's encoder cost; without the silent pad the
decoder does not see the audio end and repeats its last words. ``WindowRequest.full_window`` asks for a full
30 s window instead: measured on every shared set (bench/bench_padding.py) it was no closer to faster-whisper's
``transcribe`` and hallucinated a whole sentence on a short non-native clip, so no caller asks for it today.
A window's decoding is a function of that window alone: its encoder input, its text budget and its prompt
come from itself, and a batch holds only windows that share them (``_groups``), so a transcript never
depends on what else the server decodes with it (CTranslate2's batched encode and beam search give each row
the numbers it gets alone; tests/inference/test_batch_invariance.py).
Windows are decoded with timestamps, as Whisper decodes: text the decoder places in the silent pad (a
short sentence said again, up to three times) is dropped, and a result that still repeats itself is decoded
again on a full window. The language is detected on a full window, as faster-whisper's ``transcribe`` does
(or on the window's own input when that is mostly speech, ``DETECT_IN_WINDOW_S``); where that detection is unsure
between two languages the window is decoded in both on its one encoding and the jointly likelier reading is
kept (stt.engines.rivals). Every window gets the decoder's scores (avg_logprob, compression_ratio,
no_speech_prob).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.audio import pad_or_trim
from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens, merge_punctuations

from stt.audio import SAMPLE_RATE
from stt.engines.base import WindowRequest, WindowResult, WindowScores, Word
from stt.engines.repetition import looks_repeated
from stt.engines.rests import with_rests
from stt.engines.rivals import likeliest, rivals

PAD_S = 5.0  # silence after the audio, so the decoder sees where speech ends
# Live passes' encoder inputs come in steps of this (window_seconds): one pass alone costs +2 % CPU over its
# audio + PAD_S exactly (2.5 s: +10 %, 5 s: +13 %; bench/bench_live_step.py, 24 shared clips, beam 1), and
# passes within a step of each other share a batch.
STEP_S = 1.0
MAX_WINDOW_S = 30.0
MAX_WINDOW = int(MAX_WINDOW_S * SAMPLE_RATE)
HOP = 160  # samples per mel frame
TOKENS_PER_S = 10  # generous upper bound of Whisper tokens per second of speech, timestamps included
TIME_PRECISION = 0.02  # seconds per timestamp token
MAX_INITIAL_TIMESTAMP_INDEX = 50  # the first segment starts within 1 s (faster-whisper's default)
FULL_FRAMES = 3000  # mel frames of a 30 s window
PREPENDED = "\"'“¿([{-"  # faster-whisper's defaults: punctuation joins the word it belongs to
APPENDED = "\"'.。,，!！?？:：”)]}、"
MAX_PROMPT_TOKENS = 223  # Whisper keeps half its 448-token context for the previous text
# A window's language is detected on its own encoder input from this length of input on (over 15 s of speech
# and its pad), and on a full 30 s window of its own below it. Measured on uploads joined from every shared set
# and cut to 8-40 s (bench/bench_language.py; wrong languages only ever on speechocean762's non-native speech),
# by the first window's speech, wrong on its own input against 30 s of the upload: under 10 s 44 vs 41 of 223
# (as on short clips), 10-15 s 23 vs 28 of 135, 15-20 s 9 vs 14 of 53, 20-25 s 0 vs 0 of 9, 25-30 s 6 vs 6 of 26.
DETECT_IN_WINDOW_S = 21.0


def decode_batch(model: WhisperModel, requests: Sequence[WindowRequest]) -> list[WindowResult]:
    """Each window's reading, and the rest of a window whose decoding left speech out (stt.engines.rests)."""
    def decode(batch: Sequence[WindowRequest]) -> list[WindowResult]:
        return _decode_windows(model, batch)

    return with_rests(decode, requests, decode(requests))


def _decode_windows(model: WhisperModel, requests: Sequence[WindowRequest]) -> list[WindowResult]:
    results: dict[int, WindowResult] = {}
    for group in _groups(model, requests):
        for i, result in zip(group, _decode_group(model, [requests[i] for i in group])):
            results[i] = result
    return [results[i] for i in range(len(requests))]


def window_seconds(samples: int) -> float:
    """The encoder input of a window of ``samples``: its audio plus PAD_S of silence at least, rounded up to
    STEP_S. A function of the window alone, so a window decodes the same whatever it is batched with (it was
    padded to its batch's longest window, and its text changed with its companions)."""
    return min(MAX_WINDOW_S, math.ceil((samples / SAMPLE_RATE + PAD_S) / STEP_S) * STEP_S)


def input_seconds(request: WindowRequest) -> float:
    """The encoder input of a window: a full 30 s window when it asks for one, else ``window_seconds``."""
    return _input_seconds(len(request.audio), request.full_window)


def _input_seconds(samples: int, full_window: bool) -> float:
    return MAX_WINDOW_S if full_window else window_seconds(min(samples, MAX_WINDOW))


def detects_in_window(samples: int) -> bool:
    """A window of ``samples`` asking for no language gets it detected on its own encoding (``_decode``), with
    no encoder pass of its own: one whose speech fills most of its encoder input (``DETECT_IN_WINDOW_S``)."""
    return window_seconds(min(samples, MAX_WINDOW)) >= DETECT_IN_WINDOW_S


def text_budget(samples: int) -> int:
    """The most tokens a window of ``samples`` may decode (a bound on runaway text): its length rounded up to
    STEP_S, at TOKENS_PER_S. A function of the window alone, as ``window_seconds``."""
    return int(min(MAX_WINDOW_S, math.ceil(samples / SAMPLE_RATE / STEP_S) * STEP_S) * TOKENS_PER_S) + 16


def _groups(model: WhisperModel, requests: Sequence[WindowRequest]) -> list[list[int]]:
    """Windows decoded in one batch: those that share every input of the decoding but the audio and the
    prompt's tokens (beam width, timestamps or not, encoder input, text budget, prompt length). A batch then
    decodes each window exactly as it would decode alone (CTranslate2's batched encode and beam search give
    the same numbers row by row: tests/inference/test_batch_invariance.py). Index lists into ``requests``."""
    groups: dict[tuple[int, bool, float, int, int], list[int]] = {}
    tok = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language="en")
    for i, r in enumerate(requests):
        key = (*batch_shape(len(r.audio), r.beam_size, r.full_window), len(_previous(tok, r)))
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def batch_shape(samples: int, beam_size: int, full_window: bool = False) -> tuple[int, bool, float, int]:
    """What a window of ``samples`` shares with the windows it is decoded in one batch with, but its prompt's
    length (``_groups``): beam width, timestamps or not, encoder input, text budget. A caller that chooses
    its own batches (a job's chunks) pairs windows of one shape, so they decode together."""
    return beam_size, _stamped(samples), _input_seconds(samples, full_window), text_budget(min(samples, MAX_WINDOW))


def _stamped(samples: int) -> bool:
    """Decoded with timestamps: windows short enough that the decoder sees PAD_S of silence after them. A
    longer window's speech runs to the end of the 30 s the encoder sees, and the decoder then leaves its
    last sentence out as unfinished (Whisper's sequential decoding reads it in the next window; a window here
    has none), so it is decoded without timestamps, as faster-whisper's batched pipeline decodes."""
    return samples <= (MAX_WINDOW_S - PAD_S) * SAMPLE_RATE


def _decode_group(model: WhisperModel, requests: Sequence[WindowRequest]) -> list[WindowResult]:
    stamped = _stamped(len(requests[0].audio))  # the same for the whole group (see _groups)
    results = _decode(model, requests, full=False, stamped=stamped)
    retry = [i for i, (q, r) in enumerate(zip(requests, results)) if not q.full_window and looks_repeated(r)]
    if retry:
        again = _decode(model, [requests[i] for i in retry], full=True, stamped=stamped)
        for i, result in zip(retry, again):
            results[i] = result
    return results


def _decode(model: WhisperModel, requests: Sequence[WindowRequest], *, full: bool, stamped: bool,
            languages: Sequence[tuple[str, float]] | None = None) -> list[WindowResult]:
    """``stamped``: decoded with timestamps, as Whisper decodes: the decoder places each sentence in time, so
    text it places after the window's real audio (in the silent pad: a sentence said again) is dropped. A
    window whose decoding ends with Whisper's "the rest is unfinished" mark before its audio ends is decoded
    again without timestamps (its last words would be lost). A window asking for no language whose detection
    is unsure between two is decoded in both, on the one encoding, and the likelier reading is kept
    (stt.engines.rivals)."""
    audios = [r.audio[-MAX_WINDOW:] for r in requests]
    window_s = MAX_WINDOW_S if full else input_seconds(requests[0])  # the same for the whole batch (_groups)
    features = _features(model, audios, window_s)
    encoded = model.model.encode(features)
    candidates = ([[lang] for lang in languages] if languages is not None else
                  detect_candidates(model, requests, audios, encoded if window_s >= DETECT_IN_WINDOW_S else None))
    rows = [(i, lang) for i, langs in enumerate(candidates) for lang in langs]  # (request, language) decoded
    row_requests = [requests[i] for i, _ in rows]
    tokenizers = [Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task=r.task, language=lang)
                  for r, (_, (lang, _)) in zip(row_requests, rows)]
    prompts = _prompts(tokenizers, row_requests, stamped)
    longest = max(len(p) for p in prompts)
    new_tokens = text_budget(len(audios[0]))  # the same for the whole batch (see _groups)
    generated = model.model.generate(
        _rows(model, encoded, features, [i for i, _ in rows]), prompts,
        beam_size=max(r.beam_size for r in requests),
        max_length=min(model.max_length, longest + new_tokens), suppress_blank=True,
        suppress_tokens=list(get_suppressed_tokens(tokenizers[0], [-1])), return_scores=True,
        return_no_speech_prob=True, max_initial_timestamp_index=MAX_INITIAL_TIMESTAMP_INDEX)
    texts = [_inside(g.sequences_ids[0], tok, len(audios[i]) / SAMPLE_RATE) if stamped else
             [t for t in g.sequences_ids[0] if t < tok.eot] for g, tok, (i, _) in zip(generated, tokenizers, rows)]
    decoded = [tok.decode(tokens).strip() for tok, tokens in zip(tokenizers, texts)]
    readings = [WindowResult(text, (), lang, p, _scores(g, text))
                for g, text, (_, (lang, p)) in zip(generated, decoded, rows)]
    kept = _winners(rows, readings)
    rows, tokenizers, generated, texts, readings = ([xs[k] for k in kept]
                                                    for xs in (rows, tokenizers, generated, texts, readings))
    aligned = _align(model, tokenizers, requests, texts, encoded, audios)
    results = [dataclasses.replace(reading, words=_words(words, len(a) / SAMPLE_RATE, reading.text)) if r.words
               else reading for r, reading, words, a in zip(requests, readings, aligned, audios)]
    unfinished = [i for i, (g, tok, a) in enumerate(zip(generated, tokenizers, audios))
                  if stamped and _unfinished(g.sequences_ids[0], tok, len(a) / SAMPLE_RATE)]
    if unfinished:
        again = _decode(model, [requests[i] for i in unfinished], full=full, stamped=False,
                        languages=[rows[i][1] for i in unfinished])
        for i, result in zip(unfinished, again):
            results[i] = result
    return results


def _rows(model: WhisperModel, encoded: ctranslate2.StorageView, features: ctranslate2.StorageView,
          rows: list[int]) -> ctranslate2.StorageView:
    """The encoder's output for each decoded row (a window decoded in two languages has its row twice): taken
    from ``encoded`` on the CPU; on a GPU, where it cannot be indexed from here, the rows' ``features`` (host
    memory) are encoded again (a row's numbers do not depend on its batch)."""
    if rows == list(range(len(rows))) and len(rows) == encoded.shape[0]:
        return encoded
    source = encoded if encoded.device == "cpu" else features
    picked = ctranslate2.StorageView.from_array(np.ascontiguousarray(np.asarray(source)[rows]))
    return picked if source is encoded else model.model.encode(picked)


def _winners(rows: Sequence[tuple[int, tuple[str, float]]], readings: Sequence[WindowResult]) -> list[int]:
    """For each window, in order, the index of the row kept: its only one, or of its two readings the likelier
    (``likeliest``)."""
    by_window: dict[int, list[int]] = {}
    for k, (i, _) in enumerate(rows):
        by_window.setdefault(i, []).append(k)
    return [ks[likeliest([rows[k][1] for k in ks], [readings[k] for k in ks])] if len(ks) > 1 else ks[0]
            for _, ks in sorted(by_window.items())]


def _unfinished(tokens: Sequence[int], tok: Tokenizer, seconds: float) -> bool:
    """Whisper ends a window with two timestamps when it leaves the speech after them for the next window
    (its sequential decoding seeks there); here that speech would be lost."""
    stamps = [t for t in tokens[-2:] if t >= tok.timestamp_begin]
    return len(stamps) == 2 and (stamps[-1] - tok.timestamp_begin) * TIME_PRECISION < seconds


def _inside(tokens: Sequence[int], tok: Tokenizer, seconds: float) -> list[int]:
    """The text tokens of the segments the decoder placed in the real audio: a segment it starts after the
    audio's end is text invented in the silence after it (the sentence said again). The first segment is
    always kept (it is what the window says). Whisper's timestamps drift by a few tenths over a long window,
    so a segment is judged by its start: one that starts inside the audio and overruns it is speech."""
    segments: list[tuple[float, list[int]]] = []  # (start, text tokens)
    start: float | None = None
    end = 0.0
    current: list[int] = []
    for t in tokens:
        if t >= tok.timestamp_begin:
            time = (t - tok.timestamp_begin) * TIME_PRECISION
            if current:
                segments.append((end if start is None else start, current))
                current, start = [], None
            else:
                start = time
            end = time
        elif t < tok.eot:
            current.append(t)
    if current:
        segments.append((end if start is None else start, current))
    kept = segments[:1] + [s for s in segments[1:] if s[0] < seconds]
    return [t for _, text in kept for t in text]


def _scores(generated: ctranslate2.GenerationResult, text: str) -> WindowScores:
    # As faster-whisper computes them: CTranslate2's score is the sum of log-probabilities over the length
    # (length_penalty 1), and Whisper averages over the tokens plus the end of text.
    length = len(generated.sequences_ids[0])
    return WindowScores(avg_logprob=generated.scores[0] * length / (length + 1),
                        compression_ratio=get_compression_ratio(text) if text else 0.0,
                        no_speech_prob=float(generated.no_speech_prob), logprob=generated.scores[0] * length)


def _align(model: WhisperModel, tokenizers: Sequence[Tokenizer], requests: Sequence[WindowRequest],
           texts: list[list[int]], encoded: ctranslate2.StorageView, audios: list[np.ndarray]) -> list[list[dict]]:
    """Word timings (one more decoder pass), only when some window asks for them: windows of one start
    sequence (language and task) aligned together, as CTranslate2's align takes one for the whole batch."""
    aligned: list[list[dict]] = [[] for _ in requests]
    if not any(r.words for r in requests):
        return aligned
    parts: dict[tuple[int, ...], list[int]] = {}
    for i, tok in enumerate(tokenizers):
        parts.setdefault(tuple(tok.sot_sequence), []).append(i)
    for part in parts.values():
        rows = ctranslate2.StorageView.from_array(np.asarray(encoded)[part]) if len(part) < len(requests) else encoded
        found = model.find_alignment(tokenizers[part[0]], [texts[i] for i in part], rows,
                                     [len(audios[i]) // HOP for i in part])
        for i, words in zip(part, found):
            aligned[i] = words
    return aligned


def _features(model: WhisperModel, audios: list[np.ndarray], window_s: float) -> ctranslate2.StorageView:
    # Each window is padded with real zeros before the mel transform, as Whisper pads to 30 s, so the padded
    # frames look exactly like the silence the model was trained on.
    samples = int(window_s * SAMPLE_RATE)
    frames = int(window_s * SAMPLE_RATE) // HOP
    frames -= frames % 2  # the encoder's strided convolution halves the frame count
    batch = np.stack([model.feature_extractor(np.pad(a, (0, samples - len(a))))[:, :frames] for a in audios])
    return ctranslate2.StorageView.from_array(np.ascontiguousarray(batch, dtype=np.float32))


def detect_candidates(model: WhisperModel, requests: Sequence[WindowRequest], audios: Sequence[np.ndarray],
                      encoded: ctranslate2.StorageView | None) -> list[list[tuple[str, float]]]:
    """Each window's languages to decode it in, with their probabilities: the one asked for, else detected as
    faster-whisper's ``transcribe`` detects it, on a full 30 s window (a short window's shortened encoder input
    answered Chinese or Japanese for far more short accented English clips), or on the windows' own
    ``encoded`` input when it is mostly speech (``DETECT_IN_WINDOW_S``; None: not); two where the detection is
    unsure between them (``rivals``)."""
    if not model.model.is_multilingual:
        return [[("en", 1.0)]] * len(requests)
    todo = [i for i, r in enumerate(requests) if not r.language]
    if not todo:
        return [[(r.language or "en", 1.0)] for r in requests]
    if encoded is None:
        encoded = model.model.encode(_detection_features(model, [audios[i] for i in todo]))
        found = dict(zip(todo, model.model.detect_language(encoded)))
    else:
        found = dict(enumerate(model.model.detect_language(encoded)))
    return [[(r.language, 1.0)] if r.language else rivals(_codes(found[i]), r.languages)
            for i, r in enumerate(requests)]


def window_ranking(model: WhisperModel, audio: np.ndarray) -> list[tuple[str, float]]:
    """Detection alone on a window's own encoder input (what ``decode_batch`` encodes it on), most likely first,
    without the choice between two close languages its decoding then makes: for benchmarks and tests that look
    at the detector itself."""
    encoded = model.model.encode(_features(model, [audio], input_seconds(WindowRequest(audio, None))))
    return _codes(model.model.detect_language(encoded)[0])


def _codes(probabilities: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    return [(token[2:-2], float(p)) for token, p in probabilities]  # "<|en|>" -> "en"


def _detection_features(model: WhisperModel, audios: Sequence[np.ndarray]) -> ctranslate2.StorageView:
    # As faster-whisper's detect_language: the audio's own frames, trimmed or padded to 30 s.
    batch = np.stack([pad_or_trim(model.feature_extractor(a)[:, :FULL_FRAMES]) for a in audios])
    return ctranslate2.StorageView.from_array(np.ascontiguousarray(batch, dtype=np.float32))


def _prompts(tokenizers: Sequence[Tokenizer], requests: Sequence[WindowRequest], stamped: bool) -> list[list[int]]:
    """Each window's previous text (its most recent MAX_PROMPT_TOKENS, as Whisper drops the oldest when the
    context is full), then Whisper's start sequence. CTranslate2's batched generate needs
    <|startoftranscript|> at the same position in every prompt: a batch holds prompts of one length only
    (see _groups), and the start sequence has the same length for every language."""
    previous = [_previous(tok, r) for tok, r in zip(tokenizers, requests)]
    assert len({len(p) for p in previous}) == 1, "a batch mixes prompt lengths"
    return [[*([tok.sot_prev, *p] if p else []), *tok.sot_sequence, *([] if stamped else [tok.no_timestamps])]
            for tok, p in zip(tokenizers, previous)]


def _has_prompt(request: WindowRequest) -> bool:
    return bool(request.prompt and request.prompt.strip())


def _previous(tok: Tokenizer, request: WindowRequest) -> list[int]:
    if not request.prompt or not _has_prompt(request):
        return []
    return tok.encode(" " + request.prompt.strip())[-MAX_PROMPT_TOKENS:]


def _words(aligned: list[dict], seconds: float, text: str) -> tuple[Word, ...]:
    if aligned:
        merge_punctuations(aligned, PREPENDED, APPENDED)
        return tuple(Word(float(w["start"]), float(w["end"]), w["word"], float(w["probability"]))
                     for w in aligned if w["word"].strip())
    # find_alignment gives nothing for a single word: it spans the window.
    return (Word(0.0, seconds, " " + text.strip(), 1.0),) if text.strip() else ()
