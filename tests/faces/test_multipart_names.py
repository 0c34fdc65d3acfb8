"""Multipart part headers in any charset: a filename is never used, so its bytes must not refuse an upload."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import AUTH
from tests.faces.test_api_contract import wav
from tests.helpers import TOKEN

BOUNDARY = "b0und4ry"


def body(filename: bytes, extra_name: bytes = b"language", extra_value: bytes = b"en") -> bytes:
    return (f"--{BOUNDARY}\r\n".encode() + b'Content-Disposition: form-data; name="file"; filename="'
            + filename + b'"\r\nContent-Type: audio/wav\r\n\r\n' + wav() + f"\r\n--{BOUNDARY}\r\n".encode()
            + b'Content-Disposition: form-data; name="' + extra_name + b'"\r\n\r\n' + extra_value
            + f"\r\n--{BOUNDARY}--\r\n".encode())


HEADERS = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


@pytest.mark.parametrize("filename", ["café".encode("latin-1"), "café".encode(), b"\xff\xfe\x80.wav",
                                      "日本語.wav".encode("shift_jis")])
async def test_any_filename_bytes_are_accepted(client: Any, filename: bytes) -> None:
    resp = await client.post("/v1/audio/transcriptions", data=body(filename, b"model", b"whisper-1"),
                             headers={**HEADERS, "Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["text"] == "hello world"
    resp = await client.post("/stt", data=body(filename), headers={**HEADERS, **AUTH})
    assert resp.status == 200, await resp.text()


async def test_a_utf8_field_name_is_still_read_as_utf8(client: Any) -> None:
    resp = await client.post("/stt", data=body(b"a.wav", "langüage".encode()), headers={**HEADERS, **AUTH})
    assert resp.status == 400 and "langüage" in (await resp.json())["message"]
