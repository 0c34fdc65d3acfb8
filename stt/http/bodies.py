"""Read the uploaded audio from a request: the raw body (curl --data-binary) or a multipart field (Postman).

Handlers call this after the auth middleware, so nothing here runs for a client without a valid token. The
HTTP parser is told not to inflate (``PARSER_OPTIONS`` in stt/http/app.py): aiohttp would otherwise inflate a
gzip body on the event loop as it arrives, before auth (a 1 MB gzip of 1 GiB of zeros stalled every client
for seconds). Here the compressed bytes are streamed from the socket, then inflated and, for a form, parsed in
a thread, with limits on the inflated size, on the number of parts and on the size of a field that is not the
audio (a prompt or an option: ``MAX_FIELD_BYTES``).

Every buffer is reserved in the request's share of the memory budget (stt/memory_budget.py) before it is
allocated: the declared body before a byte of it is read (or each step of a chunked one), each piece of
inflated output (and zlib's working copy) before it is inflated; pieces are given back as soon as they are
consumed. The audio exists once, in one array (``_Buffer``): a raw body is read straight into it, an inflated
body is inflated into it, a form's audio field is copied into it as it is parsed. Over the budget the request
gets 503 + Retry-After and nothing else is held.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import zlib
from collections.abc import Iterator

import multipart
import numpy as np
from aiohttp import web

from stt.errors import BadRequest, TooLarge, UnsupportedEncoding
from stt.http.audio_budget import AUDIO_BUDGET, memory_hold
from stt.http.expect import send_continue
from stt.memory_budget import Hold

MAX_PARTS = 64  # a form holds the file and a few options; 200,000 empty parts used to cost 17 s of loop time
# A field other than the audio is an option or a prompt (a few kB at most): a larger one is refused before it
# is buffered or decoded (a 99 MiB field of 0xFF, decoded as UTF-8 in one call, held the GIL for 0.9 s).
MAX_FIELD_BYTES = 64 * 1024
INFLATE_CHUNK = 1024 * 1024  # bytes inflated at a time, so the limit is checked before memory is spent
READ_STEP = 256 * 1024  # bytes of a body of unknown length read (and reserved) at a time
HUGE_PAGE = 2 * 1024 * 1024  # numpy asks for transparent huge pages on large arrays: a touch faults in this much
ENCODINGS = ("identity", "gzip", "x-gzip", "deflate")
Chunks = collections.deque[bytes]


@dataclasses.dataclass(frozen=True)
class Upload:
    audio: bytes | memoryview  # a memoryview of its one array (_Buffer), or of the joined pieces of a chunked body
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
    hold = memory_hold(request)
    raw = None
    if request.content_length:  # the declared body, reserved before it is invited or read
        hold.take(request.content_length)
        if boundary is None and encoding == "identity":  # the body is the audio: read straight into its buffer
            raw = _Buffer(hold, request.content_length, request.client_max_size, reserved=True)
    await send_continue(request)  # only now: after auth and the checks above
    chunks = await _read_body(request, hold, raw)
    if raw is not None:
        return Upload(raw.result())
    # As many bodies inflate and parse at once as uploads decode (asr.workers + 1): more threads than cores
    # gain nothing, and each one more competes with the event loop for the GIL.
    async with request.app[AUDIO_BUDGET].decoding:
        return await asyncio.to_thread(_parse, chunks, encoding, boundary, field, request.client_max_size, hold)


async def _read_body(request: web.Request, hold: Hold, into: "_Buffer | None" = None) -> Chunks:
    """The body as it arrives, a piece at a time: its bytes are reserved before they are read (aiohttp's
    stream buffer stops reading the socket at its high-water mark, so nothing unreserved piles up). ``into``:
    a buffer (holding the declared body's reservation) each piece is copied into and dropped, instead of kept."""
    limit, declared = request.client_max_size, request.content_length or 0
    chunks: Chunks = collections.deque()
    size = 0
    try:
        while True:
            ahead = 0 if size < declared else READ_STEP  # a chunked body, or one longer than it said
            hold.take(ahead)
            chunk = await request.content.read(READ_STEP)
            size += len(chunk)
            hold.give(ahead - max(0, min(len(chunk), size - declared)))
            if not chunk:
                break
            if size > limit:
                raise TooLarge(f"Request body is over the limit of {limit} bytes")
            if into is not None:
                into.append(chunk)  # a few hundred KiB: a short copy on the loop
                del chunk
            else:
                chunks.append(chunk)
    except web.RequestPayloadError as exc:  # broken chunking, a body shorter than declared
        raise BadRequest("Malformed request body: it could not be read") from exc
    if into is None:  # (a buffer gives back what it was not written itself: _Buffer.result)
        hold.give(max(0, declared - size))
    return chunks


def _boundary(request: web.Request) -> str:
    _, options = multipart.parse_options_header(request.headers.get("Content-Type", ""))
    boundary = options.get("boundary", "")
    if not boundary or len(boundary) > 200:
        raise BadRequest("Malformed multipart body: the Content-Type has no usable boundary")
    return boundary


def _parse(chunks: Chunks, encoding: str, boundary: str | None, field: str, limit: int, hold: Hold) -> Upload:
    """Blocking (runs in a thread): inflate, then split the form, a piece at a time."""
    if boundary is None and encoding == "identity":  # a chunked body (no declared length): its pieces, joined
        kept = list(chunks)
        chunks.clear()
        return Upload(_join(kept, hold))
    hint = _inflated_size_hint(chunks, encoding, limit)
    if boundary is None:  # inflated straight into one buffer (see _Buffer)
        body = _Buffer(hold, hint, limit)
        for piece in _inflate(chunks, encoding, limit, hold):
            body.append(piece)
            del piece  # dropped before zlib makes the next one
        return Upload(body.result())
    pieces = _drain(chunks, hold) if encoding == "identity" else _inflate(chunks, encoding, limit, hold)
    return _read_form(pieces, boundary, field, limit, hold, hint)


def _inflated_size_hint(chunks: Chunks, encoding: str, limit: int) -> int:
    """What the body will likely take once inflated, to size its buffer: a gzip stream ends with its inflated
    size (modulo 4 GiB: a hint only, checked as it inflates); otherwise the compressed size."""
    size = sum(map(len, chunks))
    if encoding in ("gzip", "x-gzip") and size >= 18:  # a gzip member is at least 18 bytes
        tail = b"".join(list(chunks)[-4:])[-4:]
        return max(1, min(limit, int.from_bytes(tail, "little")))
    return max(1, min(limit, size))


class _Buffer:
    """A body (or the form's audio field) written into one array as its pieces come, instead of a list of
    pieces joined at the end. Each allocation is reserved first; sized from a hint, grown by half when the hint
    falls short. Why: pieces of a few hundred KiB live in glibc's heap arenas, and once joined and freed they
    stay resident (in the arena of the thread that made them, reused only by that arena's next allocations)
    while the budget counts them as given back: 16 concurrent gzip bombs peaked 40-140 MiB over their held
    bytes that way. One large array is its own mapping: freed, it leaves RSS at once; and the body exists once
    (not as pieces plus their joined copy), so a request's peak is half what it was."""

    def __init__(self, hold: Hold, hint: int, limit: int, reserved: bool = False) -> None:
        """``reserved``: ``hint`` bytes are already reserved in ``hold`` for it (a declared body)."""
        self._hold, self._limit, self.size = hold, limit, 0
        self._array = np.empty(hint, dtype=np.uint8) if reserved else self._allocate(hint)

    def _allocate(self, nbytes: int) -> np.ndarray:
        self._hold.take(nbytes)
        return np.empty(nbytes, dtype=np.uint8)

    def append(self, piece: bytes | memoryview) -> None:
        end = self.size + len(piece)
        if end > len(self._array):
            grown = self._allocate(min(max(end, len(self._array) * 3 // 2), max(end, self._limit)))
            grown[:self.size] = self._array[:self.size]
            self._hold.give(len(self._array))
            self._array = grown
        self._array[self.size:end] = np.frombuffer(piece, dtype=np.uint8)
        self.size = end

    def result(self) -> memoryview:
        """The bytes written. The array's pages past them were never touched (not resident): their share of the
        reservation is given back, less one huge page that the last write may have faulted in."""
        self._hold.give(max(0, len(self._array) - self.size - HUGE_PAGE))
        return memoryview(self._array)[:self.size]


def _drain(chunks: Chunks, hold: Hold) -> Iterator[bytes]:
    """The body's pieces, each given back once the consumer is done with it (when it asks for the next)."""
    while chunks:
        chunk = chunks.popleft()
        yield chunk
        hold.give(len(chunk))


def _join(kept: list[bytes], hold: Hold) -> bytes | memoryview:
    """One buffer from reserved pieces: the copy is reserved before it is made, the pieces given back once they
    are dropped. Copied a piece at a time into an uninitialised array: ``b"".join`` of 100 MiB holds the GIL
    for its whole copy (half a second on a busy machine, every client's /ping waiting)."""
    if len(kept) == 1:
        return kept[0]
    size = sum(map(len, kept))
    hold.take(size)
    body = np.empty(size, dtype=np.uint8)
    at = 0
    while kept:
        piece = kept.pop(0)
        body[at:at + len(piece)] = np.frombuffer(piece, dtype=np.uint8)
        at += len(piece)
    hold.give(size)
    return memoryview(body)


def _inflate(chunks: Chunks, encoding: str, limit: int, hold: Hold) -> Iterator[bytes]:
    """Inflated pieces, each reserved before zlib makes it and given back when the consumer asks for the next
    one (it must have dropped it by then). zlib's working copy is reserved too: CPython inflates into a list of
    blocks and copies them into the piece it returns, so a piece briefly exists twice."""
    if encoding == "deflate":
        # RFC 9110's deflate is zlib-wrapped; some clients send raw deflate (as aiohttp also accepts).
        first = chunks[0][:1] if chunks else b""
        wbits = zlib.MAX_WBITS if first and first[0] & 0x0F == 8 else -zlib.MAX_WBITS
    else:
        wbits = 16 + zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    total = 0
    try:
        while chunks and not inflater.eof:
            data = chunks.popleft()
            pending = data
            while pending and not inflater.eof:
                hold.take(2 * INFLATE_CHUNK)  # the piece and zlib's blocks, reserved before zlib allocates them
                out = inflater.decompress(pending, INFLATE_CHUNK)
                hold.give(2 * INFLATE_CHUNK - len(out))  # the blocks are freed once the piece is made
                total += len(out)
                if total > limit:
                    raise TooLarge(f"Request body inflates to over the limit of {limit} bytes")
                pending = inflater.unconsumed_tail
                yield out
                hold.give(len(out))
                del out
            hold.give(len(data))
        hold.give(sum(map(len, chunks)))  # bytes after the end of the stream: ignored
        chunks.clear()
        tail = inflater.flush()
    except zlib.error as exc:
        raise BadRequest(f"Malformed request body: it is not valid {encoding}") from exc
    if not inflater.eof or total + len(tail) > limit:
        raise BadRequest(f"Malformed request body: the {encoding} stream is truncated")
    if tail:
        hold.take(len(tail))
        yield tail
        hold.give(len(tail))


def _read_form(pieces: Iterator[bytes], boundary: str, field: str, limit: int, hold: Hold, hint: int) -> Upload:
    """``hint``: the body's (inflated) size, which sizes the audio field's buffer."""
    audio: _Buffer | None = None
    items: list[tuple[str, str]] = []
    current: _Buffer | bytearray | None = None  # the part being read: the audio, or another field
    name = ""
    try:
        # Part headers as Latin-1, which decodes any bytes: a filename in another charset (never used) must not
        # refuse the upload; names are turned back into UTF-8 in _start_part.
        with multipart.PushMultipartParser(boundary, max_segment_count=MAX_PARTS, max_segment_size=limit,
                                           header_charset="latin-1") as parser:
            for chunk in pieces:
                for event in parser.parse(chunk):
                    if isinstance(event, multipart.MultipartSegment):
                        current, name = _start_part(event, field, audio is not None, items)
                        if name == field:
                            current = audio = _Buffer(hold, hint, limit)
                    elif event and isinstance(current, _Buffer):
                        current.append(event)  # the audio's bytes, copied out of the piece being parsed
                    elif event and current is not None:
                        if len(current) + len(event) > MAX_FIELD_BYTES:
                            raise TooLarge(f"Form field '{name[:40]}' is over {MAX_FIELD_BYTES} bytes "
                                           "(only the audio field may be large)", param=name[:40])
                        current.extend(event)
                del chunk  # dropped before the next piece is made
    except multipart.ParserLimitReached as exc:
        raise TooLarge(f"Multipart form over its limits ({MAX_PARTS} parts at most): {exc}") from exc
    except multipart.MultipartError as exc:
        raise BadRequest("Malformed multipart body: a part could not be parsed") from exc
    if audio is None:
        raise BadRequest(f"Multipart form has no '{field}' field with the audio", param=field)
    return Upload(audio.result(), tuple((k, bytes(v).decode("utf-8", errors="replace")) for k, v in items))


def _start_part(segment: multipart.MultipartSegment, field: str, have_audio: bool,
                items: list[tuple[str, bytearray]]) -> tuple[bytearray | None, str]:
    """The buffer of a part other than the audio (None for the audio: the caller makes its own)."""
    if (segment.content_type or "").lower().startswith("multipart/"):
        raise BadRequest("Nested multipart bodies are not supported")
    name = segment.name.encode("latin-1").decode("utf-8", errors="replace")
    if name == field:
        if have_audio:
            raise BadRequest(f"More than one '{field}' field in the form", param=field)
        return None, field
    if name:
        value = bytearray()
        items.append((name, value))
        return value, name
    return None, ""
