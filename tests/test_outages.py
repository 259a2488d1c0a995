"""Outages during a run: PostgreSQL restarts, the Bolt server goes away, an engine hangs on a page.

Each test runs the real per-document assets on one generated scan.  The page is
read by `gate_test`, an engine that signals when the run has reached OCR and
then waits until the test has broken something (stopped a server); the run
then goes on into the outage.  Expected: the run still succeeds (retries with
backoff bridge the outage), nothing is written twice, and a page that hung an
engine is marked in the export as a partial result.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Literal

import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance
from dagster._core.instance.ref import InstanceRef
from PIL import Image, ImageDraw, ImageFont

from idp_assets.definitions import DOCUMENT_ASSETS
from idp_assets.exports import ExportTarget
from idp_assets.settings import build_resources
from resources import graph_server
from resources.ocr import EngineOptions, EngineOutput, OcrEngine, register_engine, unregister_engine
from resources.ocr.router import OcrRouter
from tests.fixtures.documents import materialize_document
from tests.fixtures.private_pg import private_postgres

REPO = Path(__file__).resolve().parent.parent
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
LINES = ["Beispiel Handels GmbH", "Rechnung Nr. 2024-0815", "Datum 12.03.2024", "Summe 1.250,00 EUR"]


def scan_png() -> bytes:
    font = ImageFont.truetype(FONT, 40)
    im = Image.new("L", (1400, 700), 255)
    for i, line in enumerate(LINES):
        ImageDraw.Draw(im).text((80, 80 + 130 * i), line, font=font, fill=0)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


class Gate:
    """Hands control to the test when OCR starts; OCR goes on when the test releases it."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.hang = False


GATE = Gate()


class GateOptions(EngineOptions):
    kind: Literal["gate_test"] = "gate_test"


class GateEngine(OcrEngine):
    name = "gate_test"
    options_class = GateOptions

    def read(self, page_image, raw_page):
        GATE.started.set()
        if GATE.hang:  # an engine stuck on a page: only the per-page timeout gets the run past it
            time.sleep(3600)
        if not GATE.release.wait(120):
            raise RuntimeError("the test never released the gate")
        return EngineOutput(text="\n".join(LINES), confidence=0.95)  # a test double: the page's known text


@pytest.fixture
def gate():
    global GATE
    GATE = Gate()
    register_engine(GateEngine)
    try:
        yield GATE
    finally:
        GATE.release.set()
        unregister_engine("gate_test")


def pipeline_resources(tmp_path: Path, graph_store, **router) -> dict:
    resources = build_resources(env={}, data_dir=str(tmp_path / "data"))
    resources.update(
        graph_store=graph_store,
        export_target=ExportTarget(out_dir=str(tmp_path / "exports")),
        ocr_router=OcrRouter(**{"image_engines": ["gate_test"], **router}),
    )
    return resources


def in_background(fn) -> threading.Thread:
    errors: list[BaseException] = []

    def run():
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised by the test
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.errors = errors  # type: ignore[attr-defined]
    t.start()
    return t


def all_materialized(instance: DagsterInstance, doc_id: str, run_id: str) -> list[str]:
    missing = []
    for asset in DOCUMENT_ASSETS:
        recs = instance.fetch_materializations(asset.key, limit=20).records
        if not [r for r in recs if r.partition_key == doc_id and r.run_id == run_id]:
            missing.append(asset.key.to_user_string())
    return missing


@pytest.mark.servers
def test_postgres_restart_during_run(tmp_path, monkeypatch, graph_store, gate, caplog):
    """dagster-postgres storage: the server is killed while the OCR step runs and comes back 2 s later."""
    caplog.set_level(logging.WARNING)
    with private_postgres() as pg:
        pg.create_database("dagster")
        for k, v in {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(pg.port), "DAGSTER_PG_USER": "postgres",
                     "DAGSTER_PG_PASSWORD": "", "DAGSTER_PG_DB": "dagster"}.items():
            monkeypatch.setenv(k, v)
        home = tmp_path / "dagster_home"
        home.mkdir()
        shutil.copy(REPO / "dagster.postgres.yaml", home / "dagster.yaml")
        instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
        downtime = {}

        def outage():
            assert gate.started.wait(120), "the run never reached OCR"
            pg.stop("immediate")  # every connection dropped at once, like a crash
            t0 = time.monotonic()
            gate.release.set()  # the run goes on and must write its events while the server is down
            time.sleep(2.0)
            pg.start()
            downtime["s"] = time.monotonic() - t0

        try:
            chaos = in_background(outage)
            result, doc_id = materialize_document(DOCUMENT_ASSETS, pipeline_resources(tmp_path, graph_store),
                                                  scan_png(), "outage.png", instance=instance)
            chaos.join(60)
            assert not chaos.errors, chaos.errors
            assert downtime["s"] >= 2.0
            assert result.success
            # the outage was hit (dagster-postgres retried its connection) and bridged
            assert "Retrying failed database connection" in caplog.text
            # everything the run did is in PostgreSQL: all stages materialized, no step failed
            assert all_materialized(instance, doc_id, result.run_id) == []
            events = instance.all_logs(result.run_id)
            assert not [e for e in events if e.dagster_event and e.dagster_event.event_type == DagsterEventType.STEP_FAILURE]
            assert instance.get_run_by_id(result.run_id).is_success
        finally:
            instance.dispose()


@pytest.mark.servers
def test_bolt_server_down_while_writing_graph(tmp_path, bolt_server, graph_store, gate):
    """The graph server stops before graph_nodes runs; the step retries with backoff until it is back."""
    restarted = {}

    def outage():
        assert gate.started.wait(120), "the run never reached OCR"
        graph_server.stop(bolt_server.home)
        t0 = time.monotonic()
        gate.release.set()
        time.sleep(3.0)
        graph_server.ensure_running(bolt_server.home, bolt_port=bolt_server.bolt_port, http_port=bolt_server.http_port,
                                    password=bolt_server.password, database=bolt_server.database, timeout=120)
        restarted["after_s"] = time.monotonic() - t0

    instance = DagsterInstance.ephemeral()
    resources = pipeline_resources(tmp_path, graph_store)
    chaos = in_background(outage)
    result, doc_id = materialize_document(DOCUMENT_ASSETS, resources, scan_png(), "graph-outage.png", instance=instance)
    chaos.join(180)
    assert not chaos.errors, chaos.errors
    assert result.success
    # the outage was real: graph_nodes failed at least once and was retried
    retries = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]
    assert retries and all(e.step_key == "graph_nodes" for e in retries)
    counts = graph_store.counts()["nodes"]
    assert counts["Document"] == 1 and counts["Page"] == 1

    # a second materialization of the same partition writes nothing new (MERGE on stable keys)
    gate.release.set()
    again, _ = materialize_document(DOCUMENT_ASSETS, resources, scan_png(), "graph-outage.png", instance=instance)
    assert again.success
    assert graph_store.counts()["nodes"] == counts


def test_hanging_engine_is_cut_off_and_document_is_partial(tmp_path, graph_store, gate):
    """An engine that never returns: cut off after page_timeout_s, the page goes to Tesseract, export says partial."""
    gate.hang = True
    resources = pipeline_resources(tmp_path, graph_store, image_engines=["gate_test", "tesseract"], page_timeout_s=3.0)
    result, doc_id = materialize_document(DOCUMENT_ASSETS, resources, scan_png(), "hang.png",
                                          instance=DagsterInstance.ephemeral())
    assert result.success
    ocr = result.output_for_node("ocr_pages")
    (page,) = ocr.pages
    assert [a.engine for a in page.attempts] == ["gate_test", "tesseract"]
    assert page.attempts[0].error.startswith("EngineTimeout") and page.engine == "tesseract"
    assert "Rechnung" in page.text
    export = result.output_for_node("document_exports")
    assert export.status == "partial"
    record = json.loads(Path(tmp_path / "exports").glob("*.json").__next__().read_text())
    assert record["status"] == "partial"
    assert record["partial_reasons"] == [
        {"page": 1, "code": "engine_timeout", "reason": "gate_test cut off after the per-page timeout; read by tesseract"}
    ]
    mat = [e for e in result.all_events if e.event_type == DagsterEventType.ASSET_MATERIALIZATION
           and e.asset_key == AssetKey("document_exports")][0]
    assert mat.materialization.metadata["status"].value == "partial"
