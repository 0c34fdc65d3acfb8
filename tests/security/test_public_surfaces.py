"""Issue 9, what the public surfaces show: no versions in `Server`, no model path in `/health`."""

from __future__ import annotations

from typing import Any

from tests.conftest import AUTH
from tests.helpers import FakeEngine


# -- 14: what the public surfaces show ------------------------------------------------------------------------

async def test_server_header_names_no_versions(client: Any) -> None:
    for resp in (await client.get("/health"), await client.get("/ping", headers=AUTH), await client.get("/ping")):
        assert resp.headers["Server"] == "stt-server"


async def test_health_shows_the_model_name_not_its_path(make_client: Any) -> None:
    engine = FakeEngine()
    engine.model_name = "/srv/secret/models/whisper-base-ct2"
    client = await make_client(engine)
    body = await (await client.get("/health")).json()
    assert body["model"] == "whisper-base-ct2"
