"""Language detection on the first window's own encoding against 30 s of the upload, by the window's length.

The shared sets' clips are joined in order with 1 s pauses and cut to uploads of several lengths, so that the
first window (the speech, pauses cut out, up to 30 s) takes every length. On each upload the language is
detected both ways: on the first window's own encoder input (its speech and at least 5 s of silence, or a full
30 s window: what `decode_batch` encodes it on) and on 30 s of the upload from 1 s before its first speech
(its pauses kept, as faster-whisper's `transcribe` detects). Printed per band of first-window speech: uploads,
wrong languages each way, what the server answers (the detection it uses, and where that is unsure between two
languages the likelier reading of the first window, stt.inference.language_choice), and per set in the bands
where the server detects on the window's own input (`detects_in_window`: over 15 s of speech).

Usage: .venv/bin/python bench/bench_language.py [--model base] [--cut 8,12,16,20,24,40]
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_accuracy import joins, shared_sets  # noqa: E402
from stt.audio import SAMPLE_RATE  # noqa: E402
from stt.engines.base import TranscribeOptions  # noqa: E402
from stt.engines.batched_windows import window_ranking  # noqa: E402
from stt.engines.languages import choose_language  # noqa: E402
from stt.inference.language_choice import choose_upload_language  # noqa: E402
from stt.inference.speech_windows import cut_windows, upload_language  # noqa: E402
from tests.conftest import _load  # noqa: E402
from tests.helpers import Clip, joined_with_gaps  # noqa: E402

BANDS = ((0, 10), (10, 15), (15, 20), (20, 25), (25, 31))  # seconds of speech in the first window


def sets() -> dict[str, list[Clip]]:
    """bench_accuracy's shared sets, in file order, but its "other" clips (one clip per language: no joins)."""
    return {name: clips for name, clips in shared_sets(False, []).items() if name != "other"}


def band(seconds: float) -> tuple[int, int]:
    return next(b for b in BANDS if b[0] <= seconds < b[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="base")
    parser.add_argument("--cut", default="8,12,16,20,24,40", help="upload lengths in seconds, comma-separated")
    args = parser.parse_args()
    engine = _load("faster-whisper", args.model)
    # (band, set) -> [uploads, wrong on the window's own input, wrong on 30 s of the upload, wrong as the server
    # answers: the detection it uses, and between two close languages the likelier reading (language_choice)]
    tally: dict[tuple[tuple[int, int], str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for cut in (float(c) for c in args.cut.split(",")):
        for name, clips in sets().items():
            for part in joins(clips, cut):
                audio = joined_with_gaps(part, 1.0)[0][:int(cut * SAMPLE_RATE)]
                speech = engine.find_speech(audio)
                if not speech:
                    continue
                first = cut_windows(speech, len(audio))[0]
                upload = upload_language(engine, audio, speech, TranscribeOptions())  # no first window: 30 s of it
                own = choose_language(window_ranking(engine._model, first.audio(audio)))
                served = choose_upload_language(engine, audio, speech, TranscribeOptions(beam_size=5), first).language
                assert upload is not None and served is not None  # speech, and a multilingual model
                row = tally[band(first.samples / SAMPLE_RATE), name]
                row[0] += 1
                row[1] += own[0] != part[0].lang
                row[2] += upload[0] != part[0].lang
                row[3] += served[0] != part[0].lang
        print(f"uploads cut to {cut:g} s: done", file=sys.stderr, flush=True)
    print(f"{'first window speech':20s} {'set':16s} {'uploads':>7s} {'wrong: own input':>16s} {'30 s of upload':>14s}"
          f" {'the server':>10s}")
    for b in BANDS:
        rows = {name: row for (bb, name), row in sorted(tally.items()) if bb == b}
        total = [sum(r[i] for r in rows.values()) for i in range(4)]
        server = "own input" if engine.detects_in_window(b[0] * SAMPLE_RATE + 1) else "30 s of upload"
        print(f"{f'{b[0]}-{min(b[1], 30)} s':20s} {'all':16s} {total[0]:7d} {total[1]:16d} {total[2]:14d}"
              f" {total[3]:10d}   (the server detects on: {server})")
        for name, row in rows.items():
            if server == "own input" or row[1] or row[2] or row[3]:
                print(f"{'':20s} {name:16s} {row[0]:7d} {row[1]:16d} {row[2]:14d} {row[3]:10d}")


if __name__ == "__main__":
    main()
