"""Jobs on PostgreSQL (Debian's server, started here): replicas share one queue, each job is claimed once, a
dead replica's job is taken over after its lease, and two servers on one database complete every job."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stt.jobs.model import Job
from tests.helpers import TOKEN, FakeEngine
from tests.postgres_server import postgres_server
from tests.jobs.test_api import AUTH, wait_for

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture
def fresh_url(database_url: str) -> str:
    """A database of its own for each test."""
    import psycopg

    name = "t" + uuid.uuid4().hex[:12]
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return database_url.rsplit("/", 1)[0] + "/" + name


def new_job(owner: str = "o") -> Job:
    return Job(id=str(uuid.uuid4()), owner=owner, face="native", status="queued", params=(("language", "en"),),
               created_at=time.time())


def test_two_replicas_never_claim_the_same_job(fresh_url: str) -> None:
    from stt.jobs.postgres import PostgresJobStore

    stores = [PostgresJobStore(fresh_url) for _ in range(4)]
    created = [new_job() for _ in range(40)]
    for job in created:
        stores[0].create(job, b"audio" * 1000, max_queued=100, max_disk_bytes=10**9)
    claimed: list[list[str]] = [[] for _ in stores]

    def drain(i: int) -> None:
        while (job := stores[i].claim(f"replica-{i}", 60)) is not None:
            claimed[i].append(job.id)

    threads = [threading.Thread(target=drain, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [j for c in claimed for j in c]
    assert sorted(everything) == sorted(j.id for j in created)  # each exactly once
    assert stores[1].audio(created[0].id) == b"audio" * 1000
    for store in stores:
        store.close()


def test_a_dead_replicas_job_is_taken_over_after_its_lease(fresh_url: str) -> None:
    from stt.jobs.postgres import PostgresJobStore

    dead, alive = PostgresJobStore(fresh_url), PostgresJobStore(fresh_url)
    job = new_job()
    dead.create(job, b"x" * (20 * 1024 * 1024), max_queued=10, max_disk_bytes=10**9)  # three audio chunks
    assert dead.claim("dead", 0.5).id == job.id
    assert dead.renew(job.id, "dead", 0.5, done_s=1.0, windows=[(0, '{"w": 0}')])
    assert alive.claim("alive", 60) is None  # the lease holds
    time.sleep(0.7)
    taken = alive.claim("alive", 60)
    assert taken is not None and taken.id == job.id and taken.attempts == 2
    assert alive.windows(job.id) == {0: '{"w": 0}'}  # it resumes from the dead replica's windows
    assert len(alive.audio(job.id)) == 20 * 1024 * 1024
    assert not dead.renew(job.id, "dead", 60)  # the dead one, back, has lost it
    assert not dead.finish(job.id, "dead", "completed", "[]")
    assert alive.finish(job.id, "alive", "completed", "[]")
    assert alive.audio(job.id) == b""  # deleted with the job's end
    dead.close()
    alive.close()


def test_limits_hold_across_replicas(fresh_url: str) -> None:
    from stt.jobs.model import JobsFull
    from stt.jobs.postgres import PostgresJobStore

    a, b = PostgresJobStore(fresh_url), PostgresJobStore(fresh_url)
    a.create(new_job(), b"1", max_queued=2, max_disk_bytes=100)
    b.create(new_job(), b"2", max_queued=2, max_disk_bytes=100)
    with pytest.raises(JobsFull):
        a.create(new_job(), b"3", max_queued=2, max_disk_bytes=100)
    a.close()
    b.close()


async def test_two_servers_on_one_database_complete_every_job_once(make_client: Any, fresh_url: str,
                                                                   tmp_path: Path, wav_bytes: bytes) -> None:
    engines = [FakeEngine(delay=0.05), FakeEngine(delay=0.05)]
    clients = [await make_client(engine, jobs={"database_url": fresh_url}) for engine in engines]
    ids = []
    for i in range(12):
        response = await clients[i % 2].post("/v1/jobs", data=wav_bytes, headers=AUTH)
        assert response.status == 202
        ids.append((await response.json())["id"])
    for job_id in ids:
        done = await wait_for(clients[0], job_id)  # either replica answers for any job
        assert done["status"] == "completed" and done["progress"]["done_seconds"] == 1.0
        body = await (await clients[1].get(f"/v1/jobs/{job_id}", headers=AUTH)).json()
        assert body == done
    assert sum(e.calls for e in engines) == len(ids)  # one window each, decoded once
    assert all(e.calls for e in engines)  # both replicas took part
    listed = await (await clients[1].get("/v1/jobs?limit=100", headers=AUTH)).json()
    assert len(listed["jobs"]) == len(ids)
    result = await clients[1].get(f"/v1/jobs/{ids[0]}/result?output=text", headers=AUTH)
    assert await result.text() == "hello world\n"
