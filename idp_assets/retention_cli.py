"""`idp partitions status | retire | restore`: the bounded live set of document partitions by hand
(the `partition_retention_sensor` does `retire` on its own; see `idp_assets.retention`)."""

from __future__ import annotations

import json

import click

from idp_assets.logic.retention import DEFAULT_LOW_WATER, DEFAULT_MAX_LIVE

_DATA_DIR = click.option("--data-dir", default=None, help="embedded data folder; default $IDP_DATA_DIR or ./.idp")


def _context(data_dir: str | None):
    from idp_assets.audit import document_store_for, instance_for

    return instance_for(data_dir), document_store_for(data_dir)


@click.group("partitions")
def partitions() -> None:
    """Live document partitions, and retired ones (finished, partition removed, lineage kept)."""


@partitions.command("status")
@_DATA_DIR
@click.option("--json", "as_json", is_flag=True)
def status(data_dir: str | None, as_json: bool) -> None:
    """Count live partitions and retirement records (reads every record: slow on millions)."""
    from idp_assets.partitions import DOCUMENTS_PARTITIONS_NAME
    from idp_assets.retention import RETIRED_PREFIX

    instance, store = _context(data_dir)
    live = len(instance.get_dynamic_partitions(DOCUMENTS_PARTITIONS_NAME))
    retired = sum(1 for k in store.list_keys(f"{RETIRED_PREFIX}/") if k.endswith(".json"))
    out = {"live": live, "retired": retired, "documents": live + retired}
    click.echo(json.dumps(out) if as_json else f"{live} live partitions, {retired} retired documents")


@partitions.command("retire")
@click.option("--max-live", type=click.IntRange(min=1), default=DEFAULT_MAX_LIVE, show_default=True,
              help="retire only when more partitions than this are live")
@click.option("--low-water", type=click.FloatRange(0, 1, min_open=True), default=DEFAULT_LOW_WATER, show_default=True,
              help="then retire down to this share of --max-live")
@click.option("--dry-run", is_flag=True, help="only say which documents would retire")
@_DATA_DIR
def retire(max_live: int, low_water: float, dry_run: bool, data_dir: str | None) -> None:
    """Retire the oldest finished documents past the bound (what the retention sensor does)."""
    from idp_assets.definitions import defs
    from idp_assets.retention import retention_summary, run_retention

    instance, store = _context(data_dir)
    report = run_retention(instance, store, defs.resolve_asset_graph(), max_live, low_water, dry_run=dry_run)
    for doc_id in report.retired:
        click.echo(doc_id)
    click.echo(retention_summary(report), err=True)


@partitions.command("restore")
@click.argument("documents", nargs=-1, required=True)
@_DATA_DIR
def restore_cmd(documents: tuple[str, ...], data_dir: str | None) -> None:
    """Make retired documents (id or unique prefix) live partitions again, e.g. before a backfill."""
    from idp_assets.audit import resolve_document_id
    from idp_assets.retention import restore

    instance, store = _context(data_dir)
    already_live = 0
    for ref in documents:
        doc_id = resolve_document_id(instance, ref, store)
        if restore(instance, store, doc_id):
            click.echo(f"{doc_id} restored")
        else:
            click.echo(f"{doc_id} is live already", err=True)
            already_live += 1
    if already_live == len(documents):
        raise SystemExit(1)
