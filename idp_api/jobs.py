"""The run queue of uploaded documents, persistent in the API database.

A job is one document id (the partition key).  States: ``queued`` (registered, run not started),
``running`` (a worker is materializing it), ``done`` / ``failed`` (the run ended; Dagster has the
details).  The queue survives a restart: :meth:`JobQueue.recover` puts every job a dead process
left ``running`` back to ``queued`` (and returns them, so the Dagster run they left behind can be
marked failed), and queued jobs are simply picked up again.
"""

from __future__ import annotations

import threading
import time

from pydantic import BaseModel

from idp_api.db import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    document_id  TEXT PRIMARY KEY,
    state        TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    filename     TEXT NOT NULL,
    uri          TEXT NOT NULL,
    submitted_by TEXT NOT NULL,
    submitted_at REAL NOT NULL,
    started_at   REAL,
    finished_at  REAL,
    run_id       TEXT,
    reason       TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, submitted_at);
"""


class Job(BaseModel):
    document_id: str
    state: str
    filename: str
    uri: str
    submitted_by: str
    submitted_at: float
    started_at: float | None = None
    finished_at: float | None = None
    run_id: str | None = None
    reason: str | None = None
    attempts: int = 0


class JobQueue:
    def __init__(self, db: Database):
        self.db = db
        db.executescript(SCHEMA)
        self.wakeup = threading.Condition()

    def _notify(self) -> None:
        with self.wakeup:
            self.wakeup.notify_all()

    def enqueue(self, document_id: str, filename: str, uri: str, by: str) -> bool:
        """True when the job is new; False when the document was queued before (same bytes)."""
        with self.db.transaction() as con:
            cur = con.execute(
                "INSERT OR IGNORE INTO jobs (document_id, state, filename, uri, submitted_by, submitted_at) "
                "VALUES (?, 'queued', ?, ?, ?, ?)", (document_id, filename, uri, by, time.time()))
            new = cur.rowcount == 1
        if new:
            self._notify()
        return new

    def requeue(self, document_id: str, filename: str, uri: str, by: str) -> Job:
        """Queue a registered document again (re-processing); a job already queued or running stays as it is."""
        with self.db.transaction() as con:
            con.execute(
                "INSERT INTO jobs (document_id, state, filename, uri, submitted_by, submitted_at) "
                "VALUES (?, 'queued', ?, ?, ?, ?) ON CONFLICT(document_id) DO UPDATE SET state = 'queued', "
                "submitted_by = excluded.submitted_by, submitted_at = excluded.submitted_at, started_at = NULL, "
                "finished_at = NULL WHERE jobs.state IN ('done', 'failed')",
                (document_id, filename, uri, by, time.time()))
        self._notify()
        return self.get(document_id)

    def get(self, document_id: str) -> Job | None:
        with self.db.connect() as con:
            row = con.execute("SELECT * FROM jobs WHERE document_id = ?", (document_id,)).fetchone()
        return Job(**dict(row)) if row else None

    def claim(self) -> Job | None:
        """The oldest queued job, now ``running`` (atomic: two workers never get the same job)."""
        with self.db.transaction() as con:
            row = con.execute("SELECT * FROM jobs WHERE state = 'queued' ORDER BY submitted_at, document_id "
                              "LIMIT 1").fetchone()
            if row is None:
                return None
            con.execute("UPDATE jobs SET state = 'running', started_at = ?, attempts = attempts + 1, run_id = NULL, "
                        "reason = NULL WHERE document_id = ?", (time.time(), row["document_id"]))
        return self.get(row["document_id"])

    def finish(self, document_id: str, ok: bool, run_id: str | None, reason: str | None) -> None:
        with self.db.transaction() as con:
            con.execute("UPDATE jobs SET state = ?, finished_at = ?, run_id = ?, reason = ? WHERE document_id = ?",
                        ("done" if ok else "failed", time.time(), run_id, reason, document_id))

    def recover(self) -> list[Job]:
        """Jobs a stopped process left ``running``: queued again (returned, to close their Dagster runs)."""
        with self.db.transaction() as con:
            rows = [Job(**dict(r)) for r in con.execute("SELECT * FROM jobs WHERE state = 'running'")]
            con.execute("UPDATE jobs SET state = 'queued', started_at = NULL WHERE state = 'running'")
        if rows:
            self._notify()
        return rows

    def depth(self) -> dict[str, int]:
        with self.db.connect() as con:
            got = dict(con.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
        return {s: int(got.get(s, 0)) for s in ("queued", "running", "done", "failed")}

    def wait(self, timeout: float) -> None:
        with self.wakeup:
            self.wakeup.wait(timeout)
