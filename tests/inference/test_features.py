"""The bounded-memory log-Mel equals faster-whisper's own, for every length, at a fraction of the memory."""

import tracemalloc

import numpy as np
import pytest
from faster_whisper.feature_extractor import FeatureExtractor

from stt.audio import decode_audio
from stt.engines.features import BoundedMemoryFeatureExtractor
from tests.helpers import manifest


@pytest.mark.parametrize("n", [1, 399, 400, 401, 16000, 480000, 480001, 1_000_000])
def test_same_features_as_faster_whisper(n: int) -> None:
    audio = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 0.1
    expected = FeatureExtractor()(audio)
    actual = BoundedMemoryFeatureExtractor()(audio)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, atol=1e-6)


@pytest.mark.model
def test_peak_memory_does_not_grow_with_the_file() -> None:
    audio = decode_audio(manifest()["long/1089-134686_full_chapter.flac"].path.read_bytes())  # 276 s
    extractor = BoundedMemoryFeatureExtractor()
    tracemalloc.start()
    try:
        extractor(audio)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The original peaks at ~283 MB here (1 MB per second of audio); this keeps two copies of the signal
    # (4 bytes/sample) + the Mel output + one 30 s piece.
    assert peak < 4 * audio.nbytes + 40e6, peak / 1e6
