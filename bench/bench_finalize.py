"""Finalize in the middle of speech: words lost, and the WER of the finals beside the same clip without it.

    .venv/bin/python bench/bench_finalize.py [--model base] [--cuts 0.4,0.6] [--interim 0.3]

Each shared LibriSpeech test-clean clip (and JFK) of 4 s or more goes through the live session (the speech
detector and the engine's batched window decoding, in process, no network) as issue 17's client sends it:
the clip up to a cut in the middle of speech, Finalize, the rest, Finalize, 3 s of silence, CloseStream.
The same clip without Finalize is the baseline. Printed per cut position and in total: reference words lost
(deletions, Whisper's normaliser) and the WER of the finals, with and without Finalize, side by side.
Targets (issue 17): words lost after a mid-speech Finalize 0 more than without; WER within 2 points.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jiwer
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stt.audio import decode_audio  # noqa: E402
from stt.engines.base import Engine  # noqa: E402
from stt.live.session import StreamConfig, StreamSession, Transcribed  # noqa: E402
from stt.live.speech_detector import SpeechDetector  # noqa: E402
from tests.helpers import _EN, manifest  # noqa: E402
from tests.live_helpers import finalized_stream  # noqa: E402


def stream(engine: Engine, detector: SpeechDetector, audio: np.ndarray, cut: int | None, interim_s: float) -> str:
    session = StreamSession(StreamConfig(interim_interval_s=interim_s), detector)
    events = finalized_stream(session, lambda step: engine.decode_windows([step.request])[0], audio, cut)
    return " ".join(e.text for e in events if isinstance(e, Transcribed) and e.is_final and e.text)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="base")
    parser.add_argument("--cuts", default="0.4,0.6", help="cut positions, as fractions of each clip")
    parser.add_argument("--interim", type=float, default=0.3,
                        help="seconds of audio between interim passes (the server's 0.3 s; more: a quicker run)")
    args = parser.parse_args()
    from stt.engines.factory import load_engine
    from tests.conftest import make_settings

    engine = load_engine(make_settings(asr={"engine": "faster-whisper", "model": args.model, "threads": 2}).asr)
    detector = SpeechDetector()
    clips = [c for c in manifest().values()
             if c.category in ("librispeech test-clean", "en-misc") and 4.0 <= c.seconds <= 30.0]
    fractions = [float(f) for f in args.cuts.split(",")]
    refs: list[str] = []
    plain: list[str] = []
    cut_hyps: dict[float, list[str]] = {f: [] for f in fractions}
    started = time.monotonic()
    for clip in clips:
        audio = decode_audio(clip.path.read_bytes())
        refs.append(_EN(clip.transcript))
        plain.append(_EN(stream(engine, detector, audio, None, args.interim)))
        for f in fractions:
            cut_hyps[f].append(_EN(stream(engine, detector, audio, int(f * len(audio)), args.interim)))
    print(f"{len(clips)} clips, {sum(len(r.split()) for r in refs)} reference words, model {args.model}, "
          f"interim passes every {args.interim:g} s, {time.monotonic() - started:.0f} s")
    base = jiwer.process_words(refs, plain)
    print(f"{'stream':<28} {'words lost':>10} {'WER %':>7}")
    print(f"{'no Finalize':<28} {base.deletions:>10} {100 * base.wer:>7.2f}")
    for f, hyps in cut_hyps.items():
        out = jiwer.process_words(refs, hyps)
        verdict = "met" if out.deletions <= base.deletions and out.wer <= base.wer + 0.02 else "NOT met"
        print(f"{f'Finalize at {f:.0%} + at end':<28} {out.deletions:>10} {100 * out.wer:>7.2f}   "
              f"lost +{out.deletions - base.deletions}, WER {100 * (out.wer - base.wer):+.2f} pt: {verdict}")


if __name__ == "__main__":
    main()
