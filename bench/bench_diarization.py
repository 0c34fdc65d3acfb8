"""Diarization cost next to transcription cost, measured side by side in one run (the machine is shared).

For each file: faster-whisper base int8 transcription with word timestamps (what `diarize=true` runs), then
diarization of that transcript (speech detector + speaker embeddings + clustering), interleaved, best of
``--runs`` by wall time and by CPU seconds. Target: diarization <= 25 % of transcription time.

Usage: .venv/bin/python bench/bench_diarization.py [--runs 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stt.audio import decode_audio  # noqa: E402
from stt.diarization.diarizer import Diarizer  # noqa: E402
from stt.diarization.pipeline import DiarizeOptions  # noqa: E402
from stt.engines.base import TranscribeOptions  # noqa: E402
from stt.engines.factory import load_engine  # noqa: E402
from stt.settings import settings_from_dict  # noqa: E402
from tests.diarization_audio import conversation  # noqa: E402
from tests.helpers import AUDIO_DIR  # noqa: E402

TARGET = 0.25
LONG = "long/1089-134686_full_chapter.flac"


def timed(job):  # type: ignore[no-untyped-def]
    wall, cpu = time.perf_counter(), time.process_time()
    result = job()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    asr = settings_from_dict({"asr": {"model": "base", "compute_type": "int8", "threads": 2}}, env={}).asr
    engine = load_engine(asr)
    diarizer = Diarizer()
    files = {"5-speaker conversation": conversation(0.6).audio,
             "276 s chapter (1 speaker)": decode_audio((AUDIO_DIR / LONG).read_bytes())}
    options = TranscribeOptions(beam_size=5, word_timestamps=True)
    worst = 0.0
    for name, audio in files.items():
        minutes = len(audio) / 16000 / 60
        best = {"asr_wall": 1e9, "asr_cpu": 1e9, "dia_wall": 1e9, "dia_cpu": 1e9}
        for _ in range(args.runs):
            transcript, wall, cpu = timed(lambda: engine.transcribe(audio, options))
            best["asr_wall"], best["asr_cpu"] = min(best["asr_wall"], wall), min(best["asr_cpu"], cpu)
            _, wall, cpu = timed(lambda: diarizer.label(transcript, audio, DiarizeOptions()))
            best["dia_wall"], best["dia_cpu"] = min(best["dia_wall"], wall), min(best["dia_cpu"], cpu)
        wall_ratio = best["dia_wall"] / best["asr_wall"]
        cpu_ratio = best["dia_cpu"] / best["asr_cpu"]
        worst = max(worst, wall_ratio)
        print(f"{name}, {minutes * 60:.0f} s: transcription {best['asr_wall'] / minutes:.2f} s/min "
              f"({best['asr_cpu'] / minutes:.2f} CPU s/min), diarization {best['dia_wall'] / minutes:.2f} s/min "
              f"({best['dia_cpu'] / minutes:.2f} CPU s/min): {wall_ratio:.1%} of transcription by wall time, "
              f"{cpu_ratio:.1%} by CPU (target <= {TARGET:.0%})")
    return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
