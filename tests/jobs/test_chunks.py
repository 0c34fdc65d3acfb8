"""A job's chunks: windows of one batch shape go together (the engine then decodes them as one batch), the others
in their order, within the chunk budget; the same chunks however often the job is resumed."""

from __future__ import annotations

import numpy as np
import pytest

from stt.audio import SAMPLE_RATE
from stt.engines.base import Engine, WindowRequest
from stt.engines.batched_windows import _groups, batch_shape
from stt.inference.speech_windows import SpeechWindow
from stt.jobs.runner import LOOKAHEAD, _chunks

BUDGET = 60 * SAMPLE_RATE


def windows(*seconds: float) -> list[SpeechWindow]:
    out, at = [], 0
    for s in seconds:
        n = int(s * SAMPLE_RATE)
        out.append(SpeechWindow(((at, at + n),)))
        at += n + SAMPLE_RATE
    return out


def shape(n: int) -> object:
    return batch_shape(n, 5)


def test_without_a_batch_shape_windows_go_in_order_as_many_as_fit() -> None:
    assert _chunks(windows(30, 30, 30, 10), BUDGET) == [[0, 1], [2, 3]]


def test_windows_of_one_shape_go_together() -> None:
    # The chapter's first quarter: 20.1 s, 27.9 s, 20.3 s (the first and the last share a shape).
    assert shape(int(20.1 * SAMPLE_RATE)) == shape(int(20.3 * SAMPLE_RATE)) != shape(int(27.9 * SAMPLE_RATE))
    assert _chunks(windows(20.1, 27.9, 20.3), BUDGET, shape) == [[0, 2], [1]]
    # Without a partner, a window takes those right after it (as before), within the budget, up to one that has
    # a partner of its own (the chapter's second quarter: 28.9 s, then 19.2 s and 19.9 s of one shape).
    assert _chunks(windows(30, 30, 30, 10), BUDGET, shape) == [[0, 1], [2, 3]]
    assert _chunks(windows(28.9, 19.2, 19.9), BUDGET, shape) == [[0], [1, 2]]
    assert _chunks(windows(28.9, 10, 19.2, 19.9), BUDGET, shape) == [[0, 1], [2, 3]]
    assert _chunks(windows(20.1, 27.9, 20.3), 40 * SAMPLE_RATE, shape) == [[0], [1], [2]]


def test_a_partner_is_looked_for_only_a_few_windows_ahead() -> None:
    # Progress (the run of finished windows from the start) must not lag the decoding by much.
    far = windows(20.1, *[12.0 + i for i in range(LOOKAHEAD)], 20.3)
    chunks = _chunks(far, BUDGET, shape)
    assert chunks[0] != [0, LOOKAHEAD + 1]
    assert sorted(i for c in chunks for i in c) == list(range(len(far)))
    near = windows(20.1, *[12.0 + i for i in range(LOOKAHEAD - 1)], 20.3)
    assert _chunks(near, BUDGET, shape)[0] == [0, LOOKAHEAD]


@pytest.mark.model
def test_the_runners_shape_is_the_engines_batch(fw_base: Engine) -> None:
    """Windows the runner pairs by ``batch_shape`` are decoded by the engine in one batch (one group)."""
    rng = np.random.default_rng(18)
    lengths = [20.1, 20.3, 25.0, 24.95, 27.9, 28.2, 29.5, 30.0, 3.0, 3.4, 15.0]
    requests = [WindowRequest(rng.standard_normal(int(s * SAMPLE_RATE)).astype(np.float32) * 0.01, "en",
                              None, 5, words=True) for s in lengths]
    groups = _groups(fw_base._model, requests)  # type: ignore[attr-defined]
    by_shape: dict[object, list[int]] = {}
    for i, r in enumerate(requests):
        by_shape.setdefault(fw_base.batch_shape(len(r.audio), 5), []).append(i)  # type: ignore[attr-defined]
    assert sorted(groups) == sorted(by_shape.values())
    assert any(len(g) > 1 for g in groups)
