"""Where the speech is in an upload: Silero VAD (shipped inside faster-whisper), as its batched pipeline uses it.

Both engines answer ``Engine.find_speech`` with this, so silence is cut out the same way whatever decodes
the speech. Pieces are at most MAX_SPEECH_S long (split at the quietest point Silero finds), so each fits
one 30 s Whisper window.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps, get_vad_model

from stt.audio import SAMPLE_RATE

MAX_SPEECH_S = 30.0
# faster-whisper's BatchedInferencePipeline defaults: pauses of 160 ms are enough to cut at.
OPTIONS = VadOptions(max_speech_duration_s=MAX_SPEECH_S, min_silence_duration_ms=160)


# faster-whisper's search copies the whole audio about twice (padded, then framed with context) and runs
# ONNX on up to 320 s at once: measured here, 700 MB of peak for a 55 min upload, so a 4 h one would need
# GBs. A minute at a time holds a few times that minute whatever the upload's length (the 276 s chapter:
# 38 MB of peak growth against 115 MB at once, in the same time); speech across a minute's edge is joined
# again when it fits one piece.
CHUNK_S = 60.0


def silero_speech(audio: np.ndarray, chunk_s: float = CHUNK_S, options: VadOptions = OPTIONS,
                  join_gap: int = 0) -> list[tuple[int, int]]:
    """Blocking (~2 ms per second of audio); call from a scheduler job only. ``join_gap``: pieces at most this
    many samples apart are joined (when the result fits ``options.max_speech_duration_s``)."""
    pieces: list[tuple[int, int]] = []
    for pieces in silero_steps(audio, chunk_s, options, join_gap):
        pass
    return pieces


def silero_steps(audio: np.ndarray, chunk_s: float = CHUNK_S, options: VadOptions = OPTIONS,
                 join_gap: int = 0) -> Iterator[list[tuple[int, int]]]:
    """``silero_speech`` a chunk at a time: after each chunk, the speech found so far (a new list each time).
    Only its last piece may still change (grow at its end, joined with speech found in the next chunk), so a
    caller may start on the pieces before it (a streamed upload's first window). Blocking: advance it in
    scheduler jobs only."""
    chunk = int(chunk_s * SAMPLE_RATE)
    longest = options.max_speech_duration_s * SAMPLE_RATE
    pieces: list[tuple[int, int]] = []
    for offset in range(0, len(audio), chunk):
        found = get_speech_timestamps(audio[offset:offset + chunk], options)
        for start, end in ((offset + int(c["start"]), offset + int(c["end"])) for c in found):
            if pieces and pieces[-1][1] + join_gap >= start and end - pieces[-1][0] <= longest:
                pieces[-1] = (pieces[-1][0], end)  # speech that ran across a stretch's edge: one piece again
            else:
                pieces.append((start, end))
        yield list(pieces)


# The engines' own sequential decoding (``vad_filter=false``, or a temperature above 0) of a whole upload:
# faster-whisper's ``vad_filter`` searched the whole file at once (+3.1 GB on a 4 h near-silent FLAC). Here it
# is searched a minute at a time with faster-whisper's own options, and pauses shorter than its
# min_silence_duration_ms that a minute's edge split are joined again, so the speech kept is the same.
WHISPER_OPTIONS = VadOptions()


def whisper_speech(audio: np.ndarray) -> list[tuple[int, int]]:
    """What faster-whisper's ``vad_filter`` keeps, found a minute at a time."""
    return silero_speech(audio, options=WHISPER_OPTIONS,
                         join_gap=WHISPER_OPTIONS.min_silence_duration_ms * SAMPLE_RATE // 1000)


# ``vad_filter=false``: the client asked for no speech cutting (music, quiet or unusual speech that Silero's
# usual threshold may miss), so everything is decoded except stretches of at least SILENT_STRETCH_S in which
# Silero finds no speech even at a low threshold. Whisper spends ~2 CPU-s per 30 s of such silence and
# answers "you you you..." for it (1 h of near-silence: 71 CPU-s); a stretch this long cannot cut a word,
# and each kept stretch keeps SOUND_PAD_MS of margin on both sides.
SILENT_STRETCH_S = 30.0
SOUND_PAD_MS = 1000
SOUND_OPTIONS = VadOptions(threshold=0.25, min_silence_duration_ms=int(SILENT_STRETCH_S * 1000),
                           speech_pad_ms=SOUND_PAD_MS)


def sound_stretches(audio: np.ndarray) -> list[tuple[int, int]]:
    """All of the audio but its long silent stretches: [(0, len(audio))] for any ordinary recording."""
    found = silero_speech(audio, options=SOUND_OPTIONS, join_gap=int(SILENT_STRETCH_S * SAMPLE_RATE))
    edge = int(SILENT_STRETCH_S * SAMPLE_RATE)  # shorter silence at either end is kept too
    if found and found[0][0] < edge:  # no skipped stretch at the start: keep from the first sample
        found[0] = (0, found[0][1])
    if found and found[-1][1] > len(audio) - edge:
        found[-1] = (found[-1][0], len(audio))
    return found


def frame_model():  # type: ignore[no-untyped-def]
    """Silero's per-frame model as faster-whisper wraps it (one ONNX session per process, cached there)."""
    return get_vad_model()


def join_stretches(audio: np.ndarray, stretches: list[tuple[int, int]]) -> np.ndarray:
    """The stretches one after the other, in one array (a view when it is all of the audio)."""
    if stretches == [(0, len(audio))]:
        return audio
    out = np.empty(sum(end - start for start, end in stretches), dtype=np.float32)
    at = 0
    for start, end in stretches:
        out[at:at + end - start] = audio[start:end]
        at += end - start
    return out
