"""Jobs in PostgreSQL (``jobs.database_url``): replicas share one queue.

A replica claims the oldest queued job with ``SELECT ... FOR UPDATE SKIP LOCKED`` (two replicas never take the
same job, and neither waits for the other's lock) and holds it under a lease it renews every third of
``jobs.lease_seconds``; the job of a replica that died is taken over by another once the lease ran out, and
resumes from its last recorded window. Callbacks are claimed the same way.

The audio is kept in the database (``job_audio``, in chunks of CHUNK bytes), not on a shared volume: any
replica can run any job with nothing but the database URL (no ReadWriteMany volume, which many Kubernetes
clusters lack), the audio is written in the same transaction as the job (a job on record always has its audio)
and deleted with it; the cost, a copy of each upload in PostgreSQL until its job ends, is bounded by
``jobs.max_disk_bytes``. Leases compare the replicas' clocks: keep them in sync (NTP), as any lease needs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from stt.jobs.store import SqlJobStore

CHUNK = 8 * 1024 * 1024  # bytes of audio per row: a large upload is never one huge value in memory twice
SCHEMA_LOCK = 8516  # advisory lock id: replicas starting together create the tables one at a time


class PostgresJobStore(SqlJobStore):
    placeholder = "%s"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    lock_row = " FOR UPDATE"
    shared = True
    blob_type = "BYTEA"
    real_type = "DOUBLE PRECISION"

    def __init__(self, url: str) -> None:
        super().__init__()
        self._url = url
        self._connect()
        self._create_schema()

    def _connect(self) -> None:
        # autocommit: transactions only where _tx opens them; a short connect timeout so a start with the
        # database down fails with a clear error rather than hanging.
        self._conn = psycopg.connect(self._url, autocommit=True, connect_timeout=10)

    def _schema(self) -> list[str]:
        return [f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})", *super()._schema(),
                "CREATE TABLE IF NOT EXISTS job_audio (job_id TEXT NOT NULL, seq INTEGER NOT NULL, "
                "data BYTEA NOT NULL, PRIMARY KEY (job_id, seq))"]

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._connect()  # the database restarted or the connection dropped: a new one for this call
        with self._conn.transaction(), self._conn.cursor() as cur:
            yield cur

    def _put_audio(self, cur: Any, job_id: str, audio: bytes) -> None:
        view = memoryview(audio)
        for seq, start in enumerate(range(0, len(audio), CHUNK)):
            cur.execute("INSERT INTO job_audio (job_id, seq, data) VALUES (%s, %s, %s)",
                        (job_id, seq, view[start:start + CHUNK]))

    def _drop_audio(self, cur: Any, job_ids: Sequence[str]) -> None:
        for job_id in job_ids:
            cur.execute("DELETE FROM job_audio WHERE job_id = %s", (job_id,))

    def audio(self, job_id: str) -> bytes:
        with self._tx() as cur:
            rows = cur.execute("SELECT data FROM job_audio WHERE job_id = %s ORDER BY seq", (job_id,)).fetchall()
        return b"".join(bytes(r[0]) for r in rows)
