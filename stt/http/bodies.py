"""Read the uploaded audio from a request: the raw body (curl --data-binary) or a multipart field (Postman).

Handlers call this after the auth middleware, so nothing here runs for a client without a valid token. The
HTTP parser is told not to inflate (``PARSER_OPTIONS`` in stt/http/app.py): aiohttp would otherwise inflate a
gzip body on the event loop as it arrives, before auth (a 1 MB gzip of 1 GiB of zeros stalled every client
for seconds). Here the compressed bytes are read (bounded by request_max_size), then inflated and, for a
form, parsed in a thread, with limits on the inflated size and on the number of parts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import zlib

import multipart
from aiohttp import web

from stt.errors import BadRequest, TooLarge, UnsupportedEncoding
from stt.http.expect import send_continue

MAX_PARTS = 64  # a form holds the file and a few options; 200,000 empty parts used to cost 17 s of loop time
INFLATE_CHUNK = 1024 * 1024  # bytes inflated at a time, so the limit is checked before memory is spent
ENCODINGS = ("identity", "gzip", "x-gzip", "deflate")


@dataclasses.dataclass(frozen=True)
class Upload:
    audio: bytes
    items: tuple[tuple[str, str], ...] = ()  # the other multipart fields in order, repeats kept (``name[]``)


def check_declared_size(request: web.Request) -> None:
    """Refuse at once, before reading a byte of the body, when Content-Length is over the limit."""
    limit = request.client_max_size
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"Request body is {request.content_length} bytes, the limit is {limit} bytes")


async def read_upload(request: web.Request, field: str = "file") -> Upload:
    check_declared_size(request)
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower() or "identity"
    if encoding not in ENCODINGS:
        raise UnsupportedEncoding(f"Content-Encoding {encoding[:20]!r} is not supported (gzip or deflate)")
    boundary = _boundary(request) if request.content_type.startswith("multipart/") else None
    await send_continue(request)  # only now: after auth and the checks above
    body = await _read_body(request)
    return await asyncio.to_thread(_parse, body, encoding, boundary, field, request.client_max_size)


async def _read_body(request: web.Request) -> bytes:
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise TooLarge(f"Request body is over the limit of {request.client_max_size} bytes") from exc
    except web.RequestPayloadError as exc:  # broken chunking, a body shorter than declared
        raise BadRequest("Malformed request body: it could not be read") from exc


def _boundary(request: web.Request) -> str:
    _, options = multipart.parse_options_header(request.headers.get("Content-Type", ""))
    boundary = options.get("boundary", "")
    if not boundary or len(boundary) > 200:
        raise BadRequest("Malformed multipart body: the Content-Type has no usable boundary")
    return boundary


def _parse(body: bytes, encoding: str, boundary: str | None, field: str, limit: int) -> Upload:
    """Blocking (runs in a thread): inflate, then split the form."""
    if encoding != "identity":
        body = _inflate(body, encoding, limit)
    if boundary is None:
        return Upload(body)
    return _read_form(body, boundary, field, limit)


def _inflate(data: bytes, encoding: str, limit: int) -> bytes:
    if encoding == "deflate":
        # RFC 9110's deflate is zlib-wrapped; some clients send raw deflate (as aiohttp also accepts).
        wbits = zlib.MAX_WBITS if data[:1] and data[0] & 0x0F == 8 else -zlib.MAX_WBITS
    else:
        wbits = 16 + zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    out = bytearray()
    pending = data
    try:
        while pending and not inflater.eof:
            out += inflater.decompress(pending, INFLATE_CHUNK)
            if len(out) > limit:
                raise TooLarge(f"Request body inflates to over the limit of {limit} bytes")
            pending = inflater.unconsumed_tail
        out += inflater.flush()
    except zlib.error as exc:
        raise BadRequest(f"Malformed request body: it is not valid {encoding}") from exc
    if not inflater.eof or len(out) > limit:
        raise BadRequest(f"Malformed request body: the {encoding} stream is truncated")
    return bytes(out)


def _read_form(body: bytes, boundary: str, field: str, limit: int) -> Upload:
    audio: bytes | None = None
    items: list[tuple[str, str]] = []
    parts: list[tuple[multipart.MultipartSegment, bytearray]] = []
    try:
        with multipart.PushMultipartParser(boundary, max_segment_count=MAX_PARTS, max_segment_size=limit) as parser:
            for event in parser.parse(body):
                if isinstance(event, multipart.MultipartSegment):
                    parts.append((event, bytearray()))
                elif event:
                    parts[-1][1].extend(event)
    except multipart.ParserLimitReached as exc:
        raise TooLarge(f"Multipart form over its limits ({MAX_PARTS} parts at most): {exc}") from exc
    except multipart.MultipartError as exc:
        raise BadRequest("Malformed multipart body: a part could not be parsed") from exc
    for segment, data in parts:
        if (segment.content_type or "").lower().startswith("multipart/"):
            raise BadRequest("Nested multipart bodies are not supported")
        if segment.name == field:
            if audio is not None:
                raise BadRequest(f"More than one '{field}' field in the form", param=field)
            audio = bytes(data)
        elif segment.name:
            items.append((segment.name, data.decode("utf-8", errors="replace")))
    if audio is None:
        raise BadRequest(f"Multipart form has no '{field}' field with the audio", param=field)
    return Upload(audio, tuple(items))
