"""Small helpers shared by the asset modules (kept thin on purpose)."""

from __future__ import annotations

import time
from contextlib import contextmanager

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    Backoff,
    Failure,
    Jitter,
    MetadataValue,
    RetryPolicy,
)

from idp_assets.partitions import documents_partitions

ASSET_GROUP = "documents"
PARTITIONS = documents_partitions

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


@contextmanager
def timed():
    t = {"seconds": 0.0}
    t0 = time.perf_counter()
    try:
        yield t
    finally:
        t["seconds"] = round(time.perf_counter() - t0, 4)
