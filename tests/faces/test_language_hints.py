"""Language lists (native `language=en,de`, Deepgram's repeated `detect_language`, `asr.languages`) and the
rules that keep a window's text to its audio: parsed and applied without a model."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from stt.engines.batched_windows import _inside, _unfinished
from stt.engines.repetition import repeated_run
from stt.engines.languages import allowed_languages, choose_language
from stt.errors import BadRequest
from stt.http.faces.deepgram.params import deepgram_detection, deepgram_request
from stt.http.faces.native.params import language_choice, stt_request
from stt.settings import ConfigError, settings_from_dict
from tests.conftest import AUTH


def test_native_language_forms() -> None:
    assert language_choice("auto") == (None, ())
    assert language_choice("de") == ("de", ())
    assert language_choice("en, de,EN") == (None, ("en", "de"))
    for bad in ("xx", "en,xx", "", "en,,de"):
        with pytest.raises(BadRequest, match="language"):
            language_choice(bad)
    options = stt_request([("language", "en,fr")], 5).options
    assert options.language is None and options.languages == ("en", "fr")


def test_deepgram_detect_language_forms() -> None:
    assert deepgram_detection([]) == (False, ())
    assert deepgram_detection(["true"]) == (True, ())
    assert deepgram_detection(["false"]) == (False, ())
    assert deepgram_detection(["en-US", "de", "en"]) == (True, ("en", "de"))
    for bad in (["true", "en"], ["true", "false"], ["klingon"]):
        with pytest.raises(BadRequest, match="detect_language"):
            deepgram_detection(bad)
    parsed = deepgram_request([("detect_language", "en"), ("detect_language", "fr")], 5)
    assert parsed.detect_language and parsed.options.language is None and parsed.options.languages == ("en", "fr")


def test_detection_never_answers_outside_the_allowed_languages() -> None:
    ranked = [("zh", 0.6), ("en", 0.3), ("de", 0.1)]
    assert choose_language(ranked) == ("zh", 0.6)
    assert choose_language(ranked, ("de", "en")) == ("en", pytest.approx(0.75))
    assert choose_language(ranked, ("fr",)) == ("fr", 0.0)  # none of them heard at all: still one allowed
    assert allowed_languages(("en", "de"), ()) == ("en", "de")
    assert allowed_languages((), ("en",)) == ("en",)
    assert allowed_languages(("en", "de"), ("de", "fr")) == ("de",)


def test_server_languages_are_validated() -> None:
    assert settings_from_dict({"asr": {"languages": ["en", "de"]}}, env={}).asr.languages == ("en", "de")
    with pytest.raises(ConfigError, match="asr.languages"):
        settings_from_dict({"asr": {"languages": ["english"]}}, env={})


async def test_a_list_outside_the_servers_languages_is_a_400(make_client: Any, fake_engine: Any,
                                                             wav_bytes: bytes) -> None:
    client = await make_client(fake_engine, asr={"languages": ["en"]})
    resp = await client.post("/stt", params={"language": "de,fr"}, data=wav_bytes, headers=AUTH)
    body = await resp.json()
    assert resp.status == 400 and body["param"] == "language" and "asr.languages" in body["message"], body


def test_repeated_runs() -> None:
    assert repeated_run("Captain Frere says that the scenery is delightful. Captain Frere says that the scenery "
                        "is delightful.") == 8
    assert repeated_run("Yes. Yes. I said yes.") == 1
    assert repeated_run("ask not what your country can do for you, ask what you can do for your country") < 4
    assert repeated_run("") == 0
    # Scripts without spaces: characters are the words (a runaway the server gave a non-native English clip).
    assert repeated_run("所以,全世界的主要是,第一,二,三,二,三,二,三,二,三,二,三,二,三,") >= 4
    assert repeated_run("我们今天去看看电影,谢谢。明天见。") < 4
    assert repeated_run("いろいろありがとうございました。") < 4


TOK = SimpleNamespace(timestamp_begin=1000, eot=999)


def ts(seconds: float) -> int:
    return TOK.timestamp_begin + round(seconds / 0.02)


def test_text_placed_after_the_audio_is_dropped() -> None:
    said, again = [1, 2, 3], [1, 2, 3]
    tokens = [ts(0.0), *said, ts(3.2), ts(3.4), *again, ts(6.4)]
    assert _inside(tokens, TOK, 3.3) == said  # the repeat starts in the silence after the audio
    assert _inside(tokens, TOK, 8.0) == said + again  # within a longer audio it is what was said
    # The first segment is always kept, even if the decoder timed it badly; a segment that starts inside the
    # audio is kept even when its end overruns it (timestamps drift), open or closed.
    assert _inside([ts(0.0), *said, ts(9.0)], TOK, 3.0) == said
    assert _inside([ts(0.0), *said, ts(2.0), ts(2.0), 4, 5, ts(9.0)], TOK, 3.0) == [*said, 4, 5]
    assert _inside([ts(0.0), *said, ts(2.0), ts(2.0), 4, 5], TOK, 3.0) == [*said, 4, 5]
    assert _inside([ts(0.0), *said, ts(2.0), ts(3.5), 4, 5], TOK, 3.0) == said
    assert _inside([ts(0.0), *said, ts(3.5), 4, 5], TOK, 3.0) == said  # a segment following without a start
    assert _inside([*said], TOK, 3.0) == said  # no timestamps at all: the text as decoded


def test_a_window_left_unfinished_is_noticed() -> None:
    said = [1, 2, 3]
    assert _unfinished([ts(0.0), *said, ts(25.0), ts(25.0)], TOK, 27.9)  # the rest left for a next window
    assert not _unfinished([ts(0.0), *said, ts(3.0)], TOK, 3.2)  # one timestamp: finished
    assert not _unfinished([ts(0.0), *said, ts(3.0), ts(3.0)], TOK, 2.9)  # nothing left after it
    assert not _unfinished(said, TOK, 3.0)
