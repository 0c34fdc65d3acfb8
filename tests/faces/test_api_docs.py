"""README.md's API reference stays in step with the option tables and the OpenAPI document (the source of truth)."""

from __future__ import annotations

import re

from stt.http.openapi import build_spec
from stt.http.faces.deepgram.params import DEEPGRAM_PARAMS, LIVE_PARAMS
from stt.http.faces.native.params import DETECT_PARAMS, STT_PARAMS
from stt.http.faces.openai.params import OPENAI_FIELDS
from tests.helpers import ROOT

API_MD = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_option_is_documented() -> None:
    for table in (STT_PARAMS, DETECT_PARAMS, OPENAI_FIELDS, DEEPGRAM_PARAMS, LIVE_PARAMS):
        for param in table:
            assert f"`{param.name}`" in API_MD, f"{param.name} missing from README.md"


def test_every_path_is_documented() -> None:
    for path in build_spec()["paths"]:
        assert re.search(rf"`(GET|POST) {re.escape(path)}`", API_MD), f"{path} missing from README.md"
