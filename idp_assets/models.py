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
    image_regions: list[tuple[float, float, float, float]] = Field(
        default_factory=list,
        description="pictures on a born-digital page that hold no text-layer text, each at least "
        "IMAGE_REGION_MIN_AREA of the page: (x0, y0, x1, y1) as shares of the page width/height, "
        "origin top left; OCR reads them and adds their text to the text layer's",
    )


class RawPages(_Model):
    document_id: str
    kind: Literal["pdf", "image", "office"]
    pages: list[RawPage]
    office_text: str | None = Field(default=None, description="docling markdown for office formats")
    office_tables: list[list[list[str]]] = Field(default_factory=list)
    embedded_invoice: dict | None = Field(
        default=None, description="parsed e-invoice XML: attached to a PDF or the document itself ({'error': ...} "
        "if unreadable); its bytes are stored at `xml_key`"
    )
    rendition_key: str | None = Field(
        default=None, description="document store key of a PDF rendering of the document (e-invoice XML), used "
        "instead of the original wherever pages are rendered or read as PDF"
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
    header_rows: int = Field(default=0, description="number of leading header rows")
    columns: list[str] = Field(default_factory=list, description="column names from the header rows")
    cells: list[NormalizedCell] = Field(default_factory=list, description="typed value of every non-empty cell")
    line_items: list[LineItem] = Field(default_factory=list, description="rows mapped to invoice line items")


class Tables(_Model):
    document_id: str
    tables: list[Table]


class FieldValue(_Model):
    value: str | None
    confidence: float = Field(ge=0.0, le=1.0)
    source: str = Field(description="where the value came from, e.g. 'rules:label', 'einvoice_xml'")
    page: int | None = None
    raw: str | None = Field(default=None, description="text as printed before normalisation")
    needs_review: bool = Field(
        default=False, description="confidence below the fitted model's review threshold, or no fitted model "
        "covers the value (e.g. an LLM-only value): a person should confirm it")


class ExtractedFields(_Model):
    document_id: str
    fields: dict[str, FieldValue]
    validation: list[dict] = Field(default_factory=list)
    invoice: dict | None = Field(
        default=None, description="EN 16931 model of the document's e-invoice XML (idp_assets.logic.en16931.model)")


class SupplierCandidate(_Model):
    supplier_id: str
    name: str
    score: float


class PartyEvidence(_Model):
    """What a document says about one party (the seller's evidence, or the buyer recorded separately)."""

    name: str | None = None
    vat_ids: list[str] = Field(default_factory=list)
    tax_numbers: list[str] = Field(default_factory=list)
    ibans: list[str] = Field(default_factory=list)
    glns: list[str] = Field(default_factory=list)
    street: str | None = None
    postal_code: str | None = None
    city: str | None = None
    country: str | None = None
    source: str = Field(default="print", description="'einvoice_xml' (declared) or 'print' (read from the page)")


class SupplierMatch(_Model):
    document_id: str
    supplier_id: str | None
    name: str | None
    score: float = Field(ge=0.0, le=1.0)
    method: str = Field(description="'vat_id', 'tax_number', 'iban', 'gln', 'name', 'decision', 'needs_review' or 'new'")
    evidence: list[str] = Field(default_factory=list)
    candidates: list[SupplierCandidate] = Field(default_factory=list)
    proposed: dict | None = None
    confidence: float | None = Field(default=None, ge=0.0, le=1.0,
                                     description="fitted probability that supplier_id is right (None: no match)")
    seller: PartyEvidence | None = None
    buyer: PartyEvidence | None = None


class Chunk(_Model):
    chunk_id: str
    document_id: str
    page: int | None
    kind: Literal["page", "heading", "paragraph", "table"]
    text: str
    heading: str | None = Field(default=None, description="nearest heading above the chunk (embedded with it)")


class EmbeddingsResult(_Model):
    document_id: str
    collection: str
    model: str
    chunk_ids: list[str]
    chunks: list[Chunk]
    dimensions: int
    # grounded candidates of the optional LLM entity extraction (idp-entities), reused by graph_nodes
    llm_entities: list[dict] = Field(default_factory=list)


class GraphResult(_Model):
    document_id: str
    nodes: dict[str, int] = Field(description="node label -> count written for this document")
    relationships: dict[str, int]


class DocumentExport(_Model):
    document_id: str
    json_uri: str
    status: Literal["ok", "partial", "failed"]


# --------------------------------------------------------------------------- normalized tables


class NormalizedCell(_Model):
    """One table cell: the text as printed and its typed reading."""

    row: int
    col: int
    text: str
    kind: Literal["text", "number", "amount", "percent", "date", "quantity"]
    value: str | None = Field(default=None, description="decimal string, ISO date, or None for text")
    currency: str | None = Field(default=None, description="ISO 4217 code printed in the cell")
    unit: str | None = Field(default=None, description="UN/ECE Rec 20 unit code printed in the cell")


class LineItemValue(_Model):
    value: str | None
    text: str = Field(description="the cell as printed")
    confidence: float = Field(ge=0.0, le=1.0)


class LineItem(_Model):
    """One invoice line mapped from a table row (``row`` = index into ``Table.rows``)."""

    row: int
    description: LineItemValue | None = None
    quantity: LineItemValue | None = None
    unit: LineItemValue | None = None
    unit_price: LineItemValue | None = None
    line_total: LineItemValue | None = None
    tax_rate: LineItemValue | None = None


Table.model_rebuild()
Tables.model_rebuild()
