"""Accuracy of the server's default path beside faster-whisper's own ``transcribe``, on every shared set, one run.

For each clip of the shared sets (LibriSpeech, speechocean762's short non-native utterances, FLEURS en/de/fr/es/pt,
the few other clips with a reference): faster-whisper's ``WhisperModel.transcribe`` in this process (same weights,
beam 5, language detected, its defaults otherwise), then the server's app (``create_app``, the default config but
2 threads) through ``POST /stt`` like a user, language detected, requests one at a time and then 4 at a time (batch
composition must not change a transcript's quality). Printed per set:

- WER after Whisper's normaliser (English one for English, the basic one otherwise), corpus-level;
- runaway outputs: hypotheses longer than 1.5 x the reference's words + 3;
- answers in another language than the clip's;
- CPU seconds per clip (process CPU time: a load-robust stand-in for latency on a shared machine).

Diarization rows come from ``bench/accuracy_diarization.py`` when it exists (``evaluate(base_url, token,
concurrency) -> rows`` and ``print_table(rows)``), run against the same server.

``--live`` adds the live finals (``bench/accuracy_live.py``: each clip streamed to ``/v1/listen`` with its
language given, 1 and 4 streams at a time): WER and runaway outputs (their language column is the one given).

``--joined`` adds each set's clips joined in order with 1 s pauses into uploads of ~60 s ("joined <set>" rows):
a shared clip is one speech window, a real recording is cut into many, and what happens where windows meet or
fill their 30 s (a window's last sentence dropped) shows only there.

Usage: .venv/bin/python bench/bench_accuracy.py [--quick] [--live] [--joined] [--sets librispeech,speechocean762,...] [--modes "server x1"]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.util
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import jiwer  # noqa: E402
from aiohttp.test_utils import TestServer  # noqa: E402
from whisper.normalizers import BasicTextNormalizer, EnglishTextNormalizer  # noqa: E402

from stt.audio import decode_audio  # noqa: E402
from stt.http import aiohttp_patches  # noqa: E402
from stt.http.app import PARSER_OPTIONS, create_app  # noqa: E402
from stt.http.keys import ENGINE  # noqa: E402
from stt.settings import settings_from_dict  # noqa: E402
from tests.helpers import TOKEN, Clip, joined_with_gaps, manifest, wav  # noqa: E402
from bench.accuracy_live import live_answers  # noqa: E402

RUNAWAY_RATIO, RUNAWAY_SLACK = 1.5, 3
NORMALISERS = {"en": EnglishTextNormalizer(), "other": BasicTextNormalizer()}
MODES = ("in-process", "server x1", "server x4")
LIVE_MODES = ("live x1", "live x4")  # --live: the finals of /v1/listen (bench/accuracy_live.py)


def set_name(clip: Clip) -> str | None:
    if clip.category.startswith("librispeech"):
        return "librispeech"
    if clip.category == "speechocean762":
        return "speechocean762"
    if clip.category == "fleurs":
        return f"fleurs-{clip.lang}"
    if clip.category in ("en-misc", "non-english"):
        return "other"
    return None  # diarization files (their own rows), the long chapter, the stereo edge case


def shared_sets(quick: bool, only: Sequence[str]) -> dict[str, list[Clip]]:
    sets: dict[str, list[Clip]] = {}
    for clip in sorted(manifest().values(), key=lambda c: c.file):
        name = set_name(clip)
        if name and clip.transcript and (not only or name in only or name.split("-")[0] in only):
            sets.setdefault(name, []).append(clip)
    if quick:  # every set still represented: a stride through it
        sets = {name: clips[::max(1, len(clips) // (40 if name == "speechocean762" else 5))]
                for name, clips in sets.items()}
    return sets


JOIN_S = 60.0  # --joined: each set's clips joined in order, with 1 s pauses, into uploads of about this length


def joins(clips: list[Clip], seconds: float) -> list[list[Clip]]:
    """The clips in order, in joins of at least ``seconds`` with their 1 s pauses (the last one may be shorter)."""
    out: list[list[Clip]] = [[]]
    for clip in clips:
        if sum(c.seconds + 1.0 for c in out[-1]) >= seconds:
            out.append([])
        out[-1].append(clip)
    return [j for j in out if j]


def joined_uploads(sets: dict[str, list[Clip]]) -> dict[str, list[tuple[Clip, bytes]]]:
    """Each set's clips joined into uploads of several speech windows (a real recording is cut into many; a
    single shared clip is one window): a Clip standing for each upload (its transcript the clips' joined) and the
    upload's WAV bytes. The "other" clips are one per language: not joined."""
    out: dict[str, list[tuple[Clip, bytes]]] = {}
    for name, clips in sets.items():
        if name == "other":
            continue
        parts = joins(clips, JOIN_S)
        out[f"joined {name}"] = [(dataclasses.replace(part[0], file=f"{part[0].file} +{len(part) - 1}",
                                                      transcript=" ".join(c.transcript for c in part),
                                                      seconds=sum(c.seconds + 1.0 for c in part)),
                                  wav(joined_with_gaps(part, 1.0)[0])) for part in parts]
    return out


def normalise(text: str, lang: str) -> str:
    return NORMALISERS["en" if lang == "en" else "other"](text)


@dataclasses.dataclass
class Answer:
    text: str
    language: str
    cpu_s: float = 0.0


@dataclasses.dataclass
class Row:
    name: str
    mode: str
    clips: int
    wer: float
    runaway: int
    wrong_language: int
    cpu_per_clip: float
    runaway_files: list[str]


def is_runaway(reference: str, hypothesis: str, lang: str) -> bool:
    ref, hyp = normalise(reference, lang).split(), normalise(hypothesis, lang).split()
    return len(hyp) > RUNAWAY_RATIO * len(ref) + RUNAWAY_SLACK


def score(name: str, mode: str, clips: Sequence[Clip], answers: Sequence[Answer]) -> Row:
    refs = [normalise(c.transcript, c.lang) for c in clips]
    hyps = [normalise(a.text, c.lang) for c, a in zip(clips, answers)]
    pairs = [(r, h) for r, h in zip(refs, hyps) if r.strip()]
    wer = jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]) if pairs else 0.0
    runaway = [c.file for c, a in zip(clips, answers) if is_runaway(c.transcript, a.text, c.lang)]
    wrong = sum(a.language != c.lang for c, a in zip(clips, answers))
    cpu = sum(a.cpu_s for a in answers) / max(1, len(answers))
    return Row(name, mode, len(clips), wer, len(runaway), wrong, cpu, runaway)


def in_process(model, audio) -> Answer:  # type: ignore[no-untyped-def]  # faster_whisper.WhisperModel
    cpu = time.process_time()
    segments, info = model.transcribe(audio, beam_size=5)
    text = "".join(s.text for s in segments).strip()
    return Answer(text, info.language, time.process_time() - cpu)


async def through_server(session: aiohttp.ClientSession, url: str, data: bytes) -> Answer:
    cpu = time.process_time()
    async with session.post(f"{url}/stt", params={"output": "verbose_json"}, data=data,
                            headers={"Authorization": f"Token {TOKEN}"}) as response:
        body = await response.json()
        if response.status != 200:
            raise RuntimeError(f"/stt answered {response.status}: {body}")
    return Answer(body["text"], body["language"], time.process_time() - cpu)


async def server_answers(url: str, data: list[bytes], concurrency: int) -> list[Answer]:
    """The clips in order, ``concurrency`` requests in flight at a time (CPU time is meaningful only at 1)."""
    gate = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async def one(blob: bytes) -> Answer:
            async with gate:
                return await through_server(session, url, blob)
        return list(await asyncio.gather(*(one(blob) for blob in data)))


POOLED = "pooled "  # the name of a pooled row starts so: a view across sets, with no target of its own


def pooled_rows(answered: dict[tuple[str, str], tuple[list[Clip], list[Answer]]],
                modes: Sequence[str] = (*MODES, *LIVE_MODES)) -> list[Row]:
    """All FLEURS clips as one set, and every single clip but speechocean762's: on 4-5 clips a set's WER is
    decided by one or two words that flip either way (with the padding, the CPU's int8 rounding), so the
    pooled rows show what is systematic."""
    groups = {f"{POOLED}FLEURS": lambda n: n.startswith("fleurs"),
              f"{POOLED}not so762": lambda n: not n.startswith("joined") and n != "speechocean762"}
    rows = []
    for pooled, member in groups.items():
        for mode in modes:
            parts = [v for (name, m), v in answered.items() if m == mode and member(name)]
            if len(parts) > 1:
                rows.append(score(pooled, mode, [c for clips, _ in parts for c in clips],
                                  [a for _, answers in parts for a in answers]))
    return rows


def print_rows(rows: list[Row]) -> None:
    modes_shown = [m for m in (*MODES, *LIVE_MODES) if any(r.mode == m for r in rows)]
    print(f"\n{'set':<16}{'clips':>6}  " + "  ".join(f"{m:>31}" for m in modes_shown))
    print(f"{'':<16}{'':>6}  " + "  ".join(f"{'WER %':>8}{'runaway':>8}{'wrong lang':>11}{'cpu s':>6}"
                                          for _ in modes_shown))
    by_set: dict[str, dict[str, Row]] = {}
    for row in rows:
        by_set.setdefault(row.name, {})[row.mode] = row
    for name, modes in by_set.items():
        cells = []
        for mode in modes_shown:
            r = modes.get(mode)
            cells.append(f"{100 * r.wer:8.1f}{r.runaway:8d}{r.wrong_language:11d}{r.cpu_per_clip:6.2f}"
                         if r else f"{'-':>33}")
        print(f"{name:<16}{next(iter(modes.values())).clips:>6}  " + "  ".join(cells))
    print("\nverdicts (targets of issue 15):")
    for name, modes in by_set.items():
        base, x1, x4 = (modes.get(m) for m in MODES)
        if not (base and x1 and x4):
            continue
        worst = max(x1.wer, x4.wer)
        if name.startswith(POOLED):
            print(f"  {name:<16} WER {100 * worst:.1f} vs {100 * base.wer:.1f} ({100 * (worst - base.wer):+.1f} pt; "
                  "a view across sets, not a target)")
            continue
        print(f"  {name:<16} WER {100 * worst:.1f} vs {100 * base.wer:.1f} ({100 * (worst - base.wer):+.1f} pt, "
              f"target <= +0.3): {'met' if worst <= base.wer + 0.003 else 'NOT met'}; "
              f"runaway {x1.runaway}+{x4.runaway} (target 0): {'met' if not x1.runaway + x4.runaway else 'NOT met'}"
              f"; wrong language {max(x1.wrong_language, x4.wrong_language)} vs {base.wrong_language}: "
              f"{'met' if max(x1.wrong_language, x4.wrong_language) <= base.wrong_language else 'NOT met'}")
    for name, modes in by_set.items():
        live = [modes[m] for m in LIVE_MODES if m in modes]
        if live and not name.startswith(POOLED):  # a pooled row's runaways are its sets' own, counted there
            print(f"  {name:<16} live finals: WER {' / '.join(f'{100 * r.wer:.1f}' for r in live)} "
                  f"({', '.join(r.mode for r in live)}), runaway {sum(r.runaway for r in live)} (target 0): "
                  f"{'met' if not sum(r.runaway for r in live) else 'NOT met'}")
    for row in rows:
        if row.runaway_files:
            print(f"  runaway ({row.mode}, {row.name}): {', '.join(row.runaway_files)}")


def diarization(url: str) -> None:
    path = ROOT / "bench" / "accuracy_diarization.py"
    if not path.is_file():
        print("\ndiarization: rows come from bench/accuracy_diarization.py (not in this checkout)")
        return
    spec = importlib.util.spec_from_file_location("accuracy_diarization", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for concurrency in (1, 4):
        print(f"\ndiarization, {concurrency} at a time:")
        module.print_table(module.evaluate(url, TOKEN, concurrency))


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a stride through every set (about 80 clips)")
    parser.add_argument("--sets", default="", help="comma-separated set names (e.g. librispeech,fleurs)")
    parser.add_argument("--no-diarization", action="store_true")
    parser.add_argument("--joined", action="store_true",
                        help=f"also each set's clips joined into uploads of ~{JOIN_S:g} s (several windows each)")
    parser.add_argument("--live", action="store_true",
                        help="also stream each clip to /v1/listen (its language given) and score the finals")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--modes", default=",".join(MODES),
                        help=f"comma-separated, of {', '.join(MODES)} (verdicts need all three; a rerun of the "
                             "server alone after a server change can leave the others out)")
    args = parser.parse_args()
    sets = shared_sets(args.quick, [s for s in args.sets.split(",") if s])
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if unknown := [m for m in modes if m not in MODES]:
        parser.error(f"unknown modes {unknown}: choose from {', '.join(MODES)}")
    aiohttp_patches.apply()  # as server.py does
    settings = settings_from_dict({"server": {"http": {"allowed_tokens": [TOKEN]}},
                                   "asr": {"threads": args.threads}}, env={})
    server = TestServer(create_app(settings))
    await server.start_server(**PARSER_OPTIONS)
    url = str(server.make_url("")).rstrip("/")
    model = server.app[ENGINE]._model  # the server's own WhisperModel: the very same weights  # type: ignore[attr-defined]
    rows: list[Row] = []
    answered: dict[tuple[str, str], tuple[list[Clip], list[Answer]]] = {}  # (set, mode) -> its clips, answers
    try:
        uploads = {name: [(c, c.path.read_bytes()) for c in clips] for name, clips in sets.items()}
        if args.joined:
            uploads |= joined_uploads(sets)
        for name, pairs in uploads.items():
            started = time.monotonic()
            clips, data = [c for c, _ in pairs], [blob for _, blob in pairs]
            audios = [decode_audio(blob) for blob in data]
            before = len(rows)
            if MODES[0] in modes:
                answered[name, MODES[0]] = clips, [await asyncio.to_thread(in_process, model, a) for a in audios]
            for mode, concurrency in zip(MODES[1:], (1, 4)):
                if mode in modes:
                    answered[name, mode] = clips, await server_answers(url, data, concurrency)
            if args.live and not name.startswith("joined"):  # live streams the shared clips' own files
                for mode, concurrency in zip(LIVE_MODES, (1, 4)):
                    texts = await live_answers(url, TOKEN, clips, concurrency)
                    answered[name, mode] = clips, [Answer(t, c.lang) for t, c in zip(texts, clips)]
            rows += [score(name, mode, *answered[name, mode]) for mode in (*MODES, *LIVE_MODES)
                     if (name, mode) in answered]
            r = rows[before:]
            print(f"{name}: {len(clips)} clips, WER {' / '.join(f'{100 * x.wer:.1f}' for x in r)} %, runaway "
                  f"{' / '.join(str(x.runaway) for x in r)}, wrong language "
                  f"{' / '.join(str(x.wrong_language) for x in r)} ({', '.join(x.mode for x in r)}; "
                  f"{time.monotonic() - started:.0f} s)", flush=True)
        print_rows(rows + pooled_rows(answered))
        if not args.no_diarization:
            diarization(url)
    finally:
        await server.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
