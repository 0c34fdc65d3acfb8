"""Speaker embeddings: Resemblyzer's pretrained speaker encoder, loaded offline and verified by sha256.

The weights come from the pinned `resemblyzer` wheel (`resemblyzer/pretrained.pt`, a GE2E-trained 3-layer LSTM
+ linear on 40-band mel frames). The package itself is not imported: its `__init__` pulls librosa and webrtcvad
(and declares the `typing` backport) for preprocessing we do not need, so it is installed without dependencies
and this module mirrors its network, loading the same state dict. Blocking and CPU-heavy: call it only from the
scheduler's workers.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stt.diarization.bounds import ENCODER_HIDDEN, ENCODER_MELS
from stt.models import ModelError, verify_file

WEIGHTS_PACKAGE = "resemblyzer"
WEIGHTS_FILE = "pretrained.pt"
WEIGHTS_SHA256 = "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"  # resemblyzer==0.1.4
SAMPLE_RATE = 16000
N_FFT = 400  # 25 ms windows
HOP = 160  # 10 ms frames
N_MELS = ENCODER_MELS
HIDDEN = ENCODER_HIDDEN
LAYERS = 3
TARGET_DBFS = -30.0  # Resemblyzer's volume normalisation: its inputs are mel power, not log-mel


def weights_path() -> Path:
    # find_spec locates the package without running its __init__ (which would import librosa).
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"speaker encoder package {WEIGHTS_PACKAGE!r} is not installed: run 'make install'")
    return Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE


class SpeakerEncoder(nn.Module):
    """Resemblyzer's VoiceEncoder network: mel frames (batch, frames, 40) -> L2-normed 256-d embeddings."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(N_MELS, HIDDEN, LAYERS, batch_first=True)
        self.linear = nn.Linear(HIDDEN, HIDDEN)
        self.relu = nn.ReLU()
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)
        self.register_buffer("mel_filters", torch.from_numpy(_mel_filters()), persistent=False)

    def forward(self, mels: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``lengths``: each window's real frame count (the rest is padding the LSTM never reads)."""
        if lengths is not None:
            mels = nn.utils.rnn.pack_padded_sequence(mels, lengths, batch_first=True, enforce_sorted=False)
        _, (hidden, _) = self.lstm(mels)
        raw = self.relu(self.linear(hidden[-1]))
        return raw / torch.norm(raw, dim=1, keepdim=True).clamp_min(1e-8)

    def mel(self, audio: np.ndarray, gain: float | None = None) -> torch.Tensor:
        """16 kHz mono float32 -> (frames, 40) mel power, one frame per 10 ms, as Resemblyzer computes it.
        ``gain``: the volume gain to apply (default: Resemblyzer's, from this audio's own level). Call it on
        bounded pieces: the STFT holds about 20 times the piece's bytes."""
        scaled = normalize_volume(audio) if gain is None else (audio * gain).astype(np.float32)
        wav = torch.from_numpy(scaled)
        spec = torch.stft(wav, N_FFT, HOP, window=self.window, center=True, pad_mode="constant",
                          return_complex=True).abs() ** 2
        return (self.mel_filters @ spec).T.contiguous()


def _mel_filters() -> np.ndarray:
    # Slaney-style mel filterbank: librosa's default, which Resemblyzer was trained with.
    from stt.engines.features import slaney_mel_filters

    return slaney_mel_filters(SAMPLE_RATE, N_FFT, N_MELS)


def normalize_volume(audio: np.ndarray) -> np.ndarray:
    """Raise quiet audio to -30 dBFS (never lower it), as Resemblyzer's preprocessing does."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
    if rms <= 1e-6:
        return audio.astype(np.float32, copy=False)
    gain = 10 ** ((TARGET_DBFS - 20 * np.log10(rms)) / 20)
    return (audio * max(gain, 1.0)).astype(np.float32)


def speech_gain(audio: np.ndarray, spans: Sequence[tuple[float, float]]) -> float:
    """Resemblyzer's volume gain (raise to -30 dBFS, never lower) from the level of the speech alone: a
    recording's silence must not change how its voices sound to the encoder. One span at a time: no copy."""
    total, count = 0.0, 0
    for start, end in spans:
        piece = audio[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)]
        total += float(np.dot(piece.astype(np.float64, copy=False), piece))
        count += len(piece)
    rms = np.sqrt(total / count) if count else 0.0
    if rms <= 1e-6:
        return 1.0
    return max(1.0, float(10 ** ((TARGET_DBFS - 20 * np.log10(rms)) / 20)))


def load_encoder(path: Path | None = None, expected_sha256: str = WEIGHTS_SHA256) -> SpeakerEncoder:
    path = path or weights_path()
    verify_file(path, expected_sha256, "speaker encoder")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: v for k, v in checkpoint["model_state"].items() if not k.startswith("similarity_")}
    encoder = SpeakerEncoder()
    encoder.load_state_dict(state)  # strict: every LSTM/linear weight must be there
    return encoder.eval()
