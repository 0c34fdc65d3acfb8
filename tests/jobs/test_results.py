"""A window's result survives the job store's JSON as it was decoded (a resumed job must equal an uninterrupted one)."""
from stt.engines.base import WindowResult, WindowScores, Word
from stt.jobs.results import window_from_json, window_to_json


def test_a_window_with_scores_round_trips() -> None:
    result = WindowResult(" Hello there.", (Word(0.0, 0.4, " Hello", 0.9), Word(0.4, 0.8, " there.", 0.8)), "en", 0.97,
                          WindowScores(-0.28, 1.55, 0.0125))
    assert window_from_json(window_to_json(result)) == result


def test_a_window_without_scores_round_trips() -> None:
    result = WindowResult(" Hi.", (), "de", 0.5)
    assert window_from_json(window_to_json(result)) == result
