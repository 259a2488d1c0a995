"""Layout-aware chunking with stable ids (document id + position).

Per page, the text is split into blocks (blank-line separated, or lines for OCR
text without blank lines).  A short title-like block is a *heading*: it starts a
new section, so paragraphs of two sections never share a chunk, and every chunk
carries its section heading (`Chunk.heading`, embedded together with the text).
Blocks of one section are merged up to `max_chars`; the chunk that opens a section
has kind ``heading``, the others ``paragraph``.  Every table becomes its own
chunk(s): rendered as ` | `-joined rows, split by rows (header repeated) when long.

Chunk texts of a page together hold the page text exactly once.  Ids are
sha1(document_id, page, kind, index), so re-materializing a partition replaces
its chunks instead of adding duplicates.
"""

from __future__ import annotations

import hashlib
import os
import re

from idp_assets.models import Chunk, OcrPages, Table

DEFAULT_MAX_CHUNKS = 1000
_HEADING_WORDS = re.compile(r"[A-Za-zÄÖÜäöüßÀ-ÿ]")


def chunk_id(document_id: str, page: int | None, kind: str, index: int | str) -> str:
    return hashlib.sha1(f"{document_id}|{page}|{kind}|{index}".encode()).hexdigest()


def is_heading(block: str) -> bool:
    """A one-line, short, title-like block: '# Title', 'INVOICE', 'Rechnung:', 'Terms and Conditions'."""
    line = block.strip()
    if "\n" in line or not line or len(line) > 60:
        return False
    if line.startswith("#"):
        return True
    letters = _HEADING_WORDS.findall(line)
    if len(letters) < 3 or sum(ch.isdigit() for ch in line) > len(line) // 3:
        return False
    words = line.rstrip(":").split()
    if len(words) > 8:
        return False
    if line.endswith(":") and len(words) <= 5:
        return True
    if line.isupper() and len(letters) >= 4:
        return True
    return False


def _blocks(text: str) -> tuple[list[str], bool]:
    """(blocks, by_lines): blank-line separated blocks, or lines for OCR text without blank lines."""
    blocks = [b.strip() for b in re.split(r"\n\s*\n", text or "") if b.strip()]
    if len(blocks) <= 1:
        return [line.strip() for line in (text or "").splitlines() if line.strip()], True
    return blocks, False


def _split_long(b: str, max_chars: int) -> list[str]:
    """A single huge block cut at whitespace; linear (positions move forward, no re-slicing of the rest)."""
    out = []
    start, n = 0, len(b)
    while n - start > max_chars:
        cut = b.rfind(" ", start, start + max_chars)
        cut = cut if cut > start + max_chars // 2 else start + max_chars
        piece = b[start:cut].strip()
        if piece:
            out.append(piece)
        start = cut
        while start < n and b[start].isspace():
            start += 1
    rest = b[start:].strip()
    if rest:
        out.append(rest)
    return out


def _heading_of(block: str, by_lines: bool) -> str | None:
    first = block.split("\n", 1)[0].strip()
    if first.startswith("#") and first.lstrip("#").strip():
        return first.lstrip("#").strip()
    # in line mode (OCR receipts: every line short and upper-case) only markdown headings count
    if not by_lines and "\n" not in block.strip() and is_heading(block):
        return block.strip().rstrip(":").strip()
    return None


def sections(text: str, max_chars: int) -> list[tuple[str | None, bool, str]]:
    """(heading, opens_section, text) per chunk of one page's text."""
    out: list[tuple[str | None, bool, str]] = []
    heading: str | None = None
    cur: list[str] = []
    opens = False
    blocks, by_lines = _blocks(text)
    for b in blocks:
        h = _heading_of(b, by_lines)
        if h is not None:
            if cur:
                out.append((heading, opens, "\n".join(cur)))
            heading, cur, opens = h, [], True
        for piece in _split_long(b, max_chars):
            if cur and len("\n".join(cur)) + 1 + len(piece) > max_chars:
                out.append((heading, opens, "\n".join(cur)))
                cur, opens = [], False
            cur.append(piece)
    if cur:
        out.append((heading, opens, "\n".join(cur)))
    return out


def render_table(table: Table) -> str:
    return "\n".join(" | ".join(c for c in row) for row in table.rows)


def _table_parts(table: Table, max_chars: int) -> list[str]:
    lines = [" | ".join(c for c in row) for row in table.rows]
    if sum(len(x) + 1 for x in lines) <= max_chars or len(lines) <= 2:
        return ["\n".join(lines)]
    header, body = lines[0], lines[1:]
    parts, cur = [], [header]
    for line in body:
        if len(cur) > 1 and sum(len(x) + 1 for x in cur) + len(line) > max_chars:
            parts.append("\n".join(cur))
            cur = [header]
        cur.append(line[: max_chars * 2])
    parts.append("\n".join(cur))
    return parts


def max_chunks() -> int:
    """Chunks embedded per document at most (IDP_MAX_CHUNKS, default 1000: ~800 KB of text); the text of
    a longer document is still exported and searchable by its first chunks, its tables and its fields."""
    return int(os.environ.get("IDP_MAX_CHUNKS") or DEFAULT_MAX_CHUNKS)


def chunk_document(ocr: OcrPages, tables: list[Table], max_chars: int = 800, limit: int | None = None) -> list[Chunk]:
    limit = max_chunks() if limit is None else limit
    chunks: list[Chunk] = []
    table_room = min(len(tables) * 4, limit // 4)  # tables keep a share of the chunks
    for page in ocr.pages:
        if len(chunks) >= limit - table_room:
            break
        for i, (heading, opens, text) in enumerate(sections(page.text, max_chars)):
            if len(chunks) >= limit - table_room:
                break
            # the id keeps the historical "paragraph" kind so that ids do not change with heading detection
            chunks.append(Chunk(chunk_id=chunk_id(ocr.document_id, page.number, "paragraph", i),
                                document_id=ocr.document_id, page=page.number,
                                kind="heading" if opens else "paragraph", text=text, heading=heading))
    for i, t in enumerate(tables):
        if not render_table(t).strip():
            continue
        for j, text in enumerate(_table_parts(t, max_chars)):
            if len(chunks) >= limit:
                return chunks
            chunks.append(Chunk(chunk_id=chunk_id(ocr.document_id, t.page, "table", i if j == 0 else f"{i}.{j}"),
                                document_id=ocr.document_id, page=t.page, kind="table", text=text))
    return chunks


def embedding_input(chunk: Chunk, context: str = "") -> str:
    """What is embedded for a chunk: document context (type, supplier, date), its heading, then its text."""
    parts = [context.strip()] if context.strip() else []
    if chunk.heading and chunk.kind != "heading" and not chunk.text.startswith(chunk.heading):
        parts.append(chunk.heading)
    parts.append(chunk.text)
    return "\n".join(parts)
