"""Entities of a document for the knowledge graph and the `entities` collection.

Entities come from the extracted fields (invoice number, IBAN, VAT id, amounts,
dates, supplier / buyer names), from table line items (products) and from rules
over the page text (IBANs and VAT ids printed anywhere, addresses, contact
persons).  Each entity has a stable key `Kind:normalised value`, so the same IBAN
on two documents is ONE graph node that connects them.  Every entity is linked to
the chunks whose text mentions it; an entity found only in structured data (an
e-invoice's XML) is linked to the document's first chunk of its page so that
`(Chunk)-[:MENTIONS]->(Entity)` always exists.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from idp_assets.logic.suppliers import iban_valid, normalize_name
from idp_assets.models import Chunk, ExtractedFields, Table

ENTITY_KINDS = (
    "InvoiceNumber", "IBAN", "VATId", "Amount", "Date", "Person", "Organization", "Address", "Product",
)

# kinds whose value is an identifier: exact matches on them are strong evidence in search
IDENTIFIER_KINDS = ("InvoiceNumber", "IBAN", "VATId")

_FIELD_KINDS = {
    "invoice_number": "InvoiceNumber",
    "iban": "IBAN",
    "vat_id": "VATId",
    "total": "Amount",
    "net_total": "Amount",
    "tax_total": "Amount",
    "date": "Date",
    "due_date": "Date",
    "supplier_name": "Organization",
    "buyer_name": "Organization",
}

_IBAN_TEXT = re.compile(r"\b([A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?)\b")
# EU VAT ids with their national shapes (stricter than "two letters + digits" to avoid noise)
_VAT_TEXT = re.compile(
    r"\b(ATU\d{8}|BE0?\d{9}|DE ?\d{9}|DK\d{8}|ES[A-Z0-9]\d{7}[A-Z0-9]|FR[A-Z0-9]{2} ?\d{9}|GB ?\d{9}(?:\d{3})?"
    r"|IT\d{11}|LU\d{8}|NL\d{9}B\d{2}|PL\d{10}|SE\d{12}|CHE[-. ]?\d{3}[-. ]?\d{3}[-. ]?\d{3})\b"
)
# "<postcode> <City>": at the start of a line or after a separator, city capitalised (DE/FR/MY 5 digits,
# AT/CH/NL 4 digits), or a US "ST 12345"
_ADDRESS_LINE = re.compile(
    r"(?:^|[,|;]\s*|\b(?:[A-Z]{1,2}-))(?:\d{5}|\d{4}(?: ?[A-Z]{2})?)\s+[A-ZÄÖÜ][A-Za-zÄÖÜäöüß.\-]{2,}"
    r"|\b[A-Z][a-z]+,? [A-Z]{2} \d{5}(?:-\d{4})?\b"
)
_ADDRESS_STOP = re.compile(
    r"(?i)\s(?=(?:rechnung\w*|invoice\w*|datum|date|kunden\w*|customer|tel\b|telefon|phone|fax|e-?mail|ust\w*|"
    r"steuer\w*|bestell\w*|lieferschein\w*|seite|page)\b)"
)
_STREET = re.compile(
    r"(?i)\b(?:stra(?:ss|ß)e|str\.|weg|allee|platz|gasse|road|rd\.?|street|st\.|avenue|ave\.?|jalan|jln\.?|lane|"
    r"drive|boulevard|blvd|rue|taman|lorong)\b"
)
_PERSON = re.compile(
    r"(?m)^\s*(?i:contact|attn|attention|ansprechpartner(?:in)?|sachbearbeiter(?:in)?|bearbeiter(?:in)?|cashier|"
    r"kontakt|geschäftsführer(?:in)?|managing director|served by)\s*[:.]?\s*((?:[A-ZÄÖÜ][a-zäöüß'\-]+\.? ?){2,3})\s*$"
)
# Malaysian / Singaporean / Indian GST registration numbers printed on receipts ("GST ID No: 000504664064")
_GST_TEXT = re.compile(r"(?i)\bGST\s*(?:ID|REG(?:\.|ISTRATION)?)?\s*(?:NO)?\s*[.:;]?\s*[:.]?\s*((?:\d[\s-]?){11}\d)\b")
_PRODUCT_HEADERS = ("name", "description", "desc", "item", "product", "article", "bezeichnung", "artikel",
                    "leistung", "beschreibung", "designation", "libellé", "produkt")


@dataclass
class Entity:
    kind: str
    value: str  # as shown to people
    norm: str  # normalised value; key = f"{kind}:{norm}"
    sources: list[str] = field(default_factory=list)  # e.g. "field:iban", "text", "table"
    chunk_ids: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return entity_key(self.kind, self.norm)


def entity_key(kind: str, norm: str) -> str:
    return f"{kind}:{norm}"


def normalize_value(kind: str, value: str) -> str:
    """The comparison form of a value: identifiers without separators, names casefolded, amounts as decimals."""
    v = unicodedata.normalize("NFKC", value or "").strip()
    if kind in ("InvoiceNumber", "IBAN", "VATId"):
        return re.sub(r"[^0-9A-Z]", "", v.upper())
    if kind == "Amount":
        try:
            return f"{Decimal(v.replace(',', '')):.2f}"
        except InvalidOperation:
            return re.sub(r"\s+", "", v)
    if kind == "Date":
        return v[:10]
    if kind == "Organization":
        return normalize_name(v) or v.casefold()
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", v.casefold())).strip()


def _searchable(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", unicodedata.normalize("NFKC", text or "").casefold())


def _mentions(entity: Entity, chunk: Chunk) -> bool:
    """Does the chunk's text show this entity (spacing and punctuation ignored)?"""
    if entity.kind == "Amount":
        d = entity.norm
        whole, _, cents = d.partition(".")
        plain = re.sub(r"\s", "", chunk.text)
        pat = rf"(?<![\d]){re.escape(whole)}[.,]{re.escape(cents)}(?!\d)"
        grouped = f"{int(whole):,}".replace(",", "[.,' ]") if whole.isdigit() else None
        return bool(re.search(pat, plain) or (grouped and re.search(rf"(?<!\d){grouped}[.,]{cents}(?!\d)", chunk.text)))
    if entity.kind == "Date":
        from idp_assets.logic.numbers import find_dates

        return any(m.value.isoformat() == entity.norm for m in find_dates(chunk.text))
    needle = _searchable(entity.value)
    return len(needle) >= 3 and needle in _searchable(chunk.text)


def _product_column(header: list[str]) -> int | None:
    low = [h.casefold().strip() for h in header]
    for i, h in enumerate(low):
        if any(h == p or h.startswith(p) for p in _PRODUCT_HEADERS):
            return i
    return None


def _is_number(s: str) -> bool:
    return bool(re.fullmatch(r"[-+]?[\d.,' ]+%?|[\d.,]+\s*[A-Z]{3}", (s or "").strip()))


def line_items(table: Table) -> tuple[list[str] | None, list[list[str]]]:
    """(header or None, data rows) of a table: a first row without any number is its header."""
    rows = [r for r in table.rows if any((c or "").strip() for c in r)]
    if not rows:
        return None, []
    head = rows[0]
    if not any(_is_number(c) for c in head if (c or "").strip()):
        return head, rows[1:]
    return None, rows


def product_names(table: Table) -> list[str]:
    mapped = getattr(table, "line_items", None) or []
    if mapped:  # rows the table stage mapped to invoice lines
        names = [" ".join((li.description.value or li.description.text or "").split())
                 for li in mapped if li.description]
        return [n for n in names if len(n) >= 3 and re.search(r"[A-Za-zÄÖÜäöü]{3}", n)]
    header, rows = line_items(table)
    col = _product_column(header) if header else None
    out = []
    for r in rows:
        if col is not None and col < len(r):
            name = r[col]
        else:  # no named column: the longest non-numeric cell
            texts = [c for c in r if c and not _is_number(c)]
            name = max(texts, key=len) if texts else ""
        name = " ".join((name or "").split())
        if len(name) >= 3 and re.search(r"[A-Za-zÄÖÜäöü]{3}", name):
            out.append(name)
    return out


def extract_entities(
    fields: ExtractedFields | None,
    chunks: list[Chunk],
    tables: list[Table] | None = None,
    page_texts: dict[int, str] | None = None,
) -> list[Entity]:
    """All entities of one document, each with the ids of the chunks that mention it.

    Deterministic: the same inputs give the same entities in the same order."""
    found: dict[str, Entity] = {}

    def add(kind: str, value: str | None, source: str) -> None:
        value = " ".join((value or "").split())
        if not value:
            return
        norm = normalize_value(kind, value)
        if not norm or (kind in IDENTIFIER_KINDS and len(norm) < 3):
            return
        key = entity_key(kind, norm)
        ent = found.setdefault(key, Entity(kind=kind, value=value, norm=norm))
        if source not in ent.sources:
            ent.sources.append(source)

    if fields is not None:
        for name in sorted(fields.fields):
            fv = fields.fields[name]
            kind = _FIELD_KINDS.get(name)
            if kind and fv.value:
                add(kind, fv.value, f"field:{name}")

    texts = page_texts if page_texts is not None else {}
    if not texts:
        for c in chunks:
            if c.kind != "table":
                texts.setdefault(c.page or 0, "")
                texts[c.page or 0] += "\n" + c.text
    for page in sorted(texts):
        text = texts[page] or ""
        up = text.upper()
        for m in _IBAN_TEXT.findall(up):
            if iban_valid(m):
                add("IBAN", re.sub(r"\s", "", m), "text")
        for m in _VAT_TEXT.findall(up):
            add("VATId", m, "text")
        for m in _GST_TEXT.findall(text):
            add("VATId", re.sub(r"[\s-]", "", m), "text:gst")
        lines = [ln.strip() for ln in text.splitlines()]
        for i, line in enumerate(lines):
            if len(line) <= 100 and _ADDRESS_LINE.search(line) and not re.search(r"(?i)\b(tel|fax|phone|iban|bic|invoice|rechnung)\b", line):
                line = _ADDRESS_STOP.split(line, 1)[0].strip(" ,;|")  # a label from the next column ends it
                prev = lines[i - 1] if i > 0 else ""
                addr = f"{prev}, {line}" if prev and _STREET.search(prev) and len(prev) <= 80 else line
                add("Address", addr, "text")
        for m in _PERSON.finditer(text):
            add("Person", m.group(1).strip(), "text")

    for t in tables or []:
        for name in product_names(t):
            add("Product", name, "table")

    ordered = sorted(found.values(), key=lambda e: (ENTITY_KINDS.index(e.kind), e.norm))
    first_chunk_of_page: dict[int | None, str] = {}
    for c in chunks:
        first_chunk_of_page.setdefault(c.page, c.chunk_id)
    for ent in ordered:
        ent.chunk_ids = [c.chunk_id for c in chunks if _mentions(ent, c)]
        if not ent.chunk_ids and chunks:
            ent.chunk_ids = [chunks[0].chunk_id]  # structured-only value: attach to the document's first chunk
    return ordered if chunks else []


def doc_type(fields: ExtractedFields | None, tables: list[Table], media_type: str = "") -> str:
    """Coarse document type for filtering: einvoice, invoice, receipt, table, document."""
    f = fields.fields if fields else {}

    def has(name: str) -> bool:
        return bool(f.get(name) and f[name].value)

    if any(v.source == "einvoice_xml" for v in f.values()):
        return "einvoice"
    if has("invoice_number"):
        return "invoice"
    if has("total"):
        return "receipt"
    if tables:
        return "table"
    return "document"


def date_number(iso: str | None) -> int:
    """2022-10-26 -> 20221026 (Chroma range filters need numbers); 0 when unknown."""
    if iso and re.fullmatch(r"\d{4}-\d{2}-\d{2}", iso[:10]):
        return int(iso[:10].replace("-", ""))
    return 0


def supplier_key(supplier_id: str | None, supplier_name: str | None) -> str | None:
    """The supplier's identity for duplicate detection: master id, else the normalised name."""
    if supplier_id:
        return f"id:{supplier_id}"
    norm = normalize_name(supplier_name or "")
    return f"name:{norm}" if norm else None


def document_properties(fields: ExtractedFields | None, tables: list[Table], supplier_id: str | None,
                        supplier_name: str | None = None, media_type: str = "") -> dict:
    """Document node properties: the key fields, doc_type and `dup_key` (supplier + invoice number)."""
    f = fields.fields if fields else {}

    def val(name: str) -> str | None:
        fv = f.get(name)
        return fv.value if fv and fv.value else None

    name = supplier_name or val("supplier_name")
    inv = val("invoice_number")
    skey = supplier_key(supplier_id, name)
    inv_norm = normalize_value("InvoiceNumber", inv) if inv else ""
    return {
        "doc_type": doc_type(fields, tables, media_type),
        "invoice_number": inv,
        "date": val("date"),
        "total": val("total"),
        "currency": val("currency"),
        "supplier_name": name,
        "dup_key": f"{skey}|{inv_norm}" if skey and inv_norm else None,
    }
