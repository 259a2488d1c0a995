"""The review page: server-rendered HTML (Jinja2), no JavaScript.

A reviewer signs in with an API key or token (role reviewer or admin) and gets a signed session
cookie; the queue lists documents with `needs_review` fields, a pending supplier decision or
document-level findings; a document shows each page with the fields' boxes, every field's value,
confidence and evidence, and forms to correct / confirm a field, decide the supplier or approve.
Every form carries a CSRF token bound to the session.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, Form, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from idp_api.deps import DOCUMENT_ID
from idp_api.models import ReviewRequest
from idp_api.review_actions import ReviewError, apply_review
from idp_api.reviews import pending_review
from idp_api.security import SESSION_COOKIE, AuthError, Principal, require

HERE = Path(__file__).resolve().parent.parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(prefix="/review", include_in_schema=False)
static = StaticFiles(directory=str(HERE / "static"))


def reviewer(request: Request, permission: str = "review") -> tuple[Principal, str | None]:
    """The caller: headers (API key / token; no CSRF needed) or the session cookie (sid for CSRF)."""
    auth = request.app.state.services.auth
    authorization, key = request.headers.get("authorization"), request.headers.get("x-api-key")
    if authorization or key:
        return require(auth.from_headers(authorization, key), permission), None
    p, sid = auth.session(request.cookies.get(SESSION_COOKIE))
    return require(p, permission), sid


def _ctx(request: Request, p: Principal | None, sid: str | None, **kw) -> dict:
    auth = request.app.state.services.auth
    return {"request": request, "user": p.name if p else None, "csrf": auth.csrf_token(sid) if sid else "", **kw}


def _check_csrf(request: Request, sid: str | None, token: str | None) -> None:
    if sid is not None:  # cookie session: the form must carry the session's token
        request.app.state.services.auth.check_csrf(sid, token)


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return templates.TemplateResponse(request, "error.html", {"status": status, "message": message, "user": None,
                                                               "csrf": ""}, status_code=status)


@router.get("")
def index() -> RedirectResponse:
    return RedirectResponse("/review/queue", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request):
    return templates.TemplateResponse(request, "login.html", {"user": None, "csrf": "", "error": None})


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, credential: str = Form(max_length=4000)):
    svc = request.app.state.services
    try:
        p = require(svc.auth.credential(credential), "review")
    except AuthError as exc:
        return templates.TemplateResponse(request, "login.html", {"user": None, "csrf": "", "error": exc.message},
                                          status_code=exc.status)
    resp = RedirectResponse("/review/queue", status_code=303)
    resp.set_cookie(SESSION_COOKIE, svc.auth.new_session(p), max_age=svc.auth.session_seconds, httponly=True,
                    samesite="strict", secure=request.url.scheme == "https", path="/review")
    return resp


@router.post("/logout")
def logout(request: Request, csrf: str | None = Form(None)):
    _, sid = reviewer(request, "review")
    _check_csrf(request, sid, csrf)
    resp = RedirectResponse("/review/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/review")
    return resp


@router.get("/queue", response_class=HTMLResponse)
def queue(request: Request, cursor: str | None = Query(None, max_length=500)):
    p, sid = reviewer(request)
    try:
        rows, nxt = request.app.state.services.catalog.list(needs_review=True, status="materialized", cursor=cursor,
                                                            limit=100)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return templates.TemplateResponse(request, "queue.html", _ctx(request, p, sid, rows=rows, next_cursor=nxt))


def _document_page(request: Request, p: Principal, sid: str | None, document_id: str, notice: str | None = None,
                   error: str | None = None, status_code: int = 200) -> HTMLResponse:
    svc = request.app.state.services
    record = svc.catalog.export_record(document_id)
    if record is None:
        return error_page(request, 404, "no export for this document (unknown, or not materialized yet)")
    views = request.app.state.pages
    boxes = views.field_boxes(document_id, record.get("fields") or {})
    pages = list(range(1, views.page_count(document_id) + 1))
    return templates.TemplateResponse(
        request, "document.html",
        _ctx(request, p, sid, record=record, document_id=document_id, boxes=boxes, pages=pages,
             pending=pending_review(record), notice=notice, error=error), status_code=status_code)


@router.get("/documents/{document_id}", response_class=HTMLResponse)
def document(request: Request, document_id: str, notice: str | None = Query(None, max_length=200)):
    p, sid = reviewer(request)
    if not _valid_id(document_id):
        return error_page(request, 404, "no such document")
    return _document_page(request, p, sid, document_id, notice=notice)


@router.get("/documents/{document_id}/pages/{number}.png")
def page_image(request: Request, document_id: str, number: int):
    reviewer(request)
    if not _valid_id(document_id) or not 1 <= number <= 10_000:
        raise HTTPException(404, "no such page")
    png = request.app.state.pages.page_png(document_id, number)
    if png is None:
        raise HTTPException(404, "no image for this page")
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})


@router.post("/documents/{document_id}/decide", response_class=HTMLResponse)
async def decide(request: Request, document_id: str, target: str = Form(max_length=20),
                 action: str = Form(max_length=20), name: str = Form("", max_length=100),
                 value: str | None = Form(None, max_length=2000), candidate: str | None = Form(None, max_length=200),
                 csrf: str | None = Form(None, max_length=200)):
    p, sid = reviewer(request)
    _check_csrf(request, sid, csrf)
    if not _valid_id(document_id):
        return error_page(request, 404, "no such document")
    try:
        req = ReviewRequest(target=target, name=name, action=action, value=(value or "").strip() or candidate)
    except ValueError as exc:
        return error_page(request, 422, f"not a valid decision: {exc}")
    try:
        c = await run_in_threadpool(apply_review, request.app.state.services, document_id, req, p.name)
    except ReviewError as exc:
        return await run_in_threadpool(_document_page, request, p, sid, document_id, None, exc.message, exc.status)
    label = f"{c.target} {c.name}".strip()
    return RedirectResponse(f"/review/documents/{document_id}?notice=saved+{c.action}+of+{label.replace(' ', '+')}",
                            status_code=303)


def _valid_id(doc_id: str) -> bool:
    return re.fullmatch(DOCUMENT_ID.strip("^$"), doc_id) is not None
