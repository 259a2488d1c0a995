"""Typed responses of the API (they make the OpenAPI 3 schema at /api/v1/openapi.json)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

StageStatusName = Literal["queued", "running", "materialized", "failed"]
DocumentStatusName = Literal["queued", "running", "materialized", "failed"]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UploadAccepted(_Out):
    document_id: str = Field(description="sha256 of the uploaded bytes")
    status_url: str
    created: bool = Field(description="false: the same bytes were registered before (no second run)")
    filename: str
    media_type: str
    bytes: int


class Requeued(_Out):
    document_id: str
    status_url: str
    queue_state: str


class StageStatus(_Out):
    name: str
    status: StageStatusName
    run_id: str | None = None
    materialized_at: str | None = None
    reason: str | None = Field(default=None, description="machine-readable failure reason (e.g. corrupt_pdf)")
    message: str | None = None


class RunOut(_Out):
    run_id: str
    status: str
    runner: str | None = None
    started_at: str | None = None
    ended_at: str | None = None


class FieldReview(_Out):
    by: str
    at: str
    action: str
    correction_id: int
    previous: dict | None = None


class FieldOut(_Out):
    value: str | None
    confidence: float | None = Field(description="measured confidence; null for a value decided by a reviewer")
    source: str
    page: int | None = None
    raw: str | None = None
    needs_review: bool = False
    review: FieldReview | None = None


class SupplierOut(_Out):
    supplier_id: str | None
    name: str | None
    method: str
    score: float | None = None
    confidence: float | None = None
    source: str | None = Field(default=None, description="'review' when a reviewer decided")
    candidates: list[dict] = Field(default_factory=list)
    evidence: list[str] = Field(default_factory=list)
    review: FieldReview | None = None


class ValidationFinding(BaseModel):
    model_config = ConfigDict(extra="allow")
    rule: str | None = None
    ok: bool | None = None
    message: str | None = None


class DocumentLinks(_Out):
    self: str
    export_json: str
    export_xml: str
    export_csv: str
    graph: str
    review: str


class DocumentOut(_Out):
    document_id: str
    status: DocumentStatusName
    filename: str | None = None
    media_type: str | None = None
    queue_state: str | None = Field(default=None, description="state in the API's run queue, if uploaded here")
    run: RunOut | None = None
    stages: list[StageStatus]
    export_status: str | None = Field(default=None, description="ok | partial once exported")
    fields: dict[str, FieldOut] = Field(default_factory=dict)
    validation: list[ValidationFinding] = Field(default_factory=list)
    supplier: SupplierOut | None = None
    needs_review: bool = False
    review_pending: dict = Field(default_factory=dict)
    errors: list[dict] = Field(default_factory=list)
    links: DocumentLinks


class DocumentSummary(_Out):
    document_id: str
    status: DocumentStatusName
    filename: str | None = None
    supplier_id: str | None = None
    supplier_name: str | None = None
    supplier_method: str | None = None
    date: str | None = None
    needs_review: bool
    reason: str | None = None
    url: str


class DocumentPage(_Out):
    items: list[DocumentSummary]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last page")


class ExportDocument(BaseModel):
    """The JSON export (idp_assets.logic.export.build_export) with the reviewers' corrections applied."""

    model_config = ConfigDict(extra="allow")
    schema_version: str
    document_id: str
    status: str
    source: dict
    fields: dict[str, dict]
    supplier_match: dict | None = None
    needs_review: bool | None = None
    review_history: list[dict] = Field(default_factory=list)


class SearchHitOut(_Out):
    document_id: str
    page: int | None
    chunk_id: str | None
    snippet: str
    score: float
    reasons: list[str]
    filename: str | None = None
    supplier_name: str | None = None
    doc_type: str | None = None
    date: str | None = None
    url: str


class SearchOut(_Out):
    query: str
    k: int
    hits: list[SearchHitOut]
    took_ms: float = Field(description="server time of the search itself")
    timings_ms: dict[str, float]


class GraphNode(_Out):
    id: str
    kind: str
    label: str | None = None
    properties: dict = Field(default_factory=dict)


class GraphEdge(_Out):
    source: str
    target: str
    type: str
    detail: str | None = None
    score: float | None = None


class GraphOut(_Out):
    document_id: str
    nodes: list[GraphNode]
    edges: list[GraphEdge]


class EngineHealth(_Out):
    ok: bool
    reason: str


class StoreHealth(_Out):
    ok: bool
    detail: str
    ms: float


class HealthOut(_Out):
    ok: bool
    engines: dict[str, EngineHealth]
    stores: dict[str, StoreHealth]
    queues: dict[str, dict[str, int | None]] = Field(
        description="api run queue by state; Dagster runs by status; Dagster concurrency pools (cpu, gpu): limit "
        "(null: none set), claimed slots, pending steps")
    workers: dict[str, str | None]


class ReviewRequest(_Out):
    target: Literal["field", "supplier", "document"]
    name: str = Field(default="", max_length=100, description="field name (target field)")
    action: Literal["correct", "confirm", "reject", "create", "approve"]
    value: str | None = Field(default=None, max_length=2000, description="new value (field correct) or "
                              "supplier id (supplier confirm)")


class CorrectionOut(_Out):
    id: int
    document_id: str
    target: str
    name: str
    action: str
    old_value: dict | str | None
    new_value: dict | str | None
    reviewer: str
    at: str
