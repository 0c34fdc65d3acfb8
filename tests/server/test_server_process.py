"""``python server.py`` end to end: starts, logs its URL, transcribes, stops cleanly."""

import signal
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import AUTH
from tests.helpers import manifest, wer
from tests.serverproc import ServerProcess

pytestmark = pytest.mark.model


def _post(url: str, data: bytes) -> bytes:
    request = urllib.request.Request(url + "/stt", data=data, headers=AUTH, method="POST")
    with urllib.request.urlopen(request, timeout=120) as resp:
        return resp.read()


def test_server_starts_transcribes_and_exits_cleanly(tmp_path: Path) -> None:
    import json

    server = ServerProcess({"asr": {"model": "tiny.en", "threads": 2}}, tmp_path)
    with server:
        assert server.url.startswith("http://127.0.0.1:")
        clip = manifest()["en/jfk.flac"]
        body = json.loads(_post(server.url, clip.path.read_bytes()))
        assert wer(clip.transcript, body["text"]) <= 0.1
        assert server.terminate(signal.SIGTERM) == 0
    log = "\n".join(server.lines)
    assert "test-token" not in log  # tokens never reach the log
    assert "POST /stt 200" in log


def test_generated_token_is_printed_once_and_works(tmp_path: Path) -> None:
    server = ServerProcess({"asr": {"model": "tiny.en"}, "server": {"http": {"allowed_tokens": []}}}, tmp_path,
                           env={"STT_TOKENS": ""})
    with server:
        printed = [line for line in server.lines if "generated one" in line]
        assert len(printed) == 1
        token = printed[0].rsplit(" ", 1)[-1]
        request = urllib.request.Request(server.url + "/ping", headers={"Authorization": f"Token {token}"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200
