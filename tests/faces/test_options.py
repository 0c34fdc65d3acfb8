"""The parameter tables (stt/http/params.py, each face's params.py): one validator for every face; unknown,
repeated or invalid values name the parameter."""

from __future__ import annotations

import pytest

from stt.engines.base import DEFAULT_TEMPERATURES, TranscribeOptions
from stt.errors import BadRequest
from stt.http.faces.deepgram.params import deepgram_request
from stt.http.faces.native.params import stt_request
from stt.http.faces.openai.params import openai_request
from stt.http.params import check_model_support, temperature_schedule


def test_stt_defaults() -> None:
    parsed = stt_request([], default_beam_size=5)
    assert parsed.output == "json"
    assert parsed.options == TranscribeOptions(beam_size=5)


def test_stt_all_options() -> None:
    parsed = stt_request([("language", "de"), ("task", "translate"), ("output", "verbose_json"),
                          ("word_timestamps", "TRUE"), ("vad_filter", "yes"), ("beam_size", "2"),
                          ("initial_prompt", "Glossary: Kubernetes"), ("temperature", "0.4")], 5)
    o = parsed.options
    assert (o.language, o.task, o.word_timestamps, o.vad_filter, o.beam_size, o.initial_prompt) == (
        "de", "translate", True, True, 2, "Glossary: Kubernetes")
    assert o.temperature == (0.4, 0.6, 0.8, 1.0)
    assert parsed.output == "verbose_json"


@pytest.mark.parametrize(("pairs", "param"), [
    ([("langauge", "en")], "langauge"),
    ([("language", "xx")], "language"),
    ([("task", "summarize")], "task"),
    ([("output", "docx")], "output"),
    ([("word_timestamps", "maybe")], "word_timestamps"),
    ([("beam_size", "0")], "beam_size"),
    ([("beam_size", "21")], "beam_size"),
    ([("beam_size", "2.5")], "beam_size"),
    ([("temperature", "1.5")], "temperature"),
    ([("temperature", "nan")], "temperature"),
    ([("initial_prompt", "x" * 2001)], "initial_prompt"),
    ([("language", "en"), ("language", "de")], "language"),
])
def test_stt_invalid_names_the_parameter(pairs: list[tuple[str, str]], param: str) -> None:
    with pytest.raises(BadRequest) as err:
        stt_request(pairs, 5)
    assert err.value.param == param
    assert err.value.message.startswith(param)


def test_temperature_schedule() -> None:
    assert temperature_schedule(0.0) == DEFAULT_TEMPERATURES
    assert temperature_schedule(1.0) == (1.0,)
    assert temperature_schedule(0.5) == (0.5, 0.7, 0.9)


def test_openai_fields() -> None:
    parsed = openai_request([("model", "whisper-1"), ("response_format", "verbose_json"),
                             ("timestamp_granularities[]", "word"), ("timestamp_granularities[]", "segment")],
                            "transcribe", 5)
    assert parsed.granularities == ("word", "segment") and parsed.options.word_timestamps
    with pytest.raises(BadRequest) as err:
        openai_request([("response_format", "json")], "transcribe", 5)
    assert err.value.param == "model"
    with pytest.raises(BadRequest) as err:  # translations take no language
        openai_request([("model", "whisper-1"), ("language", "de")], "translate", 5)
    assert err.value.param == "language"
    with pytest.raises(BadRequest) as err:
        openai_request([("model", "m"), ("timestamp_granularities[]", "word")], "transcribe", 5)
    assert err.value.param == "timestamp_granularities[]"


def test_deepgram_params() -> None:
    parsed = deepgram_request([("language", "en-US"), ("smart_format", "True"), ("model", "nova-3")], 5)
    assert parsed.options.language == "en" and parsed.punctuate and parsed.options.word_timestamps
    assert deepgram_request([], 5).options.language == "en"  # Deepgram's default
    detect = deepgram_request([("detect_language", "TRUE"), ("language", "de")], 5)
    assert detect.options.language is None and detect.detect_language
    for pairs, param in (([("punctuate", "sure")], "punctuate"), ([("language", "klingon")], "language"),
                         ([("diarize", "maybe")], "diarize"), ([("summarize", "v2")], "summarize")):
        with pytest.raises(BadRequest) as err:
            deepgram_request(pairs, 5)
        assert err.value.param == param


def test_english_only_model_refuses_other_languages_and_translation() -> None:
    check_model_support(TranscribeOptions(language="en"), False, "tiny.en")
    check_model_support(TranscribeOptions(language="de", task="translate"), True, "base")
    with pytest.raises(BadRequest, match="English-only"):
        check_model_support(TranscribeOptions(language="de"), False, "tiny.en")
    with pytest.raises(BadRequest) as err:
        check_model_support(TranscribeOptions(task="translate"), False, "tiny.en")
    assert err.value.param == "task"
