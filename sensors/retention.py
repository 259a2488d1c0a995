"""Keeps the number of live document partitions below a bound (see `idp_assets.retention`).

Environment (read when the code location loads):

* `IDP_MAX_LIVE_PARTITIONS` - the bound (default 90,000: Dagster recommends at most 100,000
  partitions per asset; the rest is room for documents in flight or failed)
* `IDP_RETENTION_LOW_WATER` - a pass retires down to this share of the bound (default 0.9)
* `IDP_RETENTION_INTERVAL_S` - how often the sensor looks (default 600 s; a look below the bound
  is one partition listing)

The sensor starts RUNNING: below the bound it only counts. It requests no runs; it writes the
retirement records and deletes the partitions itself, and says what it did in the tick's log.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from dagster import DefaultSensorStatus, SensorEvaluationContext, SkipReason, sensor
from pydantic import BaseModel, Field

from idp_assets.logic.retention import DEFAULT_LOW_WATER, DEFAULT_MAX_LIVE
from idp_assets.retention import retention_summary, run_retention
from resources.storage import DocumentStore
from sensors.backfill import AssetGraphSource, tick_asset_graph


class RetentionSettings(BaseModel):
    max_live: int = Field(default=DEFAULT_MAX_LIVE, ge=1, description="IDP_MAX_LIVE_PARTITIONS")
    low_water: float = Field(default=DEFAULT_LOW_WATER, gt=0.0, le=1.0, description="IDP_RETENTION_LOW_WATER")
    interval_s: int = Field(default=600, ge=30, description="IDP_RETENTION_INTERVAL_S")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RetentionSettings:
        env = os.environ if env is None else env
        given = {"max_live": env.get("IDP_MAX_LIVE_PARTITIONS"), "low_water": env.get("IDP_RETENTION_LOW_WATER"),
                 "interval_s": env.get("IDP_RETENTION_INTERVAL_S")}
        return cls(**{k: v for k, v in given.items() if v})


def make_retention_sensor(settings: RetentionSettings | None = None, name: str = "partition_retention_sensor",
                          asset_graph: AssetGraphSource | None = None):
    settings = settings or RetentionSettings.from_env()

    @sensor(name=name, minimum_interval_seconds=settings.interval_s, default_status=DefaultSensorStatus.RUNNING,
            description="Retires the oldest finished document partitions when more than IDP_MAX_LIVE_PARTITIONS are "
                        "live (lineage stays in the event log; `idp partitions restore ID` brings one back).")
    def _sensor(context: SensorEvaluationContext, document_store: DocumentStore):
        report = run_retention(context.instance, document_store, tick_asset_graph(context, asset_graph),
                               settings.max_live, settings.low_water)
        line = retention_summary(report)
        if report.over_bound_by:
            context.log.warning(line)
        elif report.retired:
            context.log.info(line)
        return SkipReason(line)

    return _sensor
