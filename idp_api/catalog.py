"""The document list behind `GET /api/v1/documents`: one row per document partition, kept in the API
database and brought up to date from the Dagster instance incrementally (storage-id / time cursors,
as `idp_assets.metrics` reads the event log), so listing 10k documents never reads 10k exports.

Sources: the `documents` dynamic partitions (every document, however it was registered), the
`document_exports` materializations (status, supplier, date, what needs review - read from the
stored export with the reviewers' corrections laid over it) and failed runs.  Running documents are
taken from the instance at query time (there are few).
"""

from __future__ import annotations

import base64
import json
import threading
import time

from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, RunsFilter
from dagster._core.storage.dagster_run import DagsterRunStatus

from idp_api.db import Database
from idp_api.reviews import ReviewStore, apply_corrections, pending_review
from idp_assets.partitions import DOCUMENTS_PARTITIONS_NAME

SCHEMA = """
CREATE TABLE IF NOT EXISTS catalog (
    document_id     TEXT PRIMARY KEY,
    filename        TEXT,
    registered_at   REAL NOT NULL,
    status          TEXT NOT NULL,
    outcome_at      REAL,
    run_id          TEXT,
    reason          TEXT,
    supplier_id     TEXT,
    supplier_name   TEXT,
    supplier_method TEXT,
    doc_date        TEXT,
    needs_review    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS catalog_order ON catalog (registered_at DESC, document_id);
CREATE TABLE IF NOT EXISTS catalog_cursor (name TEXT PRIMARY KEY, value REAL);
"""
EXPORT_KEY = AssetKey("document_exports")
UNFINISHED = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
              DagsterRunStatus.STARTED]
PARTITION_TAG = "dagster/partition"
SYNC_EVERY_S = 1.0


def encode_cursor(registered_at: float, document_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([registered_at, document_id]).encode()).decode()


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        at, doc = json.loads(base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4)))
        return float(at), str(doc)
    except (ValueError, TypeError):
        raise ValueError("invalid cursor") from None


class Catalog:
    def __init__(self, db: Database, instance: DagsterInstance, store, reviews: ReviewStore):
        self.db = db
        self.instance = instance
        self.store = store
        self.reviews = reviews
        self._lock = threading.Lock()
        self._synced_at = 0.0
        db.executescript(SCHEMA)

    # -- cursors ----------------------------------------------------------------------
    def _cursor(self, con, name: str) -> float | None:
        row = con.execute("SELECT value FROM catalog_cursor WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def _set_cursor(self, con, name: str, value: float) -> None:
        con.execute("INSERT INTO catalog_cursor (name, value) VALUES (?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET value = excluded.value", (name, value))

    # -- sync -------------------------------------------------------------------------
    def sync(self, force: bool = False) -> None:
        with self._lock:
            if not force and time.monotonic() - self._synced_at < SYNC_EVERY_S:
                return
            self._sync_partitions()
            self._sync_exports()
            self._sync_failures()
            self._synced_at = time.monotonic()

    def _sync_partitions(self) -> None:
        keys = self.instance.get_dynamic_partitions(DOCUMENTS_PARTITIONS_NAME)
        with self.db.connect() as con:
            known = {r[0] for r in con.execute("SELECT document_id FROM catalog")}
        new = [k for k in keys if k not in known]
        if new:
            now = time.time()
            with self.db.transaction() as con:
                con.executemany("INSERT OR IGNORE INTO catalog (document_id, registered_at, status) "
                                "VALUES (?, ?, 'queued')", [(k, now) for k in new])

    def _sync_exports(self) -> None:
        with self.db.connect() as con:
            after = self._cursor(con, "exports")
        while True:
            recs = self.instance.fetch_materializations(
                AssetRecordsFilter(asset_key=EXPORT_KEY, after_storage_id=int(after) if after else None),
                limit=500, ascending=True).records
            if not recs:
                return
            for r in recs:
                self.refresh(r.partition_key, run_id=r.run_id, at=r.timestamp)
            after = recs[-1].storage_id
            with self.db.transaction() as con:
                self._set_cursor(con, "exports", after)

    def _sync_failures(self) -> None:
        with self.db.connect() as con:
            after = self._cursor(con, "failures")
        from datetime import datetime, timezone

        flt = RunsFilter(statuses=[DagsterRunStatus.FAILURE],
                         updated_after=datetime.fromtimestamp(after, timezone.utc) if after else None)
        latest = after or 0.0
        for rec in self.instance.get_run_records(flt, ascending=True):
            doc = rec.dagster_run.tags.get(PARTITION_TAG)
            ts = rec.update_timestamp.timestamp()
            latest = max(latest, ts)
            if not doc:
                continue
            with self.db.transaction() as con:
                con.execute("INSERT OR IGNORE INTO catalog (document_id, registered_at, status) VALUES (?, ?, 'queued')",
                            (doc, ts))
                # a failure newer than the last export decides the status
                con.execute("UPDATE catalog SET status = 'failed', outcome_at = ?, run_id = ?, reason = ? "
                            "WHERE document_id = ? AND (outcome_at IS NULL OR outcome_at < ?)",
                            (ts, rec.dagster_run.run_id, self._failure_reason(rec.dagster_run.run_id), doc, ts))
        if latest:
            with self.db.transaction() as con:
                self._set_cursor(con, "failures", latest)

    def _failure_reason(self, run_id: str) -> str:
        from dagster import DagsterEventType

        for entry in self.instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
            data = entry.dagster_event.step_failure_data
            ufd = data.user_failure_data if data else None
            if ufd is not None and "reason" in ufd.metadata:
                return str(ufd.metadata["reason"].value)
            return "step_failed"
        return "run_failed"

    def refresh(self, document_id: str, run_id: str | None = None, at: float | None = None) -> None:
        """Re-read one document's export (with corrections) into its row."""
        record = self.export_record(document_id)
        with self.db.transaction() as con:
            con.execute("INSERT OR IGNORE INTO catalog (document_id, registered_at, status) VALUES (?, ?, 'queued')",
                        (document_id, at or time.time()))
            if record is None:
                return
            sm = record.get("supplier_match") or {}
            date = ((record.get("fields") or {}).get("date") or {}).get("value")
            pending = pending_review(record)
            sets = {"filename": (record.get("source") or {}).get("filename"),
                    "supplier_id": sm.get("supplier_id"), "supplier_name": sm.get("name"),
                    "supplier_method": sm.get("method"), "doc_date": date if isinstance(date, str) else None,
                    "needs_review": int(pending["needs_review"])}
            if at is not None:  # a new export: it decides the status unless a newer failure did
                con.execute("UPDATE catalog SET status = 'materialized', outcome_at = ?, run_id = ?, reason = NULL "
                            "WHERE document_id = ? AND (outcome_at IS NULL OR outcome_at <= ?)",
                            (at, run_id, document_id, at))
            con.execute(f"UPDATE catalog SET {', '.join(f'{k} = ?' for k in sets)} WHERE document_id = ?",
                        (*sets.values(), document_id))

    def export_record(self, document_id: str) -> dict | None:
        """The stored JSON export with the corrections applied; None before the first export."""
        key = self.store.artifact_key(document_id, "export.json")
        if not self.store.exists(key):
            return None
        record = json.loads(self.store.get(key))
        return apply_corrections(record, self.reviews.for_document(document_id))

    # -- queries ----------------------------------------------------------------------
    def running(self) -> set[str]:
        runs = self.instance.get_runs(RunsFilter(statuses=UNFINISHED))
        return {r.tags[PARTITION_TAG] for r in runs if PARTITION_TAG in r.tags}

    def list(self, *, status: str | None = None, supplier: str | None = None, needs_review: bool | None = None,
             after: str | None = None, cursor: str | None = None, limit: int = 50) -> tuple[list[dict], str | None]:
        self.sync()
        running = self.running()
        where, args = [], []
        if status == "running":
            where.append(f"document_id IN ({','.join('?' * len(running))})" if running else "0")
            args += sorted(running)
        elif status:  # a document being (re-)processed is listed as running only
            where.append("status = ?")
            args.append(status)
            if running:
                where.append(f"document_id NOT IN ({','.join('?' * len(running))})")
                args += sorted(running)
        if supplier:
            where.append("(supplier_id = ? OR lower(supplier_name) = lower(?))")
            args += [supplier, supplier]
        if needs_review is not None:
            where.append("needs_review = ?")
            args.append(int(needs_review))
        if after:
            where.append("doc_date >= ?")
            args.append(after)
        if cursor:
            at, doc = decode_cursor(cursor)
            where.append("(registered_at < ? OR (registered_at = ? AND document_id > ?))")
            args += [at, at, doc]
        sql = ("SELECT * FROM catalog" + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY registered_at DESC, document_id LIMIT ?")
        with self.db.connect() as con:
            rows = [dict(r) for r in con.execute(sql, (*args, limit + 1))]
        more = len(rows) > limit
        rows = rows[:limit]
        for r in rows:
            if r["document_id"] in running:
                r["status"] = "running"
        nxt = encode_cursor(rows[-1]["registered_at"], rows[-1]["document_id"]) if more and rows else None
        return rows, nxt
