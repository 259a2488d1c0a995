"""`idp` command line: process documents, manage the supplier master, the graph server and samples."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from idp_assets.runner import default_env


@click.group()
def main() -> None:
    """Batch intelligent document processing on Dagster."""
    default_env()


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="folder for <stem>.json + index.jsonl")
@click.option("--data-dir", default=None, help="embedded data folder (store, Chroma, graph, suppliers); default $IDP_DATA_DIR or ./.idp")
def process(paths: tuple[str, ...], out_dir: str, data_dir: str | None) -> None:
    """Run every asset in-process for the given files/folders; write one JSON per document."""
    import os

    from idp_assets.exports import ExportTarget
    from idp_assets.runner import process_paths
    from idp_assets.settings import build_resources

    from idp_assets.audit import instance_for

    resources = build_resources(data_dir=data_dir)
    if not os.environ.get("IDP_EXPORT_DIR"):  # the exports of this command are the --out folder
        resources["export_target"] = ExportTarget(out_dir=str(Path(resources["document_store"].root).parent / "exports"))
    # runs are recorded in $DAGSTER_HOME's instance, or one under the data dir, so `idp audit` sees them
    outcomes = process_paths(list(paths), Path(out_dir), resources, instance=instance_for(data_dir))
    failed = [o for o in outcomes if o.status == "failed"]
    click.echo(f"{len(outcomes)} documents: {len(outcomes) - len(failed)} processed, {len(failed)} failed -> {out_dir}/index.jsonl",
               err=True)


@main.group()
def suppliers() -> None:
    """Supplier master (embedded SQLite by default)."""


@suppliers.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False))
def suppliers_import(csv_file: str) -> None:
    from idp_assets.settings import build_resources

    master = build_resources()["supplier_master"]
    report = master.import_csv(Path(csv_file).read_text(encoding="utf-8-sig"))
    for bad in report["skipped"]:
        click.echo(f"line {bad['line']}: {bad['error']} (skipped)", err=True)
    click.echo(f"imported {report['imported']} suppliers, skipped {len(report['skipped'])}", err=True)


@suppliers.command("export")
def suppliers_export() -> None:
    from idp_assets.settings import build_resources

    sys.stdout.write(build_resources()["supplier_master"].export_csv())


@main.command()
@click.option("--out", "out_dir", default="./inbox", show_default=True, type=click.Path(file_okay=False))
def samples(out_dir: str) -> None:
    """Write a few small sample documents (generated, not downloaded) into a folder."""
    from idp_assets.samples import write_samples

    for p in write_samples(Path(out_dir)):
        click.echo(str(p))


@main.command("graph-server")
@click.argument("action", type=click.Choice(["start", "stop", "status"]))
def graph_server(action: str) -> None:
    """Start/stop the embedded ArcadeDB Bolt server used by the default configuration."""
    import json
    import os
    from urllib.parse import urlparse

    from idp_assets.settings import LOCAL_GRAPH_PASSWORD, build_resources
    from resources import graph_server as gs

    g = build_resources()["graph_store"]
    home = Path(g.server_home)
    port = urlparse(g.uri).port or 7687
    password = os.environ.get("IDP_GRAPH_PASSWORD") or LOCAL_GRAPH_PASSWORD
    if action == "start":
        if not g.manage_local_server:
            raise click.ClickException(f"{g.uri} is not a managed local server (IDP_GRAPH_URI/IDP_GRAPH_MANAGED)")
        click.echo(gs.ensure_running(home, bolt_port=port, http_port=g.server_http_port, password=password,
                                     database=g.database or "idp"))
    elif action == "stop":
        click.echo("stopped" if gs.stop(home) else "not running")
    else:
        click.echo(json.dumps(gs.status(home, bolt_port=port, password=password, database=g.database or "idp"), indent=2))


import idp_assets.bench_suppliers  # noqa: E402,F401  (adds `idp bench suppliers` to the bench group)
import idp_assets.bench_pipeline  # noqa: E402,F401  (adds `idp bench pipeline` to the bench group)

from idp_assets.audit import audit  # noqa: E402

main.add_command(audit)

from idp_assets.bench_fields import bench_fields  # noqa: E402
main.add_command(bench_fields)

from idp_assets.bench_ocr import bench  # noqa: E402
main.add_command(bench)

from idp_assets.search_cli import search_cmd  # noqa: E402

main.add_command(search_cmd)

from idp_assets.metrics import metrics  # noqa: E402

main.add_command(metrics)



@main.command()
@click.option("--stale", is_flag=True, help="assets whose code version (or an input's data version) changed")
@click.option("--failed", is_flag=True, help="partitions whose latest run failed")
@click.option("--missing", is_flag=True, help="assets never materialized for a partition")
@click.option("--all", "all_", is_flag=True, help="all three")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="only partitions with a run on or after this day (UTC)")
@click.option("--dry-run", is_flag=True, help="only print the partitions and why")
@click.option("--data-dir", default=None, help="embedded data folder; default $IDP_DATA_DIR or ./.idp")
def backfill(stale: bool, failed: bool, missing: bool, all_: bool, since, dry_run: bool, data_dir: str | None) -> None:
    """Re-run document partitions that are stale, failed or missing (in-process, like `idp process`)."""
    import os

    from idp_assets.audit import instance_for
    from idp_assets.backfill import REASONS, find_backfill_partitions, run_candidates
    from idp_assets.definitions import ALL_ASSETS, defs
    from idp_assets.exports import ExportTarget
    from idp_assets.settings import build_resources

    reasons = REASONS if all_ else tuple(r for r, on in zip(REASONS, (failed, missing, stale)) if on)
    if not reasons:
        raise click.UsageError("choose --stale, --failed, --missing or --all")
    instance = instance_for(data_dir)
    found = find_backfill_partitions(instance, defs.resolve_asset_graph(), reasons=reasons,
                                     since=since.date() if since else None)
    for c in found:
        click.echo(f"{c.partition}  {c.reason:<7}  {', '.join(c.assets)}  ({'; '.join(c.details)})")
    click.echo(f"{len(found)} partitions to re-run" + (" (dry run)" if dry_run else ""), err=True)
    if dry_run or not found:
        return
    resources = build_resources(data_dir=data_dir)
    if not os.environ.get("IDP_EXPORT_DIR"):  # as `idp process`: exports next to the data dir
        resources["export_target"] = ExportTarget(out_dir=str(Path(resources["document_store"].root).parent / "exports"))
    results = run_candidates(found, ALL_ASSETS, resources, instance, progress=sys.stderr)
    bad = sum(1 for _, ok, _ in results if not ok)
    click.echo(f"{len(results) - bad} re-run, {bad} failed", err=True)
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
