"""Small helpers shared by the asset modules (kept thin on purpose)."""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    BackfillPolicy,
    Backoff,
    Failure,
    Jitter,
    MetadataValue,
    RetryPolicy,
)

from idp_assets.partitions import documents_partitions

# the asset modules import this before their decorators run: keep the beta notice out of every CLI call
warnings.filterwarnings("ignore", message="Parameter `backfill_policy` of function `asset` is currently in beta")
warnings.filterwarnings("ignore", message="Function `observable_source_asset` is currently in beta")

ASSET_GROUP = "documents"
PARTITIONS = documents_partitions
# every document asset: a backfill launched from the UI runs one document per run (see idp_assets.backfill)
DOCUMENT_BACKFILL_POLICY = BackfillPolicy.multi_run(max_partitions_per_run=1)

# steps that write to a server (graph over Bolt, a Chroma server) outlive an outage of it:
# the store's own retries cover seconds; then the whole step is retried 2, 4, 8, 16 s later
SERVICE_RETRY_POLICY = RetryPolicy(max_retries=4, delay=2, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)


def check_spec(asset: str, name: str, description: str) -> AssetCheckSpec:
    return AssetCheckSpec(name=name, asset=AssetKey(asset), description=description)


def check_result(asset: str, name: str, passed: bool, **metadata) -> AssetCheckResult:
    return AssetCheckResult(
        asset_key=AssetKey(asset),
        check_name=name,
        passed=bool(passed),
        severity=AssetCheckSeverity.ERROR,
        metadata={k: _meta(v) for k, v in metadata.items()},
    )


def _meta(v):
    if isinstance(v, (list, dict)):
        return MetadataValue.json(v)
    return v


def document_failure(code: str, message: str, **metadata) -> Failure:
    """Fails only this document's partition, with a machine-readable reason in the UI and run log."""
    return Failure(
        description=f"[{code}] {message}",
        metadata={"reason": code, "message": message, **{k: _meta(v) for k, v in metadata.items()}},
        allow_retries=False,
    )


def failure_reason(result) -> tuple[str, str, str | None]:
    """(reason code, message, quarantine uri) of the first failed step of a run."""
    for ev in result.all_events:
        if ev.event_type_value == "STEP_FAILURE":
            data = ev.step_failure_data
            ufd = data.user_failure_data
            if ufd is not None and "reason" in ufd.metadata:
                q = ufd.metadata.get("quarantine_uri")
                return str(ufd.metadata["reason"].value), str(ufd.metadata["message"].value), q.value if q else None
            err = data.error
            while err is not None and err.cause is not None:  # the user code's exception, not Dagster's wrapper
                err = err.cause
            msg = err.message.strip() if err else "step failed"
            return "step_failed", f"{ev.step_key}: {msg}", None
    return "run_failed", "run did not succeed", None


@contextmanager
def timed():
    t = {"seconds": 0.0}
    t0 = time.perf_counter()
    try:
        yield t
    finally:
        t["seconds"] = round(time.perf_counter() - t0, 4)
