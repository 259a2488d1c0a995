"""`idp bench registry`: the document registry at scale (default 100,000 documents).

    idp bench registry --docs 100000 --out bench_registry.json

On a fresh embedded instance (the pooled SQLite storage `idp process` uses) in a work folder:

1. `inputs`: N small distinct files in an inbox folder (1,000 per sub-folder).
2. `registration`: the real folder sensor (`sensors.inbox.inbox_sensor`, evaluated with
   `build_sensor_context`, `--per-tick` files per tick) registers them: originals in the
   document store, one dynamic partition per document, one run request each (not executed).
   Seconds per tick and for adding the partitions.
3. `steady_tick`: ticks with all N documents known and nothing new (the cost every tick pays
   forever: listing the folder, decoding and encoding the cursor of N entries).
4. `queries`: the partition registry as the UI and the runs read it: the dynamic partition keys,
   one `has_dynamic_partition`, and `idp audit` of one document among N.
5. `retention` (with `--max-live`): the oldest documents past `--max-live x low water` get a
   materialization of every document asset (runless events with the current code versions: a
   finished document), then one retirement pass (`idp_assets.retention.run_retention`, what the
   retention sensor runs) retires them: seconds, documents/s, live partitions before and after,
   then a steady tick again and (below) the status query over the live partitions.
   `partition_limit`: documents per partition (1) and the partition count at 1,000,000
   documents - `--max-live` when a bound is set, else 1,000,000 - against the 100,000 partitions
   per asset that Dagster's docs recommend.

6. `graphql_status` (unless `--no-graphql`): `--materialized` of the documents get a
   materialization of `raw_pages` (runless events), then `dagster-webserver` serves the instance
   and the UI's partition status query of that asset (`partitionStats` and
   `assetPartitionStatuses`, the health bar over all N partitions) is timed: the first answer and
   the median of the next ones.
"""

from __future__ import annotations

import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import click

from idp_assets.logic.retention import DAGSTER_RECOMMENDED_PARTITIONS, DEFAULT_LOW_WATER, retirement_target


def make_inbox(inbox: Path, n: int) -> None:
    for i in range(n):
        d = inbox / f"batch-{i // 1000:04d}"
        if i % 1000 == 0:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"doc-{i:07d}.txt").write_bytes(f"idp registry bench document {i}\n".encode())


STATUS_QUERY = """
query ($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    __typename
    ... on AssetNode {
      partitionStats { numMaterialized numPartitions numFailed numMaterializing }
      assetPartitionStatuses {
        __typename
        ... on DefaultPartitionStatuses { materializedPartitions failedPartitions materializingPartitions }
      }
    }
  }
}
"""
STATUS_ASSET = "raw_pages"


def graphql_status(instance, home: Path, work: Path, keys: list[str], materialized: float, repeats: int = 3) -> dict:
    """Materialize a share of the partitions (runless events), serve the instance with
    dagster-webserver and time the UI's partition status query over all of them."""
    import yaml
    from dagster import AssetMaterialization

    from idp_assets.sqlite_storage import storage_overrides
    from idp_assets.webserver import running_webserver

    m = int(len(keys) * materialized)
    t = time.perf_counter()
    for k in keys[:m]:
        instance.report_runless_asset_event(AssetMaterialization(asset_key=STATUS_ASSET, partition=k))
    out: dict = {"asset": STATUS_ASSET, "partitions": len(keys), "materialized": m,
                 "materialize_seconds": round(time.perf_counter() - t, 2)}
    (home / "dagster.yaml").write_text(yaml.safe_dump(storage_overrides(str(home))), encoding="utf-8")
    env = {"IDP_DATA_DIR": str(work / "data"), "IDP_EXPORT_DIR": str(work / "exports"),
           "IDP_INBOX": str(work / "inbox"), "IDP_GRAPH_MANAGED": "0"}
    times, stats = [], None
    with running_webserver(home, env=env, log_path=work / "webserver.log") as server:
        for _ in range(repeats):
            t = time.perf_counter()
            data = server.graphql(STATUS_QUERY, {"key": {"path": [STATUS_ASSET]}}, timeout=600)
            times.append(time.perf_counter() - t)
            node = data["assetNodeOrError"]
            if node["__typename"] != "AssetNode":
                raise RuntimeError(f"GraphQL: {STATUS_ASSET} is {node['__typename']}")
            stats = node["partitionStats"]
    out.update({"first_seconds": round(times[0], 3),
                "repeat_seconds_median": round(statistics.median(times[1:]), 3) if len(times) > 1 else None,
                "partition_stats": stats})
    return out


def finish_documents(instance, asset_graph, keys: list[str]) -> float:
    """Give `keys` a materialization of every document asset with its current code version (runless
    events): finished documents as the retention pass sees them. Returns the seconds it took."""
    from dagster import AssetMaterialization

    from idp_assets.retention import current_code_versions

    assets = current_code_versions(asset_graph).items()
    t = time.perf_counter()
    for doc in keys:
        for key, version in assets:
            instance.report_runless_asset_event(AssetMaterialization(
                asset_key=key, partition=doc, tags={"dagster/code_version": version} if version else None))
    return time.perf_counter() - t


def retention_pass(instance, store, asset_graph, keys: list[str], max_live: int,
                   low_water: float = DEFAULT_LOW_WATER) -> dict:
    """Finish the oldest documents past the target, then time one retirement pass over all of them."""
    from idp_assets.retention import run_retention

    excess = max(0, len(keys) - retirement_target(max_live, low_water))
    finish_s = finish_documents(instance, asset_graph, keys[:excess])
    report = run_retention(instance, store, asset_graph, max_live, low_water)
    return {
        "max_live": max_live, "low_water": low_water, "finished_documents": excess,
        "finish_seconds": round(finish_s, 2), "live_before": report.live_before, "retired": len(report.retired),
        "live_after": report.live_after, "over_bound_by": report.over_bound_by, "pass_seconds": report.seconds,
        "retired_per_s": round(len(report.retired) / report.seconds, 1) if report.seconds else None,
    }


def run_registry_bench(n: int, work: Path, per_tick: int = 5000, steady_ticks: int = 3,
                       graphql: bool = True, materialized: float = 0.1, max_live: int | None = None) -> dict:
    from dagster import DagsterInstance, build_sensor_context

    from idp_assets.audit import audit_document, relax_sqlite_sync
    from idp_assets.sqlite_storage import storage_overrides
    from idp_assets.partitions import DOCUMENTS_PARTITIONS_NAME
    from idp_assets.settings import build_resources
    from sensors.inbox import InboxSettings, inbox_sensor

    inbox = work / "inbox"
    t0 = time.perf_counter()
    make_inbox(inbox, n)
    out: dict = {"documents": n, "inputs_seconds": round(time.perf_counter() - t0, 2)}

    resources = build_resources(data_dir=str(work / "data"))
    # always a fresh instance in the work folder (never $DAGSTER_HOME's), on the pooled SQLite storage
    home = (work / "data" / "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    relax_sqlite_sync()
    instance = DagsterInstance.local_temp(str(home), overrides=storage_overrides(str(home)))
    settings = InboxSettings(path=str(inbox), min_age_seconds=0, max_per_tick=per_tick)
    res = {"inbox_settings": settings, "document_store": resources["document_store"]}

    def tick(cursor):
        ctx = build_sensor_context(instance=instance, cursor=cursor, resources=res)
        t = time.perf_counter()
        result = inbox_sensor(ctx)
        sensor_s = time.perf_counter() - t
        t = time.perf_counter()
        for req in result.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(DOCUMENTS_PARTITIONS_NAME, list(req.partition_keys))
        return result, sensor_s, time.perf_counter() - t

    cursor, ticks, add_s, requests = None, [], [], 0
    while True:
        result, s, a = tick(cursor)
        cursor = result.cursor or cursor
        if not result.run_requests:
            break
        ticks.append(s)
        add_s.append(a)
        requests += len(result.run_requests)
    out["registration"] = {
        "ticks": len(ticks), "per_tick": per_tick, "run_requests": requests,
        "tick_seconds_max": round(max(ticks), 3) if ticks else None,
        "tick_seconds_median": round(statistics.median(ticks), 3) if ticks else None,
        "add_partitions_seconds_total": round(sum(add_s), 3),
        "documents_per_s": round(requests / (sum(ticks) + sum(add_s)), 1) if ticks else None,
    }
    steady = []
    for _ in range(steady_ticks):
        result, s, _a = tick(cursor)
        cursor = result.cursor or cursor
        steady.append(s)
    out["steady_tick"] = {"seconds_median": round(statistics.median(steady), 3), "seconds_max": round(max(steady), 3),
                          "cursor_bytes": len(cursor or "")}

    t = time.perf_counter()
    keys = instance.get_dynamic_partitions(DOCUMENTS_PARTITIONS_NAME)
    q_keys = time.perf_counter() - t
    probe = keys[len(keys) // 2]
    t = time.perf_counter()
    instance.has_dynamic_partition(DOCUMENTS_PARTITIONS_NAME, probe)
    q_has = time.perf_counter() - t
    t = time.perf_counter()
    audit_document(instance, probe)
    q_audit = time.perf_counter() - t
    out["queries"] = {"partitions": len(keys), "get_dynamic_partitions_seconds": round(q_keys, 3),
                      "has_dynamic_partition_seconds": round(q_has, 4), "audit_seconds": round(q_audit, 3)}
    if max_live is not None:
        from idp_assets.definitions import defs

        store = resources["document_store"].process_config_and_initialize()
        out["retention"] = retention_pass(instance, store, defs.resolve_asset_graph(), list(keys), max_live)
        retired = keys[0]  # the oldest: retired, audited from the event log and its record
        t = time.perf_counter()
        audited = audit_document(instance, retired, store)
        out["retention"]["audit_retired_seconds"] = round(time.perf_counter() - t, 3)
        out["retention"]["audit_retired_materializations"] = len(audited["materializations"])
        steady = []
        for _ in range(steady_ticks):
            result, s, _a = tick(cursor)
            cursor = result.cursor or cursor
            steady.append(s)
            if result.run_requests:
                raise RuntimeError(f"{len(result.run_requests)} retired documents were registered again")
        out["retention"]["steady_tick_seconds_median"] = round(statistics.median(steady), 3)
        keys = instance.get_dynamic_partitions(DOCUMENTS_PARTITIONS_NAME)
    per_partition = 1
    at_1m = 1_000_000 if max_live is None else min(1_000_000, max_live)
    out["partition_limit"] = {
        "documents_per_partition": per_partition,
        "max_live_partitions": max_live,
        "partitions_at_1m_documents": at_1m,
        "dagster_recommended_per_asset": DAGSTER_RECOMMENDED_PARTITIONS,
        "within_recommendation_at_1m": at_1m <= DAGSTER_RECOMMENDED_PARTITIONS,
        "note": "one partition per document" if max_live is None else
                "live partitions: at most max_live while unfinished (failed, in flight) documents stay below it; "
                "finished ones retire with their lineage kept in the event log",
    }
    if graphql:
        out["graphql_status"] = graphql_status(instance, home, work, keys, materialized)
    instance.dispose()
    return out


@click.command("registry")
@click.option("--docs", default=100_000, show_default=True, help="documents registered")
@click.option("--per-tick", default=5000, show_default=True, help="files the sensor examines per tick")
@click.option("--work-dir", type=click.Path(file_okay=False), default=None,
              help="work folder (default: a temporary one, removed afterwards)")
@click.option("--graphql/--no-graphql", default=True, show_default=True,
              help="time the UI's partition status query through dagster-webserver")
@click.option("--materialized", type=click.FloatRange(0, 1), default=0.1, show_default=True,
              help="share of the documents given a raw_pages materialization before the status query")
@click.option("--max-live", type=click.IntRange(min=1), default=None,
              help="retire finished documents past this many live partitions and time it (default: no retention pass)")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default="bench_registry.json", show_default=True)
def bench_registry(docs: int, per_tick: int, work_dir: str | None, graphql: bool, materialized: float,
                   max_live: int | None, out_file: str) -> None:
    """Sensor tick, partition registry, audit and UI status query times with N registered documents."""
    if work_dir:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        report = run_registry_bench(docs, Path(work_dir), per_tick, graphql=graphql, materialized=materialized,
                                        max_live=max_live)
    else:
        with tempfile.TemporaryDirectory(prefix="idp-registry-") as tmp:
            report = run_registry_bench(docs, Path(tmp), per_tick, graphql=graphql, materialized=materialized,
                                        max_live=max_live)
    report["machine"] = {"platform": platform.platform(), "python": platform.python_version()}
    Path(out_file).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    click.echo(json.dumps(report, indent=1))
