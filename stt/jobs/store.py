"""Jobs kept in a SQL database: SQLite in ``jobs.dir`` (WAL) by default, PostgreSQL (stt/jobs/postgres.py) to
share one queue between replicas. The SQL is written once; a dialect supplies the connection, the schema, the
row lock of a claim and where the audio lives.

Every method blocks: ``AsyncJobStore`` runs them on one thread of their own, off the event loop.

A job is claimed with a lease (``lease_until``): the server that runs it renews the lease at every finished
window; a job whose lease ran out (its server died) is claimed again, by any replica, and resumes from its last
finished window (``job_windows``). A callback is written in the same transaction that ends the job (an
outbox): a crash can neither lose it nor, once a delivery was acknowledged and recorded, send it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from stt.jobs import results
from stt.jobs.model import (CANCELLED, COMPLETED, FAILED, FINISHED, PROCESSING, QUEUED, Attempt, Delivery, Job,
                            JobsFull)

JOB_COLUMNS = ("id", "owner", "face", "status", "params", "created_at", "work", "audio_bytes", "started_at",
               "finished_at", "done_s", "total_s", "error", "error_code", "attempts", "callback_url",
               "callback_method", "meta")
SELECT_JOB = f"SELECT {', '.join('j.' + c for c in JOB_COLUMNS)}, d.url, d.method, d.state, d.attempt_log " \
             "FROM jobs j LEFT JOIN deliveries d ON d.job_id = j.id"
PENDING, DELIVERED, GAVE_UP = "pending", "delivered", "failed"


@dataclasses.dataclass(frozen=True)
class DueDelivery:
    job_id: str
    url: str
    method: str
    body: bytes
    attempts: int


class SqlJobStore:
    """SQL shared by the dialects; placeholders are written ``?``."""

    placeholder = "?"
    skip_locked = ""  # PostgreSQL: " FOR UPDATE SKIP LOCKED", a queue claim passes rows another replica holds
    lock_row = ""  # PostgreSQL: " FOR UPDATE", the row is changed by this transaction only
    shared = False  # replicas share the database: admissions take a lock so the limits hold across them
    blob_type = "BLOB"
    real_type = "REAL"

    def __init__(self) -> None:
        self._conn: Any = None

    # --- dialect hooks -----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _tx(self) -> Iterator[Any]:
        raise NotImplementedError

    def _put_audio(self, cur: Any, job_id: str, audio: bytes) -> None:
        """In the transaction that records the job (a database that keeps the audio)."""

    def stage_audio(self, job_id: str, audio: bytes) -> None:
        """Before that transaction, from any thread (audio kept as files: written without holding the database)."""

    def unstage_audio(self, job_id: str) -> None:
        """The job was not recorded after all (refused by a limit)."""

    def _drop_audio(self, cur: Any, job_ids: Sequence[str]) -> None:
        raise NotImplementedError

    def audio(self, job_id: str) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # --- schema ----------------------------------------------------------------------------------------------
    def _schema(self) -> list[str]:
        real, blob = self.real_type, self.blob_type
        return [
            f"""CREATE TABLE IF NOT EXISTS jobs (
                id TEXT PRIMARY KEY, owner TEXT NOT NULL, face TEXT NOT NULL, status TEXT NOT NULL,
                params TEXT NOT NULL, created_at {real} NOT NULL, work TEXT NOT NULL,
                audio_bytes BIGINT NOT NULL DEFAULT 0, started_at {real}, finished_at {real},
                done_s {real} NOT NULL DEFAULT 0, total_s {real},
                error TEXT, error_code TEXT, attempts INTEGER NOT NULL DEFAULT 0, callback_url TEXT,
                callback_method TEXT NOT NULL DEFAULT 'POST', meta TEXT NOT NULL DEFAULT '{{}}',
                lease_owner TEXT, lease_until {real}, result TEXT, result_bytes BIGINT NOT NULL DEFAULT 0)""",
            "CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created_at)",
            "CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner, created_at)",
            """CREATE TABLE IF NOT EXISTS job_windows (
                job_id TEXT NOT NULL, idx INTEGER NOT NULL, result TEXT NOT NULL, PRIMARY KEY (job_id, idx))""",
            f"""CREATE TABLE IF NOT EXISTS deliveries (
                job_id TEXT PRIMARY KEY, url TEXT NOT NULL, method TEXT NOT NULL, body {blob} NOT NULL,
                state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at {real} NOT NULL,
                lease_until {real}, attempt_log TEXT NOT NULL DEFAULT '[]')""",
            "CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, next_at)",
        ]

    def _create_schema(self) -> None:
        with self._tx() as cur:
            for statement in self._schema():
                self._exec(cur, statement)

    def _exec(self, cur: Any, sql: str, args: Sequence[Any] = ()) -> Any:
        if self.placeholder != "?":
            sql = sql.replace("?", self.placeholder)
        cur.execute(sql, tuple(args))
        return cur

    # --- jobs ------------------------------------------------------------------------------------------------
    def create(self, job: Job, audio: bytes, max_queued: int, max_disk_bytes: int) -> None:
        """Raise JobsFull when the queue or the disk budget has no room for it."""
        with self._tx() as cur:
            if self.shared:  # replicas: one admission at a time, so the limits hold across them
                self._exec(cur, "SELECT pg_advisory_xact_lock(8517)")
            queued = self._exec(cur, "SELECT COUNT(*) FROM jobs WHERE status = ?", (QUEUED,)).fetchone()[0]
            if queued >= max_queued:
                raise JobsFull(f"Too many jobs waiting ({queued}): retry later", retry_after_s=60)
            used = self._exec(cur, "SELECT COALESCE(SUM(audio_bytes + result_bytes), 0) FROM jobs").fetchone()[0]
            if used + len(audio) > max_disk_bytes:
                raise JobsFull("Job storage is full: retry once earlier jobs are done", retry_after_s=300)
            self._exec(cur, "INSERT INTO jobs (id, owner, face, status, params, created_at, work, audio_bytes, "
                            "callback_url, callback_method, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (job.id, job.owner, job.face, QUEUED, json.dumps(job.params), job.created_at,
                        results.work_to_json(job.work), len(audio),
                        job.callback_url, job.callback_method, json.dumps(job.meta)))
            self._put_audio(cur, job.id, audio)

    def get(self, job_id: str) -> Job | None:
        with self._tx() as cur:
            row = self._exec(cur, SELECT_JOB + " WHERE j.id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    def list(self, owner: str, limit: int, before: float | None = None) -> list[Job]:
        """The owner's jobs, newest first; ``before``: only those created before that time (the next page)."""
        with self._tx() as cur:
            rows = self._exec(cur, SELECT_JOB + " WHERE j.owner = ? AND j.created_at < ? "
                                                "ORDER BY j.created_at DESC LIMIT ?",
                              (owner, before if before is not None else float("inf"), limit)).fetchall()
        return [_job(r) for r in rows]

    def result(self, job_id: str) -> str | None:
        with self._tx() as cur:
            row = self._exec(cur, "SELECT result FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return row[0] if row else None

    def claim(self, worker: str, lease_s: float) -> Job | None:
        """The oldest queued job, or one whose server stopped renewing its lease, now ours; None if none.
        ``attempts`` counts the starts since its last finished window, this one included (the runner gives up
        on a job that keeps taking its server down before it gets any further)."""
        now = time.time()
        with self._tx() as cur:
            row = self._exec(cur, "SELECT id FROM jobs WHERE status = ? OR (status = ? AND lease_until < ?) "
                                  "ORDER BY created_at LIMIT 1" + self.skip_locked,
                             (QUEUED, PROCESSING, now)).fetchone()
            if row is None:
                return None
            self._exec(cur, "UPDATE jobs SET status = ?, attempts = attempts + 1, lease_owner = ?, "
                            "lease_until = ?, started_at = COALESCE(started_at, ?) WHERE id = ?",
                       (PROCESSING, worker, now + lease_s, now, row[0]))
        return self.get(row[0])

    def renew(self, job_id: str, worker: str, lease_s: float, done_s: float | None = None,
              total_s: float | None = None, windows: Sequence[tuple[int, str]] = ()) -> bool:
        """Extend our lease, record progress and finished windows; False when the job is no longer ours
        (cancelled, or another replica took it over after our lease ran out)."""
        with self._tx() as cur:
            ours = self._exec(cur, "UPDATE jobs SET lease_until = ?, done_s = COALESCE(?, done_s), "
                                   "total_s = COALESCE(?, total_s) WHERE id = ? AND status = ? AND lease_owner = ?",
                              (time.time() + lease_s, done_s, total_s, job_id, PROCESSING, worker)).rowcount
            if not ours:
                return False
            if windows:  # progress: only starts that die before the next finished window count against it
                self._exec(cur, "UPDATE jobs SET attempts = 1 WHERE id = ?", (job_id,))
            for idx, result in windows:
                self._exec(cur, "DELETE FROM job_windows WHERE job_id = ? AND idx = ?", (job_id, idx))
                self._exec(cur, "INSERT INTO job_windows (job_id, idx, result) VALUES (?, ?, ?)",
                           (job_id, idx, result))
        return True

    def windows(self, job_id: str) -> dict[int, str]:
        with self._tx() as cur:
            rows = self._exec(cur, "SELECT idx, result FROM job_windows WHERE job_id = ?", (job_id,)).fetchall()
        return {int(idx): result for idx, result in rows}

    def finish(self, job_id: str, worker: str, status: str, result: str | None, error: str | None = None,
               error_code: str | None = None, callback_body: bytes | None = None) -> bool:
        """End our job (completed or failed) and queue its callback, in one transaction; False if not ours."""
        with self._tx() as cur:
            row = self._exec(cur, "SELECT 1 FROM jobs WHERE id = ? AND status = ? AND lease_owner = ?" +
                             self.lock_row, (job_id, PROCESSING, worker)).fetchone()
            if row is None:
                return False
            self._end(cur, job_id, status, result, error, error_code, callback_body)
        return True

    def _end(self, cur: Any, job_id: str, status: str, result: str | None, error: str | None,
             error_code: str | None, callback_body: bytes | None) -> None:
        now = time.time()
        self._exec(cur, "UPDATE jobs SET status = ?, result = ?, result_bytes = ?, error = ?, error_code = ?, "
                        "finished_at = ?, lease_owner = NULL, lease_until = NULL, audio_bytes = 0, "
                        "done_s = CASE WHEN ? THEN COALESCE(total_s, done_s) ELSE done_s END WHERE id = ?",
                   (status, result, len(result.encode()) if result else 0, error, error_code, now,
                    status == COMPLETED, job_id))
        self._exec(cur, "DELETE FROM job_windows WHERE job_id = ?", (job_id,))
        self._drop_audio(cur, [job_id])
        url, method = self._exec(cur, "SELECT callback_url, callback_method FROM jobs WHERE id = ?",
                                 (job_id,)).fetchone()
        if url and callback_body is not None:
            self._exec(cur, "INSERT INTO deliveries (job_id, url, method, body, state, next_at) "
                            "VALUES (?, ?, ?, ?, ?, ?)", (job_id, url, method, callback_body, PENDING, now))

    def cancel(self, job_id: str) -> str | None:
        """DELETE: an unfinished job is cancelled (its record kept until retention ends, without audio); a
        finished one is removed with its result. Returns the status it had, None when there was none."""
        with self._tx() as cur:
            row = self._exec(cur, "SELECT status FROM jobs WHERE id = ?" + self.lock_row, (job_id,)).fetchone()
            if row is None:
                return None
            status = row[0]
            if status in FINISHED:
                self._remove(cur, [job_id])
            else:
                self._exec(cur, "UPDATE jobs SET status = ?, finished_at = ?, lease_owner = NULL, "
                                "lease_until = NULL, audio_bytes = 0 WHERE id = ?", (CANCELLED, time.time(), job_id))
                self._exec(cur, "DELETE FROM job_windows WHERE job_id = ?", (job_id,))
                self._drop_audio(cur, [job_id])
        return status

    def _remove(self, cur: Any, job_ids: Sequence[str]) -> None:
        for job_id in job_ids:
            for table in ("job_windows", "deliveries"):
                self._exec(cur, f"DELETE FROM {table} WHERE job_id = ?", (job_id,))
            self._exec(cur, "DELETE FROM jobs WHERE id = ?", (job_id,))
        self._drop_audio(cur, job_ids)

    def purge(self, retention_s: float) -> int:
        """Remove jobs that ended more than ``retention_s`` ago (a callback still being retried is kept)."""
        with self._tx() as cur:
            rows = self._exec(cur, "SELECT id FROM jobs j WHERE finished_at < ? AND NOT EXISTS (SELECT 1 FROM "
                                   "deliveries d WHERE d.job_id = j.id AND d.state = ?)",
                              (time.time() - retention_s, PENDING)).fetchall()
            self._remove(cur, [r[0] for r in rows])
        return len(rows)

    def release(self, worker: str) -> None:
        """A clean shutdown: our running jobs go back to the queue at once (that start does not count)."""
        with self._tx() as cur:
            self._exec(cur, "UPDATE jobs SET status = ?, lease_owner = NULL, lease_until = NULL, "
                            "attempts = attempts - 1 WHERE status = ? AND lease_owner = ?",
                       (QUEUED, PROCESSING, worker))

    # --- callbacks -------------------------------------------------------------------------------------------
    def claim_delivery(self, lease_s: float) -> DueDelivery | None:
        now = time.time()
        with self._tx() as cur:
            row = self._exec(cur, "SELECT job_id, url, method, body, attempts FROM deliveries WHERE state = ? AND "
                                  "next_at <= ? AND (lease_until IS NULL OR lease_until < ?) ORDER BY next_at "
                                  "LIMIT 1" + self.skip_locked, (PENDING, now, now)).fetchone()
            if row is None:
                return None
            self._exec(cur, "UPDATE deliveries SET lease_until = ? WHERE job_id = ?", (now + lease_s, row[0]))
        return DueDelivery(row[0], row[1], row[2], bytes(row[3]), int(row[4]))

    def record_attempt(self, job_id: str, attempt: Attempt, delivered: bool, retry_at: float | None) -> None:
        """``retry_at`` None and not delivered: given up."""
        state = DELIVERED if delivered else PENDING if retry_at is not None else GAVE_UP
        with self._tx() as cur:
            row = self._exec(cur, "SELECT attempt_log FROM deliveries WHERE job_id = ?" + self.lock_row,
                             (job_id,)).fetchone()
            if row is None:
                return  # the job was deleted meanwhile
            log = json.loads(row[0]) + [dataclasses.asdict(attempt)]
            self._exec(cur, "UPDATE deliveries SET state = ?, attempts = attempts + 1, attempt_log = ?, "
                            "next_at = ?, lease_until = NULL WHERE job_id = ?",
                       (state, json.dumps(log), retry_at if retry_at is not None else time.time(), job_id))


def _job(row: Sequence[Any]) -> Job:
    values = dict(zip(JOB_COLUMNS, row))
    url, method, state, log = row[len(JOB_COLUMNS):]
    values["params"] = tuple(tuple(p) for p in json.loads(values["params"]))
    values["meta"] = json.loads(values["meta"])
    values["work"] = results.work_from_json(values["work"])
    delivery = None if url is None else Delivery(url, method, state, tuple(Attempt(**a) for a in json.loads(log)))
    return Job(**values, delivery=delivery)


class SqliteJobStore(SqlJobStore):
    """``jobs.dir/jobs.sqlite3`` in WAL mode, audio as files in ``jobs.dir/audio``. One server per folder: a
    lock file refuses a second one (it would run the same jobs)."""

    def __init__(self, folder: str | Path) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.audio_dir = self.folder / "audio"
        self.audio_dir.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.folder / "server.lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise RuntimeError(f"jobs.dir {self.folder} is in use by another server (use jobs.database_url "
                               "to share jobs between replicas)") from None
        # isolation_level=None: transactions only where _tx opens them. synchronous=FULL: a job accepted (202)
        # is on disk even if the machine, not only the process, goes down right after.
        self._conn = sqlite3.connect(self.folder / "jobs.sqlite3", isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._create_schema()
        self._sweep_audio()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Any]:
        cur = self._conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")

    def requeue_interrupted(self) -> int:
        """At start: this folder has one server, so a job still marked running was running when it died."""
        with self._tx() as cur:
            self._exec(cur, "UPDATE deliveries SET lease_until = NULL WHERE state = ?", (PENDING,))
            return self._exec(cur, "UPDATE jobs SET status = ?, lease_owner = NULL, lease_until = NULL "
                                   "WHERE status = ?", (QUEUED, PROCESSING)).rowcount

    def _path(self, job_id: str) -> Path:
        return self.audio_dir / f"{job_id}.audio"

    def stage_audio(self, job_id: str, audio: bytes) -> None:
        # Written and flushed before the row commits: a job on record always has its audio.
        tmp = self._path(job_id).with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(audio)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._path(job_id))

    def unstage_audio(self, job_id: str) -> None:
        self._path(job_id).unlink(missing_ok=True)

    def _drop_audio(self, cur: Any, job_ids: Sequence[str]) -> None:
        for job_id in job_ids:  # a crash before this commits leaves a file that _sweep_audio removes
            self._path(job_id).unlink(missing_ok=True)

    def audio(self, job_id: str) -> bytes:
        return self._path(job_id).read_bytes()

    def _sweep_audio(self) -> None:
        """Audio files of jobs that are not waiting or running (a crash between a commit and an unlink)."""
        with self._tx() as cur:
            live = {r[0] for r in self._exec(cur, "SELECT id FROM jobs WHERE status IN (?, ?)",
                                             (QUEUED, PROCESSING)).fetchall()}
        for path in self.audio_dir.iterdir():
            if path.stem not in live:
                path.unlink(missing_ok=True)

    def close(self) -> None:
        super().close()
        self._lock.close()


class AsyncJobStore:
    """The store's blocking calls on one thread of their own (SQLite connections are not shared across
    threads, and one writer at a time is what both databases do best)."""

    def __init__(self, store: SqlJobStore) -> None:
        self.sync = store
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stt-jobs-db")

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        fn = getattr(self.sync, method)
        return await asyncio.get_running_loop().run_in_executor(self._thread, lambda: fn(*args, **kwargs))

    async def create(self, job: Job, audio: bytes, max_queued: int, max_disk_bytes: int) -> None:
        """The audio is written (to a file, where the store keeps files) in a thread of its own, so a large
        upload does not hold up the other database calls; JobsFull when a limit refuses the job."""
        await asyncio.to_thread(self.sync.stage_audio, job.id, audio)
        try:
            await self.call("create", job, audio, max_queued, max_disk_bytes)
        except BaseException:
            await asyncio.to_thread(self.sync.unstage_audio, job.id)
            raise

    async def close(self) -> None:
        await self.call("close")
        self._thread.shutdown(wait=True)
