"""The auth matrix on every authenticated route, against the real app with a fake engine."""

import pytest

from tests.helpers import TOKEN

CASES = [
    (None, 401),
    ("Token", 403),  # malformed: no token
    ("Basic dXNlcjpwYXNz", 403),  # other scheme
    ("Token not-the-token", 403),
    (f"Token {TOKEN}", 200),
    (f"Bearer {TOKEN}", 200),
]


@pytest.mark.parametrize(("header", "status"), CASES)
async def test_ping_auth(client, header, status) -> None:
    headers = {"Authorization": header} if header else {}
    resp = await client.get("/ping", headers=headers)
    assert resp.status == status
    body = await resp.json()
    if status == 200:
        assert body == {"text": "pong", "status": "success"}
    else:
        assert body["status"] == "failed" and body["message"]
        assert TOKEN not in await resp.text()


@pytest.mark.parametrize(("header", "status"), CASES)
async def test_stt_auth(client, wav_bytes, header, status) -> None:
    headers = {"Authorization": header} if header else {}
    resp = await client.post("/stt", data=wav_bytes, headers=headers)
    assert resp.status == status
    assert (await resp.json())["status"] == ("success" if status == 200 else "failed")
    if status == 401:
        assert resp.headers["WWW-Authenticate"].startswith("Token")


async def test_health_is_public(client) -> None:
    resp = await client.get("/health")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"


async def test_generated_token_when_none_configured(aiohttp_client, fake_engine, capsys) -> None:
    from stt.http.app import create_app
    from stt.settings import settings_from_dict

    app = create_app(settings_from_dict({}, env={}), engine=fake_engine)
    printed = capsys.readouterr().err
    token = printed.strip().rsplit(" ", 1)[-1]
    assert len(token) >= 24
    client = await aiohttp_client(app)
    assert (await client.get("/ping", headers={"Authorization": f"Token {token}"})).status == 200
    for default in ("", "token", "changeme", "test"):
        assert (await client.get("/ping", headers={"Authorization": f"Token {default}"})).status == 403
