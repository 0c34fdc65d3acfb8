"""schemathesis against /openapi.json on a live server (fake engine): no 5xx, every response documented
and matching its schema, invalid input refused with a 4xx. Kept short for CI by a small example budget."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err, Ok
from schemathesis.specs.openapi.checks import (content_type_conformance, negative_data_rejection,
                                               response_headers_conformance, response_schema_conformance,
                                               status_code_conformance)

from stt.http.app import create_app
from stt.http.openapi import AUDIO_TYPES, build_spec
from tests.conftest import AUTH, make_settings
from tests.helpers import FakeEngine
from tests.live_server import serve_in_thread

# Audio bodies are bytes on the wire, like application/octet-stream.
schemathesis.serializer.alias([t for t in AUDIO_TYPES if t.startswith("audio/")], "application/octet-stream")
schema = schemathesis.openapi.from_dict(build_spec())
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance, negative_data_rejection]
# Per operation and generation mode: ~200 requests, a few seconds in CI; raise it for a longer local hunt.
EXAMPLES = int(os.environ.get("STT_SCHEMATHESIS_EXAMPLES", "12"))


@pytest.fixture(scope="module")
def fake_url() -> Iterator[str]:
    # A roomy auth throttle: schemathesis sends some requests with broken Authorization headers on purpose.
    app = create_app(make_settings(limits={"auth_max_failures": 100000}), engine=FakeEngine())
    with serve_in_thread(app) as url:
        yield url


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_api_matches_its_openapi_document(case: schemathesis.Case, fake_url: str) -> None:
    case.call_and_validate(base_url=fake_url, headers=AUTH, checks=CHECKS, timeout=30)


def test_document_is_valid_openapi() -> None:
    results = list(schema.get_all_operations())
    assert not [result.err() for result in results if isinstance(result, Err)]
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert {op.definition.raw["operationId"] for op in operations} >= {
        "stt", "detectLanguage", "createTranscription", "createTranslation", "listModels", "listen"}


def _wav() -> bytes:
    from tests.faces.test_api_contract import wav

    return wav(1.0)


SUCCESS_CASES = [
    *[("/stt", {"output": fmt, "word_timestamps": "true"}, "audio/wav", None) for fmt in
      ("json", "text", "srt", "vtt", "verbose_json")],
    ("/detect-language", {}, "application/octet-stream", None),
    ("/v1/listen", {"detect_language": "true"}, "audio/wav", None),
    *[("/v1/audio/transcriptions", {}, "multipart/form-data", {"model": "whisper-1", "response_format": fmt})
      for fmt in ("json", "text", "srt", "vtt", "verbose_json")],
    ("/v1/audio/translations", {}, "multipart/form-data", {"model": "whisper-1", "response_format": "verbose_json"}),
]


@pytest.mark.parametrize(("path", "query", "media_type", "fields"), SUCCESS_CASES)
def test_success_responses_match_their_schema(fake_url: str, path: str, query: dict[str, str], media_type: str,
                                              fields: dict[str, str] | None) -> None:
    """Generated audio is never decodable, so the 200 answers are checked here with a real WAV."""
    body: Any = _wav() if fields is None else {"file": _wav(), **fields}
    case = schema[path]["POST"].Case(query=query or None, body=body, media_type=media_type)
    response = case.call_and_validate(base_url=fake_url, headers=AUTH, checks=CHECKS[:-1], timeout=30)
    assert response.status_code == 200, response.text
