"""Speaker embeddings -> speaker labels, with scikit-learn's agglomerative clustering (cosine, average linkage).

The number of speakers is found in two steps unless the caller bounds it:
- voices clearly apart are separated by average linkage at ``DISTANCE_THRESHOLD`` (high enough that one voice
  heard over many stretches is not cut in pieces); clusters too small to be a speaker (a few stretches straddling
  a turn change, a cough) are folded into their nearest neighbour;
- when that finds one voice, one voice or two is decided on the two halves of a 2-means split: two speakers when
  their stretches are on average at least ``SPLIT_DISTANCE`` apart. Two close voices (a meeting's two people on
  one microphone, overlapped speech) are on average closer than two distinct voices but farther than two halves
  of one voice, whose stretches vary around one centre.
Both thresholds were chosen on all the shared sets together (bench/accuracy_diarization.py): LibriSpeech
two-speaker mixes, pyannote's meeting sample, the five-speaker joins, two speakers joined, and 13 one-speaker
LibriSpeech recordings (3 s to 276 s); each lies inside a range where no set changes by more than a file.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import AgglomerativeClustering, KMeans

from stt.diarization.types import DISTANCE_THRESHOLD

MIN_CLUSTER_FRACTION = 0.03  # of all stretches (from 67 on); smaller clusters are not taken for speakers
# A single distinct stretch is kept as a speaker in shorter recordings: a short turn (tests/test_diarization_real.py).
SPLIT_DISTANCE = 0.30  # one voice or two: mean cosine distance between the halves of a 2-means split (0.28-0.32)


def cluster(embeddings: np.ndarray, min_speakers: int = 1, max_speakers: int | None = None,
            threshold: float | None = None, min_windows: int = 1) -> np.ndarray:
    """(n, d) L2-normed embeddings -> n labels 0..k-1, numbered by first appearance."""
    n = len(embeddings)
    if n < 2:
        return np.zeros(n, dtype=int)
    labels = _agglomerate(embeddings, n_clusters=None, threshold=threshold or DISTANCE_THRESHOLD)
    labels = _fold_small(embeddings, labels, max(min_windows, int(MIN_CLUSTER_FRACTION * n)))
    if len(np.unique(labels)) == 1:
        labels = _one_or_two(embeddings)
    count = len(np.unique(labels))
    upper = min(max_speakers or n, n)
    wanted = min(max(count, min_speakers), upper)
    if wanted != count:
        labels = _agglomerate(embeddings, n_clusters=wanted, threshold=None)
    return _renumber(labels)


def _one_or_two(embeddings: np.ndarray) -> np.ndarray:
    """Two speakers if the halves of a 2-means split are on average SPLIT_DISTANCE apart, else one."""
    halves = KMeans(n_clusters=2, n_init=10, random_state=0).fit_predict(embeddings)
    if len(np.unique(halves)) < 2:
        return np.zeros(len(embeddings), dtype=int)
    apart = 1.0 - float((embeddings[halves == 0] @ embeddings[halves == 1].T).mean())
    return halves if apart >= SPLIT_DISTANCE else np.zeros(len(embeddings), dtype=int)


def _agglomerate(embeddings: np.ndarray, n_clusters: int | None, threshold: float | None) -> np.ndarray:
    model = AgglomerativeClustering(n_clusters=n_clusters, metric="cosine", linkage="average",
                                    distance_threshold=threshold)
    return model.fit_predict(embeddings)


def _fold_small(embeddings: np.ndarray, labels: np.ndarray, min_size: int) -> np.ndarray:
    """Reassign the members of clusters under ``min_size`` to the nearest remaining centroid."""
    ids, sizes = np.unique(labels, return_counts=True)
    keep = ids[sizes >= min_size]
    if len(keep) == 0 or len(keep) == len(ids):
        return labels
    centroids = np.stack([embeddings[labels == k].mean(axis=0) for k in keep])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    nearest = keep[np.argmax(embeddings @ centroids.T, axis=1)]
    return np.where(np.isin(labels, keep), labels, nearest)


def _renumber(labels: np.ndarray) -> np.ndarray:
    """Speaker 0 is whoever speaks first, then 1, ...: stable, readable numbering."""
    order: dict[int, int] = {}
    for label in labels:
        order.setdefault(int(label), len(order))
    return np.array([order[int(label)] for label in labels], dtype=int)


def centroids(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(k, d) L2-normed mean embedding of each label 0..k-1."""
    out = np.stack([embeddings[labels == k].mean(axis=0) for k in range(int(labels.max()) + 1)])
    return out / np.linalg.norm(out, axis=1, keepdims=True)
