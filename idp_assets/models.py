"""Typed results that cross asset boundaries.

Every asset returns one of these pydantic models; the IO manager pickles them and
the JSON export is built from them.  Keep them plain data (no behaviour beyond
small derived properties) so that any stage can be re-run in isolation.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ComputeClass = Literal["cpu", "gpu"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceDocument(_Model):
    """One document as registered by a sensor or by `idp process`."""

    document_id: str = Field(description="sha256 hex digest of the original bytes")
    uri: str = Field(description="where the document was found (file:// or s3://)")
    filename: str
    media_type: str = Field(description="sniffed from the bytes, not from the file name")
    bytes: int
    store_uri: str = Field(description="where the original bytes are kept in the document store")


class RawPage(_Model):
    number: int = Field(ge=1)
    width: int = Field(description="rendered image width in pixels (0 when no image)")
    height: int
    dpi: float = Field(description="resolution of the rendered / stored image")
    rotation: int = Field(default=0, description="rotation declared by the source (PDF /Rotate), degrees")
    image_key: str | None = Field(default=None, description="document store key of the page PNG")
    text_layer: str = Field(default="", description="born-digital text of the page, '' when none")
    text_layer_chars: int = 0
    image_coverage: float = Field(default=0.0, ge=0.0, le=1.0, description="share of the page covered by images")
    page_width_pt: float | None = None
    page_height_pt: float | None = None


class RawPages(_Model):
    document_id: str
    kind: Literal["pdf", "image", "office"]
    pages: list[RawPage]
    office_text: str | None = Field(default=None, description="docling markdown for office formats")
    office_tables: list[list[list[str]]] = Field(default_factory=list)
    embedded_invoice: dict | None = Field(
        default=None, description="parsed ZUGFeRD/Factur-X/XRechnung XML attached to a PDF ({'error': ...} if unreadable)"
    )


class OcrWord(_Model):
    text: str
    confidence: float = Field(ge=0.0, le=1.0)
    bbox: tuple[float, float, float, float] = Field(description="x0, y0, x1, y1 in page pixels")
    line: int = 0
    block: int = 0


class EngineAttempt(_Model):
    engine: str
    seconds: float
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    ok: bool
    error: str | None = None


class OcrPage(_Model):
    number: int
    width: int
    height: int
    dpi: float
    rotation: int = Field(description="rotation applied before reading (0/90/180/270)")
    engine: str
    compute: ComputeClass
    route_reason: str
    confidence: float | None = Field(
        ge=0.0, le=1.0, description="measured by the engine; None only when the page has no text at all"
    )
    text: str
    words: list[OcrWord] = Field(default_factory=list)
    attempts: list[EngineAttempt] = Field(default_factory=list)
    empty_reason: str | None = Field(default=None, description="why the page has no text, when it has none")


class OcrPages(_Model):
    document_id: str
    pages: list[OcrPage]

    @property
    def text(self) -> str:
        return "\n".join(p.text for p in self.pages)


class TableCell(_Model):
    text: str
    row: int
    col: int


class Table(_Model):
    page: int
    rows: list[list[str]]
    source: str = Field(description="how the table was found, e.g. 'pdf_ruling', 'office'")
    bbox: tuple[float, float, float, float] | None = None


class Tables(_Model):
    document_id: str
    tables: list[Table]


class FieldValue(_Model):
    value: str | None
    confidence: float = Field(ge=0.0, le=1.0)
    source: str = Field(description="where the value came from, e.g. 'rules:label', 'einvoice_xml'")
    page: int | None = None
    raw: str | None = Field(default=None, description="text as printed before normalisation")


class ExtractedFields(_Model):
    document_id: str
    fields: dict[str, FieldValue]
    validation: list[dict] = Field(default_factory=list)


class SupplierCandidate(_Model):
    supplier_id: str
    name: str
    score: float


class SupplierMatch(_Model):
    document_id: str
    supplier_id: str | None
    name: str | None
    score: float = Field(ge=0.0, le=1.0)
    method: str = Field(description="'vat_id', 'iban', 'name', or 'new'")
    evidence: list[str] = Field(default_factory=list)
    candidates: list[SupplierCandidate] = Field(default_factory=list)
    proposed: dict | None = None


class Chunk(_Model):
    chunk_id: str
    document_id: str
    page: int | None
    kind: Literal["page", "paragraph", "table"]
    text: str


class EmbeddingsResult(_Model):
    document_id: str
    collection: str
    model: str
    chunk_ids: list[str]
    chunks: list[Chunk]
    dimensions: int


class GraphResult(_Model):
    document_id: str
    nodes: dict[str, int] = Field(description="node label -> count written for this document")
    relationships: dict[str, int]


class DocumentExport(_Model):
    document_id: str
    json_uri: str
    status: Literal["ok", "partial", "failed"]
