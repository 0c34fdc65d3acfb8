"""Language detection on long uploads: the upload's first full window against the first 30 s of the upload.

The shared sets' clips are short; a long recording's first window is usually a full one (over 25 s of
speech). Each set's clips are joined in order, with 1 s pauses, into uploads of about 40 s, and on every
upload whose first window is full the language is detected both ways, as `upload_language` does today (the
window, as its decoding encodes it) and as it did before (30 s of the upload from 1 s before its first
speech, its pauses kept). Printed per set: uploads, wrong languages each way, uploads where they differ, and
where both are right, how often the window's probability is the higher.

Usage: .venv/bin/python bench/bench_language.py [--model base] [--join-seconds 40]
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stt.engines.languages import choose_language  # noqa: E402
from stt.inference.speech_windows import LEAD_IN, MAX_WINDOW, cut_windows  # noqa: E402
from tests.conftest import _load  # noqa: E402
from tests.helpers import Clip, joined_with_gaps, manifest  # noqa: E402


def sets() -> dict[str, list[Clip]]:
    out: dict[str, list[Clip]] = defaultdict(list)
    for clip in manifest().values():
        if clip.category == "speechocean762":
            out["speechocean762"].append(clip)
        elif clip.category == "fleurs":
            out[f"fleurs-{clip.lang}"].append(clip)
        elif clip.category.startswith("librispeech"):
            out["librispeech"].append(clip)
    return {name: sorted(clips, key=lambda c: str(c.path)) for name, clips in sorted(out.items())}


def joins(clips: list[Clip], seconds: float) -> list[list[Clip]]:
    out: list[list[Clip]] = [[]]
    for clip in clips:
        if sum(c.seconds for c in out[-1]) >= seconds:
            out.append([])
        out[-1].append(clip)
    return [j for j in out if j]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="base")
    parser.add_argument("--join-seconds", type=float, default=40.0)
    args = parser.parse_args()
    engine = _load("faster-whisper", args.model)
    print(f"{'set':16s} {'uploads':>7s} {'wrong: window':>13s} {'first 30 s':>10s} {'differ':>6s} {'window surer':>12s}")
    for name, clips in sets().items():
        uploads = wrong_window = wrong_raw = differ = both_right = surer = 0
        for part in joins(clips, args.join_seconds):
            audio, _ = joined_with_gaps(part, 1.0)
            speech = engine.find_speech(audio)
            windows = cut_windows(speech, len(audio))
            if not windows or not engine.detects_in_window(windows[0].samples):
                continue
            start = max(0, speech[0][0] - LEAD_IN)
            raw = choose_language(engine.detect_language(audio[start:start + MAX_WINDOW]))
            window = engine.window_language(windows[0].audio(audio))
            lang = part[0].lang
            uploads += 1
            wrong_window += window[0] != lang
            wrong_raw += raw[0] != lang
            differ += window[0] != raw[0]
            if window[0] == raw[0] == lang:
                both_right += 1
                surer += window[1] > raw[1]
        print(f"{name:16s} {uploads:7d} {wrong_window:13d} {wrong_raw:10d} {differ:6d} {surer:7d} of {both_right}",
              flush=True)


if __name__ == "__main__":
    main()
