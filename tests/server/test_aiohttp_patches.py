"""The two process-wide aiohttp patches (stt/http/aiohttp_patches.py) still fit the aiohttp installed: this
fails when a new aiohttp release renames, moves or reshapes what they replace."""

from __future__ import annotations

import inspect

from aiohttp import web, web_urldispatcher
from aiohttp.web_protocol import RequestHandler

from stt.http import aiohttp_patches


def test_handle_error_keeps_the_signature_the_replacement_has() -> None:
    original, _ = aiohttp_patches.PATCHED
    assert list(inspect.signature(original).parameters) == ["self", "request", "status", "exc", "message"]
    assert inspect.signature(original).parameters.keys() == \
        inspect.signature(aiohttp_patches._json_handle_error).parameters.keys()
    assert not inspect.iscoroutinefunction(original)  # called synchronously by RequestHandler


def test_routes_take_their_default_expect_handler_from_the_patched_global() -> None:
    _, original = aiohttp_patches.PATCHED
    assert inspect.iscoroutinefunction(original)
    assert list(inspect.signature(original).parameters) == ["request"]
    aiohttp_patches.apply()
    route = web_urldispatcher.ResourceRoute("GET", _handler, web_urldispatcher.PlainResource("/x"))
    assert route._expect_handler is aiohttp_patches._expect_later


def test_apply_replaces_both_and_is_idempotent() -> None:
    aiohttp_patches.apply()
    aiohttp_patches.apply()
    assert RequestHandler.handle_error is aiohttp_patches._json_handle_error
    assert web_urldispatcher._default_expect_handler is aiohttp_patches._expect_later


async def _handler(request: web.Request) -> web.Response:
    return web.Response()
