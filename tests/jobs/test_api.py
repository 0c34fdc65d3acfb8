"""Jobs API contract on a fake engine: submit, poll, result, list, cancel, token isolation, limits, callbacks
(signature, retry after a 500, no redirects), SSRF refusals."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from stt.engines.base import WindowScores
from stt.jobs import webhooks
from tests.helpers import TOKEN, FakeEngine, tone, wav

AUTH = {"Authorization": f"Token {TOKEN}"}
OTHER = "other-token-456"
OTHER_AUTH = {"Authorization": f"Token {OTHER}"}
SECRET = "s3cret-for-tests"


def jobs_section(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"dir": str(tmp_path / "jobs"), **extra}


async def make(make_client: Any, tmp_path: Path, engine: FakeEngine | None = None, **jobs: Any) -> Any:
    return await make_client(engine or FakeEngine(), http={"allowed_tokens": [TOKEN, OTHER]},
                             jobs=jobs_section(tmp_path, **jobs))


async def wait_for(client: Any, job_id: str, statuses: tuple[str, ...] = ("completed", "failed"),
                   timeout: float = 20.0, headers: dict[str, str] = AUTH) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get(f"/v1/jobs/{job_id}", headers=headers)
        body = await response.json()
        if body["status"] in statuses:
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)


async def submit(client: Any, audio: bytes, query: str = "", headers: dict[str, str] = AUTH) -> Any:
    return await client.post(f"/v1/jobs{query}", data=audio, headers=headers)


async def test_submit_poll_and_every_result_format(make_client: Any, tmp_path: Path, wav_bytes: bytes) -> None:
    client = await make(make_client, tmp_path)
    response = await submit(client, wav_bytes, "?language=en")
    assert response.status == 202
    body = await response.json()
    assert body["status"] == "queued" and body["options"] == {"language": "en"}
    assert response.headers["Location"] == f"/v1/jobs/{body['id']}"
    done = await wait_for(client, body["id"])
    assert done["status"] == "completed", done
    assert done["progress"] == {"done_seconds": 1.0, "total_seconds": 1.0}
    assert done["started_at"] >= done["created_at"] and done["finished_at"] >= done["started_at"]
    assert done["result_url"] == f"/v1/jobs/{body['id']}/result"
    result = await client.get(done["result_url"], headers=AUTH)
    assert result.status == 200
    assert (await result.json())["text"] == "hello world"
    expected = {"text": ("text/plain", "hello world"), "srt": ("application/x-subrip", "00:00:00,000 --> "),
                "vtt": ("text/vtt", "WEBVTT"), "verbose_json": ("application/json", '"segments"')}
    for output, (content_type, snippet) in expected.items():
        rendered = await client.get(f"{done['result_url']}?output={output}", headers=AUTH)
        assert rendered.status == 200 and rendered.content_type == content_type
        assert snippet in await rendered.text()
    # The audio is deleted once the job is done.
    assert list((tmp_path / "jobs" / "audio").iterdir()) == []


async def test_multipart_upload_and_options_in_form(make_client: Any, tmp_path: Path, wav_bytes: bytes) -> None:
    client = await make(make_client, tmp_path)
    form = aiohttp.FormData()
    form.add_field("file", wav_bytes, filename="a.wav", content_type="audio/wav")
    form.add_field("output", "text")
    response = await client.post("/v1/jobs", data=form, headers=AUTH)
    assert response.status == 202, await response.text()
    job = await wait_for(client, (await response.json())["id"])
    result = await client.get(job["result_url"], headers=AUTH)
    assert result.content_type == "text/plain" and await result.text() == "hello world\n"


async def test_bad_options_are_refused_before_anything_is_queued(make_client: Any, tmp_path: Path,
                                                                 wav_bytes: bytes) -> None:
    client = await make(make_client, tmp_path)
    for query, param in (("?language=xx", "language"), ("?nope=1", "nope"), ("?beam_size=99", "beam_size"),
                         ("?model=nope", "model")):
        response = await submit(client, wav_bytes, query)
        assert response.status == 400
        assert (await response.json())["param"] == param
    assert (await submit(client, b"")).status == 400
    listed = await (await client.get("/v1/jobs", headers=AUTH)).json()
    assert listed["jobs"] == []


async def test_corrupt_audio_fails_the_job_with_a_clear_error(make_client: Any, tmp_path: Path) -> None:
    client = await make(make_client, tmp_path)
    job_id = (await (await submit(client, b"not audio at all" * 10)).json())["id"]
    done = await wait_for(client, job_id)
    assert done["status"] == "failed"
    assert done["error"]["code"] == "invalid_audio"
    result = await client.get(f"/v1/jobs/{job_id}/result", headers=AUTH)
    assert result.status == 409


async def test_a_job_belongs_to_its_token(make_client: Any, tmp_path: Path, wav_bytes: bytes) -> None:
    client = await make(make_client, tmp_path)
    mine = (await (await submit(client, wav_bytes)).json())["id"]
    theirs = (await (await submit(client, wav_bytes, headers=OTHER_AUTH)).json())["id"]
    await wait_for(client, mine)
    for path in (f"/v1/jobs/{mine}", f"/v1/jobs/{mine}/result"):
        response = await client.get(path, headers=OTHER_AUTH)
        assert response.status == 404
        assert (await response.json())["status"] == "failed"
    assert (await client.delete(f"/v1/jobs/{mine}", headers=OTHER_AUTH)).status == 404
    assert (await client.get(f"/v1/jobs/{mine}", headers=AUTH)).status == 200  # still there for its owner
    listed = await (await client.get("/v1/jobs", headers=AUTH)).json()
    assert [j["id"] for j in listed["jobs"]] == [mine]
    listed = await (await client.get("/v1/jobs", headers=OTHER_AUTH)).json()
    assert [j["id"] for j in listed["jobs"]] == [theirs]
    assert (await client.get(f"/v1/jobs/{mine}")).status == 401
    assert (await client.get(f"/v1/jobs/{mine}", headers={"Authorization": "Token wrong"})).status == 403


async def test_list_is_paged_newest_first(make_client: Any, tmp_path: Path, wav_bytes: bytes) -> None:
    client = await make(make_client, tmp_path)
    ids = [(await (await submit(client, wav_bytes)).json())["id"] for _ in range(5)]
    page = await (await client.get("/v1/jobs?limit=2", headers=AUTH)).json()
    seen = [j["id"] for j in page["jobs"]]
    while page["next_before"] is not None:
        page = await (await client.get(f"/v1/jobs?limit=2&before={page['next_before']}", headers=AUTH)).json()
        seen += [j["id"] for j in page["jobs"]]
    assert seen == ids[::-1]
    assert (await client.get("/v1/jobs?limit=1000", headers=AUTH)).status == 400


async def test_cancel_a_running_job_and_delete_a_finished_one(make_client: Any, tmp_path: Path,
                                                              wav_bytes: bytes) -> None:
    engine = FakeEngine(delay=0.5)
    client = await make(make_client, tmp_path, engine, concurrency=1)
    long_audio = wav(tone(440, 40.0, 16000))  # two windows: the job is cancelled between them
    running = (await (await submit(client, long_audio)).json())["id"]
    queued = (await (await submit(client, wav_bytes)).json())["id"]
    await wait_for(client, running, ("processing",))
    await asyncio.to_thread(engine.running.wait, 5)
    response = await client.delete(f"/v1/jobs/{running}", headers=AUTH)
    assert response.status == 200 and (await response.json())["status"] == "cancelled"
    response = await client.delete(f"/v1/jobs/{queued}", headers=AUTH)
    assert (await response.json())["status"] == "cancelled"
    for job_id in (running, queued):
        body = await (await client.get(f"/v1/jobs/{job_id}", headers=AUTH)).json()
        assert body["status"] == "cancelled"
        assert (await client.get(f"/v1/jobs/{job_id}/result", headers=AUTH)).status == 409
    assert list((tmp_path / "jobs" / "audio").iterdir()) == []
    calls = engine.calls
    await asyncio.sleep(1.5)
    assert engine.calls <= calls + 1  # at most the window already running finished; nothing more was decoded
    body = await (await client.get(f"/v1/jobs/{running}", headers=AUTH)).json()
    assert body["status"] == "cancelled"
    # A finished job: DELETE removes it and its result.
    done = (await (await submit(client, wav_bytes)).json())["id"]
    await wait_for(client, done)
    response = await client.delete(f"/v1/jobs/{done}", headers=AUTH)
    assert (await response.json())["status"] == "deleted"
    assert (await client.get(f"/v1/jobs/{done}", headers=AUTH)).status == 404


async def test_queue_and_disk_limits_answer_503_with_retry_after(make_client: Any, tmp_path: Path,
                                                                 wav_bytes: bytes) -> None:
    engine = FakeEngine(delay=1.0)
    client = await make(make_client, tmp_path, engine, concurrency=1, max_queued=1,
                        max_disk_bytes=3 * len(wav_bytes))
    first = (await (await submit(client, wav_bytes)).json())["id"]
    await wait_for(client, first, ("processing",))
    assert (await submit(client, wav_bytes)).status == 202  # queued: the queue is now full
    response = await submit(client, wav_bytes)
    assert response.status == 503 and int(response.headers["Retry-After"]) > 0
    assert "waiting" in (await response.json())["message"]
    await wait_for(client, first)
    response = await submit(client, wav_bytes + b"\0" * (2 * len(wav_bytes)))
    assert response.status == 503 and "storage is full" in (await response.json())["message"]


async def test_request_body_limit_of_jobs_is_their_own(make_client: Any, tmp_path: Path,
                                                       wav_bytes: bytes) -> None:
    client = await make_client(FakeEngine(), http={"request_max_size": 1000},
                               jobs=jobs_section(tmp_path, max_upload_bytes=len(wav_bytes) + 10))
    assert (await client.post("/stt", data=wav_bytes, headers=AUTH)).status == 413
    assert (await submit(client, wav_bytes)).status == 202
    assert (await submit(client, wav_bytes + b"\0" * 100)).status == 413


async def test_jobs_disabled_without_a_folder(client: Any, wav_bytes: bytes) -> None:
    response = await submit(client, wav_bytes)
    assert response.status == 503
    assert "jobs.dir" in (await response.json())["message"]


@pytest.mark.parametrize("url, reason", [
    ("http://evil.example/hook", "not in jobs.callback_allowed_hosts"),
    ("http://169.254.169.254/latest/meta-data", "not in jobs.callback_allowed_hosts"),
    ("http://127.0.0.1:9/hook", "not in jobs.callback_allowed_hosts"),
    ("ftp://hooks.example/x", "http:// or https://"),
    ("http://user:pw@hooks.example/x", "passwords"),
    ("http://hooks.example:99999/x", "not a valid URL"),
    ("/relative", "http:// or https://"),
])
async def test_callback_destinations_outside_the_allowed_hosts_are_refused(
        make_client: Any, tmp_path: Path, wav_bytes: bytes, url: str, reason: str) -> None:
    client = await make(make_client, tmp_path, callback_allowed_hosts=["hooks.example"], webhook_secret=SECRET)
    response = await client.post("/v1/jobs", params={"callback_url": url}, data=wav_bytes, headers=AUTH)
    assert response.status == 400
    body = await response.json()
    assert body["param"] == "callback_url" and reason in body["message"], body


async def test_callbacks_are_refused_until_hosts_are_configured(make_client: Any, tmp_path: Path,
                                                                wav_bytes: bytes) -> None:
    client = await make(make_client, tmp_path)
    response = await client.post("/v1/jobs", params={"callback_url": "http://hooks.example/x"}, data=wav_bytes,
                                 headers=AUTH)
    assert response.status == 400
    assert "callbacks are disabled" in (await response.json())["message"]


class Receiver:
    """A local callback receiver: answers the statuses given, in turn, then 200."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.calls: list[tuple[str, dict[str, str], bytes, float]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.calls.append((request.method, dict(request.headers), await request.read(), time.time()))
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 302:
            raise web.HTTPFound("http://127.0.0.1:9/elsewhere")
        return web.Response(status=status, text="x" * 200_000)  # a long answer: only a bounded part is read

    async def start(self) -> TestServer:
        app = web.Application()
        app.router.add_route("*", "/hook", self.handle)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        return server


async def test_callback_signed_retried_after_a_500_and_recorded(make_client: Any, tmp_path: Path,
                                                                wav_bytes: bytes) -> None:
    receiver = Receiver([500])
    server = await receiver.start()
    try:
        client = await make(make_client, tmp_path, callback_allowed_hosts=["127.0.0.1"], webhook_secret=SECRET)
        url = str(server.make_url("/hook"))
        response = await client.post("/v1/jobs", params={"callback_url": url}, data=wav_bytes, headers=AUTH)
        job_id = (await response.json())["id"]
        done = await wait_for(client, job_id)
        deadline = time.monotonic() + 10
        while len(receiver.calls) < 2:
            assert time.monotonic() < deadline, receiver.calls
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        body = await (await client.get(f"/v1/jobs/{job_id}", headers=AUTH)).json()
    finally:
        await server.close()
    assert len(receiver.calls) == 2  # the 500, then the success; nothing after it
    first, second = receiver.calls
    assert second[3] - first[3] >= 0.9  # exponential backoff: the first retry after 1 s
    for method, headers, raw, _ in receiver.calls:
        assert method == "POST"
        assert webhooks.verify(SECRET, headers, raw)
        assert not webhooks.verify("wrong-secret", headers, raw)
        assert not webhooks.verify(SECRET, headers, raw + b" ")
        assert headers["X-STT-Delivery"] == job_id
        sent = json.loads(raw)
        assert sent["id"] == job_id and sent["status"] == "completed"
        assert sent["result_url"] == f"/v1/jobs/{job_id}/result"
    assert done["finished_at"] <= first[3] <= done["finished_at"] + 1.0  # delivered within 1 s of completion
    callback = body["callback"]
    assert callback["state"] == "delivered"
    assert [a["status"] for a in callback["attempts"]] == [500, 200]


async def test_redirects_are_not_followed_and_retries_are_bounded(make_client: Any, tmp_path: Path,
                                                                  wav_bytes: bytes) -> None:
    receiver = Receiver([302, 302])
    server = await receiver.start()
    try:
        client = await make(make_client, tmp_path, callback_allowed_hosts=["127.0.0.1"], webhook_secret=SECRET,
                            callback_max_attempts=2)
        url = str(server.make_url("/hook"))
        job_id = (await (await client.post("/v1/jobs", params={"callback_url": url}, data=wav_bytes,
                                           headers=AUTH)).json())["id"]
        await wait_for(client, job_id)
        deadline = time.monotonic() + 10
        while True:
            body = await (await client.get(f"/v1/jobs/{job_id}", headers=AUTH)).json()
            if body["callback"]["state"] == "failed":
                break
            assert time.monotonic() < deadline, body
            await asyncio.sleep(0.05)
    finally:
        await server.close()
    assert len(receiver.calls) == 2  # two attempts, both answered 302; the redirect target was never called
    assert [a["status"] for a in body["callback"]["attempts"]] == [302, 302]


async def test_an_unreachable_receiver_is_recorded(make_client: Any, tmp_path: Path, wav_bytes: bytes) -> None:
    client = await make(make_client, tmp_path, callback_allowed_hosts=["127.0.0.1"], webhook_secret=SECRET,
                        callback_max_attempts=1)
    job_id = (await (await client.post("/v1/jobs", params={"callback_url": "http://127.0.0.1:9/hook"},
                                       data=wav_bytes, headers=AUTH)).json())["id"]
    await wait_for(client, job_id)
    deadline = time.monotonic() + 10
    while True:
        body = await (await client.get(f"/v1/jobs/{job_id}", headers=AUTH)).json()
        if body["callback"]["state"] == "failed":
            break
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.05)
    (attempt,) = body["callback"]["attempts"]
    assert attempt["status"] is None and attempt["error"]


@pytest.mark.parametrize("method", ["post", "put"])
async def test_deepgram_callback_answers_at_once_then_delivers_deepgrams_body(
        make_client: Any, tmp_path: Path, wav_bytes: bytes, method: str) -> None:
    receiver = Receiver([])
    server = await receiver.start()
    try:
        client = await make(make_client, tmp_path, callback_allowed_hosts=["127.0.0.1"], webhook_secret=SECRET)
        params = {"callback": str(server.make_url("/hook")), "callback_method": method, "punctuate": "true"}
        response = await client.post("/v1/listen", params=params, data=wav_bytes, headers=AUTH)
        assert response.status == 200
        body = await response.json()
        assert list(body) == ["request_id"] and response.headers["dg-request-id"] == body["request_id"]
        deadline = time.monotonic() + 10
        while not receiver.calls:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        job = await (await client.get(f"/v1/jobs/{body['request_id']}", headers=AUTH)).json()
        stored = await (await client.get(f"/v1/jobs/{body['request_id']}/result", headers=AUTH)).json()
    finally:
        await server.close()
    sent_method, headers, raw, _ = receiver.calls[0]
    assert sent_method == method.upper() and webhooks.verify(SECRET, headers, raw)
    delivered = json.loads(raw)
    assert delivered["metadata"]["request_id"] == body["request_id"]
    assert len(delivered["metadata"]["sha256"]) == 64
    assert delivered["results"]["channels"][0]["alternatives"][0]["transcript"] == "hello world"
    assert job["face"] == "deepgram" and job["status"] == "completed"
    assert stored["results"] == delivered["results"]


async def test_deepgram_callback_refusals_use_deepgrams_error_shape(make_client: Any, tmp_path: Path,
                                                                   wav_bytes: bytes) -> None:
    client = await make(make_client, tmp_path)
    for params, needle in (({"callback": "http://hooks.example/x"}, "callbacks are disabled"),
                           ({"callback_method": "put"}, "callback: required"),
                           ({"callback": "http://hooks.example/x", "callback_method": "get"}, "callback_method")):
        response = await client.post("/v1/listen", params=params, data=wav_bytes, headers=AUTH)
        assert response.status == 400
        body = await response.json()
        assert body["err_code"] == "Bad Request" and needle in body["err_msg"], body


def test_jobs_settings_are_checked_and_secrets_come_from_the_environment() -> None:
    from stt.settings import ConfigError, settings_from_dict

    env = {"STT_JOBS_DATABASE_URL": "postgresql://u:p@db/stt", "STT_JOBS_WEBHOOK_SECRET": "k"}
    jobs = settings_from_dict({"jobs": {"callback_allowed_hosts": ["hooks.example"]}}, env=env).jobs
    assert jobs.database_url == "postgresql://u:p@db/stt" and jobs.webhook_secret == "k"
    for bad, key in (({"callback_allowed_hosts": ["hooks.example"]}, "jobs.webhook_secret"),
                     ({"database_url": "mysql://x"}, "jobs.database_url"),
                     ({"lease_seconds": 1}, "jobs.lease_seconds"),
                     ({"callback_allowed_hosts": ["http://x/"], "webhook_secret": "k"}, "callback_allowed_hosts")):
        with pytest.raises(ConfigError, match=key):
            settings_from_dict({"jobs": bad}, env={})


def test_a_second_server_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    from stt.jobs.store import SqliteJobStore

    first = SqliteJobStore(tmp_path)
    with pytest.raises(RuntimeError, match="in use by another server"):
        SqliteJobStore(tmp_path)
    first.close()
    SqliteJobStore(tmp_path).close()  # free again once the first one closed


async def test_a_clean_shutdown_puts_running_jobs_back_in_the_queue(aiohttp_client: Any, tmp_path: Path) -> None:
    from aiohttp.test_utils import TestServer as Server

    from stt.http.app import PARSER_OPTIONS, create_app
    from stt.jobs.store import SqliteJobStore
    from tests.conftest import make_settings

    engine = FakeEngine(delay=1.0)
    server = Server(create_app(make_settings(jobs=jobs_section(tmp_path)), engine=engine))
    await server.start_server(**PARSER_OPTIONS)
    client = await aiohttp_client(server)
    job_id = (await (await submit(client, wav(tone(440, 40.0, 16000)))).json())["id"]
    await wait_for(client, job_id, ("processing",))
    await asyncio.to_thread(engine.running.wait, 5)
    await client.close()  # the app's cleanup: the runner stops and hands its job back
    store = SqliteJobStore(tmp_path / "jobs")
    try:
        job = store.get(job_id)
        assert job is not None and job.status == "queued" and job.attempts == 0  # that start does not count
        assert len(store.audio(job_id)) > 0
    finally:
        store.close()


def test_a_job_that_keeps_dying_is_given_up_but_progress_resets_the_count(tmp_path: Path) -> None:
    from stt.jobs.model import Job
    from stt.jobs.store import SqliteJobStore

    store = SqliteJobStore(tmp_path)
    try:
        store.create(Job(id="j", owner="o", face="native", status="queued", params=(), created_at=time.time()),
                     b"", 10, 10**6)
        for attempt in (1, 2, 3):
            assert store.claim(f"w{attempt}", 60).attempts == attempt
            store.requeue_interrupted()  # the server died
        assert store.renew("j", "w3", 60) is False  # not ours any more
        job = store.claim("w4", 60)
        assert job.attempts == 4
        assert store.renew("j", "w4", 60, windows=[(0, "{}")])  # a window finished
        store.requeue_interrupted()
        assert store.claim("w5", 60).attempts == 2
    finally:
        store.close()


class BatchRecorder(FakeEngine):
    """Records the windows of every batch as (loudness, seconds): whose audio it was, and how long."""

    def __init__(self) -> None:
        super().__init__(delay=0.02)
        self.batches: list[tuple[tuple[float, int], ...]] = []

    def decode_windows(self, requests: Any) -> Any:
        self.batches.append(tuple((round(float(abs(r.audio).max()), 1), round(len(r.audio) / 16000))
                                  for r in requests))
        return super().decode_windows(requests)


async def test_a_jobs_batches_are_its_own_chunks_whatever_else_runs(make_client: Any, tmp_path: Path) -> None:
    """Batched decoding is not bit-exact across batch compositions: a job's windows are decoded in chunks cut
    from its own window list (asr.upload_batch_seconds), never mixed with other work."""
    engine = BatchRecorder()
    client = await make(make_client, tmp_path, engine, concurrency=3)
    # Windows of 30, 30, 30 and 10 s: chunks (30, 30) and (30, 10). Each job's audio has its own loudness.
    ids = [(await (await submit(client, wav(tone(440, 100.0, 16000, amplitude=a)))).json())["id"]
           for a in (0.5, 0.4, 0.3)]
    upload = wav(tone(440, 100.0, 16000, amplitude=0.2))
    await asyncio.gather(*(client.post("/stt", data=upload, headers=AUTH) for _ in range(2)))  # uploads meanwhile
    for job_id in ids:
        assert (await wait_for(client, job_id))["status"] == "completed"
    for loudness in (0.5, 0.4, 0.3):
        batches = [b for b in engine.batches if any(level == loudness for level, _ in b)]
        assert sorted(tuple(seconds for _, seconds in b) for b in batches) == [(30, 10), (30, 30)], engine.batches
        assert all(level == loudness for b in batches for level, _ in b)  # nothing else in a job's batches


def test_results_are_kept_for_the_retention_then_removed(tmp_path: Path) -> None:
    from stt.jobs.model import Attempt, Job
    from stt.jobs.store import SqliteJobStore

    store = SqliteJobStore(tmp_path)
    try:
        for job_id, url in (("done", None), ("calling", "http://hooks.example/x")):
            store.create(Job(id=job_id, owner="o", face="native", status="queued", params=(),
                             created_at=time.time(), callback_url=url), b"a", 10, 10**6)
            assert store.claim("w", 60).id == job_id
            assert store.finish(job_id, "w", "completed", "[]", callback_body=b"{}")
        assert store.purge(retention_s=3600) == 0  # within the retention
        time.sleep(0.05)
        assert store.purge(retention_s=0.01) == 1  # past it; the callback still pending keeps its job
        assert store.get("done") is None and store.get("calling") is not None
        store.record_attempt("calling", Attempt(time.time(), 200), True, None)
        assert store.purge(retention_s=0.01) == 1 and store.get("calling") is None
    finally:
        store.close()


class UnsureEngine(FakeEngine):
    """Detection unsure between Chinese and English, English the far likelier reading (as on short accented
    English): records each decoded window's (seconds, language)."""

    def __init__(self) -> None:
        super().__init__()
        self.decoded: list[tuple[int, str | None]] = []

    def detect_language(self, audio: Any) -> list[tuple[str, float]]:
        return [("zh", 0.6), ("en", 0.4)]

    def decode_windows(self, requests: Any) -> Any:
        self.decoded += [(round(len(r.audio) / 16000), r.language) for r in requests]
        return [dataclasses.replace(r, language=q.language or "en",
                                    scores=WindowScores(-0.5, 1.2, 0.01, -5.0 if q.language == "en" else -30.0))
                for q, r in zip(requests, super().decode_windows(requests))]


async def test_a_job_chooses_the_language_as_an_upload_does(make_client: Any, tmp_path: Path) -> None:
    """The first window decoded in both languages while choosing (stt.inference.language_choice), the likelier
    kept as its result and recorded: the job answers what the upload answers, the first window never decoded a
    third time."""
    engine = UnsureEngine()
    client = await make(make_client, tmp_path, engine)
    audio = wav(tone(440, 70.0, 16000))  # windows of 30, 30 and 10 s
    job_id = (await (await submit(client, audio)).json())["id"]
    assert (await wait_for(client, job_id))["status"] == "completed"
    job = await (await client.get(f"/v1/jobs/{job_id}/result", params={"output": "verbose_json"},
                                  headers=AUTH)).json()
    assert engine.decoded == [(30, "zh"), (30, "en"), (30, "en"), (10, "en")]
    engine.decoded.clear()
    upload = await (await client.post("/stt", params={"output": "verbose_json"}, data=audio, headers=AUTH)).json()
    assert engine.decoded == [(30, "zh"), (30, "en"), (30, "en"), (10, "en")]
    assert job["language"] == upload["language"] == "en" and job["text"] == upload["text"]
