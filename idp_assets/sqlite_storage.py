"""Dagster's SQLite storage with connections kept open (the embedded default's instance storage).

Dagster's SQLite run, event-log and schedule storages build a new SQLAlchemy engine
(``NullPool``) for every statement block and close the connection after it. A document's
run stores about 270 events; each is several such blocks, and closing the last
connection of a WAL database also checkpoints it. Profiled on `idp process` (8
born-digital invoices): engine creation, connect and close were about a fifth of the
run time.

``PooledSqliteStorage`` is the same storage (same files, same schema, same migrations)
with one engine per database file, kept for the life of the process:

* the run and schedule databases: one engine each, SQLAlchemy's default pool;
* the event log, sharded by run (``<run_id>.db``) plus the index shard: the index's
  engine is kept, run shards' engines in a small LRU (``max_open_run_shards``); an
  evicted shard's engine is disposed. Statements on the event log are serialised by
  Dagster's own lock, exactly as before;
* ``has_dynamic_partition`` (asked about 180 times per document run) remembers partitions that
  exist for ``KNOWN_PARTITION_TTL_S``.

Other processes (UI, daemon, run workers) open the same files in WAL mode as they did;
nothing about the on-disk format changes, so an instance can switch between this class
and Dagster's ``sqlite`` storage at any time.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from dagster import Field, IntSource, StringSource
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClassData
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine

DEFAULT_MAX_OPEN_RUN_SHARDS = 8
# a partition seen to exist is believed for this long without asking the index again
KNOWN_PARTITION_TTL_S = 10.0
_KNOWN_PARTITIONS_MAX = 100_000


def _engine(conn_string: str) -> Engine:
    # the default pool for a file database keeps connections open between uses;
    # check_same_thread=False: a pooled connection may be handed to another thread later
    return create_engine(conn_string, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
                                                    "check_same_thread": False})


class _PooledConnect:
    """``connect()`` of Dagster's one-file SQLite storages (runs, schedules) on an engine kept for the
    storage's life (``create_engine`` opens nothing; its pool keeps connections between uses)."""

    def __init__(self, conn_string: str, inst_data: ConfigurableClassData | None = None):
        self._kept_engine = _engine(conn_string)
        super().__init__(conn_string, inst_data)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self._kept_engine.connect() as conn:
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        self._kept_engine.dispose()  # closes the pooled connections; a later connect() opens new ones
        super().dispose()


class PooledSqliteRunStorage(_PooledConnect, SqliteRunStorage):
    pass


class PooledSqliteScheduleStorage(_PooledConnect, SqliteScheduleStorage):
    pass


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None,
                 max_open_run_shards: int = DEFAULT_MAX_OPEN_RUN_SHARDS):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._max_open_run_shards = max(1, int(max_open_run_shards))
        self._known_partitions: dict[tuple[str, str], float] = {}
        super().__init__(base_dir, inst_data=inst_data)

    def has_dynamic_partition(self, partitions_def_name: str, partition_key: str) -> bool:
        """Dagster asks this about 180 times during one document's run; a partition that exists is
        believed for ``KNOWN_PARTITION_TTL_S`` (deleting it here forgets it at once; a deletion by
        another process is seen within the TTL)."""
        key = (partitions_def_name, partition_key)
        seen = self._known_partitions.get(key)
        now = time.monotonic()
        if seen is not None and now - seen < KNOWN_PARTITION_TTL_S:
            return True
        found = super().has_dynamic_partition(partitions_def_name, partition_key)
        if found:
            if len(self._known_partitions) >= _KNOWN_PARTITIONS_MAX:
                self._known_partitions.clear()
            self._known_partitions[key] = now
        else:
            self._known_partitions.pop(key, None)
        return found

    def delete_dynamic_partition(self, partitions_def_name: str, partition_key: str) -> None:
        self._known_partitions.pop((partitions_def_name, partition_key), None)
        super().delete_dynamic_partition(partitions_def_name, partition_key)

    def _shard_engine(self, shard: str) -> Engine:
        """The shard's engine (caller holds ``_db_lock``); the least recently used run shard is closed."""
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        engine = self._engines[shard] = _engine(self.conn_string_for_shard(shard))
        run_shards = [s for s in self._engines if s != INDEX_SHARD_NAME]
        for old in run_shards[: max(0, len(run_shards) - self._max_open_run_shards)]:
            self._engines.pop(old).dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._shard_engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn:
                with conn.begin():
                    yield conn

    def _dispose_engines(self) -> None:
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        self._dispose_engines()  # the run shards' files are deleted: no connection may keep them
        super().wipe()

    def delete_events(self, run_id: str) -> None:
        super().delete_events(run_id)
        with self._db_lock:
            engine = self._engines.pop(run_id, None)
        if engine is not None:
            engine.dispose()

    def dispose(self) -> None:
        self._dispose_engines()
        super().dispose()


class PooledSqliteStorage(DagsterSqliteStorage):
    """``storage: custom: {module: idp_assets.sqlite_storage, class: PooledSqliteStorage, config: {base_dir}}``"""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None,
                 max_open_run_shards: int = DEFAULT_MAX_OPEN_RUN_SHARDS):
        # DagsterSqliteStorage.__init__ would open Dagster's own classes; same layout, pooled classes
        self.base_dir = base_dir
        self._run_storage = PooledSqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = PooledSqliteEventLogStorage(_event_logs_directory(base_dir),
                                                              max_open_run_shards=max_open_run_shards)
        self._schedule_storage = PooledSqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def config_type(cls):
        return {"base_dir": StringSource,
                "max_open_run_shards": Field(IntSource, is_required=False,
                                             default_value=DEFAULT_MAX_OPEN_RUN_SHARDS)}

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> PooledSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)

    @classmethod
    def from_local(cls, base_dir: str, inst_data: ConfigurableClassData | None = None,
                   max_open_run_shards: int = DEFAULT_MAX_OPEN_RUN_SHARDS) -> PooledSqliteStorage:
        from dagster._utils import mkdir_p

        mkdir_p(base_dir)
        return cls(base_dir, inst_data=inst_data, max_open_run_shards=max_open_run_shards)

    def dispose(self) -> None:
        for storage in (self._run_storage, self._event_log_storage, self._schedule_storage):
            storage.dispose()


def storage_overrides(home: str) -> dict:
    """Instance overrides that put this storage under ``home`` (what `instance_for` uses).

    Storage only, on purpose: any instance *setting* (``telemetry``, ``run_retries``, ...) makes Dagster
    re-run ``logging.config.dictConfig`` at the start of every run, which can deadlock runs executing
    in threads of one process (``idp process --workers``): dictConfig holds the logging lock and waits
    for a handler that another run holds while it waits for the event log's lock."""
    return {"storage": {"custom": {"module": __name__, "class": PooledSqliteStorage.__name__,
                                   "config": {"base_dir": home}}}}
