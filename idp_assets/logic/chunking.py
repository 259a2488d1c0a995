"""Layout-aware chunking with stable ids (document id + position).

Pages are split into paragraph chunks (blank-line separated blocks, merged up to
`max_chars`); every table becomes its own chunk rendered as ` | `-joined rows.
The id is sha1(document_id, page, kind, index) so re-materializing a partition
replaces its chunks instead of adding duplicates.
"""

from __future__ import annotations

import hashlib
import re

from idp_assets.models import Chunk, OcrPages, Table


def chunk_id(document_id: str, page: int | None, kind: str, index: int) -> str:
    return hashlib.sha1(f"{document_id}|{page}|{kind}|{index}".encode()).hexdigest()


def _paragraphs(text: str, max_chars: int) -> list[str]:
    blocks = [b.strip() for b in re.split(r"\n\s*\n", text or "") if b.strip()]
    if len(blocks) <= 1:  # OCR text without blank lines: fall back to line groups
        blocks = [line.strip() for line in (text or "").splitlines() if line.strip()]
    out: list[str] = []
    cur = ""
    for b in blocks:
        while len(b) > max_chars:  # a single huge block is cut at whitespace
            cut = b.rfind(" ", 0, max_chars)
            cut = cut if cut > max_chars // 2 else max_chars
            if cur:
                out.append(cur)
                cur = ""
            out.append(b[:cut].strip())
            b = b[cut:].strip()
        if cur and len(cur) + 1 + len(b) > max_chars:
            out.append(cur)
            cur = b
        else:
            cur = f"{cur}\n{b}" if cur else b
    if cur:
        out.append(cur)
    return out


def render_table(table: Table) -> str:
    return "\n".join(" | ".join(c for c in row) for row in table.rows)


def chunk_document(ocr: OcrPages, tables: list[Table], max_chars: int = 800) -> list[Chunk]:
    chunks: list[Chunk] = []
    for page in ocr.pages:
        for i, para in enumerate(_paragraphs(page.text, max_chars)):
            chunks.append(Chunk(chunk_id=chunk_id(ocr.document_id, page.number, "paragraph", i),
                                document_id=ocr.document_id, page=page.number, kind="paragraph", text=para))
    for i, t in enumerate(tables):
        text = render_table(t)
        if text.strip():
            chunks.append(Chunk(chunk_id=chunk_id(ocr.document_id, t.page, "table", i),
                                document_id=ocr.document_id, page=t.page, kind="table", text=text[: max_chars * 4]))
    return chunks
