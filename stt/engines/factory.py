"""Build the configured engine: resolve and verify the weights, then load them once."""

from __future__ import annotations

import logging
from pathlib import Path

from stt.engines.base import Engine
from stt.models import default_cache_dir, openai_checkpoint_path, resolve_ct2_model
from stt.settings import AsrSettings

log = logging.getLogger("stt.engines")


def load_engine(asr: AsrSettings) -> Engine:
    cache_dir = Path(asr.cache_dir).expanduser() if asr.cache_dir else default_cache_dir()
    if asr.engine == "openai-whisper":
        return _load_openai(asr, cache_dir)
    from stt.engines.faster_whisper_engine import FasterWhisperEngine

    model_dir = resolve_ct2_model(asr.model, cache_dir)
    return FasterWhisperEngine(model_dir, asr.model, compute_type=asr.compute_type, threads=asr.threads,
                               workers=asr.workers + asr.reserved_workers, device=asr.device,
                               languages=asr.languages)


def _load_openai(asr: AsrSettings, cache_dir: Path) -> Engine:
    # Imported lazily: torch costs ~1 s and hundreds of MB, which the default engine never needs.
    from stt.engines.ct2_to_torch import ensure_openai_checkpoint
    from stt.engines.openai_whisper_engine import OpenAIWhisperEngine

    given = Path(asr.model).expanduser()
    if given.suffix == ".pt" and given.is_file():
        checkpoint = given  # an openai-whisper checkpoint given by path is used as is
    else:
        ct2_dir = resolve_ct2_model(asr.model, cache_dir)
        checkpoint = ensure_openai_checkpoint(ct2_dir, openai_checkpoint_path(asr.model, ct2_dir, cache_dir))
    return OpenAIWhisperEngine(checkpoint, asr.model, threads=asr.threads, device=asr.device,
                               languages=asr.languages)
