"""Scheduled backfills: a nightly schedule and an (off by default) sensor that re-run document
partitions that failed, were never materialized or went stale (see `idp_assets.backfill`).

Environment (read when the code location loads):

* `IDP_BACKFILL_CRON` - cron of the schedule (default `0 2 * * *`, 02:00 in `IDP_BACKFILL_TIMEZONE`, default UTC)
* `IDP_BACKFILL_REASONS` - comma list of failed,missing,stale (default all three)
* `IDP_BACKFILL_MAX_RUNS` - run requests per tick at most (default 100; the rest follow next tick)
* `IDP_BACKFILL_SENSOR_INTERVAL_S` - how often the sensor looks (default 3600 s)
* `IDP_BACKFILL_INCLUDE_QUARANTINED` - `true`: also re-run documents quarantined for bad input
  (default: left out - the same bytes fail the same way every night)

Both target the `process_document` job, one run per document restricted to the assets that
need work.  The schedule starts RUNNING, the sensor STOPPED (turn it on in the UI, or
`dagster sensor start document_backfill_sensor`).  `idp_assets.definitions` builds the two it
deploys with these factories (this module does not import the definitions).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from dagster import (
    DagsterInvariantViolationError, DefaultScheduleStatus, DefaultSensorStatus, ScheduleEvaluationContext, SensorEvaluationContext, SkipReason,
    schedule, sensor,
)
from pydantic import BaseModel, Field, field_validator

from idp_assets.backfill import REASONS, backfill_run_requests, find_backfill_partitions
from sensors.common import PROCESS_JOB_NAME


class BackfillSettings(BaseModel):
    cron: str = Field(default="0 2 * * *", description="schedule cron (IDP_BACKFILL_CRON)")
    timezone: str = Field(default="UTC", description="schedule time zone (IDP_BACKFILL_TIMEZONE)")
    reasons: tuple[str, ...] = Field(default=REASONS, description="IDP_BACKFILL_REASONS: failed,missing,stale")
    max_runs: int = Field(default=100, ge=1, description="run requests per tick (IDP_BACKFILL_MAX_RUNS)")
    sensor_interval_s: int = Field(default=3600, ge=30, description="IDP_BACKFILL_SENSOR_INTERVAL_S")
    include_quarantined: bool = Field(
        default=False, description="IDP_BACKFILL_INCLUDE_QUARANTINED: also re-run documents quarantined for bad input "
        "(they fail the same way again unless the code changed)")

    @field_validator("reasons")
    @classmethod
    def _known(cls, v):
        bad = set(v) - set(REASONS)
        if bad or not v:
            raise ValueError(f"IDP_BACKFILL_REASONS: unknown {sorted(bad)}; use a comma list of {', '.join(REASONS)}")
        return v

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BackfillSettings:
        env = os.environ if env is None else env
        given = {
            "cron": env.get("IDP_BACKFILL_CRON"),
            "timezone": env.get("IDP_BACKFILL_TIMEZONE"),
            "reasons": tuple(r.strip() for r in env["IDP_BACKFILL_REASONS"].split(",") if r.strip())
            if env.get("IDP_BACKFILL_REASONS") else None,
            "max_runs": env.get("IDP_BACKFILL_MAX_RUNS"),
            "sensor_interval_s": env.get("IDP_BACKFILL_SENSOR_INTERVAL_S"),
            "include_quarantined": env.get("IDP_BACKFILL_INCLUDE_QUARANTINED", "").lower() in ("1", "true", "yes") or None,
        }
        return cls(**{k: v for k, v in given.items() if v})


# where the asset graph comes from when a tick is evaluated outside a code location (tests, scripts)
AssetGraphSource = Callable[[], object]


def tick_asset_graph(context, fallback: AssetGraphSource | None = None):
    """The asset graph of the code location the tick runs in (its code versions are the current ones);
    outside a code location, the one `fallback` returns."""
    try:
        repo = context.repository_def  # a schedule context raises without one, a sensor context gives None
    except DagsterInvariantViolationError:
        repo = None
    if repo is not None:
        return repo.asset_graph
    if fallback is None:
        raise DagsterInvariantViolationError(
            "a tick evaluated outside a code location needs the asset graph: build the context with "
            "repository_def=..., or the schedule/sensor with asset_graph=...")
    return fallback()


def backfill_requests(context, settings: BackfillSettings, asset_graph: AssetGraphSource | None = None):
    candidates = find_backfill_partitions(context.instance, tick_asset_graph(context, asset_graph), reasons=settings.reasons,
                                          include_quarantined=settings.include_quarantined)
    for c in candidates[:settings.max_runs]:
        context.log.info(f"backfill {c.partition[:12]} ({c.reason}): {', '.join(c.assets)} - {'; '.join(c.details)}")
    if len(candidates) > settings.max_runs:
        context.log.info(f"{len(candidates) - settings.max_runs} more partitions wait for the next tick")
    return backfill_run_requests(candidates, PROCESS_JOB_NAME, limit=settings.max_runs)


def make_backfill_schedule(settings: BackfillSettings | None = None, name: str = "document_backfill_schedule",
                           asset_graph: AssetGraphSource | None = None):
    """`asset_graph`: gives the asset graph when the tick runs outside a code location (see `tick_asset_graph`)."""
    settings = settings or BackfillSettings.from_env()

    @schedule(name=name, cron_schedule=settings.cron, execution_timezone=settings.timezone, job_name=PROCESS_JOB_NAME,
              default_status=DefaultScheduleStatus.RUNNING,
              description="Nightly: re-run document partitions that failed, are missing or stale (idp_assets.backfill).")
    def _schedule(context: ScheduleEvaluationContext):
        requests = backfill_requests(context, settings, asset_graph)
        return requests or SkipReason("no failed, missing or stale document partitions")

    return _schedule


def make_backfill_sensor(settings: BackfillSettings | None = None, name: str = "document_backfill_sensor",
                         asset_graph: AssetGraphSource | None = None):
    """`asset_graph`: gives the asset graph when the tick runs outside a code location (see `tick_asset_graph`)."""
    settings = settings or BackfillSettings.from_env()

    @sensor(name=name, job_name=PROCESS_JOB_NAME, minimum_interval_seconds=settings.sensor_interval_s,
            default_status=DefaultSensorStatus.STOPPED,
            description="Like the nightly backfill schedule, but every IDP_BACKFILL_SENSOR_INTERVAL_S seconds.")
    def _sensor(context: SensorEvaluationContext):
        requests = backfill_requests(context, settings, asset_graph)
        return requests or SkipReason("no failed, missing or stale document partitions")

    return _sensor

