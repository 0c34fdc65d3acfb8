"""Operations: /metrics, /ready, JSON logs, trusted proxies (fake engine; the real model at the end)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from auth.client_address import _resolve, parse_networks
from stt.http.keys import LIFECYCLE
from stt.logs import make_handler
from stt.http.routes.ops import not_ready
from stt.settings import ConfigError, LoggingSettings
from tests.conftest import AUTH, make_settings
from tests.helpers import AUDIO_DIR, FakeEngine, tone, wav

SECRET = "s3cret-token-for-logs"


async def scrape(client: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, parsed by prometheus_client's own parser: (name, labels) -> value."""
    response = await client.get("/metrics", headers=AUTH)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


REQ = "stt_http_requests_total"


async def test_one_request_moves_the_metrics_by_what_it_did(make_client: Any) -> None:
    client = await make_client(FakeEngine())
    before = await scrape(client)
    response = await client.post("/stt", data=wav(tone(440, 2.0, 16000)), headers=AUTH)
    assert response.status == 200
    after = await scrape(client)
    labels = {"face": "native", "route": "/stt", "method": "POST", "status": "200"}
    assert value(after, REQ, **labels) - value(before, REQ, **labels) == 1
    assert value(after, "stt_audio_seconds_total", face="native") - \
        value(before, "stt_audio_seconds_total", face="native") == pytest.approx(2.0)
    for histogram in ("stt_queue_wait_seconds_count", "stt_http_request_duration_seconds_count"):
        assert value(after, histogram, face="native") - value(before, histogram, face="native") == 1
    assert value(after, "stt_engine_seconds_total", face="native") > value(before, "stt_engine_seconds_total",
                                                                          face="native")
    # The scrape itself was counted once, between the two scrapes.
    scrape_labels = {"face": "other", "route": "/metrics", "method": "GET", "status": "200"}
    assert value(after, REQ, **scrape_labels) - value(before, REQ, **scrape_labels) == 1


async def test_refusals_are_counted_by_reason(make_client: Any) -> None:
    # Public metrics: this address gets throttled below, and a public route is never throttled.
    client = await make_client(FakeEngine(), limits={"auth_max_failures": 2}, http={"metrics_public": True})
    before = await scrape(client)
    assert (await client.post("/stt", data=b"this is not audio", headers=AUTH)).status == 400
    assert (await client.post("/stt", data=b"x" * 10, headers={"Authorization": "Token nope"})).status == 403
    assert (await client.get("/ping")).status == 401
    assert (await client.get("/ping", headers=AUTH)).status == 429  # two failures from this address
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("stt_uploads_rejected_total", face="native", reason="invalid_audio") == 1
    assert delta("stt_auth_failures_total", reason="invalid") == 1
    assert delta("stt_auth_failures_total", reason="missing") == 1
    assert delta("stt_auth_throttled_total") == 1


async def test_labels_are_bounded_route_patterns_never_raw_paths(make_client: Any) -> None:
    client = await make_client(FakeEngine())
    for i in range(5):
        assert (await client.get(f"/no-such-{i}", headers=AUTH)).status == 404
    samples = await scrape(client)
    routes = {dict(labels).get("route") for name, labels in samples if name == REQ}
    assert "unmatched" in routes and not any(r and r.startswith("/no-such") for r in routes)
    assert not any("request_id" in dict(labels) or "token" in dict(labels) for _, labels in samples)


async def test_metrics_need_the_token_unless_made_public(make_client: Any) -> None:
    private = await make_client(FakeEngine())
    assert (await private.get("/metrics")).status == 401
    assert (await private.get("/metrics", headers={"Authorization": f"Bearer {AUTH['Authorization'][6:]}"})
            ).status == 200  # Prometheus' `authorization: credentials` sends Bearer
    public = await make_client(FakeEngine(), http={"metrics_public": True})
    assert (await public.get("/metrics")).status == 200


async def test_queue_depth_and_running_are_read_at_scrape_time(make_client: Any) -> None:
    engine = FakeEngine(delay=1.0)
    client = await make_client(engine, limits={"max_queue": 1})
    body = wav(tone(440, 1.0, 16000))
    first = asyncio.ensure_future(client.post("/stt", data=body, headers=AUTH))
    await asyncio.to_thread(engine.running.wait, 5)
    second = asyncio.ensure_future(client.post("/stt", data=body, headers=AUTH))
    await asyncio.sleep(0.2)
    samples = await scrape(client)
    assert value(samples, "stt_jobs_running") == 1 and value(samples, "stt_queue_depth") == 1
    assert value(samples, "stt_ready") == 0
    ready = await client.get("/ready")
    assert ready.status == 503 and (await ready.json())["reasons"] == ["queue full"]
    assert (await client.get("/health")).status == 200  # alive, just busy
    assert [r.status for r in await asyncio.gather(first, second)] == [200, 200]
    assert (await client.get("/ready")).status == 200


async def test_ready_fails_while_shutting_down_and_before_the_model_is_loaded(make_client: Any) -> None:
    client = await make_client(FakeEngine())
    assert (await client.get("/ready")).status == 200
    client.app[LIFECYCLE].stopping_since = time.monotonic()
    response = await client.get("/ready")
    assert response.status == 503 and (await response.json())["reasons"] == ["shutting down"]
    assert (await client.get("/health")).status == 200
    from stt.http.app import create_app

    loading = create_app(make_settings())  # startup (which loads the model) has not run
    assert not_ready(loading) == ["model loading"]


# -- trusted proxies ---------------------------------------------------------------------------------------

def test_forwarded_for_is_read_from_the_right_and_only_from_trusted_peers() -> None:
    proxies = parse_networks(["10.0.0.0/8", "::1"])
    assert _resolve("203.0.113.9", ["1.2.3.4"], proxies) == "203.0.113.9"  # untrusted peer: header ignored
    assert _resolve("10.0.0.2", ["1.2.3.4"], proxies) == "1.2.3.4"
    # A client-forged entry on the left is not believed: the rightmost untrusted hop is the client.
    assert _resolve("10.0.0.2", ["6.6.6.6, 1.2.3.4, 10.0.0.7"], proxies) == "1.2.3.4"
    assert _resolve("10.0.0.2", ["garbage, 10.0.0.7"], proxies) == "10.0.0.7"
    assert _resolve("::1", ["2001:db8::1"], proxies) == "2001:db8::1"
    assert _resolve("::ffff:10.0.0.2", ["1.2.3.4"], proxies) == "1.2.3.4"
    assert _resolve("10.0.0.2", [], proxies) == "10.0.0.2"
    assert _resolve("10.0.0.2", [", ".join(["10.0.0.9"] * 100_000)], proxies) == "10.0.0.9"  # bounded hops
    assert _resolve("1.2.3.4", ["5.6.7.8"], ()) == "1.2.3.4"


def test_trusted_proxies_are_validated() -> None:
    with pytest.raises(ConfigError, match="server.http.trusted_proxies"):
        make_settings(http={"trusted_proxies": ["10.0.0.0/33"]})


async def _fail_auth(client: Any, forwarded: str, times: int) -> list[int]:
    return [(await client.get("/ping", headers={"Authorization": "Token bad", "X-Forwarded-For": forwarded})
             ).status for _ in range(times)]


async def test_forwarded_for_from_a_trusted_proxy_drives_the_throttle(make_client: Any,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="stt.access")
    client = await make_client(FakeEngine(), http={"trusted_proxies": ["127.0.0.0/8"]},
                               limits={"auth_max_failures": 2})
    assert await _fail_auth(client, "198.51.100.1", 3) == [403, 403, 429]
    ok = await client.get("/ping", headers={**AUTH, "X-Forwarded-For": "198.51.100.2"})
    assert ok.status == 200  # another client behind the same proxy is not punished
    assert caplog.records[-1].getMessage().endswith("client=198.51.100.2")  # the access log names the client
    refused = await client.get("/ping", headers={**AUTH, "X-Forwarded-For": "198.51.100.1"})
    assert refused.status == 429


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(make_client: Any) -> None:
    client = await make_client(FakeEngine(), http={"trusted_proxies": ["10.0.0.0/8"]},
                               limits={"auth_max_failures": 2})
    statuses = [(await _fail_auth(client, f"198.51.100.{i}", 1))[0] for i in range(3)]
    assert statuses == [403, 403, 429]  # a new forged address per attempt does not escape the throttle


# -- JSON logs ------------------------------------------------------------------------------------------------

async def test_json_log_lines_carry_the_request_id_and_never_the_token(make_client: Any) -> None:
    stream = io.StringIO()
    handler = make_handler(LoggingSettings(format="json"), stream)
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    try:
        client = await make_client(FakeEngine(), http={"allowed_tokens": [SECRET],
                                                       "trusted_proxies": ["127.0.0.1"]})
        body = wav(tone(440, 1.0, 16000))
        ok = await client.post("/stt", data=body, headers={"Authorization": f"Token {SECRET}",
                                                           "X-Request-Id": "job-42", "X-Forwarded-For": "192.0.2.7"})
        assert ok.status == 200
        bad = await client.post("/stt", data=body, headers={"Authorization": f"Token {SECRET}x"})
        assert bad.status == 403
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]  # every line is one JSON object
    access = [r for r in lines if r["logger"] == "stt.access"]
    first = next(r for r in access if r["request_id"] == "job-42")
    assert first["route"] == "/stt" and first["status"] == 200 and first["method"] == "POST"
    assert first["client"] == "192.0.2.7" and first["audio_s"] == pytest.approx(1.0)
    assert first["queue_s"] is not None and first["engine_s"] is not None and first["total_s"] > 0
    assert {"time", "level", "message"} <= set(first)
    assert any(r["status"] == 403 for r in access)
    assert SECRET not in stream.getvalue()


def test_logging_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="logging.format"):
        make_settings(logging={"format": "xml"})
    with pytest.raises(ConfigError, match="logging.level"):
        make_settings(logging={"level": "chatty"})
    with pytest.raises(ConfigError, match="logging.colour"):
        make_settings(logging={"colour": True})
    assert make_settings(logging={"format": "json", "level": "debug"}).logging.level == "debug"


# -- the real model ----------------------------------------------------------------------------------------

@pytest.mark.model
async def test_one_jfk_transcription_counts_one_request_and_eleven_seconds(make_client: Any,
                                                                          fw_tiny: Any) -> None:
    client = await make_client(fw_tiny)
    before = await scrape(client)
    audio = (AUDIO_DIR / "en" / "jfk.flac").read_bytes()
    response = await client.post("/stt", data=audio, headers=AUTH)
    assert response.status == 200 and "ask not" in (await response.json())["text"]
    after = await scrape(client)
    labels = {"face": "native", "route": "/stt", "method": "POST", "status": "200"}
    assert value(after, REQ, **labels) - value(before, REQ, **labels) == 1
    assert value(after, "stt_audio_seconds_total", face="native") - \
        value(before, "stt_audio_seconds_total", face="native") == pytest.approx(11.0)
    engine_s = value(after, "stt_engine_seconds_total", face="native") - \
        value(before, "stt_engine_seconds_total", face="native")
    assert 0 < engine_s < 60


@pytest.mark.model
async def test_a_live_stream_is_counted_open_batched_and_its_finals_timed(make_client: Any, fw_tiny: Any) -> None:
    from tests.live_helpers import load_pcm16, stream

    client = await make_client(fw_tiny)
    before = await scrape(client)
    ws = await client.ws_connect("/listen?encoding=linear16&sample_rate=16000", headers=AUTH)
    await asyncio.sleep(0.2)
    assert value(await scrape(client), "stt_live_streams_open") == 1
    received = await stream(ws, load_pcm16("en/jfk.flac"), speed=2.0)
    assert received.finals
    after = await scrape(client)
    assert value(after, "stt_live_streams_open") == 0
    finals = value(after, "stt_live_final_delay_seconds_count") - value(before, "stt_live_final_delay_seconds_count")
    assert finals == len(received.finals)
    delay_sum = value(after, "stt_live_final_delay_seconds_sum") - value(before, "stt_live_final_delay_seconds_sum")
    assert 0 <= delay_sum / finals < 10
    batches = value(after, "stt_batch_windows_count") - value(before, "stt_batch_windows_count")
    windows = value(after, "stt_batch_windows_sum") - value(before, "stt_batch_windows_sum")
    assert batches >= 1 and windows >= batches  # every batch holds at least one window
    labels = {"face": "live", "route": "/listen", "method": "GET", "status": "101"}
    assert value(after, REQ, **labels) - value(before, REQ, **labels) == 1


def test_arrival_clock_times_a_final_from_the_arrival_of_its_last_audio() -> None:
    from stt.metrics import LIVE_FINAL_DELAY, ArrivalClock

    now = [100.0]
    clock = ArrivalClock(max_entries=3, clock=lambda: now[0])
    count = lambda: LIVE_FINAL_DELAY.collect()[0].samples  # noqa: E731
    before = {s.name: s.value for s in count()}
    for seconds in (0.1, 0.2, 0.3):
        clock.heard(seconds)
        now[0] += 0.1  # audio arrives in real time: 0.1 s at 100.0, 0.2 s at 100.1, 0.3 s at 100.2
    now[0] = 100.5
    clock.final(0.15)  # its last audio arrived with the 0.2 s chunk, at 100.1
    after = {s.name: s.value for s in count()}
    assert after["stt_live_final_delay_seconds_count"] - before["stt_live_final_delay_seconds_count"] == 1
    assert after["stt_live_final_delay_seconds_sum"] - before["stt_live_final_delay_seconds_sum"] == \
        pytest.approx(0.4)
    clock.heard(0.4)  # the 0.1 s entry is dropped: a final ending before 0.2 s can no longer be timed
    clock.final(0.05)
    assert {s.name: s.value for s in count()}["stt_live_final_delay_seconds_count"] == \
        after["stt_live_final_delay_seconds_count"]
