"""Whisper's log-Mel spectrogram in bounded memory.

faster-whisper's FeatureExtractor transforms the whole file at once: its framed copy, complex spectrum and
magnitudes take ~1 MB per second of audio at their peak (283 MB for a 276 s file, gigabytes for an hour).
This subclass computes the very same frames 30 s at a time into one preallocated Mel array, so the peak no
longer grows with the length of the upload. The global max used for dynamic-range clipping is applied after
all pieces are done, exactly as in the original.
"""

from __future__ import annotations

import numpy as np
from faster_whisper.feature_extractor import FeatureExtractor

CHUNK_FRAMES = 3000  # 30 s of 10 ms frames per piece
DYNAMIC_RANGE = 8.0  # log10 units kept below the loudest bin, as in Whisper


class BoundedMemoryFeatureExtractor(FeatureExtractor):
    def __call__(self, waveform: np.ndarray, padding: int = 160, chunk_length: int | None = None) -> np.ndarray:
        if chunk_length is not None:
            self.n_samples = chunk_length * self.sampling_rate
            self.nb_max_frames = self.n_samples // self.hop_length
        half = self.n_fft // 2
        # Same padding as the original: `padding` zeros at the end, then centre frames by reflection.
        signal = np.pad(np.asarray(waveform, dtype=np.float32), (0, padding))
        signal = np.pad(signal, (half, half), mode="reflect")
        n_frames = (len(signal) - self.n_fft) // self.hop_length  # the last frame is dropped, as in Whisper
        window = np.hanning(self.n_fft + 1)[:-1].astype(np.float32)
        mel = np.empty((self.mel_filters.shape[0], n_frames), dtype=np.float32)
        for start in range(0, n_frames, CHUNK_FRAMES):
            stop = min(start + CHUNK_FRAMES, n_frames)
            mel[:, start:stop] = self._mel(signal, start, stop, window)
        np.log10(np.maximum(mel, 1e-10, out=mel), out=mel)
        np.maximum(mel, mel.max() - DYNAMIC_RANGE, out=mel)
        mel += 4.0
        mel /= 4.0
        return mel

    def _mel(self, signal: np.ndarray, start: int, stop: int, window: np.ndarray) -> np.ndarray:
        hop = self.hop_length
        frames = np.lib.stride_tricks.sliding_window_view(
            signal[start * hop: (stop - 1) * hop + self.n_fft], self.n_fft)[::hop]
        spectrum = np.fft.rfft(frames * window, n=self.n_fft, axis=-1).astype(np.complex64)
        magnitudes = np.abs(spectrum) ** 2
        return self.mel_filters @ magnitudes.T


def slaney_mel_filters(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """A Slaney-style mel filterbank (librosa's default): faster-whisper ships the formula, so nothing else
    needs librosa for one matrix (the speaker encoder uses it)."""
    return FeatureExtractor.get_mel_filters(sample_rate, n_fft, n_mels).astype(np.float32)
