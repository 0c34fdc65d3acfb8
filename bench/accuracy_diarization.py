"""Diarization accuracy through the HTTP API, as a user gets it: native ``/stt?diarize=true`` and OpenAI
``response_format=diarized_json``, one request at a time and 4 at a time.

Sets: every shared diarization file (``../shared/audio/eval/diarization``, RTTM references: pyannote's 30 s
meeting sample and 32 two-speaker LibriSpeech mixes with overlap), the LibriSpeech joins of
tests/test_diarization_real.py (five speakers, 0.6 s and 0.2 s pauses), two LibriSpeech speakers' utterances
joined with 1 s gaps, cut at 35 s, and one speaker's LibriSpeech clips (the count must stay 1).

Per set and face it prints:
- word speaker accuracy: the share of words whose label maps to the speaker who said it, under the best
  one-to-one mapping of labels to reference speakers (scipy's ``linear_sum_assignment``), pooled over the set's
  files. A word's speaker is the reference speaker active at its middle (the nearest turn's in a pause); words in
  overlapped speech (two speakers active) cannot be attributed to one speaker and are left out of both figures;
- the one-label floor: the same score if every word were labelled with the file's most talkative speaker;
- files whose speaker count is right (distinct labels in the answer against the reference).

The OpenAI answer has segment times only: its words are spread evenly over their segment.

Usage: .venv/bin/python bench/accuracy_diarization.py [--url URL --token TOKEN] [--concurrency 1 4]
(without --url it serves the app in-process with faster-whisper base int8, beam 5).
Interface for bench/bench_accuracy.py: ``evaluate(base_url, token, concurrency)`` and ``print_table(rows)``.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import dataclasses
import io
import json
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stt.audio import decode_audio  # noqa: E402
from tests.diarization_audio import conversation  # noqa: E402
from tests.helpers import AUDIO_DIR, Clip, joined_with_gaps, manifest  # noqa: E402

DIARIZATION_DIR = AUDIO_DIR / "eval" / "diarization"
RATE = 16000
TWO_SPEAKER_CUT_S = 35.0
Turn = tuple[float, float, str]  # start s, end s, reference speaker
Labelled = tuple[float, float, Any]  # start s, end s, label from the answer


@dataclasses.dataclass(frozen=True)
class Case:
    set: str
    name: str
    audio: bytes  # the file as uploaded
    turns: tuple[Turn, ...]

    @property
    def speakers(self) -> set[str]:
        return {s for _, _, s in self.turns}


def read_rttm(path: Path) -> dict[str, list[Turn]]:
    out: dict[str, list[Turn]] = collections.defaultdict(list)
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == "SPEAKER":
            start, length = float(parts[3]), float(parts[4])
            out[parts[1]].append((start, start + length, parts[7]))
    return out


def _wav(audio: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio, RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def shared_cases() -> list[Case]:
    """Every shared diarization file with a manifest row and an RTTM reference."""
    references: dict[str, list[Turn]] = {}
    for rttm in sorted(DIARIZATION_DIR.glob("*.rttm")):
        found = read_rttm(rttm)
        if len(found) == 1 and any(rttm.with_suffix(ext).exists() for ext in (".wav", ".flac")):
            found = {rttm.stem: next(iter(found.values()))}  # pyannote's names its file "sample"
        references.update(found)
    cases = []
    for row in manifest().values():
        path = AUDIO_DIR / row.file
        if not row.file.startswith("eval/diarization/") or path.suffix not in (".wav", ".flac"):
            continue
        turns = references.get(path.stem)
        if not turns:
            continue
        label = "pyannote sample (meeting)" if "pyannote" in path.stem else "LibriSpeech 2-speaker mixes"
        cases.append(Case(label, path.name, path.read_bytes(), tuple(turns)))
    return cases


def two_speaker_join() -> Case:
    """Two LibriSpeech speakers' utterances, alternating, joined with 1 s gaps and cut at 35 s."""
    clips = manifest()
    order = ["en/librispeech/1089-134686-0001.flac", "en/librispeech/1272-141231-0002.mp3",
             "en/librispeech/1089-134686-0000.flac", "en/librispeech/1272-128104-0004-8k.wav"]
    chosen: list[Clip] = [clips[f] for f in order]
    audio, spans = joined_with_gaps(chosen, 1.0)
    audio = audio[:int(TWO_SPEAKER_CUT_S * RATE)]
    turns = tuple((a, min(b, TWO_SPEAKER_CUT_S), c.file.split("/")[-1].split("-")[0])
                  for (a, b), c in zip(spans, chosen) if a < TWO_SPEAKER_CUT_S)
    return Case("2 speakers joined, 1 s gaps, 35 s", "two_speaker_35s", _wav(audio), turns)


def test_joins() -> list[Case]:
    out = []
    for gap in (0.6, 0.2):
        conv = conversation(gap)
        out.append(Case("test joins (5 speakers)", f"conversation gap {gap}", _wav(conv.audio), conv.turns))
    return out


def one_speaker() -> list[Case]:
    """LibriSpeech 1089's clips, one speaker each: the count must stay 1 (a method that always finds two
    would look good on the two-speaker sets alone)."""
    clips = sorted(c.file for c in manifest().values()
                   if c.category == "librispeech test-clean" and "/1089-" in c.file)
    return [Case("1 speaker (LibriSpeech clips)", Path(f).name, (AUDIO_DIR / f).read_bytes(),
                 ((0.0, 1e9, "1089"),)) for f in clips]


def all_cases() -> list[Case]:
    return [*shared_cases(), *test_joins(), two_speaker_join(), *one_speaker()]


@dataclasses.dataclass
class Score:
    scored: int = 0  # words said by one speaker
    correct: int = 0
    floor: int = 0  # correct if every word had the most talkative speaker's label
    overlapped: int = 0  # words in overlapped speech: left out
    right_count: bool = False
    found: int = 0


def word_truth(turns: tuple[Turn, ...], t: float) -> list[str]:
    active = sorted({s for a, b, s in turns if a <= t < b})
    if active:
        return active
    nearest = min(turns, key=lambda turn: min(abs(t - turn[0]), abs(t - turn[1])))
    return [nearest[2]]


def score(case: Case, words: list[Labelled], labels_found: set[Any]) -> Score:
    names = sorted(case.speakers)
    labels = sorted({str(label) for _, _, label in words})
    counts = np.zeros((max(len(labels), 1), len(names)))
    out = Score(found=len(labels_found), right_count=len(labels_found) == len(names))
    for start, end, label in words:
        truth = word_truth(case.turns, (start + end) / 2)
        if len(truth) > 1:
            out.overlapped += 1
            continue
        counts[labels.index(str(label)), names.index(truth[0])] += 1
    out.scored = int(counts.sum())
    rows, cols = linear_sum_assignment(-counts)
    out.correct = int(counts[rows, cols].sum())
    out.floor = int(counts.sum(axis=0).max()) if out.scored else 0
    return out


def _post(url: str, token: str, body: bytes, content_type: str) -> dict[str, Any]:
    request = urllib.request.Request(url, data=body, headers={"Authorization": f"Bearer {token}",
                                                              "Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=900) as resp:
        return json.load(resp)


def native(base_url: str, token: str, case: Case) -> tuple[list[Labelled], set[Any]]:
    body = _post(f"{base_url}/stt?diarize=true&output=verbose_json", token, case.audio, "application/octet-stream")
    words = [(w["start"], w["end"], w["speaker"]) for w in body.get("words", []) if w.get("speaker") is not None]
    found = {w[2] for w in words} | {s["speaker"] for s in body.get("segments", []) if s.get("speaker") is not None}
    return words, found


def openai(base_url: str, token: str, case: Case) -> tuple[list[Labelled], set[Any]]:
    boundary = uuid.uuid4().hex
    fields = {"model": "gpt-4o-transcribe-diarize", "response_format": "diarized_json", "chunking_strategy": "auto"}
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{case.name}"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + case.audio + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    body = _post(f"{base_url}/v1/audio/transcriptions", token, b"".join(parts),
                 f"multipart/form-data; boundary={boundary}")
    words: list[Labelled] = []
    for segment in body["segments"]:
        tokens = segment["text"].split()
        step = (segment["end"] - segment["start"]) / max(len(tokens), 1)
        words += [(segment["start"] + i * step, segment["start"] + (i + 1) * step, segment["speaker"])
                  for i in range(len(tokens))]
    return words, {s["speaker"] for s in body["segments"]}


FACES = {"native /stt": native, "OpenAI diarized_json": openai}


def evaluate(base_url: str, token: str, concurrency: int, faces: tuple[str, ...] = tuple(FACES),
             cases: list[Case] | None = None) -> list[dict[str, Any]]:
    """One row per (set, face): files, right speaker counts, word speaker accuracy and the one-label floor."""
    cases = cases if cases is not None else all_cases()
    jobs = [(face, case) for face in faces for case in cases]
    errors: list[str] = []

    def run(job: tuple[str, Case]) -> tuple[str, Case, Score | None]:
        face, case = job
        try:
            return face, case, score(case, *FACES[face](base_url, token, case))
        except Exception as exc:  # counted, never hidden: a failed request is an error in the table
            errors.append(f"{face} {case.name}: {exc}")
            return face, case, None

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(run, jobs))
    wall = time.monotonic() - started
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for face, case, s in results:
        row = rows.setdefault((case.set, face), {"set": case.set, "face": face, "concurrency": concurrency,
                                                  "files": 0, "errors": 0, "right_count": 0, "words": 0,
                                                  "correct": 0, "floor": 0, "overlapped": 0, "counts": []})
        row["files"] += 1
        if s is None:
            row["errors"] += 1
            continue
        row["right_count"] += s.right_count
        row["words"] += s.scored
        row["correct"] += s.correct
        row["floor"] += s.floor
        row["overlapped"] += s.overlapped
        row["counts"].append(f"{s.found}/{len(case.speakers)}")
    for face in faces:
        shared = [r for (set_, f), r in rows.items() if f == face and set_ in SHARED_SETS]
        if shared:
            total = {k: sum(r[k] for r in shared) for k in ("files", "errors", "right_count", "words", "correct",
                                                              "floor", "overlapped")}
            rows[("all shared files", face)] = {"set": "all shared files", "face": face, "concurrency": concurrency,
                                                 **total, "counts": []}
    for row in rows.values():
        row["accuracy"] = row["correct"] / row["words"] if row["words"] else float("nan")
        row["floor_accuracy"] = row["floor"] / row["words"] if row["words"] else float("nan")
        row["wall_s"] = round(wall, 1)
    for line in errors:
        print(f"error: {line}", file=sys.stderr)
    return list(rows.values())


SHARED_SETS = ("pyannote sample (meeting)", "LibriSpeech 2-speaker mixes")


def print_table(rows: list[dict[str, Any]]) -> None:
    print("| set | face | at once | files | right speaker count | word speaker accuracy | one-label floor | "
          "above floor | overlapped words left out | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        share = r["right_count"] / r["files"] if r["files"] else 0.0
        print(f"| {r['set']} | {r['face']} | {r['concurrency']} | {r['files']} | {r['right_count']} "
              f"({share:.0%}) | {r['accuracy']:.1%} | {r['floor_accuracy']:.1%} | "
              f"{(r['accuracy'] - r['floor_accuracy']) * 100:+.1f} pt | {r['overlapped']} | {r['errors']} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running server (default: serve the app in-process)")
    parser.add_argument("--token", default="bench-token")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--faces", nargs="+", choices=list(FACES), default=list(FACES))
    parser.add_argument("--counts", action="store_true", help="print each file's speakers found/reference")
    parser.add_argument("--sets", nargs="+", help="only the sets whose name starts with one of these")
    args = parser.parse_args()
    cases = [c for c in all_cases() if not args.sets or any(c.set.startswith(p) for p in args.sets)]
    if args.url:
        return _report(args, args.url, args.token, cases)
    from stt.engines.factory import load_engine
    from stt.http.app import create_app
    from stt.settings import settings_from_dict
    from tests.live_server import serve_in_thread

    settings = settings_from_dict({"server": {"http": {"allowed_tokens": [args.token]}},
                                   "asr": {"model": "base", "compute_type": "int8", "beam_size": 5}}, env={})
    with serve_in_thread(create_app(settings, engine=load_engine(settings.asr))) as url:
        return _report(args, url, args.token, cases)


def _report(args: argparse.Namespace, url: str, token: str, cases: list[Case]) -> int:
    rows = []
    for concurrency in args.concurrency:
        rows += evaluate(url, token, concurrency, tuple(args.faces), cases)
        print(f"-- {concurrency} at once: done", flush=True)
    print_table(rows)
    if args.counts:
        for r in rows:
            if r["counts"]:
                print(f"{r['set']}, {r['face']}, {r['concurrency']} at once: {' '.join(r['counts'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
