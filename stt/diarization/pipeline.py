"""Who spoke when: speaker embeddings of short stretches of speech, clustered; then words take their turn's speaker.

The speech detector's regions are cut into stretches at pauses (a turn change nearly always has one) and at
most ``MAX_UNIT_S`` long. Each stretch gets one embedding, the mean over 1.6 s windows inside it (the length
Resemblyzer's encoder was trained on), which is far steadier than one window's. Stretches long enough to be
trusted are clustered; the short rest join the nearest speaker.

Bounded work on any upload: mel frames are computed one stretch at a time (never for the whole file), the
volume gain comes from the speech alone, and at most ``MAX_CLUSTERED`` stretches shape the clusters (an even
sample over the file when there are more); every other stretch joins its nearest speaker, so clustering cost
does not grow with the square of the upload's length.

Engine-independent: it needs the audio and speech probabilities, nothing of Whisper; words come after. Blocking; run it in the
scheduler's workers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from stt.diarization.assign import word_turns  # pure numpy: renderers use it without torch
# The bounds on the work (and the memory they allow: stt/diarization/bounds.py)
from stt.diarization.bounds import BATCH, MAX_CLUSTERED, MAX_UNIT_S, PAUSE_S, WINDOW_FRAMES
from stt.diarization.clustering import centroids, cluster
from stt.diarization.encoder import HOP, SAMPLE_RATE, SpeakerEncoder, speech_gain
from stt.diarization.types import DiarizeOptions, Turn

__all__ = ["DiarizeOptions", "Turn", "diarize", "word_turns"]

FRAMES_PER_S = SAMPLE_RATE // HOP  # 100 mel frames a second
STEP_FRAMES = 40  # windows every 0.4 s inside a stretch
SPEECH_THRESHOLD = 0.5  # speech-detector probability
MIN_CLUSTERED_S = 1.0  # stretches shorter than this are too noisy to shape the clusters


Span = tuple[float, float]


def speech_spans(probabilities: np.ndarray, frame_s: float, max_unit_s: float = MAX_UNIT_S) -> list[Span]:
    """Speech-detector frame probabilities -> stretches of speech: joined over gaps shorter than PAUSE_S,
    then cut into pieces of at most ``max_unit_s`` (a missed pause then costs little)."""
    speech = np.r_[0, (probabilities >= SPEECH_THRESHOLD).astype(np.int8), 0]
    edges = np.flatnonzero(np.diff(speech))
    runs: list[list[float]] = []
    for start, end in zip(edges[::2] * frame_s, edges[1::2] * frame_s):
        if runs and start - runs[-1][1] < PAUSE_S:
            runs[-1][1] = end
        else:
            runs.append([start, end])
    out: list[Span] = []
    for start, end in runs:
        pieces = max(1, int(np.ceil((end - start) / max_unit_s - 1e-9)))
        bounds = np.linspace(start, end, pieces + 1)
        out.extend((float(a), float(b)) for a, b in zip(bounds[:-1], bounds[1:]))
    return out


def window_starts(first: int, last: int) -> list[int]:
    """Start frames of 1.6 s windows covering frames [first, last); one window for a shorter stretch."""
    if last - first <= WINDOW_FRAMES:
        return [first]
    starts = list(range(first, last - WINDOW_FRAMES + 1, STEP_FRAMES))
    if starts[-1] != last - WINDOW_FRAMES:
        starts.append(last - WINDOW_FRAMES)
    return starts


def _windows(encoder: SpeakerEncoder, audio: np.ndarray, spans: Sequence[Span],
             gain: float) -> Iterator[tuple[int, torch.Tensor]]:
    """(span index, window of mel frames) for every span, the mel computed from that span's audio alone.
    A span shorter than a window gives one window of its own length."""
    for index, (start, end) in enumerate(spans):
        first = max(0, int(start * SAMPLE_RATE))
        last = min(len(audio), max(first + HOP, int(np.ceil(end * SAMPLE_RATE))))
        mel = encoder.mel(audio[first:last], gain)
        for s in window_starts(0, len(mel)):
            yield index, mel[s:s + WINDOW_FRAMES]


def embed_spans(encoder: SpeakerEncoder, audio: np.ndarray, spans: Sequence[Span],
                gain: float | None = None) -> np.ndarray:
    """One L2-normed embedding per (start, end) span: the mean of its windows' embeddings. Memory: one batch
    of windows at a time, whatever the audio's length. Short windows are not padded to 1.6 s: the LSTM
    reads only their frames (packed), so a short turn sounds like its speaker and costs its own length."""
    gain = speech_gain(audio, spans) if gain is None else gain
    sums = np.zeros((len(spans), encoder.linear.out_features), dtype=np.float64)
    owners: list[int] = []
    windows: list[torch.Tensor] = []

    def flush() -> None:
        lengths = torch.tensor([len(w) for w in windows])
        batch = torch.stack([torch.nn.functional.pad(w, (0, 0, 0, WINDOW_FRAMES - len(w))) for w in windows])
        with torch.inference_mode():
            embedded = encoder(batch, lengths).numpy()
        np.add.at(sums, np.array(owners), embedded)
        owners.clear()
        windows.clear()

    for owner, window in _windows(encoder, audio, spans, gain):
        owners.append(owner)
        windows.append(window)
        if len(windows) == BATCH:
            flush()
    if windows:
        flush()
    return sums / np.linalg.norm(sums, axis=1, keepdims=True).clip(1e-8)


def diarize(encoder: SpeakerEncoder, audio: np.ndarray, probabilities: np.ndarray, frame_s: float,
            options: DiarizeOptions = DiarizeOptions()) -> list[Turn]:
    """Speaker turns of the audio, speakers numbered 0, 1, ... in order of first appearance."""
    spans = speech_spans(probabilities, frame_s)
    if not spans:
        return []
    embeddings = embed_spans(encoder, audio, spans)
    labels, similarity = label_units(embeddings, np.array([end - start for start, end in spans]), options)
    return [Turn(start, end, label, round(max(0.0, min(1.0, sim)), 4))
            for (start, end), label, sim in zip(spans, _renumber([int(x) for x in labels]), similarity)]


def label_units(embeddings: np.ndarray, seconds: np.ndarray,
                options: DiarizeOptions) -> tuple[np.ndarray, np.ndarray]:
    """Cluster the stretches long enough to trust (at most MAX_CLUSTERED of them, evenly spread), then give
    every stretch its nearest speaker. Returns the labels and each stretch's similarity to its speaker."""
    trusted = np.flatnonzero(seconds >= MIN_CLUSTERED_S)
    if len(trusted) < 2:
        trusted = np.arange(len(seconds))
    if len(trusted) > MAX_CLUSTERED:
        trusted = trusted[np.linspace(0, len(trusted) - 1, MAX_CLUSTERED).round().astype(int)]
    labels = cluster(embeddings[trusted], options.min_speakers, options.max_speakers)
    similarity = embeddings @ centroids(embeddings[trusted], labels).T
    return np.argmax(similarity, axis=1), similarity.max(axis=1)


def _renumber(labels: list[int]) -> list[int]:
    order: dict[int, int] = {}
    return [order.setdefault(label, len(order)) for label in labels]
