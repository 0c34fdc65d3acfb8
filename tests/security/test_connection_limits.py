"""Issue 9, connections: a bound on open connections, a clean refusal beyond it, no log flood."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.helpers import TOKEN, FakeEngine


# -- 7: a bound on open connections, a clean refusal beyond it, no log flood -----------------------------------

async def test_connections_over_the_limit_get_a_503_and_are_closed(caplog: Any) -> None:
    import logging

    from aiohttp import web

    from stt.http.app import PARSER_OPTIONS, create_app
    from stt.http.connections import LimitedAppRunner
    from tests import rawhttp
    from tests.conftest import make_settings

    runner = LimitedAppRunner(create_app(make_settings(), engine=FakeEngine()), 3, **PARSER_OPTIONS)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    held = []
    try:
        for _ in range(3):  # three idle keep-alive connections, as a slow-loris client holds them
            reader, writer = await rawhttp.connect(port)
            writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            assert (await rawhttp.read_response(reader, timeout=5))[0] == 200
            held.append(writer)
        caplog.set_level(logging.INFO, logger="stt.http.connections")
        for _ in range(20):
            reader, writer = await rawhttp.connect(port)
            writer.write(f"GET /ping HTTP/1.1\r\nHost: x\r\nAuthorization: Token {TOKEN}\r\n\r\n".encode())
            status, headers, body = await rawhttp.read_response(reader, timeout=5)
            assert status == 503 and body["code"] == "overloaded" and headers["x-request-id"]
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
            await rawhttp.hang_up(writer)
        assert len([r for r in caplog.records if r.name == "stt.http.connections"]) == 1  # not one per refusal
        await rawhttp.hang_up(held.pop())
        await asyncio.sleep(0.1)
        reader, writer = await rawhttp.connect(port)
        writer.write(f"GET /ping HTTP/1.1\r\nHost: x\r\nAuthorization: Token {TOKEN}\r\n\r\n".encode())
        assert (await rawhttp.read_response(reader, timeout=5))[0] == 200
        held.append(writer)
    finally:
        for writer in held:
            await rawhttp.hang_up(writer)
        await runner.cleanup()


def test_failed_accepts_are_logged_once_a_minute_not_once_each(caplog: Any) -> None:
    import logging

    from stt.http.connections import quiet_accept_errors

    loop = asyncio.new_event_loop()
    try:
        quiet_accept_errors(loop)
        caplog.set_level(logging.INFO)
        for _ in range(100):
            loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                         "exception": OSError(24, "Too many open files")})
    finally:
        loop.close()
    assert len(caplog.records) == 1 and "out of file descriptors" in caplog.records[0].getMessage()


def test_max_connections_is_configurable_and_validated() -> None:
    from stt.settings import ConfigError
    from tests.conftest import make_settings

    assert make_settings().http.max_connections == 512
    assert make_settings(http={"max_connections": 100}).http.max_connections == 100
    with pytest.raises(ConfigError, match="max_connections"):
        make_settings(http={"max_connections": 0})
