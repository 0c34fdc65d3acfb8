"""Diarization's cost is bounded on hostile uploads (issue 19 P3 and P12), measured in a fresh process each
(tests/diarization/bounds_job.py) so that peak RSS is the job's alone.

- P3: a long near-silent upload: the speech detector, the STFT and the embeddings work a bounded stretch at a
  time, so peak memory does not grow with the upload's length (it was ~2 GB per audio hour).
- P12: thousands of tiny speech stretches: at most ``MAX_CLUSTERED`` of them shape the clusters, the rest join
  the nearest speaker, so clustering memory and time stay flat (20k stretches took 3 GB and 43 s).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from stt.diarization.bounds import working_bytes
from stt.diarization.pipeline import MAX_CLUSTERED
from tests.helpers import ROOT

pytestmark = pytest.mark.model
BOUND_MB = 300  # the bound beyond the decoded audio (which is held before the job starts)


def reserved_mb(minutes: float) -> float:
    """What the server reserves in its memory budget for diarizing that much audio (stt/diarization/bounds.py)."""
    return working_bytes(int(minutes * 60 * 16000)) / 2**20


def run(kind: str, size: float) -> dict:
    out = subprocess.run([sys.executable, "-m", "tests.diarization.bounds_job", kind, str(size)], cwd=ROOT,
                         capture_output=True, text=True, timeout=900, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\n{kind} {size}: {result}")
    return result


def test_half_an_hour_of_near_silence_holds_no_more_than_a_bounded_stretch() -> None:
    """30 min of faint noise + 10 s of speech (110 MB decoded): before the fix the whole-file speech detector
    and STFT added ~1 GB (2 GB per audio hour); 60 min measured +46 MB with the fix."""
    result = run("silence", 30)
    assert result["speakers"] == 1
    assert result["peak_growth_mb"] <= BOUND_MB
    assert result["peak_growth_mb"] <= reserved_mb(30 + 10 / 60)


def test_many_tiny_stretches_cost_a_bounded_clustering() -> None:
    """10 min of 220 ms bursts every 520 ms: ~1150 stretches, all embedded, at most MAX_CLUSTERED clustered."""
    result = run("bursts", 10)
    assert result["clustered"] <= MAX_CLUSTERED
    assert result["speakers"] >= 1
    assert result["peak_growth_mb"] <= BOUND_MB
    assert result["peak_growth_mb"] <= reserved_mb(10)


def test_continuous_speech_stays_within_what_the_server_reserves() -> None:
    """5 min of speech nearly throughout: every batch of windows is full (256 x 1.6 s), the embeddings' largest
    working set (measured +297 MiB over one forward pass; 10 min took +310-316 MiB in all). The server reserves
    ``working_bytes`` in its memory budget before it diarizes: the real peak must stay within it."""
    result = run("speech", 5)
    assert result["speakers"] == 1
    assert result["stretches"] >= 128  # at least one full batch of windows (two per 2 s stretch)
    assert result["peak_growth_mb"] <= reserved_mb(5)


def test_clustering_twenty_thousand_stretches_is_flat() -> None:
    """label_units on 20k embeddings of three voices: a bounded sample is clustered (the full distance matrix
    alone would be 3.2 GB), the rest join their nearest speaker, and the three voices are still found."""
    result = run("cluster", 20000)
    assert result["speakers"] == 3 and result["pure"]
    assert result["peak_growth_mb"] <= 100
    assert result["cpu_s"] <= 10
