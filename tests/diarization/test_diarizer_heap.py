"""The diarizer's first load leaves the cyclic garbage collector's walk.

A full collection holds the GIL while it walks every tracked object. The diarizer loads torch, SciPy and
scikit-learn on first use (~150,000 objects that live as long as the process); left in view, each full
collection during a diarized hour walked them for 130-200 ms, and the event loop (``/ping``) waited as long
(issue 19, P12). Measured in a fresh interpreter, so the count is the load's alone."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.model

PROBE = """
import gc, json, time
gc.collect(); gc.freeze()  # what the server freezes at start
from stt.diarization.lazy import LazyDiarizer
before = len(gc.get_objects())
LazyDiarizer().get()
left = len(gc.get_objects()) - before
started = time.perf_counter(); gc.collect(); took = time.perf_counter() - started
print(json.dumps({"left": left, "frozen": gc.get_freeze_count(), "full_collection_s": took}))
"""


def test_the_diarizers_load_leaves_the_collectors_walk() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["frozen"] > 100_000, result  # torch, SciPy and scikit-learn were loaded, and frozen
    assert result["left"] < 5_000, result  # without the freeze: ~150,000 objects left in view
