"""The engine's sequential path (``vad_filter=false``, or a temperature above 0): faster-whisper's own whole-file
speech search against ours (a minute at a time, stt/engines/speech.py), side by side on the shared sets.

For each set: WER of both, how many transcripts are identical, and the peak traced memory (tracemalloc does
not see ONNX's buffers: the RSS figures of the 4 h upload are in bench/abuse.py). Temperature 0 so that both
runs are deterministic (the search is the same for every temperature).

Usage: .venv/bin/python bench/bench_speech_search.py [--model base] [--per-set 25]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stt.audio import decode_audio  # noqa: E402
from stt.engines.base import TranscribeOptions, join_segments  # noqa: E402
from stt.engines.factory import load_engine  # noqa: E402
from stt.engines.faster_whisper_engine import _segment  # noqa: E402
from stt.settings import AsrSettings  # noqa: E402
from tests.helpers import AUDIO_DIR, manifest, wer  # noqa: E402

SETS = ("long/", "eval/diarization/", "eval/fleurs/", "eval/speechocean762/", "en/librispeech/")


def faster_whisper_own(engine, audio, options: TranscribeOptions) -> str:  # type: ignore[no-untyped-def]
    """What the engine did before: faster-whisper's vad_filter on the whole upload."""
    segments, _ = engine._model.transcribe(audio, language=options.language, beam_size=options.beam_size,
                                           temperature=list(options.temperature), vad_filter=options.vad_filter,
                                           condition_on_previous_text=True)
    return join_segments(tuple(_segment(s) for s in segments))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="base")
    parser.add_argument("--per-set", type=int, default=25)
    parser.add_argument("--vad-filter", choices=("true", "false"), default="true")
    args = parser.parse_args()
    engine = load_engine(AsrSettings(model=args.model, threads=2))
    clips = manifest()
    vad = args.vad_filter == "true"
    print(f"model {args.model}, vad_filter={args.vad_filter}, temperature 0: faster-whisper's own search | ours")
    for prefix in SETS:
        chosen = [c for name, c in sorted(clips.items()) if name.startswith(prefix) and c.transcript][:args.per_set]
        if not chosen:
            continue
        refs, old, new, same, took_old, took_new = [], [], [], 0, 0.0, 0.0
        for clip in chosen:
            audio = decode_audio((AUDIO_DIR / clip.file).read_bytes())
            language = clip.lang if engine.multilingual else "en"
            options = TranscribeOptions(language=language, temperature=(0.0,), vad_filter=vad)
            started = time.process_time()
            a = faster_whisper_own(engine, audio, options)
            took_old += time.process_time() - started
            started = time.process_time()
            b = engine.transcribe(audio, options).text
            took_new += time.process_time() - started
            refs.append(clip.transcript)
            old.append(a)
            new.append(b)
            same += a.strip() == b.strip()
        lang = chosen[0].lang
        print(f"{prefix:24} {len(chosen):3} files | WER {wer(refs, old, lang):.3f} | {wer(refs, new, lang):.3f} | "
              f"identical {same}/{len(chosen)} | CPU {took_old:.0f} s | {took_new:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
