"""The document API as a client sees it: the real server (uvicorn, `python -m idp_api.serve`) on a free
port, a real Dagster instance (temporary DAGSTER_HOME), the session's ArcadeDB server, Chroma.

One born-digital corpus invoice (and a corrupt PDF) is uploaded once and processed by the service's
worker; the tests then read its status, fields, exports, search hits and graph, check the auth matrix of
every endpoint, the upload limits, CORS and the bind address, review it through the API (the correction
survives re-processing) and fuzz the OpenAPI schema (no 5xx).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import Counter

import pytest
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, RunsFilter

from tests.fixtures.api_server import (CORRUPT_PDF, INVOICE, MAX_UPLOAD_BYTES, UPLOADS_PER_MINUTE,  # noqa: F401
                                       api_server, processed)

pytestmark = [pytest.mark.servers, pytest.mark.timeout(900)]

UNKNOWN = "0" * 64


def _instance(server) -> DagsterInstance:
    return DagsterInstance.from_config(str(server.home))


# -- the run queue survives a restart (no server needed) --------------------------------------------------------


def test_queue_is_picked_up_again_after_a_restart(tmp_path):
    """A document registered but never started, and one whose process died mid-run, are both run when the
    workers start again; the dead process's Dagster run is closed as failed."""
    import time
    from types import SimpleNamespace

    from dagster import asset
    from dagster._core.storage.dagster_run import DagsterRunStatus
    from dagster._core.test_utils import create_run_for_test

    from idp_api.db import Database
    from idp_api.jobs import JobQueue
    from idp_api.worker import JOB_TAG, Workers
    from idp_assets.partitions import documents_partitions

    @asset(partitions_def=documents_partitions)
    def tiny(context) -> str:
        return context.partition_key

    never_started, interrupted = "a" * 64, "b" * 64
    before = JobQueue(Database(tmp_path / "api.sqlite"))
    assert before.enqueue(interrupted, "b.pdf", "api://t/b.pdf", "t") is True
    assert before.enqueue(interrupted, "b.pdf", "api://t/b.pdf", "t") is False  # same bytes: one job
    assert before.claim().document_id == interrupted  # a worker took it ... and the process died
    assert before.enqueue(never_started, "a.pdf", "api://t/a.pdf", "t") is True
    instance = DagsterInstance.ephemeral()
    orphan = create_run_for_test(instance, status=DagsterRunStatus.STARTED, tags={JOB_TAG: interrupted})
    # the process "restarts": a new queue on the same database, new workers
    queue = JobQueue(Database(tmp_path / "api.sqlite"))
    assert queue.depth() == {"queued": 1, "running": 1, "done": 0, "failed": 0}
    finished: list[str] = []
    workers = Workers(queue, SimpleNamespace(assets=[tiny], instance=instance, resources={}), threads=1,
                      on_finished=finished.append)
    workers.start()
    try:
        deadline = time.monotonic() + 120
        while len(finished) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        workers.stop()
    assert sorted(finished) == [never_started, interrupted]
    assert queue.depth()["done"] == 2
    assert instance.get_run_by_id(orphan.run_id).status == DagsterRunStatus.FAILURE
    for doc in (never_started, interrupted):
        runs = [r for r in instance.get_runs(RunsFilter(tags={"dagster/partition": doc}))]
        assert [r.status for r in runs] == [DagsterRunStatus.SUCCESS] and runs[0].tags["idp/runner"] == "api"
        assert instance.has_dynamic_partition("documents", doc)  # the worker registered the partition


# -- upload, status, idempotency --------------------------------------------------------------------------------


def test_upload_answers_202_and_the_document_is_materialized_with_fields(processed, corpus):
    up = json.loads(processed.documents["invoice_upload"])
    doc_id = processed.documents["invoice"]
    assert up["status"] == 202
    assert doc_id == hashlib.sha256((corpus / INVOICE).read_bytes()).hexdigest()
    assert up["body"]["created"] is True and up["body"]["media_type"] == "application/pdf"
    assert up["body"]["status_url"] == up["location"] == f"/api/v1/documents/{doc_id}"
    with processed.client("viewer") as c:
        body = c.get(f"/api/v1/documents/{doc_id}").json()
    assert body["status"] == "materialized", body
    assert body["run"]["runner"] == "api" and body["run"]["status"] == "success"
    stages = {s["name"]: s for s in body["stages"]}
    assert {"source_documents", "raw_pages", "ocr_pages", "extracted_fields", "supplier_matches", "embeddings",
            "graph_nodes", "document_exports"} <= set(stages)
    assert all(s["status"] == "materialized" and s["run_id"] == body["run"]["run_id"] for s in stages.values())
    truth = next(json.loads(line) for line in (corpus / "manifest.jsonl").read_text().splitlines()
                 if json.loads(line)["file"] == INVOICE)["fields"]
    fields = body["fields"]
    for name in ("date", "total", "currency"):
        assert fields[name]["value"] == truth[name], (name, fields[name])
    for f in fields.values():
        assert 0.0 < f["confidence"] <= 1.0 and f["source"] and f["page"] == 1
    assert len({f["confidence"] for f in fields.values()}) > 1  # measured per field, not one constant
    assert body["supplier"]["method"] in ("new", "needs_review", "name", "vat_id", "iban", "tax_number", "gln")
    assert any(v["rule"] for v in body["validation"])


def test_the_run_is_in_the_dagster_instance(processed):
    doc_id = processed.documents["invoice"]
    instance = _instance(processed)
    try:
        runs = instance.get_runs(RunsFilter(tags={"dagster/partition": doc_id}))
        assert runs and all(r.tags["idp/runner"] == "api" for r in runs)
        assert instance.has_dynamic_partition("documents", doc_id)
        mats = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("document_exports"), asset_partitions=[doc_id]), limit=5).records
        assert mats and mats[0].run_id in {r.run_id for r in runs}
    finally:
        instance.dispose()


def test_same_bytes_again_same_id_and_no_second_run(processed, corpus):
    doc_id = processed.documents["invoice"]
    instance = _instance(processed)
    try:
        before = len(instance.get_runs(RunsFilter(tags={"dagster/partition": doc_id})))
    finally:
        instance.dispose()
    with processed.client("uploader") as c:
        r = c.post("/api/v1/documents", files={"file": ("same-bytes-other-name.pdf", (corpus / INVOICE).read_bytes())})
    assert r.status_code == 200, r.text
    assert r.json()["document_id"] == doc_id and r.json()["created"] is False
    with processed.client("viewer") as c:
        assert c.get(f"/api/v1/documents/{doc_id}").json()["queue_state"] in ("done", "queued", "running")
    instance = _instance(processed)
    try:
        assert len(instance.get_runs(RunsFilter(tags={"dagster/partition": doc_id}))) == before
    finally:
        instance.dispose()


def test_a_retired_document_stays_known(processed, corpus):
    """Past the live bound a finished document's partition retires (idp_assets.retention): the API still
    answers for it with its export, and the same bytes uploaded again are 'registered before' - no new
    partition, no new run."""
    from idp_assets.backfill import document_asset_keys
    from idp_assets.definitions import defs
    from idp_assets.partitions import DOCUMENTS_PARTITIONS_NAME
    from idp_assets.retention import is_retired, restore, retire
    from resources.storage import DocumentStore

    doc_id = processed.documents["invoice"]
    instance = _instance(processed)
    store = DocumentStore(root=str(processed.data / "store"))  # the server's embedded store (IDP_DATA_DIR/store)
    try:
        runs_before = len(instance.get_runs(RunsFilter(tags={"dagster/partition": doc_id})))
        assert retire(instance, store, [doc_id], document_asset_keys(defs.resolve_asset_graph())) == [doc_id]
        assert is_retired(store, doc_id) and not instance.has_dynamic_partition(DOCUMENTS_PARTITIONS_NAME, doc_id)
        with processed.client("viewer") as c:
            r = c.get(f"/api/v1/documents/{doc_id}")
            assert r.status_code == 200, r.text
            assert c.get(f"/api/v1/documents/{doc_id}/export.json").status_code == 200
        with processed.client("uploader") as c:
            r = c.post("/api/v1/documents", files={"file": ("retired-again.pdf", (corpus / INVOICE).read_bytes())})
        assert r.status_code == 200 and r.json()["created"] is False, r.text
        assert not instance.has_dynamic_partition(DOCUMENTS_PARTITIONS_NAME, doc_id)
        assert len(instance.get_runs(RunsFilter(tags={"dagster/partition": doc_id}))) == runs_before
    finally:
        restore(instance, store, doc_id)  # the other tests read it as a live partition
        instance.dispose()


def test_s3_uri_upload(processed, corpus):
    """An s3:// object of an allowed bucket is read with the store's endpoint and credentials: the same bytes
    as an earlier upload are the same document (no run); a missing key is 404, other bytes 415."""
    from resources.storage import s3_client
    from tests.fixtures.api_server import S3_BUCKET

    s3 = processed.s3
    client = s3_client(s3["endpoint_url"], s3["region_name"], s3["aws_access_key_id"], s3["aws_secret_access_key"])
    client.create_bucket(Bucket=S3_BUCKET)
    client.put_object(Bucket=S3_BUCKET, Key="in/oyo.pdf", Body=(corpus / INVOICE).read_bytes())
    client.put_object(Bucket=S3_BUCKET, Key="in/note.txt", Body=b"plain text, not a PDF")
    with processed.client("uploader") as c:
        r = c.post("/api/v1/documents", data={"uri": f"s3://{S3_BUCKET}/in/oyo.pdf"})
        assert r.status_code == 200, r.text
        assert r.json()["document_id"] == processed.documents["invoice"] and r.json()["filename"] == "oyo.pdf"
        assert c.post("/api/v1/documents", data={"uri": f"s3://{S3_BUCKET}/in/missing.pdf"}).status_code == 404
        assert c.post("/api/v1/documents", data={"uri": f"s3://{S3_BUCKET}/in/note.txt"}).status_code == 415
    sightings = json.loads((processed.data / "store" / "sources" / f"{processed.documents['invoice']}.json").read_text())
    assert f"s3://{S3_BUCKET}/in/oyo.pdf" in {x["uri"] for x in sightings}


def test_a_corrupt_pdf_fails_with_its_reason(processed):
    with processed.client("viewer") as c:
        body = c.get(f"/api/v1/documents/{processed.documents['broken']}").json()
    assert body["status"] == "failed"
    failed = [s for s in body["stages"] if s["status"] == "failed"]
    assert failed[0]["name"] == "raw_pages" and failed[0]["reason"] == "corrupt_pdf", failed
    assert {s["reason"] for s in failed[1:]} <= {"not_run"}
    assert body["fields"] == {}


def test_list_filters_and_cursor_paging(processed):
    invoice, broken = processed.documents["invoice"], processed.documents["broken"]
    with processed.client("viewer") as c:
        first = c.get("/api/v1/documents", params={"limit": 1}).json()
        assert len(first["items"]) == 1 and first["next_cursor"]
        second = c.get("/api/v1/documents", params={"limit": 1, "cursor": first["next_cursor"]}).json()
        ids = [first["items"][0]["document_id"], *[i["document_id"] for i in second["items"]]]
        assert len(set(ids)) == len(ids)
        every = c.get("/api/v1/documents", params={"limit": 500}).json()
        assert {invoice, broken} <= {i["document_id"] for i in every["items"]} and every["next_cursor"] is None
        failed = c.get("/api/v1/documents", params={"status": "failed"}).json()["items"]
        assert [i["document_id"] for i in failed] == [broken] and failed[0]["reason"] == "corrupt_pdf"
        done = c.get("/api/v1/documents", params={"status": "materialized", "after": "2017-12-01"}).json()["items"]
        assert [i["document_id"] for i in done] == [invoice]
        assert c.get("/api/v1/documents", params={"after": "2018-01-01", "status": "materialized"}).json()["items"] == []
        assert c.get("/api/v1/documents", params={"supplier": "no such supplier"}).json()["items"] == []
        flagged = {i["document_id"] for i in c.get("/api/v1/documents", params={"needs_review": "true"}).json()["items"]}
        assert invoice in flagged  # fields marked needs_review / the supplier is new
        assert c.get("/api/v1/documents", params={"cursor": "not-a-cursor"}).status_code == 422


# -- exports, search, graph, health, metrics ------------------------------------------------------------------


def test_exports_json_xml_csv(processed):
    doc_id = processed.documents["invoice"]
    with processed.client("viewer") as c:
        j = c.get(f"/api/v1/documents/{doc_id}/export.json")
        assert j.status_code == 200 and j.json()["document_id"] == doc_id
        assert j.json()["fields"]["total"]["value"] == "1939.00"
        x = c.get(f"/api/v1/documents/{doc_id}/export.xml")
        assert x.status_code == 200 and x.headers["content-type"].startswith("application/xml")
        from lxml import etree

        root = etree.fromstring(x.content)
        assert etree.QName(root).localname == "CrossIndustryInvoice"
        assert "1939.00" in x.text
        ubl = c.get(f"/api/v1/documents/{doc_id}/export.xml", params={"syntax": "ubl"})
        assert etree.QName(etree.fromstring(ubl.content)).localname == "Invoice"
        rows = list(csv.DictReader(io.StringIO(c.get(f"/api/v1/documents/{doc_id}/export.csv").text)))
        assert {r["field"]: r["value"] for r in rows}["currency"] == "INR"
        assert c.get(f"/api/v1/documents/{doc_id}/export.csv", params={"part": "lines"}).status_code == 200
        assert c.get(f"/api/v1/documents/{UNKNOWN}/export.json").status_code == 404
        assert c.get(f"/api/v1/documents/{processed.documents['broken']}/export.csv").status_code == 404


def test_search_finds_the_document_with_reasons(processed):
    doc_id = processed.documents["invoice"]
    with processed.client("viewer") as c:
        r = c.get("/api/v1/search", params={"q": "OYO hotel payment receipt", "k": 5})
        assert r.status_code == 200, r.text
        hits = r.json()["hits"]
        assert hits[0]["document_id"] == doc_id and hits[0]["reasons"] and hits[0]["page"] == 1
        assert hits[0]["url"] == f"/api/v1/documents/{doc_id}"
        assert r.json()["took_ms"] > 0 and "vector_ms" in r.json()["timings_ms"]
        # the booking id is an exact identifier
        assert c.get("/api/v1/search", params={"q": "IBZY2087"}).json()["hits"][0]["document_id"] == doc_id
        assert c.get("/api/v1/search", params={"q": "OYO", "after": "2018-01-01"}).json()["hits"] == []
        assert c.get("/api/v1/search", params={"q": ""}).status_code == 422
        assert c.get("/api/v1/search", params={"q": "x", "k": 0}).status_code == 422


def test_graph_neighbourhood(processed):
    doc_id = processed.documents["invoice"]
    with processed.client("viewer") as c:
        g = c.get(f"/api/v1/graph/documents/{doc_id}").json()
        assert c.get(f"/api/v1/graph/documents/{UNKNOWN}").status_code == 404
    kinds = Counter(n["kind"] for n in g["nodes"])
    assert kinds["Document"] >= 1 and kinds["Entity"] >= 3
    entity_kinds = {n["properties"].get("entity_kind") for n in g["nodes"] if n["kind"] == "Entity"}
    assert {"Amount", "Date"} <= entity_kinds
    assert all(e["source"] == doc_id for e in g["edges"])
    assert {e["type"] for e in g["edges"]} >= {"MENTIONS"}


def test_health_reports_engines_stores_and_queues(processed):
    with processed.client("admin") as c:
        h = c.get("/api/v1/health").json()
    assert h["ok"] is True
    assert h["engines"]["text_layer"]["ok"] and h["engines"]["embedder"]["ok"]
    assert all(s["ok"] for s in h["stores"].values()), h["stores"]
    assert set(h["stores"]) == {"document_store", "vector_store", "graph_store", "supplier_master",
                                "dagster_instance", "api_db"}
    assert h["queues"]["api"]["done"] >= 1 and h["queues"]["api"]["failed"] >= 1
    assert {"pool:cpu", "pool:gpu", "dagster_runs"} <= set(h["queues"])
    assert list(h["workers"]) == ["idp-api-worker-0", "idp-api-worker-1"]


def test_metrics_prometheus(processed):
    with processed.client("admin") as c:
        c.get("/api/v1/documents")
        text = c.get("/metrics").text
    from prometheus_client.parser import text_string_to_metric_families

    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert fams["idp_documents_processed"].samples[0].value >= 1
    routes = {s.labels["route"] for s in fams["idp_api_requests"].samples}
    assert "/api/v1/documents" in routes and "/api/v1/documents/{document_id}" in routes
    assert any(s.labels.get("reason") == "corrupt_pdf" for s in fams["idp_document_failures"].samples)
    assert {s.labels["outcome"]: s.value for s in fams["idp_api_uploads"].samples if s.name.endswith("_total")
            }.get("created", 0) >= 2


# -- security ---------------------------------------------------------------------------------------------------

# every endpoint, the permission it needs (roles: viewer/reviewer read, uploader uploads, reviewer reviews,
# admin everything), and a role that must be refused
ROUTES = [
    ("POST", "/api/v1/documents", "upload"),
    ("GET", "/api/v1/documents", "read"),
    ("GET", "/api/v1/documents/{document_id}", "read"),
    ("GET", "/api/v1/documents/{document_id}/export.json", "read"),
    ("GET", "/api/v1/documents/{document_id}/export.xml", "read"),
    ("GET", "/api/v1/documents/{document_id}/export.csv", "read"),
    ("GET", "/api/v1/documents/{document_id}/reviews", "read"),
    ("POST", "/api/v1/documents/{document_id}/reviews", "review"),
    ("POST", "/api/v1/documents/{document_id}/reprocess", "admin"),
    ("GET", "/api/v1/search", "read"),
    ("GET", "/api/v1/graph/documents/{document_id}", "read"),
    ("GET", "/api/v1/health", "admin"),
    ("GET", "/metrics", "admin"),
    ("GET", "/review/queue", "review"),
    ("GET", "/review/documents/{document_id}", "review"),
    ("GET", "/review/documents/{document_id}/pages/1.png", "review"),
    ("POST", "/review/documents/{document_id}/decide", "review"),
    ("POST", "/review/logout", "review"),
]
WRONG_ROLE = {"read": "uploader", "upload": "viewer", "review": "viewer", "admin": "reviewer"}
RIGHT_ROLE = {"read": "viewer", "upload": "uploader", "review": "reviewer", "admin": "admin"}
ROLE_OF = {"viewer": ["viewer"], "uploader": ["uploader"], "reviewer": ["reviewer"], "admin": ["admin"]}


def test_the_matrix_covers_every_endpoint_of_the_schema(api_server):
    with api_server.client() as c:
        schema = c.get("/api/v1/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    in_schema = {(m.upper(), p) for p, ops in schema["paths"].items() for m in ops}
    in_matrix = {(m, p) for m, p, _ in ROUTES if not p.startswith("/review")}
    assert in_schema == in_matrix
    assert {"APIKeyHeader", "HTTPBearer"} <= set(schema["components"]["securitySchemes"])


def _call(server, method: str, path: str, headers: dict):
    import httpx

    with httpx.Client(base_url=server.url, timeout=60) as c:
        url = path.replace("{document_id}", UNKNOWN)
        if method == "GET":
            return c.get(url, headers=headers, params={"q": "x"} if url.endswith("/search") else None)
        if url.endswith("/reviews"):
            return c.post(url, headers=headers, json={"target": "document", "action": "approve"})
        return c.post(url, headers=headers, data={"target": "document", "action": "approve"})


@pytest.mark.parametrize(("method", "path", "permission"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_auth_matrix(api_server, method, path, permission):
    s = api_server
    expired = s.token(["viewer", "uploader", "reviewer", "admin"], expires_in=-30)
    forged = s.token(["viewer", "uploader", "reviewer", "admin"], secret="not-the-server-secret-" + "y" * 20)
    refused = {
        "missing": {},
        "wrong key": {"X-API-Key": "idp_" + "z" * 43},
        "wrong scheme": {"Authorization": f"Basic {s.keys['admin']}"},
        "expired token": {"Authorization": f"Bearer {expired}"},
        "forged token": {"Authorization": f"Bearer {forged}"},
    }
    for what, headers in refused.items():
        r = _call(s, method, path, headers)
        assert r.status_code == 401, (what, r.status_code, r.text[:200])
    wrong = WRONG_ROLE[permission]
    for headers in (s.headers(wrong), {"Authorization": f"Bearer {s.token(ROLE_OF[wrong])}"}):
        r = _call(s, method, path, headers)
        assert r.status_code == 403, (wrong, r.status_code, r.text[:200])
    right = RIGHT_ROLE[permission]
    for headers in (s.headers(right), {"Authorization": f"Bearer {s.token(ROLE_OF[right])}"},
                    {"Authorization": f"Bearer {s.keys[right]}"}):
        r = _call(s, method, path, headers)
        assert r.status_code not in (401, 403), (right, r.status_code, r.text[:200])


def test_upload_limits_413_415_429(api_server):
    s = api_server
    with s.client("uploader") as c:
        big = b"%PDF-1.4\n" + b"0" * (MAX_UPLOAD_BYTES + 10)
        assert c.post("/api/v1/documents", files={"file": ("big.pdf", big)}).status_code == 413
        huge = b"%PDF-1.4\n" + b"0" * (MAX_UPLOAD_BYTES + 100_000)  # refused by its Content-Length
        assert c.post("/api/v1/documents", files={"file": ("huge.pdf", huge)}).status_code == 413
        def chunked():  # no Content-Length: counted while it streams in
            yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="c.pdf"\r\n\r\n%PDF-1.4\n'
            for _ in range(40):
                yield b"0" * 10_000
            yield b"\r\n--b--\r\n"

        r = c.post("/api/v1/documents", content=chunked(), headers={"Content-Type": "multipart/form-data; boundary=b"})
        assert r.status_code == 413, r.text
        r = c.post("/api/v1/documents", files={"file": ("a.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)))})
        assert r.status_code == 415 and "image/png" in r.json()["detail"]
        assert c.post("/api/v1/documents", files={"file": ("empty.pdf", b"")}).status_code == 415
        assert c.post("/api/v1/documents", data={"uri": "s3://not-allowed-bucket/x.pdf"}).status_code == 403
        assert c.post("/api/v1/documents", data={"uri": "http://example.invalid/x.pdf"}).status_code == 422
        assert c.post("/api/v1/documents").status_code == 422
    with s.client("burst") as c:
        codes = [c.post("/api/v1/documents", files={"file": ("x.bin", b"\x00\x01 not a document")}).status_code
                 for _ in range(UPLOADS_PER_MINUTE + 1)]
        assert codes[:UPLOADS_PER_MINUTE] == [415] * UPLOADS_PER_MINUTE and codes[-1] == 429
        r = c.post("/api/v1/documents", files={"file": ("x.bin", b"\x00")})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    with s.client("uploader") as c:  # the limit is per key
        assert c.post("/api/v1/documents", files={"file": ("x.bin", b"\x00")}).status_code == 415


def test_cors_is_off_and_the_server_binds_loopback(api_server):
    import psutil

    with api_server.client("viewer") as c:
        r = c.get("/api/v1/documents", headers={"Origin": "https://evil.example"})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
        assert r.headers["x-content-type-options"] == "nosniff"
        login = c.get("/review/login")
        assert "script-src 'none'" in login.headers["content-security-policy"] and login.headers["x-frame-options"] == "DENY"
        pre = c.options("/api/v1/documents", headers={"Origin": "https://evil.example",
                                                      "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in pre.headers
    listening = [c.laddr for c in psutil.Process(api_server.proc.pid).net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN]
    assert listening and all(a.ip == "127.0.0.1" for a in listening), listening


def test_docs_page_needs_no_internet(api_server):
    """The Swagger UI page loads its script and styles from this service, never from a CDN."""
    import re

    with api_server.client("viewer") as c:
        page = c.get("/api/v1/docs")
        assert page.status_code == 200 and "/api/v1/openapi.json" in page.text
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert assets and all(a.startswith("/api/v1/docs/static/") for a in assets), assets
        for a in assets:
            r = c.get(a)
            assert r.status_code == 200 and len(r.content) > 100, a
        assert "SwaggerUIBundle" in c.get("/api/v1/docs/static/swagger-ui-bundle.js").text


# -- review through the API, kept across re-processing ------------------------------------------------------------


def test_correction_is_in_the_export_and_survives_reprocessing(processed):
    s, doc_id = processed, processed.documents["invoice"]
    with s.client("viewer") as c:
        refused = c.post(f"/api/v1/documents/{doc_id}/reviews",
                         json={"target": "field", "name": "invoice_number", "action": "correct", "value": "X"})
        assert refused.status_code == 403
    with s.client("reviewer") as c:
        r = c.post(f"/api/v1/documents/{doc_id}/reviews",
                   json={"target": "field", "name": "invoice_number", "action": "correct", "value": "IBZY2087"})
        assert r.status_code == 201, r.text
        corr = r.json()
        assert corr["reviewer"] == "test-reviewer" and corr["old_value"] is None and corr["new_value"] == "IBZY2087"
        bad = c.post(f"/api/v1/documents/{doc_id}/reviews",
                     json={"target": "field", "name": "total", "action": "correct", "value": "  "})
        assert bad.status_code == 422
        first_run = c.get(f"/api/v1/documents/{doc_id}").json()["run"]["run_id"]
    with s.client("admin") as c:
        assert c.post(f"/api/v1/documents/{doc_id}/reprocess").status_code == 202
    body = s.wait_for(doc_id, after_run=first_run, done=("materialized",))
    assert body["run"]["run_id"] != first_run and body["run"]["runner"] == "api"
    f = body["fields"]["invoice_number"]
    assert f["value"] == "IBZY2087" and f["source"] == "review" and f["confidence"] is None
    assert f["review"]["by"] == "test-reviewer" and f["review"]["previous"] is None
    with s.client("viewer") as c:
        export = c.get(f"/api/v1/documents/{doc_id}/export.json").json()
        assert export["fields"]["invoice_number"]["source"] == "review"
        assert corr["id"] in [h["id"] for h in export["review_history"]]
        rows = {r["field"]: r for r in csv.DictReader(io.StringIO(c.get(f"/api/v1/documents/{doc_id}/export.csv").text))}
        assert rows["invoice_number"]["value"] == "IBZY2087" and rows["invoice_number"]["source"] == "review"
        assert "IBZY2087" in c.get(f"/api/v1/documents/{doc_id}/export.xml").text
        history = c.get(f"/api/v1/documents/{doc_id}/reviews").json()
        assert any(h["id"] == corr["id"] and h["at"] for h in history)
    instance = _instance(s)
    try:  # the pipeline's own export (asset output) is untouched: the correction lives outside it
        runs = instance.get_runs(RunsFilter(tags={"dagster/partition": doc_id}))
        assert len(runs) >= 2
    finally:
        instance.dispose()
    store_export = json.loads((s.data / "store" / "artifacts" / doc_id / "export.json").read_text())
    assert store_export["fields"].get("invoice_number", {}).get("source") != "review"


# -- fuzzing ----------------------------------------------------------------------------------------------------

FUZZ_EXAMPLES = 25


def test_fuzzing_the_openapi_schema_finds_no_server_error(processed):
    """schemathesis generates valid (positive) and invalid (negative) requests for every operation of the
    schema; the server never answers 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis import GenerationMode

    s = processed
    schema = schemathesis.openapi.from_url(f"{s.url}/api/v1/openapi.json")
    headers = s.headers("fuzz")
    statuses: Counter = Counter()
    errors: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        op = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
            @given(case=op.as_strategy(generation_mode=mode))
            def run(case):
                resp = case.call(base_url=s.url, headers=headers, timeout=60)
                statuses[resp.status_code] += 1
                if resp.status_code >= 500:
                    errors.append(f"{op.label} {mode.value}: {resp.status_code} {resp.text[:200]}")

            run()
    total = sum(statuses.values())
    print(f"fuzzing: {operations} operations, {total} requests, statuses {dict(sorted(statuses.items()))}")
    assert operations == 13 and total >= operations * 2
    assert not errors, errors[:10]
    assert s.proc.poll() is None


def test_no_secret_in_the_server_log(processed):
    log = processed.log()
    for key in processed.keys.values():
        assert key not in log
    from tests.fixtures.api_server import JWT_SECRET

    assert JWT_SECRET not in log
    assert "idp_api.access" in log  # the access log is there, with principal names only
