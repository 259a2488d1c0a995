"""The pooled SQLite instance storage (idp_assets/sqlite_storage.py): same files as Dagster's own
SQLite storage, connections kept open, run shards' engines bounded, safe from several threads."""

from __future__ import annotations

import threading

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    DynamicPartitionsDefinition,
    asset,
    materialize,
)

from idp_assets.audit import instance_for
from idp_assets.sqlite_storage import (
    PooledSqliteEventLogStorage,
    PooledSqliteRunStorage,
    PooledSqliteScheduleStorage,
    storage_overrides,
)

PARTS = DynamicPartitionsDefinition(name="things")


@asset(partitions_def=PARTS)
def thing(context) -> str:
    return context.partition_key.upper()


@asset(partitions_def=PARTS)
def thing_len(thing: str) -> int:
    return len(thing)


def _pooled(home, max_open: int | None = None) -> DagsterInstance:
    home.mkdir(parents=True, exist_ok=True)
    overrides = storage_overrides(str(home))
    if max_open is not None:
        overrides["storage"]["custom"]["config"]["max_open_run_shards"] = max_open
    return DagsterInstance.local_temp(str(home), overrides=overrides)


def test_instance_for_uses_the_pooled_storage(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    inst = instance_for(str(tmp_path / "data"))
    assert isinstance(inst.event_log_storage, PooledSqliteEventLogStorage)
    assert isinstance(inst.run_storage, PooledSqliteRunStorage)
    assert isinstance(inst.schedule_storage, PooledSqliteScheduleStorage)
    inst.dispose()


def test_runs_are_stored_in_dagsters_own_format_and_run_shards_stay_bounded(tmp_path):
    home = tmp_path / "home"
    inst = _pooled(home, max_open=2)
    keys = [f"doc{i}" for i in range(5)]
    inst.add_dynamic_partitions("things", keys)
    for k in keys:
        assert materialize([thing, thing_len], partition_key=k, instance=inst).success
    storage = inst.event_log_storage
    run_shards = [s for s in storage._engines if s != "index"]
    assert len(run_shards) == 2  # the three older runs' engines were disposed
    assert "index" in storage._engines
    inst.dispose()

    # Dagster's plain SQLite storage reads everything the pooled one wrote
    plain = DagsterInstance.local_temp(str(home))
    assert type(plain.event_log_storage).__name__ == "SqliteEventLogStorage"
    assert plain.get_runs_count() == 5
    recs = plain.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey("thing_len")), limit=10).records
    assert sorted(r.partition_key for r in recs) == keys
    assert sorted(plain.get_dynamic_partitions("things")) == keys
    plain.dispose()


def test_several_threads_run_at_once(tmp_path):
    inst = _pooled(tmp_path / "home")
    keys = [f"t{i}" for i in range(6)]
    inst.add_dynamic_partitions("things", keys)
    results, errors = {}, []

    def work(k):
        try:
            results[k] = materialize([thing, thing_len], partition_key=k, instance=inst).success
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(k,)) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and results == {k: True for k in keys}
    recs = inst.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey("thing")), limit=20).records
    assert sorted(r.partition_key for r in recs) == keys
    inst.dispose()


def test_wipe_and_delete_release_the_run_files(tmp_path):
    inst = _pooled(tmp_path / "home")
    inst.add_dynamic_partitions("things", ["a", "b"])
    run_a = materialize([thing], partition_key="a", instance=inst).run_id
    run_b = materialize([thing], partition_key="b", instance=inst).run_id
    inst.delete_run(run_a)
    assert run_a not in inst.event_log_storage._engines
    assert inst.get_run_by_id(run_a) is None and inst.get_run_by_id(run_b) is not None
    inst.event_log_storage.wipe()
    assert [s for s in inst.event_log_storage._engines if s != "index"] == []  # run shards' files are gone
    assert inst.fetch_materializations(AssetKey("thing"), limit=5).records == []
    # the storage keeps working after a wipe
    inst.add_dynamic_partitions("things", ["c"])
    assert materialize([thing], partition_key="c", instance=inst).success
    inst.dispose()


def test_known_partitions_are_remembered_briefly_and_forgotten_on_delete(tmp_path, monkeypatch):
    from idp_assets import sqlite_storage

    inst = _pooled(tmp_path / "home")
    storage = inst.event_log_storage
    calls = []
    real = sqlite_storage.SqliteEventLogStorage.has_dynamic_partition

    def counting(self, name, key):
        calls.append(key)
        return real(self, name, key)

    monkeypatch.setattr(sqlite_storage.SqliteEventLogStorage, "has_dynamic_partition", counting)
    assert not inst.has_dynamic_partition("things", "x") and not inst.has_dynamic_partition("things", "x")
    assert calls == ["x", "x"]  # absence is never remembered
    inst.add_dynamic_partitions("things", ["x"])
    assert inst.has_dynamic_partition("things", "x") and inst.has_dynamic_partition("things", "x")
    assert calls == ["x", "x", "x"]  # the second answer came from memory
    inst.delete_dynamic_partition("things", "x")
    assert not inst.has_dynamic_partition("things", "x")
    assert len(calls) == 4  # asked again after the delete
    inst.add_dynamic_partitions("things", ["x"])
    assert inst.has_dynamic_partition("things", "x") and len(calls) == 5
    storage._known_partitions[("things", "x")] -= sqlite_storage.KNOWN_PARTITION_TTL_S + 1  # expired
    assert inst.has_dynamic_partition("things", "x") and len(calls) == 6
    inst.dispose()
