"""Who spoke when: speaker embeddings of short stretches of speech, clustered; then words take their turn's speaker.

The speech detector's regions are cut into stretches at pauses (a turn change nearly always has one) and at
most ``MAX_UNIT_S`` long. Each stretch gets one embedding, the mean over 1.6 s windows inside it (the length
Resemblyzer's encoder was trained on), which is far steadier than one window's. Stretches long enough to be
trusted are clustered; the short rest join the nearest speaker.

Engine-independent: it needs the audio and speech probabilities, nothing of Whisper; words come after. Blocking; run it in the
scheduler's workers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from stt.diarization.assign import word_turns  # pure numpy: renderers use it without torch
from stt.diarization.clustering import centroids, cluster
from stt.diarization.encoder import HOP, SAMPLE_RATE, SpeakerEncoder
from stt.diarization.types import DiarizeOptions, Turn

__all__ = ["DiarizeOptions", "Turn", "diarize", "word_turns"]

FRAMES_PER_S = SAMPLE_RATE // HOP  # 100 mel frames a second
WINDOW_FRAMES = 160  # 1.6 s: the length Resemblyzer's encoder was trained on
STEP_FRAMES = 40  # windows every 0.4 s inside a stretch
PAUSE_S = 0.15  # a gap in speech at least this long may be a change of speaker
SPEECH_THRESHOLD = 0.5  # speech-detector probability
MAX_UNIT_S = 4.0  # longer stretches are cut in equal pieces
MIN_CLUSTERED_S = 1.5  # stretches shorter than this are too noisy to shape the clusters
BATCH = 256  # windows per forward pass: bounds memory on long files


Span = tuple[float, float]


def speech_spans(probabilities: np.ndarray, frame_s: float) -> list[Span]:
    """Speech-detector frame probabilities -> stretches of speech: joined over gaps shorter than PAUSE_S,
    then cut into pieces of at most MAX_UNIT_S (a missed pause then costs little)."""
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
        pieces = max(1, int(np.ceil((end - start) / MAX_UNIT_S)))
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


def embed_units(encoder: SpeakerEncoder, mel: torch.Tensor, spans: Sequence[Span]) -> np.ndarray:
    """One L2-normed embedding per (start, end) span: the mean of its windows' embeddings."""
    windows: list[tuple[int, int]] = []  # (start frame, last frame): copied into tensors one batch at a time
    owner: list[int] = []
    for index, (start, end) in enumerate(spans):
        first = max(0, int(start * FRAMES_PER_S))
        last = min(len(mel), max(first + 1, int(np.ceil(end * FRAMES_PER_S))))
        for s in window_starts(first, last):
            windows.append((s, min(s + WINDOW_FRAMES, last)))
            owner.append(index)

    def batch(i: int) -> torch.Tensor:
        return torch.stack([torch.nn.functional.pad(mel[a:b], (0, 0, 0, WINDOW_FRAMES - (b - a)))
                            for a, b in windows[i:i + BATCH]])

    with torch.inference_mode():
        embedded = np.concatenate([encoder(batch(i)).numpy() for i in range(0, len(windows), BATCH)])
    sums = np.zeros((len(spans), embedded.shape[1]), dtype=np.float64)
    np.add.at(sums, np.array(owner), embedded)
    return sums / np.linalg.norm(sums, axis=1, keepdims=True).clip(1e-8)


def diarize(encoder: SpeakerEncoder, audio: np.ndarray, probabilities: np.ndarray, frame_s: float,
            options: DiarizeOptions = DiarizeOptions()) -> list[Turn]:
    """Speaker turns of the audio, speakers numbered 0, 1, ... in order of first appearance."""
    spans = speech_spans(probabilities, frame_s)
    if not spans:
        return []
    embeddings = embed_units(encoder, encoder.mel(audio), spans)
    labels, similarity = label_units(embeddings, np.array([end - start for start, end in spans]), options)
    return [Turn(start, end, label, round(max(0.0, min(1.0, sim)), 4))
            for (start, end), label, sim in zip(spans, _renumber([int(x) for x in labels]), similarity)]


def label_units(embeddings: np.ndarray, seconds: np.ndarray,
                options: DiarizeOptions) -> tuple[np.ndarray, np.ndarray]:
    """Cluster the stretches long enough to trust, then give every stretch its nearest speaker.
    Returns the labels and each stretch's similarity to its speaker's centroid."""
    trusted = seconds >= MIN_CLUSTERED_S
    if trusted.sum() < 2:
        trusted = np.ones(len(seconds), dtype=bool)
    labels = cluster(embeddings[trusted], options.min_speakers, options.max_speakers)
    similarity = embeddings @ centroids(embeddings[trusted], labels).T
    return np.argmax(similarity, axis=1), similarity.max(axis=1)


def _renumber(labels: list[int]) -> list[int]:
    order: dict[int, int] = {}
    return [order.setdefault(label, len(order)) for label in labels]
