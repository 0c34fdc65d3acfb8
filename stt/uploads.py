"""Read the uploaded audio from a request: the raw body (curl --data-binary) or a multipart field (Postman)."""

from __future__ import annotations

import dataclasses

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from stt.errors import BadRequest, TooLarge

READ_CHUNK = 64 * 1024  # bytes


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
    if request.content_type.startswith("multipart/"):
        return await _read_multipart(request, field)
    try:
        return Upload(await request.read())
    except web.HTTPRequestEntityTooLarge as exc:
        raise TooLarge(f"Request body is over the limit of {request.client_max_size} bytes") from exc
    except web.RequestPayloadError as exc:  # broken chunking or compression, a body shorter than declared
        raise BadRequest("Malformed request body: it could not be read") from exc


async def _read_multipart(request: web.Request, field: str) -> Upload:
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError) as exc:
        raise BadRequest(f"Malformed multipart body: {exc}") from exc
    try:
        return await _read_parts(reader, field, request.client_max_size)
    except (HttpProcessingError, web.RequestPayloadError, ValueError) as exc:  # a part's headers or framing
        raise BadRequest("Malformed multipart body: a part could not be parsed") from exc


async def _read_parts(reader: MultipartReader, field: str, limit: int) -> Upload:
    audio: bytes | None = None
    items: list[tuple[str, str]] = []
    total = 0
    async for part in reader:
        if not isinstance(part, BodyPartReader):
            raise BadRequest("Nested multipart bodies are not supported")
        data = await _read_part(part, limit - total)
        total += len(data)
        if part.name == field:
            if audio is not None:
                raise BadRequest(f"More than one '{field}' field in the form", param=field)
            audio = data
        elif part.name:
            items.append((part.name, data.decode("utf-8", errors="replace")))
    if audio is None:
        raise BadRequest(f"Multipart form has no '{field}' field with the audio", param=field)
    return Upload(audio, tuple(items))


async def _read_part(part: BodyPartReader, budget: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(READ_CHUNK):
        size += len(chunk)
        if size > budget:
            raise TooLarge("Request body is over the configured limit")
        chunks.append(chunk)
    return b"".join(chunks)
