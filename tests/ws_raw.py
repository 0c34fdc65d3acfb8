"""A WebSocket client on a bare socket, for attacks a library client cannot make cheaply: a million tiny frames
built ahead and sent in one call, or a client that never reads a byte after the handshake."""

from __future__ import annotations

import json
import socket
import struct

from tests.helpers import TOKEN

BINARY, TEXT, PING = 0x2, 0x1, 0x9


def connect(port: int, path: str, rcvbuf: int | None = None, host: str = "127.0.0.1") -> socket.socket:
    """A socket past the WebSocket handshake (101), with the test token."""
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect((host, port))
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                  f"Authorization: Token {TOKEN}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError(f"closed during the handshake: {head!r}")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.decode(errors="replace"))
    return sock


def frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (a client must mask; the mask is fixed: the server's cost is what is measured)."""
    mask = b"\x01\x02\x03\x04"
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    whole = (mask * (size // 4 + 1))[:size]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(whole, "big")).to_bytes(size, "big") if size else b""
    return head + mask + masked


def close_stream() -> bytes:
    return frame(TEXT, json.dumps({"type": "CloseStream"}).encode())


def read_until_close(sock: socket.socket, timeout: float = 60.0) -> tuple[int | None, bytes]:
    """Reads server frames until its close frame: (close code, everything read). None: the connection ended
    without one."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except OSError:
            chunk = b""
        if not chunk:
            return _close_code(data), data
        data += chunk
        code = _close_code(data)
        if code is not None:
            return code, data


def _close_code(data: bytes) -> int | None:
    """The code of the first close frame among the server's (unmasked) frames in ``data``."""
    at = 0
    while at + 2 <= len(data):
        opcode, size = data[at] & 0x0F, data[at + 1] & 0x7F
        at += 2
        if size == 126:
            size, at = struct.unpack("!H", data[at:at + 2])[0], at + 2
        elif size == 127:
            size, at = struct.unpack("!Q", data[at:at + 8])[0], at + 8
        if at + size > len(data):
            return None
        if opcode == 0x8:
            return struct.unpack("!H", data[at:at + 2])[0] if size >= 2 else 1005
        at += size
    return None
