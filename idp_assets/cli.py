"""`idp` command line: process documents, manage the supplier master, the graph server and samples."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from idp_assets.runner import default_env


class _Idp(click.Group):
    """`idp`: the benchmark commands (`idp_assets.bench`) are imported only when one is asked for."""

    BENCH_COMMANDS = {"bench": "bench", "bench-fields": "bench_fields"}  # name -> attribute of idp_assets.bench.commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.BENCH_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.BENCH_COMMANDS:
            from idp_assets.bench import commands

            return getattr(commands, self.BENCH_COMMANDS[cmd_name])
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Idp)
def main() -> None:
    """Batch intelligent document processing on Dagster."""
    default_env()


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="folder for <stem>.json + index.jsonl")
@click.option("--data-dir", default=None, help="embedded data folder (store, Chroma, graph, suppliers); default $IDP_DATA_DIR or ./.idp")
@click.option("--follow-symlinks", is_flag=True,
              help="follow symlinks that lead outside the given folders (default: recorded as not_a_regular_file)")
@click.option("--reprocess", is_flag=True, help="process every input again, also those already finished in --out")
@click.option("--stage-timeout", "stage_timeouts", multiple=True, metavar="STAGE=SECONDS[+PER_PAGE]",
              help="time budget of one stage per document (repeatable); see README 'Hostile inputs'")
@click.option("--stage-timeout-scale", type=float, default=None,
              help="multiply every stage budget (0: no budgets); default $IDP_STAGE_TIMEOUT_SCALE or 1")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="documents processed at once (threads sharing models and clients); "
                   "default $IDP_PROCESS_WORKERS or 1")
def process(paths: tuple[str, ...], out_dir: str, data_dir: str | None, follow_symlinks: bool, reprocess: bool,
            stage_timeouts: tuple[str, ...], stage_timeout_scale: float | None, workers: int | None) -> None:
    """Run every asset in-process for the given files/folders; write one JSON per document.

    Any path is accepted: one that is missing, not a regular file, a symlink leading outside the
    given folders or unreadable is recorded in index.jsonl and the batch goes on.  SIGINT/SIGTERM
    stop after (or by abandoning) the current document (exit 130/143); running the same command
    again continues where it stopped, skipping documents already finished in --out.
    """
    import os

    from idp_assets.audit import instance_for
    from idp_assets.budget import STAGE_BUDGETS
    from idp_assets.exports import ExportTarget
    from idp_assets.runner import BatchInterrupted, default_workers, process_paths
    from idp_assets.settings import build_resources

    for spec in stage_timeouts:  # the stages read their budgets from the environment (also in run workers)
        stage, sep, value = spec.partition("=")
        if not sep or stage not in STAGE_BUDGETS:
            raise click.BadParameter(f"{spec!r}: expected STAGE=SECONDS[+PER_PAGE], STAGE one of "
                                     f"{', '.join(STAGE_BUDGETS)}", param_hint="--stage-timeout")
        try:
            [float(v) for v in value.split("+", 1)]
        except ValueError:
            raise click.BadParameter(f"{spec!r}: SECONDS must be a number", param_hint="--stage-timeout") from None
        os.environ[f"IDP_STAGE_TIMEOUT_{stage.upper()}"] = value
    if stage_timeout_scale is not None:
        os.environ["IDP_STAGE_TIMEOUT_SCALE"] = str(stage_timeout_scale)
    resources = build_resources(data_dir=data_dir)
    if not os.environ.get("IDP_EXPORT_DIR"):  # the exports of this command are the --out folder
        resources["export_target"] = ExportTarget(out_dir=str(Path(resources["document_store"].root).parent / "exports"))
    # runs are recorded in $DAGSTER_HOME's instance, or one under the data dir, so `idp audit` sees them
    try:
        outcomes = process_paths(list(paths), Path(out_dir), resources, instance=instance_for(data_dir),
                                 follow_symlinks=follow_symlinks, reprocess=reprocess,
                                 workers=workers or default_workers())
    except BatchInterrupted as stop:
        click.echo(f"stopped by signal {stop.signum} after {len(stop.outcomes)} inputs; run the same command again "
                   f"to continue -> {out_dir}/index.jsonl", err=True)
        # everything is recorded (index.jsonl rewritten): exit now, without joining document threads
        # that may still be finishing (--workers > 1) or running interpreter clean-ups
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(stop.exit_code)
    except KeyboardInterrupt:
        click.echo(f"interrupted -> {out_dir}/index.jsonl", err=True)
        sys.exit(130)
    failed = [o for o in outcomes if o.status == "failed"]
    skipped = sum(1 for o in outcomes if o.skipped)
    click.echo(f"{len(outcomes)} inputs: {len(outcomes) - len(failed)} processed ({skipped} already before), "
               f"{len(failed)} failed -> {out_dir}/index.jsonl", err=True)


@main.group()
def suppliers() -> None:
    """Supplier master (embedded SQLite by default)."""


@suppliers.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False))
def suppliers_import(csv_file: str) -> None:
    from idp_assets.settings import build_resources

    master = build_resources()["supplier_master"]
    report = master.import_csv(Path(csv_file).read_text(encoding="utf-8-sig"))
    for bad in report.rejected:
        click.echo(f"line {bad.line}: {bad.message} (rejected)", err=True)
    for w in report.warnings:
        click.echo(f"line {w.line}: {w.supplier_id}: {w.message}", err=True)
    click.echo(f"{report.rows_read} rows read: {report.inserted} inserted, {report.updated} updated, "
               f"{len(report.rejected)} rejected, {len(report.warnings)} warnings (master version {report.version})", err=True)


def _review_context(document_id: str, data_dir: str | None):
    from idp_assets.audit import instance_for, resolve_document_id
    from idp_assets.settings import build_resources
    from idp_assets.suppliers import latest_match_evidence

    instance = instance_for(data_dir)
    doc = resolve_document_id(instance, document_id)
    seller, matched = latest_match_evidence(instance, doc)
    return build_resources(data_dir=data_dir)["supplier_master"], doc, seller, matched


_DATA_DIR = click.option("--data-dir", default=None, help="embedded data folder; default $IDP_DATA_DIR or ./.idp")
_BY = click.option("--by", default=None, help="who decides (default $IDP_USER or $USER)")


@suppliers.command("confirm")
@click.argument("document_id")
@click.argument("supplier_id")
@_BY
@_DATA_DIR
def suppliers_confirm(document_id: str, supplier_id: str, by: str | None, data_dir: str | None) -> None:
    """The document's supplier is SUPPLIER_ID: its seller name and identifiers are learned (the supplier's
    next documents match through them); the affected supplier_matches go stale (`idp backfill --stale`)."""
    master, doc, seller, _ = _review_context(document_id, data_dir)
    d = master.confirm(doc, supplier_id, seller, by=by)
    click.echo(f"{doc}: confirmed {supplier_id} by {d.decided_by} at {d.decided_at}", err=True)


@suppliers.command("reject")
@click.argument("document_id")
@_BY
@_DATA_DIR
def suppliers_reject(document_id: str, by: str | None, data_dir: str | None) -> None:
    """The document's matched supplier is wrong: the match is never proposed again for this document."""
    master, doc, _, matched = _review_context(document_id, data_dir)
    d = master.reject(doc, matched, by=by)
    click.echo(f"{doc}: rejected {matched or 'any match'} by {d.decided_by} at {d.decided_at}", err=True)


@suppliers.command("create-from")
@click.argument("document_id")
@_BY
@_DATA_DIR
def suppliers_create_from(document_id: str, by: str | None, data_dir: str | None) -> None:
    """A new master supplier from the document's seller evidence (name, identifiers, address)."""
    master, doc, seller, _ = _review_context(document_id, data_dir)
    if seller is None:
        raise click.ClickException(f"no supplier match recorded for {doc}: run `idp process` first")
    d = master.create_from(doc, seller, by=by)
    click.echo(f"{doc}: created {d.supplier_id} '{seller.name}' by {d.decided_by} at {d.decided_at}", err=True)


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


from idp_assets.audit import audit  # noqa: E402
from idp_assets.retention_cli import partitions  # noqa: E402

main.add_command(audit)
main.add_command(partitions)

from idp_assets.search_cli import search_cmd  # noqa: E402

main.add_command(search_cmd)

from idp_assets.metrics import metrics  # noqa: E402

main.add_command(metrics)


@main.command("api", context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                       "help_option_names": []})
@click.pass_context
def api(ctx: click.Context) -> None:
    """The HTTP API and review page: `idp api serve`, `idp api new-key NAME --role ROLE`."""
    from idp_api.serve import api_cli  # lazily: the API's dependencies load only for this command

    api_cli.main(args=ctx.args, prog_name="idp api", standalone_mode=True)



@main.command()
@click.option("--stale", is_flag=True, help="assets whose code version (or an input's data version) changed")
@click.option("--failed", is_flag=True, help="partitions whose latest run failed")
@click.option("--missing", is_flag=True, help="assets never materialized for a partition")
@click.option("--all", "all_", is_flag=True, help="all three")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="only partitions with a run on or after this day (UTC)")
@click.option("--retired", "with_retired", is_flag=True,
              help="with --stale/--all: also retired documents whose recorded code versions changed (restored, then "
                   "re-run; reads every retirement record)")
@click.option("--dry-run", is_flag=True, help="only print the partitions and why")
@click.option("--data-dir", default=None, help="embedded data folder; default $IDP_DATA_DIR or ./.idp")
def backfill(stale: bool, failed: bool, missing: bool, all_: bool, since, with_retired: bool, dry_run: bool,
             data_dir: str | None) -> None:
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
    if with_retired and "stale" not in reasons:
        raise click.UsageError("--retired goes with --stale or --all (retired documents are finished: never failed or missing)")
    instance = instance_for(data_dir)
    graph = defs.resolve_asset_graph()
    found = find_backfill_partitions(instance, graph, reasons=reasons, since=since.date() if since else None)
    for c in found:
        click.echo(f"{c.partition}  {c.reason:<7}  {', '.join(c.assets)}  ({'; '.join(c.details)})")
    resources = build_resources(data_dir=data_dir)
    retired_stale = []
    if with_retired:
        from idp_assets.retention import restore, stale_retired

        store = resources["document_store"].process_config_and_initialize()
        retired_stale = stale_retired(store, graph)
        for rec, assets in retired_stale:
            click.echo(f"{rec.document_id}  stale    (retired {rec.retired_at}; new code version: {', '.join(assets)})")
        if not dry_run and retired_stale:
            ids = [rec.document_id for rec, _ in retired_stale]
            for doc_id in ids:
                restore(instance, store, doc_id)
            found += find_backfill_partitions(instance, graph, reasons=("stale",), partitions=ids)
    click.echo(f"{len(found) + (len(retired_stale) if dry_run else 0)} partitions to re-run"
               + (f" ({len(retired_stale)} of them retired)" if with_retired else "")
               + (" (dry run)" if dry_run else ""), err=True)
    if dry_run or not found:
        return
    if not os.environ.get("IDP_EXPORT_DIR"):  # as `idp process`: exports next to the data dir
        resources["export_target"] = ExportTarget(out_dir=str(Path(resources["document_store"].root).parent / "exports"))
    results = run_candidates(found, ALL_ASSETS, resources, instance, progress=sys.stderr)
    bad = sum(1 for _, ok, _ in results if not ok)
    click.echo(f"{len(results) - bad} re-run, {bad} failed", err=True)
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
