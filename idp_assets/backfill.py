"""Which document partitions need work again, and the run requests that do it.

A partition (one document) is selected for one of three reasons:

* **failed** - the latest run for the partition (run tag `dagster/partition`) failed.  The
  assets that run targeted but did not materialize, plus everything downstream, are re-run.
* **missing** - a document asset was never materialized for the partition (e.g. a stage
  added later).  That asset and its downstream assets are run.
* **stale** - Dagster's own staleness (`CachingStaleStatusResolver`, what the UI shows):
  the asset's code version (`idp_assets.versions`) differs from the `dagster/code_version`
  stored with its latest materialization, or an input's data version changed since (e.g. a
  new supplier master version for `supplier_matches`).  Stale assets and everything
  downstream of them are run, so one run leaves the partition fresh.

A partition whose latest run is still queued or running is skipped.  `since` keeps only
partitions with a run (and so a registration or materialization) on or after that time;
partitions that never had a run cannot be dated and are then left out.

Launching: one `RunRequest` per partition for the `process_document` job, with
`asset_selection` = the assets chosen above and a `run_key` that changes whenever the
partition has had another run or the code versions changed (so a tick never launches the
same work twice).  This is the same shape as an asset backfill under
`DOCUMENT_BACKFILL_POLICY` (`idp_assets.common`, one partition per run): the asset bodies
read exactly one partition (`context.partition_key`, per-partition IO), so Dagster's
multi-partition runs (a partition *range* in one run) fail on them - `tests/test_backfill.py`
checks that.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timezone
from typing import Literal

from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunRequest, RunsFilter
from pydantic import BaseModel, ConfigDict, Field

from idp_assets.common import failure_reason
from idp_assets.fingerprints import short_hash
from idp_assets.partitions import DOCUMENTS_PARTITIONS_NAME

Reason = Literal["failed", "missing", "stale"]
REASONS: tuple[Reason, ...] = ("failed", "missing", "stale")
BACKFILL_REASON_TAG = "idp/backfill_reason"
PARTITION_TAG = "dagster/partition"
_IN_FLIGHT = {DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
              DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING}
_BATCH = 500  # partition keys per run-storage query


class BackfillCandidate(BaseModel):
    """One partition to (re)run, why, and which assets."""

    model_config = ConfigDict(frozen=True)

    partition: str
    reason: Reason = Field(description="first of failed / missing / stale that applies")
    assets: list[str] = Field(description="asset keys to materialize, in lineage order")
    details: list[str] = Field(description="human-readable causes, e.g. 'ocr_pages: has a new code version'")
    last_run_id: str | None = None
    last_activity: datetime | None = Field(default=None, description="creation time of the partition's latest run")

    @property
    def run_key(self) -> str:
        """Changes when the partition had another run or the selection/causes changed."""
        return f"backfill:{self.partition}:{short_hash([self.reason, self.assets, self.details, self.last_run_id])}"


def document_asset_keys(asset_graph) -> list[AssetKey]:
    """Materializable assets partitioned by the `documents` dynamic partitions, in lineage order."""
    out = []
    for key in asset_graph.toposorted_asset_keys:
        node = asset_graph.get(key)
        pd = node.partitions_def
        if node.is_materializable and getattr(pd, "name", None) == DOCUMENTS_PARTITIONS_NAME:
            out.append(key)
    return out


def _downstream_closure(asset_graph, keys: Iterable[AssetKey], within: Sequence[AssetKey]) -> list[AssetKey]:
    chosen = set(keys)
    for key in within:  # lineage order: parents are decided before their children
        if key not in chosen and any(p in chosen for p in asset_graph.get(key).parent_keys):
            chosen.add(key)
    return [k for k in within if k in chosen]


def _as_utc(since: date | datetime | None) -> datetime | None:
    if since is None:
        return None
    if not isinstance(since, datetime):
        since = datetime.combine(since, time.min)
    return since if since.tzinfo else since.replace(tzinfo=timezone.utc)


def latest_runs(instance: DagsterInstance, partitions: Sequence[str]) -> dict[str, object]:
    """partition -> its most recent run record (any job; runs carry the `dagster/partition` tag)."""
    out: dict[str, object] = {}
    for i in range(0, len(partitions), _BATCH):
        batch = list(partitions[i:i + _BATCH])
        for rec in instance.get_run_records(RunsFilter(tags={PARTITION_TAG: batch})):
            pk = rec.dagster_run.tags.get(PARTITION_TAG)
            if pk in out and out[pk].create_timestamp >= rec.create_timestamp:
                continue
            out[pk] = rec
    return out


def _materialized_in_run(instance: DagsterInstance, run_id: str) -> set[AssetKey]:
    from dagster import DagsterEventType

    return {e.dagster_event.asset_key for e in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)}


def _stale_resolver(instance: DagsterInstance, asset_graph):
    from dagster._core.definitions.data_version import CachingStaleStatusResolver
    from dagster._core.loader import LoadingContext

    class _Loading(LoadingContext):  # a plain per-call loader cache (what a GraphQL request has)
        def __init__(self, inst):
            self._instance, self._loaders = inst, {}

        @property
        def instance(self):
            return self._instance

        @property
        def loaders(self):
            return self._loaders

    return CachingStaleStatusResolver(instance, asset_graph, _Loading(instance))


def find_backfill_partitions(
    instance: DagsterInstance,
    asset_graph,
    reasons: Iterable[Reason] = REASONS,
    since: date | datetime | None = None,
    partitions: Sequence[str] | None = None,
    include_quarantined: bool = True,
) -> list[BackfillCandidate]:
    """Partitions of the document assets that are failed, missing or stale (see module doc).

    A partition whose latest run failed on its input (quarantined: bad bytes, `document_failure`
    with a machine-readable reason) fails the same way every time unless the code changed: its
    details say so, and `include_quarantined=False` (the nightly schedule's default) leaves it out.

    `asset_graph`: the current definitions' graph (`defs.resolve_asset_graph()`, or a sensor's
    `context.repository_def.asset_graph`); its code versions are the "current" ones.
    """
    from dagster._core.definitions.data_version import StaleStatus

    wanted = set(reasons)
    unknown = wanted - set(REASONS)
    if unknown:
        raise ValueError(f"unknown backfill reasons {sorted(unknown)}; known: {', '.join(REASONS)}")
    keys = document_asset_keys(asset_graph)
    parts = list(partitions) if partitions is not None else list(instance.get_dynamic_partitions(DOCUMENTS_PARTITIONS_NAME))
    runs = latest_runs(instance, parts)
    cutoff = _as_utc(since)
    materialized = {k: instance.get_materialized_partitions(k) for k in keys} if wanted & {"missing", "stale"} else {}
    resolver = _stale_resolver(instance, asset_graph) if "stale" in wanted else None

    out: list[BackfillCandidate] = []
    for pk in parts:
        rec = runs.get(pk)
        activity = datetime.fromtimestamp(rec.create_timestamp.timestamp(), timezone.utc) if rec else None
        if rec is not None and rec.dagster_run.status in _IN_FLIGHT:
            continue  # a run is already on it
        if cutoff is not None and (activity is None or activity < cutoff):
            continue
        quarantined = (quarantine_reason(instance, rec.dagster_run.run_id)
                       if rec is not None and rec.dagster_run.status == DagsterRunStatus.FAILURE else None)
        if quarantined and not include_quarantined:
            continue
        roots: list[AssetKey] = []
        details: list[str] = []
        reason: Reason | None = None
        if "failed" in wanted and rec is not None and rec.dagster_run.status == DagsterRunStatus.FAILURE:
            run = rec.dagster_run
            targeted = [k for k in keys if run.asset_selection is None or k in run.asset_selection]
            done = _materialized_in_run(instance, run.run_id)
            roots += [k for k in targeted if k not in done]
            details.append(f"run {run.run_id[:8]} failed" + (f" (quarantined: {quarantined})" if quarantined else ""))
            reason = "failed"
        if "missing" in wanted:
            missing = [k for k in keys if pk not in materialized[k]]
            if missing:
                roots += missing
                details.append("never materialized: " + ", ".join(k.to_user_string() for k in missing))
                reason = reason or "missing"
        if "stale" in wanted:
            for k in keys:
                if pk not in materialized[k] or resolver.get_status(k, pk) != StaleStatus.STALE:
                    continue
                roots.append(k)
                causes = sorted({c.reason for c in resolver.get_stale_causes(k, pk)})
                details.append(f"{k.to_user_string()}: {'; '.join(causes) or 'stale'}")
                reason = reason or "stale"
        if reason is None:
            continue
        chosen = _downstream_closure(asset_graph, roots, keys)
        if not chosen:  # e.g. a failed run whose assets all materialized (a check or hook failed)
            chosen = keys
        out.append(BackfillCandidate(
            partition=pk, reason=reason, assets=[k.to_user_string() for k in chosen], details=details,
            last_run_id=rec.dagster_run.run_id if rec else None, last_activity=activity,
        ))
    return out


def quarantine_reason(instance: DagsterInstance, run_id: str) -> str | None:
    """The machine-readable reason (`corrupt_pdf`, `archive_bomb`, ...) a run's document was quarantined for."""
    from dagster import DagsterEventType

    for record in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
        data = record.dagster_event.step_failure_data if record.dagster_event else None
        meta = data.user_failure_data.metadata if data and data.user_failure_data else {}
        reason = meta.get("reason")
        if reason is not None:
            return str(getattr(reason, "value", reason))
    return None


def backfill_run_requests(candidates: Sequence[BackfillCandidate], job_name: str, limit: int | None = None) -> list[RunRequest]:
    """One `RunRequest` per candidate partition for `job_name`, restricted to the chosen assets."""
    return [
        RunRequest(
            run_key=c.run_key,
            job_name=job_name,
            partition_key=c.partition,
            asset_selection=[AssetKey.from_user_string(a) for a in c.assets],
            tags={BACKFILL_REASON_TAG: c.reason},
        )
        for c in (candidates if limit is None else candidates[:limit])
    ]


def run_candidates(candidates: Sequence[BackfillCandidate], assets, resources: dict, instance: DagsterInstance,
                   progress=None) -> list[tuple[BackfillCandidate, bool, str | None]]:
    """Materialize each candidate's assets in-process (what `idp backfill` does): (candidate, ok, error)."""
    from dagster import AssetSelection, materialize

    results = []
    for i, c in enumerate(candidates, 1):
        res = materialize(
            assets, selection=AssetSelection.assets(*[AssetKey.from_user_string(a) for a in c.assets]),
            partition_key=c.partition, instance=instance, resources=resources, raise_on_error=False,
            tags={BACKFILL_REASON_TAG: c.reason, "idp/runner": "idp backfill"},
        )
        error = None if res.success else "{}: {}".format(*failure_reason(res)[:2])
        results.append((c, res.success, error))
        if progress is not None:
            print(f"[{i}/{len(candidates)}] {'ok' if res.success else 'failed':<6} {c.partition[:12]} {c.reason}"
                  + (f"  ({error[:160]})" if error else ""), file=progress, flush=True)
    return results
