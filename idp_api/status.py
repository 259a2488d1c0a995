"""Status of one document per stage, read from the Dagster instance.

The latest run of the document's partition (tag ``dagster/partition``) and its step events decide
each stage: ``materialized`` (the stage's asset was materialized in that run, or - when the run
did not reach it - in an earlier one), ``running`` (its step started and has not ended), ``failed``
(its step failed: reason code and message from the failure metadata, as the UI shows them; or the
run ended before reaching a stage that was never materialized), ``queued`` (nothing yet).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from dagster import AssetKey, AssetRecordsFilter, DagsterEventType, DagsterInstance, RunsFilter
from dagster._core.storage.dagster_run import DagsterRunStatus

from idp_assets.definitions import DOCUMENT_ASSETS

STAGES = [a.key.path[-1] for a in DOCUMENT_ASSETS]
_IN_PROGRESS = {DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
                DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING}
_IN_PROGRESS_NAMES = {s.value.lower() for s in _IN_PROGRESS}
_STEP_EVENTS = {DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE}


@dataclass
class StageState:
    name: str
    status: str
    run_id: str | None = None
    materialized_at: str | None = None
    reason: str | None = None
    message: str | None = None


@dataclass
class RunInfo:
    run_id: str
    status: str
    runner: str | None
    started_at: str | None
    ended_at: str | None


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds") if ts else None


def _failure(event) -> tuple[str, str]:
    data = event.step_failure_data
    ufd = data.user_failure_data if data else None
    if ufd is not None and "reason" in ufd.metadata:
        msg = ufd.metadata.get("message")
        return str(ufd.metadata["reason"].value), str(msg.value if msg is not None else ufd.description or "")
    err = data.error if data else None
    while err is not None and err.cause is not None:
        err = err.cause
    return "step_failed", (err.message.strip() if err else "step failed")[:500]


def latest_run(instance: DagsterInstance, document_id: str):
    recs = instance.get_run_records(RunsFilter(tags={"dagster/partition": document_id}), limit=1)
    return recs[0] if recs else None


def document_stages(instance: DagsterInstance, document_id: str) -> tuple[list[StageState], RunInfo | None]:
    rec = latest_run(instance, document_id)
    run = rec.dagster_run if rec else None
    steps: dict[str, tuple[str, object]] = {}
    if run is not None:
        for entry in instance.all_logs(run.run_id, of_type=_STEP_EVENTS):
            ev = entry.dagster_event
            steps[ev.step_key] = (ev.event_type_value, ev)
    in_progress = run is not None and run.status in _IN_PROGRESS
    out: list[StageState] = []
    for name in STAGES:
        mats = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(name), asset_partitions=[document_id]), limit=1).records
        mat = mats[0] if mats else None
        st = StageState(name, "queued")
        if mat is not None:
            st.run_id, st.materialized_at = mat.run_id, _iso(mat.timestamp)
        step = steps.get(name)
        kind = step[0] if step else None
        if mat is not None and run is not None and mat.run_id == run.run_id:
            st.status = "materialized"
        elif kind == "STEP_FAILURE":
            st.status = "failed"
            st.reason, st.message = _failure(step[1])
            st.run_id = run.run_id
        elif kind == "STEP_START" and in_progress:
            st.status, st.run_id = "running", run.run_id
        elif in_progress:
            st.status = "queued"
        elif mat is not None:
            st.status = "materialized"  # from an earlier run (the latest did not reach this stage)
        elif run is not None:
            st.status, st.run_id = "failed", run.run_id
            st.reason = "not_run"
            st.message = f"run {run.run_id[:8]} ended {run.status.value.lower()} before this stage"
        out.append(st)
    info = None
    if run is not None:
        info = RunInfo(run.run_id, run.status.value.lower(), run.tags.get("idp/runner"),
                       _iso(rec.start_time), _iso(rec.end_time))
    return out, info


def overall(stages: list[StageState], run: RunInfo | None) -> str:
    if run is not None and run.status in _IN_PROGRESS_NAMES:
        return "running"
    if any(s.status == "failed" for s in stages):
        return "failed"
    if stages and all(s.status == "materialized" for s in stages):
        return "materialized"
    return "queued"
