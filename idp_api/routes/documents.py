"""`/api/v1/documents`: upload, status per stage, list, exports, corrections."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, File, Form, HTTPException, Path, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from idp_api import intake, status
from idp_api.deps import DOCUMENT_ID, needs
from idp_api.limits import LimitError
from idp_api.models import (CorrectionOut, DocumentLinks, DocumentOut, DocumentPage, DocumentSummary, ExportDocument,
                            FieldOut, Requeued, ReviewRequest, RunOut, StageStatus, SupplierOut, UploadAccepted,
                            ValidationFinding)
from idp_api.review_actions import ReviewError, apply_review
from idp_api.reviews import pending_review
from idp_assets.logic.export import export_files
from idp_assets.retention import is_registered

router = APIRouter(prefix="/api/v1", tags=["documents"])
DocId = Path(pattern=DOCUMENT_ID, description="sha256 of the document's bytes")
AUTH_ERRORS = {401: {"description": "missing, unknown or expired credential"},
               403: {"description": "the credential's roles do not allow this"}}


def _links(doc_id: str) -> DocumentLinks:
    base = f"/api/v1/documents/{doc_id}"
    return DocumentLinks(self=base, export_json=f"{base}/export.json", export_xml=f"{base}/export.xml",
                         export_csv=f"{base}/export.csv", graph=f"/api/v1/graph/documents/{doc_id}",
                         review=f"/review/documents/{doc_id}")


def _known(svc, doc_id: str) -> bool:
    # a retired document (finished, partition removed past the live bound) is still known
    return is_registered(svc.instance, svc.store, doc_id) or svc.queue.get(doc_id) is not None


@router.post("/documents", status_code=202, response_model=UploadAccepted,
             responses={**AUTH_ERRORS, 200: {"model": UploadAccepted, "description": "the same bytes were registered "
                                                                                      "before: same id, no new run"},
                        404: {"description": "s3 object not found"}, 413: {"description": "too large"},
                        415: {"description": "unsupported media type"}, 422: {"description": "bad request"},
                        429: {"description": "too many uploads per minute for this key"}})
async def upload(request: Request, file: UploadFile | None = File(default=None, description="the document"),
                 uri: str | None = Form(default=None, max_length=2000, description="s3://bucket/key instead of a file"),
                 principal=needs("upload")):
    """Register a document (multipart `file`, or `uri` = s3://bucket/key) and queue its run: 202 with the
    document id (sha256 of the bytes) and its status URL; 200 when the same bytes were registered before."""
    svc = request.app.state.services
    try:
        svc.limiter.hit(principal.name)
        if (file is None) == (uri is None):
            raise HTTPException(422, "send exactly one of: a multipart `file`, an `uri` (s3://bucket/key)")
        limit = svc.config.max_upload_bytes
        if file is not None:
            data = await file.read(limit + 1)
            if len(data) > limit:
                raise LimitError(413, f"file larger than {limit} bytes")
            filename, source_uri = (file.filename or "upload"), f"api://{principal.name}/{file.filename or 'upload'}"
        else:
            data, filename = await run_in_threadpool(intake.fetch_s3, svc, uri)
            source_uri = uri
        reg = await run_in_threadpool(intake.register, svc, data, filename, source_uri, principal.name)
    except LimitError as exc:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=headers)
    except intake.S3Error as exc:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)
    request.app.state.metrics.uploads.labels("created" if reg.created else "duplicate").inc()
    body = UploadAccepted(document_id=reg.document_id, status_url=f"/api/v1/documents/{reg.document_id}",
                          created=reg.created, filename=reg.filename, media_type=reg.media_type, bytes=reg.bytes)
    return JSONResponse(body.model_dump(), status_code=202 if reg.created else 200,
                        headers={"Location": body.status_url})


@router.get("/documents", response_model=DocumentPage, responses=AUTH_ERRORS)
def list_documents(request: Request,
                   status_: Literal["queued", "running", "materialized", "failed"] | None = Query(None, alias="status"),
                   supplier: str | None = Query(None, max_length=200, description="supplier id or exact name"),
                   needs_review: bool | None = Query(None),
                   after: str | None = Query(None, pattern=r"^\d{4}-\d{2}-\d{2}$",
                                             description="document date on or after (ISO date)"),
                   cursor: str | None = Query(None, max_length=500),
                   limit: int = Query(50, ge=1, le=500),
                   principal=needs("read")):
    """Documents, newest first, filtered; `next_cursor` pages on."""
    svc = request.app.state.services
    try:
        rows, nxt = svc.catalog.list(status=status_, supplier=supplier, needs_review=needs_review, after=after,
                                     cursor=cursor, limit=limit)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    items = [DocumentSummary(document_id=r["document_id"], status=r["status"], filename=r["filename"],
                             supplier_id=r["supplier_id"], supplier_name=r["supplier_name"],
                             supplier_method=r["supplier_method"], date=r["doc_date"],
                             needs_review=bool(r["needs_review"]), reason=r["reason"],
                             url=f"/api/v1/documents/{r['document_id']}") for r in rows]
    return DocumentPage(items=items, next_cursor=nxt)


def document_view(svc, doc_id: str) -> DocumentOut:
    job = svc.queue.get(doc_id)
    if not _known(svc, doc_id):
        raise HTTPException(404, "no such document")
    stages, run = status.document_stages(svc.instance, doc_id)
    overall = status.overall(stages, run)
    if job is not None and job.state in ("queued", "running"):  # waiting for a worker / its run is starting
        overall = job.state
    record = svc.catalog.export_record(doc_id)
    out = DocumentOut(document_id=doc_id, status=overall, queue_state=job.state if job else None,
                      run=RunOut(**run.__dict__) if run else None,
                      stages=[StageStatus(**s.__dict__) for s in stages], links=_links(doc_id),
                      filename=job.filename if job else None)
    if record is not None:
        src = record.get("source") or {}
        out.filename = src.get("filename") or out.filename
        out.media_type = src.get("media_type")
        out.export_status = record.get("status")
        out.fields = {k: FieldOut(**{x: f.get(x) for x in FieldOut.model_fields if x in f})
                      for k, f in (record.get("fields") or {}).items()}
        out.validation = [ValidationFinding(**v) for v in record.get("validation") or [] if isinstance(v, dict)]
        sm = record.get("supplier_match")
        if sm:
            out.supplier = SupplierOut(**{x: sm.get(x) for x in SupplierOut.model_fields if sm.get(x) is not None
                                          or x in ("supplier_id", "name", "method")})
        pending = pending_review(record)
        out.needs_review, out.review_pending = pending["needs_review"], pending
        out.errors = record.get("errors") or []
    return out


@router.get("/documents/{document_id}", response_model=DocumentOut, responses={**AUTH_ERRORS, 404: {}})
def get_document(request: Request, document_id: str = DocId, principal=needs("read")):
    """Status per stage (from the Dagster instance), fields with confidences, validation, supplier match."""
    return document_view(request.app.state.services, document_id)


def _record(svc, doc_id: str) -> dict:
    record = svc.catalog.export_record(doc_id)
    if record is None:
        raise HTTPException(404, "no export for this document (unknown, or not materialized yet)")
    return record


@router.get("/documents/{document_id}/export.json", response_model=ExportDocument, responses={**AUTH_ERRORS, 404: {}})
def export_json(request: Request, document_id: str = DocId, principal=needs("read")):
    """The JSON export with the reviewers' corrections applied (`source: "review"`)."""
    return JSONResponse(_record(request.app.state.services, document_id))


def _extra(svc, record: dict) -> dict[str, bytes]:
    target = svc.resources["export_target"]
    return export_files(record, csv_delimiter=target.csv_delimiter, decimal_comma=target.decimal_comma)


@router.get("/documents/{document_id}/export.xml", response_class=Response,
            responses={**AUTH_ERRORS, 404: {}, 200: {"content": {"application/xml": {}}}})
def export_xml(request: Request, document_id: str = DocId, syntax: Literal["cii", "ubl"] = Query("cii"),
               principal=needs("read")):
    """The EN 16931 invoice (UN/CEFACT CII or UBL 2.1), built from the corrected export."""
    svc = request.app.state.services
    body = _extra(svc, _record(svc, document_id)).get(f"{syntax}.xml")
    if body is None:
        raise HTTPException(404, "this document has no invoice fields for an EN 16931 export")
    return Response(body, media_type="application/xml")


@router.get("/documents/{document_id}/export.csv", response_class=Response,
            responses={**AUTH_ERRORS, 404: {}, 200: {"content": {"text/csv": {}}}})
def export_csv(request: Request, document_id: str = DocId, part: Literal["fields", "lines"] = Query("fields"),
               principal=needs("read")):
    """Header fields (one row per field) or line items, as CSV, from the corrected export."""
    svc = request.app.state.services
    body = _extra(svc, _record(svc, document_id)).get(f"{part}.csv")
    if body is None:
        raise HTTPException(404, "no CSV export for a failed document")
    return Response(body, media_type="text/csv; charset=utf-8")


@router.get("/documents/{document_id}/reviews", response_model=list[CorrectionOut], responses=AUTH_ERRORS)
def list_reviews(request: Request, document_id: str = DocId, principal=needs("read")):
    """Every correction of the document (who, when, old, new)."""
    return [CorrectionOut(**c.model_dump()) for c in request.app.state.services.reviews.for_document(document_id)]


@router.post("/documents/{document_id}/reviews", status_code=201, response_model=CorrectionOut,
             responses={**AUTH_ERRORS, 404: {}, 409: {"description": "not exported yet"}})
def add_review(request: Request, body: ReviewRequest, document_id: str = DocId, principal=needs("review")):
    """Correct or confirm a field, decide the supplier (confirm / create / reject), or approve the document."""
    svc = request.app.state.services
    if not _known(svc, document_id):
        raise HTTPException(404, "no such document")
    try:
        c = apply_review(svc, document_id, body, principal.name)
    except ReviewError as exc:
        raise HTTPException(exc.status, exc.message) from None
    return CorrectionOut(**c.model_dump())


@router.post("/documents/{document_id}/reprocess", status_code=202, response_model=Requeued,
             responses={**AUTH_ERRORS, 404: {}})
def reprocess(request: Request, document_id: str = DocId, principal=needs("admin")):
    """Run every stage of a registered document again (the corrections stay and are applied again)."""
    svc = request.app.state.services
    if not _known(svc, document_id):
        raise HTTPException(404, "no such document")
    sightings = svc.store.get_source_records(document_id)
    last = sightings[-1] if sightings else {}
    job = svc.queue.requeue(document_id, last.get("filename") or "document", last.get("uri") or "", principal.name)
    return Requeued(document_id=document_id, status_url=f"/api/v1/documents/{document_id}", queue_state=job.state)
