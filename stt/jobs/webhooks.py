"""Callbacks: where they may go (SSRF), how they are signed, and their delivery with retries.

The HTTP request itself is made by a ``Send`` given by the server (stt/http/webhook_client.py, aiohttp's client):
the domain holds no HTTP code. A delivery is claimed from the store with a lease, each attempt is recorded on the
job, and a success is recorded before the next delivery is looked at: after a restart an acknowledged callback
is not sent again (a crash in the instant between the receiver's answer and that record can repeat it once;
receivers deduplicate on ``X-STT-Delivery``, the job id).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable

from stt.errors import BadRequest
from stt.jobs.model import Attempt, woken_or_polled
from stt.jobs.store import AsyncJobStore, DueDelivery

log = logging.getLogger("stt.jobs.webhooks")
SIGNATURE_HEADER = "X-STT-Signature"
TIMESTAMP_HEADER = "X-STT-Timestamp"
DELIVERY_HEADER = "X-STT-Delivery"
URL_MAX = 2000
POLL_S = 0.5
FIRST_RETRY_S = 1.0  # then 2, 4, 8... s


@dataclasses.dataclass(frozen=True)
class Response:
    status: int | None  # None: no answer (refused, timed out, reset)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


Send = Callable[[str, str, dict[str, str], bytes], Awaitable[Response]]


def check_callback_url(url: str, allowed_hosts: tuple[str, ...], param: str = "callback_url") -> str:
    """The URL if callbacks may go there; BadRequest (400) with the reason otherwise. Only hosts the operator
    listed (``jobs.callback_allowed_hosts``), by name or name:port, so a client cannot make the server call
    into its own network (SSRF)."""
    if not allowed_hosts:
        raise BadRequest(f"{param}: callbacks are disabled on this server (jobs.callback_allowed_hosts is empty)",
                         param=param)
    if len(url) > URL_MAX:
        raise BadRequest(f"{param}: at most {URL_MAX} characters", param=param)
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        raise BadRequest(f"{param}: not a valid URL", param=param) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest(f"{param}: must be an http:// or https:// URL", param=param)
    if parts.username is not None or parts.password is not None:
        raise BadRequest(f"{param}: user names and passwords in the URL are not allowed", param=param)
    host = parts.hostname.lower().rstrip(".")
    allowed = {h.lower() for h in allowed_hosts}
    if host not in allowed and (port is None or f"{host}:{port}" not in allowed):
        raise BadRequest(f"{param}: host {host!r} is not in jobs.callback_allowed_hosts", param=param)
    return url


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256, hex, over ``<timestamp>.<body>``: the timestamp is signed so an old callback cannot be
    replayed as new."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def signed_headers(secret: str, job_id: str, body: bytes, now: float | None = None) -> dict[str, str]:
    timestamp = str(int(now if now is not None else time.time()))
    return {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp, DELIVERY_HEADER: job_id,
            SIGNATURE_HEADER: "sha256=" + signature(secret, timestamp, body)}


def verify(secret: str, headers: dict[str, str], body: bytes, tolerance_s: float = 300.0) -> bool:
    """What a receiver does (documented in the README; used by the tests)."""
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    given = headers.get(SIGNATURE_HEADER, "").removeprefix("sha256=")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(given, signature(secret, timestamp, body))


def retry_delay(attempts: int) -> float:
    """Seconds before the next try after ``attempts`` failed ones: 1, 2, 4, 8..."""
    return FIRST_RETRY_S * 2 ** (attempts - 1)


class Deliverer:
    def __init__(self, store: AsyncJobStore, send: Send, secret: str, max_attempts: int,
                 lease_s: float) -> None:
        self._store = store
        self._send = send
        self._secret = secret
        self._max_attempts = max_attempts
        self._lease_s = lease_s  # a delivery claimed by a replica that died is tried again after this
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="jobs-callbacks")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._sending) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            try:
                while (due := await self._store.call("claim_delivery", self._lease_s)) is not None:
                    task = asyncio.create_task(self._deliver(due))  # a slow receiver does not hold up others
                    self._sending.add(task)
                    task.add_done_callback(self._sending.discard)
            except Exception:
                log.exception("callbacks: claiming failed")
            await woken_or_polled(self._wake, POLL_S)

    async def _deliver(self, due: DueDelivery) -> None:
        headers = signed_headers(self._secret, due.job_id, due.body)
        started = time.time()
        try:
            response = await self._send(due.method, due.url, headers, due.body)
        except Exception as exc:  # the sender turns network failures into a Response; anything else is a bug
            log.exception("callback to %s failed", due.url)
            response = Response(None, type(exc).__name__)
        attempts = due.attempts + 1
        retry_at = None if response.ok or attempts >= self._max_attempts else time.time() + retry_delay(attempts)
        await self._store.call("record_attempt", due.job_id, Attempt(round(started, 3), response.status,
                                                                     response.error), response.ok, retry_at)
        if response.ok:
            log.info("callback for job %s delivered (HTTP %s, attempt %d)", due.job_id, response.status, attempts)
        else:
            log.warning("callback for job %s: attempt %d failed (%s)%s", due.job_id, attempts,
                        response.error or f"HTTP {response.status}", "" if retry_at else ": given up")
