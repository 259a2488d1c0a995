"""The API's own SQLite database (`IDP_API_DB`, default `$IDP_DATA_DIR/api.sqlite`).

It holds what is not an asset output: the run queue (`jobs`), the document list (`catalog`) and the
reviewers' corrections (`corrections`).  One connection per call, WAL mode, so the request threads
and the worker thread never share a connection.  Each table's module creates its own schema.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class Database:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write_lock = threading.Lock()  # one writer at a time inside this process (no busy retries)
        with self.connect() as con:
            con.execute("PRAGMA journal_mode=WAL")

    def _open(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        con.row_factory = sqlite3.Row
        con.execute("PRAGMA busy_timeout=30000")
        return con

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        con = self._open()
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            con = self._open()
            try:
                con.execute("BEGIN IMMEDIATE")
                try:
                    yield con
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                con.execute("COMMIT")
            finally:
                con.close()

    def executescript(self, script: str) -> None:
        with self._write_lock, self.connect() as con:
            con.executescript(script)
