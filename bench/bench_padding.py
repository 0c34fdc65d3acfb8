"""Which encoder input the short windows need: per-set WER of ``decode_batch`` under encoder-input policies,
beside faster-whisper's own ``transcribe``, on every shared set, without a server (issue 15).

Each clip is cut into speech windows as an upload is (Silero VAD, ``cut_windows``), and its windows are decoded
by ``decode_batch`` (beam 5, language detected) with the encoder input
- ``audio+5``: the window's audio plus PAD_S of silence (the policy before window_seconds),
- ``step``: ``window_seconds`` (audio + PAD_S rounded up to STEP_S; the server's policy),
- ``full 30``: a full 30 s window (``WindowRequest.full_window``), as Whisper and ``transcribe`` encode it;
- ``whole step`` and ``whole 30``: a clip of at most 30 s not cut at all (its pauses and silent edges kept, as
  ``transcribe`` reads a file) on ``window_seconds`` or on a full window; a longer clip as ``step``;
and by ``WhisperModel.transcribe`` (beam 5, its defaults). The language is chosen once per clip, as the server
chooses an upload's (``choose_upload_language``), and reused by every policy, so the rows differ only by the
encoder input.
Printed per set: WER (Whisper's normalisers, corpus-level), answers in another language, runaway outputs, and
CPU seconds per clip (process time: robust on a shared machine), scored as bench_accuracy scores; then its
pooled rows (all FLEURS clips, every clip but speechocean762's).

Usage: .venv/bin/python bench/bench_padding.py [--sets speechocean762,fleurs] [--stride N]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stt.audio import SAMPLE_RATE, decode_audio  # noqa: E402
from stt.engines import batched_windows  # noqa: E402
from stt.engines.base import TranscribeOptions  # noqa: E402
from stt.engines.factory import load_engine  # noqa: E402
from stt.inference.language_choice import choose_upload_language  # noqa: E402
from stt.inference.speech_windows import SpeechWindow, assemble, cut_windows, window_request  # noqa: E402
from stt.settings import settings_from_dict  # noqa: E402
from bench.bench_accuracy import Answer, Clip, Row, pooled_rows, score, shared_sets  # noqa: E402

OWN = batched_windows.window_seconds
POLICIES: dict[str, Callable[[int], float] | None] = {  # None: WindowRequest.full_window
    "audio+5": lambda samples: min(batched_windows.MAX_WINDOW_S, samples / SAMPLE_RATE + batched_windows.PAD_S),
    "step": OWN,
    "full 30": None,
    "whole step": OWN,
    "whole 30": None,
}
WHOLE = ("whole step", "whole 30")  # policies that decode a clip of at most 30 s uncut


def policy_windows(policy: str, speech: list[tuple[int, int]], windows: list[SpeechWindow],
                   samples: int) -> list[SpeechWindow]:
    """The windows a policy decodes: the speech windows, or for WHOLE the clip itself when it has speech and fits
    one window."""
    if policy in WHOLE and speech and samples <= batched_windows.MAX_WINDOW:
        return [SpeechWindow(((0, samples),))]
    return windows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", default="")
    parser.add_argument("--stride", type=int, default=1, help="every Nth clip of each set")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--dump", default="", help="a TSV file for every clip's answers (file, mode, lang, text)")
    args = parser.parse_args()
    policies = [p for p in args.policies.split(",") if p]
    engine = load_engine(settings_from_dict({"asr": {"threads": 2}}, env={}).asr)
    model = engine._model  # type: ignore[attr-defined]
    options = TranscribeOptions(beam_size=5)
    modes = ["in-process", *policies]
    table: list[str] = []
    answered: dict[tuple[str, str], tuple[list[Clip], list[Answer]]] = {}  # (set, mode) -> its clips, answers
    for name, clips in shared_sets(False, [s for s in args.sets.split(",") if s]).items():
        clips = clips[::args.stride]
        answers: dict[str, list[Answer]] = {m: [] for m in modes}
        for clip in clips:
            audio = decode_audio(clip.path.read_bytes())
            cpu = time.process_time()
            segments, info = model.transcribe(audio, beam_size=5)
            text = "".join(s.text for s in segments).strip()
            answers["in-process"].append(Answer(text, info.language, time.process_time() - cpu))
            speech = engine.find_speech(audio)
            windows = cut_windows(speech, len(audio))
            choice = choose_upload_language(engine, audio, speech, options, windows[0] if windows else None)
            language, probability = choice.language or (None, 1.0)  # None: each window detects its own
            for policy in policies:
                cut = policy_windows(policy, speech, windows, len(audio))
                batched_windows.window_seconds = POLICIES[policy] or OWN
                requests = [dataclasses.replace(window_request(w, audio, options), words=False, language=language,
                                                full_window=POLICIES[policy] is None, all_speech=cut is windows)
                            for w in cut]
                cpu = time.process_time()
                results = batched_windows.decode_batch(model, requests) if requests else []
                spent = time.process_time() - cpu
                batched_windows.window_seconds = OWN
                results = [dataclasses.replace(r, language_probability=probability) for r in results]
                transcript = assemble(cut, results, audio, options)
                answers[policy].append(Answer(transcript.text, transcript.language, spent))
        if args.dump:
            with open(args.dump, "a", encoding="utf-8") as out:
                for mode in modes:
                    for c, a in zip(clips, answers[mode]):
                        out.write(f"{c.file}\t{mode}\t{a.language}\t{a.text}\n")
        answered |= {(name, mode): (clips, answers[mode]) for mode in modes}
        table.append(line([score(name, mode, clips, answers[mode]) for mode in modes]))
        print(table[-1], flush=True)
    pooled = pooled_rows(answered, modes)  # a few words decide a 4-5 clip set: these show what is systematic
    table += [line([r for r in pooled if r.name == name]) for name in dict.fromkeys(r.name for r in pooled)]
    print(f"\n{'set':<16}{'clips':>5}  " + "  ".join(f"{m:>21}" for m in modes))
    print(f"{'':<16}{'':>5}  " + "  ".join(f"{'WER%':>6}{'lang':>5}{'run':>4}{'cpu s':>6}" for _ in modes))
    print("\n".join(table))
    return 0


def line(rows: list[Row]) -> str:
    """One line of the table: the set, then per mode corpus WER, answers in another language, runaways, CPU s
    per clip (bench_accuracy's ``score`` of each mode, in order)."""
    cells = [f"{100 * r.wer:6.1f}{r.wrong_language:5d}{r.runaway:4d}{r.cpu_per_clip:6.2f}" for r in rows]
    return f"{rows[0].name:<16}{rows[0].clips:>5}  " + "  ".join(cells)


if __name__ == "__main__":
    sys.exit(main())
