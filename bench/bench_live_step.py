"""What rounding a live pass's encoder input up to a step costs (issue 15): CPU and wall time of one pass
(beam 1, language given, words aligned) over 24 shared short clips, alone, with the input the audio + PAD_S
exactly (before window_seconds) and rounded up to 1, 2.5 and 5 s steps; two rounds, interleaved.

Usage: .venv/bin/python bench/bench_live_step.py
"""
import sys, time, dataclasses, math
sys.path.insert(0, str(__import__('pathlib').Path(__file__).resolve().parents[1]))
from stt.audio import decode_audio, SAMPLE_RATE
from stt.engines import batched_windows as bw
from stt.engines.base import WindowRequest
from stt.engines.factory import load_engine
from stt.settings import settings_from_dict
from tests.helpers import manifest
eng = load_engine(settings_from_dict({"asr": {"threads": 2}}, env={}).asr)
m = eng._model
clips = sorted([c for c in manifest().values() if c.category in ("speechocean762", "librispeech test-clean") and c.transcript], key=lambda c: c.file)[::8][:24]
OWN = bw.window_seconds
def step(s):
    return lambda n: min(30.0, math.ceil((n / SAMPLE_RATE + 5.0) / s) * s)
pol = {"audio+5": lambda n: min(30.0, n / SAMPLE_RATE + 5.0), "step1": step(1.0), "step2.5": step(2.5), "step5": step(5.0)}
cpu = {k: 0.0 for k in pol}; wall = {k: 0.0 for k in pol}
for rep in range(2):
    for c in clips:
        a = decode_audio(c.path.read_bytes())
        r = WindowRequest(a, "en", None, 1)
        for k, f in pol.items():
            bw.window_seconds = f
            t, w = time.process_time(), time.perf_counter()
            bw.decode_batch(m, [r])
            cpu[k] += time.process_time() - t; wall[k] += time.perf_counter() - w
print("clips", len(clips), "mean s", sum(c.seconds for c in clips) / len(clips))
for k in pol: print(f"{k:8} cpu {cpu[k]:.1f} s ({cpu[k]/cpu['audio+5']:.2f}x)  wall {wall[k]:.1f} s ({wall[k]/wall['audio+5']:.2f}x)")
