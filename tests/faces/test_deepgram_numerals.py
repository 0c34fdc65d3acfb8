"""Deepgram's `numerals` on pre-recorded requests: accepted (and validated) as the live WebSocket accepts it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.faces.test_openai_stream import tone_wav
from tests.helpers import TOKEN, FakeEngine


@pytest.mark.parametrize("value", ["true", "false"])
async def test_deepgram_prerecorded_accepts_numerals(make_client: Any, value: str) -> None:
    client = await make_client(FakeEngine())
    resp = await client.post(f"/v1/listen?numerals={value}&smart_format=true", data=tone_wav(1.0),
                             headers={"Authorization": f"Token {TOKEN}", "Content-Type": "audio/wav"})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["results"]["channels"][0]["alternatives"][0]["transcript"] == "hello world"
    bad = await client.post("/v1/listen?numerals=maybe", data=tone_wav(1.0),
                            headers={"Authorization": f"Token {TOKEN}", "Content-Type": "audio/wav"})
    assert bad.status == 400
