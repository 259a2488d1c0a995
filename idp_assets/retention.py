"""Retire finished document partitions so the live set stays bounded; bring one back on demand.

The policy is in `idp_assets.logic.retention` (which ones, how many); this module measures the
live partitions on a Dagster instance and acts:

* **retire**: for each chosen document a retirement record is written to the document store
  (`retired/<id[:2]>/<id>.json`: when, the latest run, the code version of every document
  asset's latest materialization) *before* its dynamic partition is deleted, so a crash in
  between loses nothing. Materializations, runs and checks stay in the event log: `idp audit`
  answers for a retired document as for a live one.
* **known**: a retired document is still registered: the sensors, the API and re-sightings of
  the same bytes treat it as known (no new partition, no new run).
* **restore**: adds the partition back and removes the record - `idp process` of the same
  bytes, `idp partitions restore ID` and `idp backfill --stale --retired` do it; the
  document is then an ordinary live partition again (its history is still there).
* **stale while retired**: the recorded code versions are compared with the current
  definitions (`stale_retired`), listing the affected documents without restoring them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone

from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, DagsterRunStatus
from pydantic import BaseModel, Field

from idp_assets.backfill import document_asset_keys, latest_runs
from idp_assets.logic.retention import (DEFAULT_LOW_WATER, PartitionState, choose_retirements, retirement_target,
                                        stale_assets)
from idp_assets.partitions import DOCUMENTS_PARTITIONS_NAME
from resources.storage import original_key, safe_key

RETIRED_PREFIX = "retired"
_BATCH = 200  # partition keys per materialization query


class RetiredDocument(BaseModel):
    """What is kept of a document whose partition was retired (its lineage stays in the event log)."""

    document_id: str
    retired_at: str
    last_run_id: str | None = None
    last_activity: float = Field(description="unix time of the latest run; 0 when it had none")
    code_versions: dict[str, str | None] = Field(description="document asset -> code version of its latest materialization")


class RetentionReport(BaseModel):
    max_live: int
    target: int = Field(description="live partitions a retirement pass aims for (low water)")
    live_before: int
    finished: int = Field(description="live partitions that could be retired (finished)")
    retired: list[str]
    live_after: int
    over_bound_by: int = Field(description="live partitions above max_live after the pass (unfinished ones are never retired)")
    dry_run: bool
    seconds: float


def retired_key(document_id: str) -> str:
    original_key(document_id)  # validates the id
    return safe_key(RETIRED_PREFIX, document_id[:2], f"{document_id}.json")


def get_retired(store, document_id: str) -> RetiredDocument | None:
    key = retired_key(document_id)
    if not store.exists(key):
        return None
    return RetiredDocument.model_validate_json(store.get(key))


def is_retired(store, document_id: str) -> bool:
    return store.exists(retired_key(document_id))


def is_registered(instance: DagsterInstance, store, document_id: str) -> bool:
    """A live partition or a retired document: either way the same bytes need no new run."""
    return instance.has_dynamic_partition(DOCUMENTS_PARTITIONS_NAME, document_id) or is_retired(store, document_id)


def iter_retired(store) -> Iterator[RetiredDocument]:
    for key in store.list_keys(f"{RETIRED_PREFIX}/"):
        if key.endswith(".json"):
            yield RetiredDocument.model_validate_json(store.get(key))


def find_retired(store, prefix: str) -> list[str]:
    """Retired document ids starting with `prefix` (at least 2 characters: one store folder is listed)."""
    prefix = prefix.lower()
    if len(prefix) < 2:
        return []
    out = []
    for key in store.list_keys(f"{RETIRED_PREFIX}/{prefix[:2]}/"):
        name = key.rsplit("/", 1)[-1].removesuffix(".json")
        if name.startswith(prefix):
            out.append(name)
    return sorted(out)


def restore(instance: DagsterInstance, store, document_id: str) -> bool:
    """Make a retired document a live partition again; False when it was not retired."""
    if not is_retired(store, document_id):
        return False
    if not instance.has_dynamic_partition(DOCUMENTS_PARTITIONS_NAME, document_id):
        instance.add_dynamic_partitions(DOCUMENTS_PARTITIONS_NAME, [document_id])
    store.delete(retired_key(document_id))
    return True


def _succeeded(rec) -> bool:
    """No run yet (materialized otherwise), or the latest run succeeded: not queued, running or failed."""
    return rec is None or rec.dagster_run.status == DagsterRunStatus.SUCCESS


def _last_activity(rec) -> float:
    return rec.create_timestamp.timestamp() if rec else 0.0


def partition_states(instance: DagsterInstance, asset_keys: Sequence[AssetKey],
                     partitions: Sequence[str]) -> list[PartitionState]:
    """Finished = every document asset materialized and the latest run (if any) succeeded."""
    runs = latest_runs(instance, partitions)
    materialized = {k: instance.get_materialized_partitions(k) for k in asset_keys}
    out = []
    for pk in partitions:
        rec = runs.get(pk)
        out.append(PartitionState(
            document_id=pk,
            last_activity=_last_activity(rec),
            finished=all(pk in materialized[k] for k in asset_keys) and _succeeded(rec),
        ))
    return out


def latest_code_versions(instance: DagsterInstance, asset_keys: Sequence[AssetKey],
                         partitions: Sequence[str]) -> dict[str, dict[str, str | None]]:
    """document id -> {asset: code version of its latest materialization}, a few queries per 200 documents."""
    out: dict[str, dict[str, str | None]] = {pk: {} for pk in partitions}
    for key in asset_keys:
        name = key.to_user_string()
        for i in range(0, len(partitions), _BATCH):
            batch = list(partitions[i:i + _BATCH])
            pending, cursor = set(batch), None
            while pending:
                res = instance.fetch_materializations(
                    AssetRecordsFilter(asset_key=key, asset_partitions=batch), limit=len(batch), cursor=cursor)
                for r in res.records:  # newest first: the first record of a partition is its latest
                    if r.partition_key in pending:
                        out[r.partition_key][name] = r.asset_materialization.tags.get("dagster/code_version")
                        pending.discard(r.partition_key)
                if not res.has_more:
                    break
                cursor = res.cursor
    return out


def retire(instance: DagsterInstance, store, document_ids: Sequence[str], asset_keys: Sequence[AssetKey]) -> list[str]:
    """Write each document's retirement record, then delete its partition; returns the retired ids.

    The latest runs are read again here: a document that got a new run since it was chosen (queued from
    the UI, a backfill) is left live."""
    versions = latest_code_versions(instance, asset_keys, document_ids)
    runs = latest_runs(instance, document_ids)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    done = []
    for doc_id in document_ids:
        rec = runs.get(doc_id)
        if not _succeeded(rec):
            continue
        record = RetiredDocument(
            document_id=doc_id, retired_at=now, last_run_id=rec.dagster_run.run_id if rec else None,
            last_activity=_last_activity(rec),
            code_versions=versions.get(doc_id, {}),
        )
        store.put(retired_key(doc_id), record.model_dump_json(indent=1).encode(), "application/json")
        instance.delete_dynamic_partition(DOCUMENTS_PARTITIONS_NAME, doc_id)
        done.append(doc_id)
    return done


def run_retention(instance: DagsterInstance, store, asset_graph, max_live: int,
                  low_water: float = DEFAULT_LOW_WATER, dry_run: bool = False) -> RetentionReport:
    """One retirement pass: nothing to do (one partition listing) while at most `max_live` are live."""
    t0 = time.perf_counter()
    target = retirement_target(max_live, low_water)
    live = list(instance.get_dynamic_partitions(DOCUMENTS_PARTITIONS_NAME))
    chosen: list[str] = []
    finished = 0
    if len(live) > max_live:
        keys = document_asset_keys(asset_graph)
        states = partition_states(instance, keys, live)
        finished = sum(1 for s in states if s.finished)
        chosen = choose_retirements(states, max_live, low_water)
        if chosen and not dry_run:
            chosen = retire(instance, store, chosen, keys)
    live_after = len(live) - (0 if dry_run else len(chosen))
    return RetentionReport(
        max_live=max_live, target=target, live_before=len(live), finished=finished, retired=chosen,
        live_after=live_after, over_bound_by=max(0, live_after - max_live), dry_run=dry_run,
        seconds=round(time.perf_counter() - t0, 3),
    )


def current_code_versions(asset_graph) -> dict[str, str | None]:
    return {k.to_user_string(): asset_graph.get(k).code_version for k in document_asset_keys(asset_graph)}


def stale_retired(store, asset_graph) -> list[tuple[RetiredDocument, list[str]]]:
    """Retired documents whose recorded code versions differ from the current definitions, with the assets."""
    current = current_code_versions(asset_graph)
    out = []
    for rec in iter_retired(store):
        assets = stale_assets(rec.code_versions, current)
        if assets:
            out.append((rec, assets))
    return sorted(out, key=lambda x: x[0].document_id)


def retention_summary(report: RetentionReport) -> str:
    verb = "would retire" if report.dry_run else "retired"
    line = (f"{report.live_before} live partitions (bound {report.max_live}, target {report.target}); "
            f"{verb} {len(report.retired)} of {report.finished} finished; {report.live_after} live after "
            f"({report.seconds:.2f} s)")
    if report.over_bound_by:
        line += f"; still {report.over_bound_by} over the bound: the rest are in flight, failed or unfinished"
    return line

