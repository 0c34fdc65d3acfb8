"""Helpers shared by the tests of issue 9's attacks (tests/audio, tests/live, tests/security) and by
bench/abuse.py."""

from __future__ import annotations

from typing import Any

from tests.helpers import TOKEN

PCM = "/v1/listen?encoding=linear16&channels=1"


def _with_total_samples(flac: bytes, total: int) -> bytes:
    """Rewrite STREAMINFO's 36-bit total sample count (0: unknown, as FFmpeg writes to a pipe)."""
    assert flac[:4] == b"fLaC"
    field = int.from_bytes(flac[18:26], "big")
    field = (field & ~((1 << 36) - 1)) | total
    return flac[:18] + field.to_bytes(8, "big") + flac[26:]


def _ping_flooder(port: int, path: str, stop: Any) -> None:
    """A WebSocket client that sends pings as fast as it can and never reads a byte after the handshake."""
    import os
    import socket
    import struct

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                  f"Authorization: Token {TOKEN}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    payload = bytes(125)
    mask = os.urandom(4)
    frame = struct.pack("!BB", 0x89, 0x80 | len(payload)) + mask + bytes(b ^ mask[i % 4] for i, b in
                                                                         enumerate(payload))
    sock.settimeout(0.5)
    try:
        while not stop.is_set():
            try:
                sock.sendall(frame * 64)
            except TimeoutError:
                continue  # the server stopped reading: keep the socket open, keep not reading
    except OSError:
        pass  # the server cut the connection
    finally:
        sock.close()
