"""An upload decoded as speech windows: find the speech, cut it into windows, decode them with other work.

Finding the speech is one scheduler job (the upload's admission: a full queue or a queue timeout refuses it
there, as before). Silence is never decoded: an upload of silence costs one VAD pass and answers "". The
windows then go to the shared WindowBatcher, batched with other uploads' windows, the uploads taking turns.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import numpy as np

from stt.engines.base import Engine, TranscribeOptions, Transcript, WindowRequest, WindowResult
from stt.inference.speech_windows import assemble, cut_windows, window_request

FindSpeech = Callable[[Callable[[], list[tuple[int, int]]]], Awaitable[list[tuple[int, int]]]]
Decode = Callable[[Sequence[WindowRequest]], Awaitable[list[WindowResult]]]


async def transcribe_windows(engine: Engine, audio: np.ndarray, options: TranscribeOptions,
                             run: FindSpeech, decode: Decode) -> Transcript:
    """``run`` runs a blocking job under the scheduler; ``decode`` hands windows to the batcher."""
    windows = cut_windows(await run(lambda: engine.find_speech(audio)), len(audio))
    results = await decode([window_request(w, audio, options) for w in windows]) if windows else []
    return assemble(windows, results, audio, options)
