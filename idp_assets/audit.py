"""Lineage audit of one document: every materialization of its partition, with versions.

For each asset of the document's partition: run id, time, code version, data version
and the data versions of the inputs it was computed from; plus the page routes
(which engine read each page) and the provenance of every extracted field, taken
from the materialization metadata that the UI shows too.
"""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timezone
from pathlib import Path

import click
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance

from idp_assets.partitions import DOCUMENTS_PARTITIONS_NAME
from idp_assets.retention import find_retired, get_retired
from idp_assets.sqlite_storage import storage_overrides

STAGES = ["source_documents", "raw_pages", "page_thumbnails", "ocr_pages", "normalized_tables", "extracted_fields",
          "supplier_matches", "embeddings", "graph_nodes", "document_exports"]
_INPUT_TAG = "dagster/input_data_version/"


_SQLITE_TUNED = False


def relax_sqlite_sync() -> None:
    """SQLite storages of this process commit without an fsync per transaction (``synchronous=NORMAL``).

    Dagster's SQLite run and event-log storages are in WAL mode already; with the default
    ``synchronous=FULL`` every one of the ~800 commits of a document's run waits for the disk.
    In WAL mode ``NORMAL`` is still safe against a crash of the process (no corruption, nothing
    committed is lost); only a power cut can lose the last transactions.  Set
    ``IDP_SQLITE_SYNCHRONOUS=FULL`` to keep the default.  PostgreSQL instances are not affected.
    """
    global _SQLITE_TUNED
    mode = os.environ.get("IDP_SQLITE_SYNCHRONOUS", "NORMAL").upper()
    if _SQLITE_TUNED or mode != "NORMAL":
        return
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _pragma(dbapi_connection, _record) -> None:  # every new SQLite connection of this process
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.execute(f"PRAGMA synchronous={mode}")

    _SQLITE_TUNED = True


def instance_for(data_dir: str | None = None) -> DagsterInstance:
    """$DAGSTER_HOME's instance when set (the UI's), else a persistent one under the data dir."""
    relax_sqlite_sync()
    if os.environ.get("DAGSTER_HOME"):
        return DagsterInstance.get()
    home = Path(data_dir or os.environ.get("IDP_DATA_DIR", "./.idp")) / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    # Dagster's SQLite layout, with connections kept open (idp_assets/sqlite_storage.py)
    return DagsterInstance.local_temp(str(home.resolve()), overrides=storage_overrides(str(home.resolve())))


def document_store_for(data_dir: str | None = None):
    """The configured document store (embedded under the data dir by default), ready to use outside a run."""
    from idp_assets.settings import build_resources

    return build_resources(data_dir=data_dir)["document_store"].process_config_and_initialize()


def resolve_document_id(instance: DagsterInstance, ref: str, store=None) -> str:
    """A file's sha256, a live partition key, or a retired document's id (`store` given), also by a
    unique prefix of at least 6 characters."""
    p = Path(ref)
    if p.is_file():
        return hashlib.sha256(p.read_bytes()).hexdigest()
    ref = ref.lower()
    known = instance.get_dynamic_partitions(DOCUMENTS_PARTITIONS_NAME)
    if ref in known:
        return ref
    hits = [k for k in known if k.startswith(ref)] if len(ref) >= 6 else []
    if store is not None and len(ref) >= 6:
        hits = sorted(set(hits) | set(find_retired(store, ref)))
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise click.ClickException(f"{ref!r} is ambiguous: {len(hits)} documents start with it")
    retired = "" if store is None else " or retired"
    raise click.ClickException(f"no document {ref!r} in this Dagster instance ({len(known)} live documents known{retired})")


def _meta(mat, key):
    v = mat.metadata.get(key)
    return None if v is None else v.value


def audit_document(instance: DagsterInstance, document_id: str, store=None) -> dict:
    """Every materialization of the document's stages (from the event log: the same whether its
    partition is live or retired); with `store`, the retirement record when it was retired."""
    stages = []
    for name in STAGES:
        recs = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(name), asset_partitions=[document_id]), limit=50
        ).records
        for r in recs:
            mat = r.asset_materialization
            stages.append({
                "asset": name,
                "run_id": r.run_id,
                "time": datetime.fromtimestamp(r.timestamp, timezone.utc).isoformat(timespec="seconds"),
                "code_version": mat.tags.get("dagster/code_version"),
                "data_version": mat.tags.get("dagster/data_version"),
                "upstream": {k[len(_INPUT_TAG):]: v for k, v in sorted(mat.tags.items()) if k.startswith(_INPUT_TAG)},
            })
    stages.sort(key=lambda s: (s["time"], STAGES.index(s["asset"])))

    def latest(name):
        recs = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(name), asset_partitions=[document_id]), limit=1).records
        return recs[0].asset_materialization if recs else None

    ocr, fields, supplier, source = latest("ocr_pages"), latest("extracted_fields"), latest("supplier_matches"), latest("source_documents")
    return {
        "document_id": document_id,
        "source": {k: _meta(source, k) for k in ("filename", "uri", "media_type", "bytes")} if source else None,
        "materializations": stages,
        "pages": _meta(ocr, "routes") if ocr else None,
        "fields": _meta(fields, "fields") if fields else None,
        "supplier": {k: _meta(supplier, k) for k in ("supplier_id", "method", "score", "master_version")} if supplier else None,
        "retired": rec.model_dump() if store is not None and (rec := get_retired(store, document_id)) else None,
    }


def format_audit(a: dict) -> str:
    out = [f"document {a['document_id']}"]
    if a.get("retired"):
        out.append(f"  retired: {a['retired']['retired_at']} (partition removed past the live bound; "
                   "`idp partitions restore` brings it back)")
    if a["source"]:
        out.append(f"  source: {a['source']['filename']} ({a['source']['media_type']}, {a['source']['bytes']} bytes) {a['source']['uri']}")
    out.append("  materializations:")
    for s in a["materializations"]:
        ups = ", ".join(f"{k}={v[:10]}" for k, v in s["upstream"].items()) or "-"
        out.append(f"    {s['time']}  {s['asset']:<18} run {s['run_id'][:8]}  code {s['code_version']}  "
                   f"data {str(s['data_version'])[:10]}  from [{ups}]")
    if a["pages"]:
        out.append("  pages:")
        out += [f"    page {k}: {v}" for k, v in a["pages"].items()]
    if a["fields"]:
        out.append("  fields:")
        out += [f"    {k:<15} {str(v.get('value'))!r:<32} conf {v.get('confidence')}  source {v.get('source')}"
                for k, v in a["fields"].items()]
    if a["supplier"]:
        out.append(f"  supplier: {a['supplier']}")
    return "\n".join(out)


@click.command()
@click.argument("document")
@click.option("--json", "as_json", is_flag=True, help="print the audit as JSON")
@click.option("--data-dir", default=None)
def audit(document: str, as_json: bool, data_dir: str | None) -> None:
    """Lineage of one document (its sha256, a unique prefix, or the file itself)."""
    import json

    instance = instance_for(data_dir)
    store = document_store_for(data_dir)
    doc_id = resolve_document_id(instance, document, store)
    a = audit_document(instance, doc_id, store)
    if not a["materializations"]:
        raise click.ClickException(f"document {doc_id} is registered but has no materializations yet")
    click.echo(json.dumps(a, indent=2, default=str) if as_json else format_audit(a))
