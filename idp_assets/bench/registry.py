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
5. `partition_limit`: documents per partition (1 today) and the partition count at 1,000,000
   documents against the 100,000 partitions per asset that Dagster's docs recommend.

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

DAGSTER_RECOMMENDED_PARTITIONS = 100_000  # per asset (dagster docs, raised from 25k in dagster PR #28697)


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


def run_registry_bench(n: int, work: Path, per_tick: int = 5000, steady_ticks: int = 3,
                       graphql: bool = True, materialized: float = 0.1) -> dict:
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
    per_partition = 1
    out["partition_limit"] = {
        "documents_per_partition": per_partition,
        "partitions_at_1m_documents": 1_000_000 // per_partition,
        "dagster_recommended_per_asset": DAGSTER_RECOMMENDED_PARTITIONS,
        "within_recommendation_at_1m": 1_000_000 // per_partition <= DAGSTER_RECOMMENDED_PARTITIONS,
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
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default="bench_registry.json", show_default=True)
def bench_registry(docs: int, per_tick: int, work_dir: str | None, graphql: bool, materialized: float,
                   out_file: str) -> None:
    """Sensor tick, partition registry, audit and UI status query times with N registered documents."""
    if work_dir:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        report = run_registry_bench(docs, Path(work_dir), per_tick, graphql=graphql, materialized=materialized)
    else:
        with tempfile.TemporaryDirectory(prefix="idp-registry-") as tmp:
            report = run_registry_bench(docs, Path(tmp), per_tick, graphql=graphql, materialized=materialized)
    report["machine"] = {"platform": platform.platform(), "python": platform.python_version()}
    Path(out_file).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    click.echo(json.dumps(report, indent=1))
