"""The bounds on diarization's work, and the memory they allow: what diarizing an upload holds beyond its decoded
audio, computed before it runs so that it is reserved in the server's one memory budget (stt/memory_budget.py)
like the upload's other buffers. Importable without torch: the faces reserve it on the event loop.

Diarization (stt/diarization/pipeline.py) runs in three phases, one after the other, each a bounded piece at a
time:

1. the speech detector, CHUNK_FRAMES (60 s) at a time: Silero's ONNX graph on 60 s of audio. Measured +41 MiB
   peak RSS over the detector's run on 10 min of speech (2026-12-06); DETECTOR_BYTES leaves room over it.
2. the embeddings, one batch of BATCH windows of at most WINDOW_FRAMES mel frames at a time: the LSTM computes
   its 4 gates for every frame of the batch at once and keeps each layer's outputs and their packed (sorted)
   copies: about 8 x ENCODER_HIDDEN floats a frame, BATCH x WINDOW_FRAMES frames (320 MiB); the batch's mel
   frames exist three times (the windows' mels, their padded copies, the stack: 19 MiB). Measured on 10 min of
   continuous speech, where every batch is full: +297 MiB over the forward pass, +316 MiB for the whole job.
3. clustering: at most MAX_CLUSTERED stretches (a 600 x 600 distance matrix: 3 MB), inside phase 2's room.

What grows with the upload is small and held through all three: a float32 probability per 32 ms frame, and its
thresholded copies while the stretches are cut (PER_FRAME_BYTES), and, per speech stretch, its embedding sum
(float64) and normalised copy, 2 x 2 KiB, plus its span and turn objects (PER_STRETCH_BYTES; measured 4.3 KiB a
stretch between 527 and 2,111 stretches of bursts). An upload cannot have more stretches than one per
MIN_STRETCH_FRAMES frames: a stretch is at least one frame of speech, and two stretches closer than PAUSE_S
(5 frames) are one (a stretch cut at MAX_UNIT_S is longer still). The bound counts that many: real speech has
far fewer (10 min of speech: 291; of 220 ms bursts: 1,150), so an upload reserves more than it uses, never less.
"""

from __future__ import annotations

import math

from stt.live.speech_detector import FRAME

SAMPLE_RATE = 16000
CHUNK_FRAMES = 1875  # 60 s of 32 ms frames per speech-detector call
BATCH = 256  # windows per forward pass of the speaker encoder
WINDOW_FRAMES = 160  # 1.6 s of 10 ms mel frames: the length Resemblyzer's encoder was trained on
PAUSE_S = 0.15  # a gap in speech at least this long may be a change of speaker (stretches are cut there)
MAX_UNIT_S = 2.0  # longer stretches are cut in equal pieces
MAX_CLUSTERED = 600  # stretches that shape the clusters at most (an even sample beyond)
ENCODER_HIDDEN = 256  # the speaker encoder's LSTM width (Resemblyzer's weights)
ENCODER_MELS = 40  # mel bands per frame

MiB = 1024 * 1024
DETECTOR_BYTES = 48 * MiB
EMBED_BYTES = BATCH * WINDOW_FRAMES * (8 * ENCODER_HIDDEN + 3 * ENCODER_MELS) * 4
PER_FRAME_BYTES = 4 + 8  # the float32 probability, and the int8 and bool copies made to cut stretches
PER_STRETCH_BYTES = 4608  # 2 x 256 float64 (sum, normalised) + its span, run and turn objects
MIN_STRETCH_FRAMES = 1 + math.ceil(PAUSE_S * SAMPLE_RATE / FRAME)  # one frame of speech, then a pause


def working_bytes(samples: int) -> int:
    """The most diarizing ``samples`` of 16 kHz audio holds beyond the audio (reserve it before it runs)."""
    frames = samples // FRAME
    stretches = frames // MIN_STRETCH_FRAMES + 1
    return max(DETECTOR_BYTES, EMBED_BYTES) + frames * PER_FRAME_BYTES + stretches * PER_STRETCH_BYTES
