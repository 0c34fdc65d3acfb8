"""Auth safety: throttling of repeated failures (429 + Retry-After), hashed tokens, no token in logs or errors,
X-Request-Id on every response, CORS (off by default, preflight without a token)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from auth.throttle import FailureThrottle
from auth.tokens import TokenStore, hash_token
from stt.settings import ConfigError
from tests.bad_inputs import tone, wav_bytes
from tests.conftest import AUTH, make_settings
from tests.helpers import TOKEN, FakeEngine

SECRET = "s3cret-token-never-logged"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_counts_failures_per_address_within_the_window() -> None:
    clock = FakeClock()
    throttle = FailureThrottle(max_failures=3, window_seconds=60, clock=clock)
    for _ in range(3):
        assert throttle.retry_after("10.0.0.1") == 0
        throttle.record_failure("10.0.0.1")
        clock.now += 1
    assert throttle.retry_after("10.0.0.1") == pytest.approx(57)  # the oldest failure leaves the window then
    assert throttle.retry_after("10.0.0.2") == 0  # other addresses are not affected
    clock.now += 57
    assert throttle.retry_after("10.0.0.1") == 0


async def test_a_valid_request_does_not_wipe_the_failures_before_it(make_client: Any) -> None:
    """5 guesses + 1 valid request, repeated, used to never reach 429: a success cleared the count."""
    client = await make_client(FakeEngine(), limits={"auth_max_failures": 10, "auth_window_seconds": 60})
    statuses = []
    for _ in range(3):
        statuses += [(await client.get("/ping", headers={"Authorization": f"Token guess{i}"})).status
                     for i in range(5)]
        statuses.append((await client.get("/ping", headers=AUTH)).status)
    assert statuses[:6] == [403] * 5 + [200]
    assert 429 in statuses[6:]


def test_a_full_throttle_table_stays_fast_and_forgets_the_longest_idle() -> None:
    """At 10,000 tracked addresses each failure from a new one used to re-sort the table."""
    import time

    clock = FakeClock()
    throttle = FailureThrottle(max_failures=3, window_seconds=60, clock=clock, max_tracked=10_000)
    elapsed = []
    for start in (0, 10_000, 20_000):  # filling the table, then twice with it full
        began = time.perf_counter()
        for i in range(start, start + 10_000):
            clock.now += 0.001
            throttle.record_failure(f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}")
        elapsed.append(time.perf_counter() - began)
    assert throttle.tracked == 10_000
    # A full table costs a new address what an empty one does (the sort made the last 20,000 take ~40 s).
    assert max(elapsed[1:]) < 5 * elapsed[0] + 0.05
    assert throttle.retry_after("10.0.0.0") == 0  # forgotten: the longest idle
    for _ in range(3):
        throttle.record_failure("10.0.117.47")  # tracked, among the newest
    assert throttle.retry_after("10.0.117.47") > 0


async def test_repeated_failures_get_429_with_retry_after_even_with_a_valid_token(make_client: Any) -> None:
    engine = FakeEngine()
    client = await make_client(engine, limits={"auth_max_failures": 3, "auth_window_seconds": 30})
    statuses = [(await client.get("/ping", headers={"Authorization": f"Token wrong{i}"})).status
                for i in range(3)]
    assert statuses == [403, 403, 403]
    refused = await client.post("/stt", data=wav_bytes(tone()), headers=AUTH)
    assert refused.status == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 30
    body = await refused.json()
    assert body["status"] == "failed" and body["code"] == "rate_limited"
    assert engine.calls == 0
    # Health checks stay reachable for the load balancer.
    assert (await client.get("/health")).status == 200


async def test_missing_header_counts_as_a_failure(make_client: Any) -> None:
    client = await make_client(FakeEngine(), limits={"auth_max_failures": 2})
    assert [(await client.get("/ping")).status for _ in range(3)] == [401, 401, 429]


async def test_hashed_token_entries_accept_the_token_not_the_hash(make_client: Any) -> None:
    hashed = hash_token(SECRET)
    client = await make_client(FakeEngine(), http={"allowed_tokens": [hashed]})
    assert (await client.get("/ping", headers={"Authorization": f"Token {SECRET}"})).status == 200
    assert (await client.get("/ping", headers={"Authorization": f"Bearer {SECRET}"})).status == 200
    assert (await client.get("/ping", headers={"Authorization": f"Token {hashed}"})).status == 403
    assert (await client.get("/ping", headers={"Authorization": f"Token {TOKEN}"})).status == 403


def test_token_store_mixes_plain_and_hashed_entries() -> None:
    store = TokenStore(["plain-one", hash_token("hashed-one")])
    assert store.is_valid("plain-one") and store.is_valid("hashed-one")
    assert not store.is_valid("hashed-one ") and not store.is_valid("")


def test_malformed_hashed_entry_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="allowed_tokens"):
        make_settings(http={"allowed_tokens": ["sha256:not-hex"]})


async def test_tokens_never_appear_in_logs_or_error_messages(make_client: Any,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    engine = FakeEngine()
    client = await make_client(engine, http={"allowed_tokens": [hash_token(SECRET)]})
    wrong = "wrong-" + SECRET
    texts = []
    for header in (f"Token {SECRET}", f"Token {wrong}", f"Bearer {wrong}", f"Basic {wrong}", wrong):
        resp = await client.post("/stt", data=wav_bytes(tone()), headers={"Authorization": header})
        texts.append(await resp.text())
    engine.fail_next = True
    failed = await client.post("/stt", data=wav_bytes(tone()), headers={"Authorization": f"Token {SECRET}"})
    assert failed.status == 500
    texts.append(await failed.text())
    assert "stt.access" in {r.name for r in caplog.records}  # the access log was captured
    for text in [caplog.text, *texts]:
        assert SECRET not in text


async def test_every_response_carries_a_request_id(make_client: Any) -> None:
    engine = FakeEngine()
    client = await make_client(engine, http={"request_max_size": 1024}, limits={"auth_max_failures": 1})
    responses = [
        await client.get("/ping", headers=AUTH),  # 200
        await client.get("/nope", headers=AUTH),  # 404
        await client.put("/stt", headers=AUTH),  # 405
        await client.post("/stt", data=b"x" * 2048, headers=AUTH),  # 413
        await client.post("/stt", data=b"", headers=AUTH),  # 400
        await client.get("/health"),  # public
    ]
    engine.fail_next = True
    responses.append(await client.post("/stt", data=wav_bytes(tone(0.02)), headers=AUTH))  # 500
    responses.append(await client.get("/ping"))  # 401
    responses.append(await client.get("/ping"))  # 429
    assert [r.status for r in responses] == [200, 404, 405, 413, 400, 200, 500, 401, 429]
    ids = [r.headers.get("X-Request-Id") for r in responses]
    assert all(ids) and len(set(ids)) == len(ids)


async def test_safe_client_request_id_is_echoed_and_unsafe_one_replaced(client: Any) -> None:
    mine = await client.get("/ping", headers={**AUTH, "X-Request-Id": "job-42.a_b"})
    assert mine.headers["X-Request-Id"] == "job-42.a_b"
    hostile = await client.get("/ping", headers={**AUTH, "X-Request-Id": "x\" injected=1"})
    assert hostile.headers["X-Request-Id"] != "x\" injected=1"
    assert len(hostile.headers["X-Request-Id"]) == 36  # a fresh uuid4


async def test_access_log_names_id_route_status_audio_and_timings(client: Any,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="stt.access")
    resp = await client.post("/stt", data=wav_bytes(tone(2.0)), headers={**AUTH, "X-Request-Id": "trace-1"})
    assert resp.status == 200
    (line,) = [r.getMessage() for r in caplog.records if r.name == "stt.access"]
    assert line.startswith("trace-1 POST /stt 200 audio=2.000s queue=")
    assert "engine=" in line and "total=" in line


# --- CORS ---------------------------------------------------------------------------------------------------

ORIGIN = "https://app.example.com"
PREFLIGHT = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization, content-type"}


async def test_cors_is_off_by_default(client: Any) -> None:
    resp = await client.get("/ping", headers={**AUTH, "Origin": ORIGIN})
    assert resp.status == 200
    assert "Access-Control-Allow-Origin" not in resp.headers
    preflight = await client.options("/stt", headers=PREFLIGHT)
    assert "Access-Control-Allow-Origin" not in preflight.headers
    assert preflight.status >= 400


async def test_cors_preflight_needs_no_token_and_allows_the_configured_origin(make_client: Any) -> None:
    client = await make_client(FakeEngine(), http={"cors_origins": [ORIGIN]})
    preflight = await client.options("/stt", headers=PREFLIGHT)
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    assert preflight.headers["X-Request-Id"]
    resp = await client.post("/stt", data=wav_bytes(tone()), headers={**AUTH, "Origin": ORIGIN})
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "X-Request-Id" in resp.headers["Access-Control-Expose-Headers"]
    # Errors are readable by the page too, and auth still applies to the real request.
    denied = await client.post("/stt", data=b"", headers={"Origin": ORIGIN})
    assert denied.status == 401
    assert denied.headers["Access-Control-Allow-Origin"] == ORIGIN


async def test_cors_refuses_other_origins(make_client: Any) -> None:
    client = await make_client(FakeEngine(), http={"cors_origins": [ORIGIN]})
    preflight = await client.options("/stt", headers={**PREFLIGHT, "Origin": "https://evil.example"})
    assert preflight.status == 403
    assert "Access-Control-Allow-Origin" not in preflight.headers
    resp = await client.get("/ping", headers={**AUTH, "Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_cors_wildcard(make_client: Any) -> None:
    client = await make_client(FakeEngine(), http={"cors_origins": ["*"]})
    resp = await client.get("/ping", headers={**AUTH, "Origin": "https://anyone.example"})
    assert resp.headers["Access-Control-Allow-Origin"] == "*"


def test_throttle_table_stays_bounded_under_many_addresses() -> None:
    clock = FakeClock()
    throttle = FailureThrottle(max_failures=5, window_seconds=60, clock=clock, max_tracked=100)
    for i in range(1000):
        throttle.record_failure(f"2001:db8::{i:x}")
        clock.now += 0.01
    assert throttle.tracked <= 101
    throttle.record_failure("last")
    for _ in range(4):
        throttle.record_failure("last")
    assert throttle.retry_after("last") > 0  # recent offenders are the ones kept
