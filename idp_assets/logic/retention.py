"""Which document partitions to retire so that the live partition count stays bounded.

Every document is one dynamic partition (its sha256).  Dagster recommends at most 100,000
partitions per asset; a customer with 10,000 documents a day passes that in ten days.  A finished
document does not need to stay a *live* partition: its materializations, run ids, code and data
versions stay in the event log whether the partition key exists or not (deleting a dynamic
partition only removes the key), so lineage (`idp audit`) is unaffected.  Retiring the oldest
finished documents keeps the live set - what the UI lists, the sensors check and backfills scan -
below a bound, whatever the total.

Pure logic, no Dagster: the caller measures each live partition's state.
"""

from __future__ import annotations

from dataclasses import dataclass

DAGSTER_RECOMMENDED_PARTITIONS = 100_000
"""Dagster's documented recommendation per asset (dagster PR #28697 raised it from 25,000)."""
DEFAULT_MAX_LIVE = 90_000
"""Default bound: leaves 10,000 below the recommendation for documents in flight or failed."""
DEFAULT_LOW_WATER = 0.9
"""Retire down to this share of the bound, so a retirement pass is not due on every check."""


@dataclass(frozen=True)
class PartitionState:
    document_id: str
    last_activity: float
    """Unix time of the latest run (or materialization) of the document; older retires first."""
    finished: bool
    """Every document asset is materialized and no run of it is queued, running or failed."""


def retirement_target(max_live: int, low_water: float = DEFAULT_LOW_WATER) -> int:
    if max_live < 1:
        raise ValueError(f"max_live must be at least 1, not {max_live}")
    if not 0.0 < low_water <= 1.0:
        raise ValueError(f"low_water must be in (0, 1], not {low_water}")
    return max(1, int(max_live * low_water))


def choose_retirements(states: list[PartitionState], max_live: int,
                       low_water: float = DEFAULT_LOW_WATER) -> list[str]:
    """Document ids to retire, oldest finished first; empty while at most `max_live` are live.

    Over the bound, finished documents are retired until `low_water * max_live` stay live.
    Unfinished ones (in flight, failed, quarantined, partly materialized) are never retired:
    they are what a user still has to look at or what a backfill still has to run. When they
    alone exceed the bound, fewer are retired than needed (the caller reports it).
    """
    if len(states) <= max_live:
        return []
    excess = len(states) - retirement_target(max_live, low_water)
    finished = sorted((s for s in states if s.finished), key=lambda s: (s.last_activity, s.document_id))
    return [s.document_id for s in finished[:excess]]


def stale_assets(recorded: dict[str, str | None], current: dict[str, str | None]) -> list[str]:
    """Assets whose code version at retirement differs from the current definition's (sorted).

    An asset the document never had recorded (added to the graph later) counts as stale too."""
    return sorted(name for name, version in current.items() if recorded.get(name) != version)
