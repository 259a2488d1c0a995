"""`/api/v1/search` (hybrid search with the warm models) and `/api/v1/graph/documents/{id}`."""

from __future__ import annotations

import time

from fastapi import APIRouter, HTTPException, Path, Query, Request

from idp_api.deps import DOCUMENT_ID, needs
from idp_api.models import GraphOut, SearchHitOut, SearchOut
from idp_api.neighbourhood import neighbourhood
from idp_api.routes.documents import AUTH_ERRORS
from idp_assets.hybrid_search import search as hybrid_search

router = APIRouter(prefix="/api/v1", tags=["search"])


@router.get("/search", response_model=SearchOut, responses=AUTH_ERRORS)
def search(request: Request, q: str = Query(min_length=1, max_length=500, description="the query"),
           k: int = Query(10, ge=1, le=100, description="number of documents"),
           supplier: str | None = Query(None, max_length=200, description="supplier id or name"),
           after: str | None = Query(None, pattern=r"^\d{4}-\d{2}-\d{2}$", description="dated on or after (ISO)"),
           principal=needs("read")):
    """Hybrid search: meaning (Chroma), exact identifiers and connections (graph); each hit says why."""
    svc = request.app.state.services
    if k > svc.config.search_max_k:
        raise HTTPException(422, f"k is at most {svc.config.search_max_k} (IDP_API_SEARCH_MAX_K)")
    if not q.strip():
        raise HTTPException(422, "empty query")
    timings: dict = {}
    t0 = time.perf_counter()
    try:
        hits = hybrid_search(q, svc.embedder, svc.vector_store, svc.graph_store, k=k, supplier=supplier, after=after,
                             timings=timings)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    took = (time.perf_counter() - t0) * 1000
    return SearchOut(query=q, k=k, took_ms=round(took, 2), timings_ms={k_: round(v, 2) for k_, v in timings.items()},
                     hits=[SearchHitOut(**h.to_dict(), url=f"/api/v1/documents/{h.document_id}") for h in hits])


@router.get("/graph/documents/{document_id}", response_model=GraphOut, tags=["graph"],
            responses={**AUTH_ERRORS, 404: {}})
def graph_document(request: Request, document_id: str = Path(pattern=DOCUMENT_ID), principal=needs("read")):
    """The document's neighbourhood: supplier, entities, connected and similar documents."""
    svc = request.app.state.services
    out = neighbourhood(svc.graph_store, svc.vector_store, document_id)
    if out is None:
        raise HTTPException(404, "the document is not in the graph (unknown, or not processed yet)")
    return out
