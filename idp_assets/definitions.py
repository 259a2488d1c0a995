"""Dagster definitions: assets (one dynamic partition per document, finished ones retired past a bound), sensors, job, resources."""

from __future__ import annotations

from dagster import AssetSelection, Definitions, define_asset_job

from idp_assets.audit import relax_sqlite_sync
from idp_assets.documents import raw_pages, source_documents
from idp_assets.executors import build_executor
from idp_assets.exports import document_exports
from idp_assets.fields import extracted_fields
from idp_assets.ocr import ocr_pages
from idp_assets.search import embeddings, graph_nodes
from idp_assets.settings import build_resources
from idp_assets.suppliers import supplier_master_asset, supplier_matches
from idp_assets.tables import normalized_tables
from idp_assets.thumbnails import page_thumbnails
from sensors.backfill import make_backfill_schedule, make_backfill_sensor
from sensors.common import PROCESS_JOB_NAME
from sensors.inbox import inbox_sensor
from sensors.retention import make_retention_sensor
from sensors.s3 import s3_sensor

# run workers, the daemon and the webserver load these definitions: their SQLite storages commit
# without an fsync per transaction (WAL + synchronous=NORMAL; IDP_SQLITE_SYNCHRONOUS=FULL keeps the default)
relax_sqlite_sync()

# the per-document stages (partitioned by document id), in lineage order
DOCUMENT_ASSETS = [
    source_documents,
    raw_pages,
    page_thumbnails,
    ocr_pages,
    normalized_tables,
    extracted_fields,
    supplier_matches,
    embeddings,
    graph_nodes,
    document_exports,
]
# unpartitioned inputs the stages depend on (observed, not materialized per document)
SOURCE_ASSETS = [supplier_master_asset]
ALL_ASSETS = [*DOCUMENT_ASSETS, *SOURCE_ASSETS]

process_document_job = define_asset_job(
    PROCESS_JOB_NAME,
    selection=AssetSelection.assets(*DOCUMENT_ASSETS),
    description="Every stage for one document (partition = sha256 of its bytes).",
    # one document's stages form a chain: running them in the run's own process (default
    # IDP_EXECUTOR=in_process) avoids a Python start-up (and model load) per step; pools still
    # bound OCR steps across runs. multiprocess|celery|k8s: see idp_assets/executors.py.
    executor_def=build_executor(),
)


def _definitions_asset_graph():
    """The graph of these definitions: what a backfill tick evaluated outside a code location (tests,
    scripts) compares against; inside one, Dagster hands the tick its repository's graph."""
    return defs.resolve_asset_graph()


backfill_schedule = make_backfill_schedule(asset_graph=_definitions_asset_graph)
backfill_sensor = make_backfill_sensor(asset_graph=_definitions_asset_graph)
# bounded live partitions: finished documents retire, their lineage stays (sensors/retention.py)
retention_sensor = make_retention_sensor(asset_graph=_definitions_asset_graph)

defs = Definitions(
    assets=ALL_ASSETS,
    jobs=[process_document_job],
    sensors=[inbox_sensor, s3_sensor, backfill_sensor, retention_sensor],
    schedules=[backfill_schedule],  # nightly re-runs of failed / missing / stale documents (sensors/backfill.py)
    resources=build_resources(),
)
