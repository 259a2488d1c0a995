"""Tables from born-digital PDF pages (pdfplumber) and from e-invoice line items.

* :func:`extract_pdf_tables` - per page, ruled ("lattice") tables first; pages with no
  usable ruled table fall back to text alignment.  Degenerate results (one row or one
  column, or nothing but empty cells) are dropped; cells are whitespace-collapsed.
* :func:`einvoice_table` - the e-invoice XML line items as a :class:`Table`
  (source ``"einvoice_xml"``).
* :func:`document_tables` - both, the e-invoice table first.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterable
from decimal import Decimal

from idp_assets.models import LineItem, NormalizedCell, Table

from .einvoice import line_items_rows
from .table_score import Candidate, choose, prose_share
from .field_rules.labels import line_column
from .numbers import detect_currency, find_dates, parse_amount

__all__ = [
    "DEFAULT_DETECTORS",
    "DETECTORS",
    "LATTICE_SETTINGS",
    "TEXT_SETTINGS",
    "UNIT_CODES",
    "clean_rows",
    "column_names",
    "detect_header_rows",
    "document_tables",
    "einvoice_table",
    "extract_pdf_tables",
    "map_columns",
    "map_line_items",
    "normalize_cell",
    "normalize_table",
    "pdf_layout_text",
    "structure_lattice",
]

log = logging.getLogger(__name__)

LATTICE_SETTINGS: dict = {
    "vertical_strategy": "lines",
    "horizontal_strategy": "lines",
}
RULE_MAX_THICKNESS = 2.5  # points: thicker filled rectangles are backgrounds, not rules
ROW_GAP = 0.8  # empty band (x median text height) that splits a ruled row into text rows
COL_GAP = 1.2  # empty strip (x median text height) that splits a column-spanning cell

TEXT_SETTINGS: dict = {
    "vertical_strategy": "text",
    "horizontal_strategy": "text",
}
# the table detectors whose candidates can be scored against each other (extract_pdf_tables)
DETECTORS: tuple[str, ...] = ("pdfplumber_lattice", "camelot_lattice", "pdfplumber_stream", "camelot_stream")
# the default set leaves camelot's lattice out: on the development corpus it never won (where rules are
# vector lines its grids equal pdfplumber's) and it renders every page without a pdfplumber ruled
# table, about 1 s per page; pass detectors=DETECTORS for rules drawn as images
DEFAULT_DETECTORS: tuple[str, ...] = ("pdfplumber_lattice", "pdfplumber_stream", "camelot_stream")


def _cell(c) -> str:
    return " ".join(str(c).split()) if c is not None else ""


def clean_rows(rows: Iterable[Iterable]) -> list[list[str]]:
    """Whitespace-collapsed strings; fully empty rows and columns removed."""
    grid = [[_cell(c) for c in row] for row in rows]
    grid = [r for r in grid if any(r)]
    if not grid:
        return []
    width = max(len(r) for r in grid)
    grid = [r + [""] * (width - len(r)) for r in grid]
    keep = [j for j in range(width) if any(r[j] for r in grid)]
    return [[r[j] for j in keep] for r in grid]


def _degenerate(rows: list[list[str]]) -> bool:
    if len(rows) < 2 or max((len(r) for r in rows), default=0) < 2:
        return True
    # a 'table' whose rows each hold a single non-empty cell is running text
    multi = sum(1 for r in rows if sum(1 for c in r if c) >= 2)
    return multi < 2


def _has_number(c: str) -> bool:
    return any(ch.isdigit() for ch in c)


def _tabular_blocks(rows: list[list[str]], min_rows: int = 3) -> list[tuple[int, int]]:
    """Runs of consecutive rows that look tabular: at least two filled cells, one of them
    holding a digit; one preceding multi-cell row without digits is taken as the header.

    Text alignment over a whole page also 'finds' columns in running prose; the digit
    condition keeps the line-item / figure blocks and drops the prose."""
    def tabular(r: list[str]) -> bool:
        filled = [c for c in r if c]
        return len(filled) >= 2 and any(_has_number(c) for c in filled)

    blocks: list[tuple[int, int]] = []
    i, n = 0, len(rows)
    while i < n:
        if not tabular(rows[i]):
            i += 1
            continue
        j = i
        while j < n and tabular(rows[j]):
            j += 1
        start = i
        if i > 0 and sum(1 for c in rows[i - 1] if c) >= 2:
            start = i - 1  # header row
        if j - start >= min_rows:
            blocks.append((start, j))
        i = j
    return blocks


def _prose_like(rows: list[list[str]]) -> bool:
    """Justified running text cut into 'columns': many cell boundaries split a word
    (left cell ends in a letter/digit, right cell starts with a lower-case letter)."""
    return prose_share(rows) > 0.25


def _is_rule(obj: dict) -> bool:
    return min(float(obj.get("width", 0)), float(obj.get("height", 0))) <= RULE_MAX_THICKNESS


def _shading_filter(page):
    """A page view without text-highlight boxes.

    Filled rectangles that are thicker than a rule and whose left and right sides line up
    with no vertical rule are backgrounds behind single text lines (e.g. a grey box behind
    every line of a first column); their edges are not cell borders, yet pdfplumber's
    lattice takes every rectangle edge as a ruling and cuts rows and columns at them.
    Rectangles that touch a vertical rule (zebra stripes, filled cells) are kept, and so is
    everything on a page without thin rules."""
    rects = page.rects
    verticals = [float(r["x0"]) for r in rects if _is_rule(r) and float(r["height"]) > float(r["width"])]
    verticals += [float(ln["x0"]) for ln in page.lines if abs(float(ln["x0"]) - float(ln["x1"])) <= RULE_MAX_THICKNESS]
    if not verticals:
        return page

    def aligned(x: float) -> bool:
        return any(abs(x - v) <= 2.0 for v in verticals)

    def keep(obj) -> bool:
        if obj.get("object_type") != "rect" or _is_rule(obj):
            return True
        return aligned(float(obj["x0"])) or aligned(float(obj["x1"]))

    return page.filter(keep)


def _cluster(values: list[float], tol: float = 1.0) -> list[float]:
    out: list[float] = []
    for v in sorted(values):
        if not out or v - out[-1] > tol:
            out.append(v)
    return out


def _slot(bounds: list[float], v: float) -> int:
    """Index of the boundary nearest to ``v``."""
    return min(range(len(bounds)), key=lambda i: abs(bounds[i] - v))


def _lines_of(words: list[dict]) -> list[list[dict]]:
    """Words grouped into text lines (by vertical overlap), each line left to right."""
    lines: list[list[dict]] = []
    for w in sorted(words, key=lambda w: (w["top"], w["x0"])):
        if lines:
            last = lines[-1]
            top = min(x["top"] for x in last)
            bottom = max(x["bottom"] for x in last)
            h = max(bottom - top, 1.0)
            if w["top"] < bottom - 0.4 * h:
                last.append(w)
                continue
        lines.append([w])
    return [sorted(ln, key=lambda w: w["x0"]) for ln in lines]


def _text_of(words: list[dict]) -> str:
    return " ".join(w["text"] for ln in _lines_of(words) for w in ln)


def _gaps(intervals: list[tuple[float, float]], min_gap: float) -> list[float]:
    """Midpoints of the empty stretches >= ``min_gap`` between merged 1-D intervals."""
    merged: list[list[float]] = []
    for a, b in sorted(intervals):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(merged[i][1] + merged[i + 1][0]) / 2 for i in range(len(merged) - 1)
            if merged[i + 1][0] - merged[i][1] >= min_gap]


def _x_groups(words: list[dict], min_gap: float) -> list[list[dict]]:
    """Words of one cell split where a vertical strip of at least ``min_gap`` is empty."""
    cuts = _gaps([(w["x0"], w["x1"]) for w in words], min_gap)
    groups: list[list[dict]] = [[] for _ in range(len(cuts) + 1)]
    for w in words:
        cx = (w["x0"] + w["x1"]) / 2
        groups[sum(1 for c in cuts if cx > c)].append(w)
    return [g for g in groups if g]


def structure_lattice(cells: list[tuple[float, float, float, float]], words: list[dict]) -> list[list[str]]:
    """A cell grid from ruled cell boxes and the words of the page.

    * rows are the ruled rows, each split further where the text of its (single-row)
      cells leaves an empty horizontal band taller than ``ROW_GAP`` x the text height
      (tables that rule only groups of rows, e.g. "Stationary: / Major / Area");
    * a cell spanning several columns whose words form separate blocks (a header
      "2009  2010  2011" over pairs of columns) is split and each block put in the
      column where it starts; otherwise a spanning cell's text sits at its first
      row and column and the covered cells are '' (ICDAR convention)."""
    if not cells:
        return []
    xs = _cluster([c[0] for c in cells] + [c[2] for c in cells])
    ys = _cluster([c[1] for c in cells] + [c[3] for c in cells])
    placed = []
    for c in cells:
        x0, top, x1, bottom = c
        inside = [w for w in words
                  if x0 <= (w["x0"] + w["x1"]) / 2 <= x1 and top <= (w["top"] + w["bottom"]) / 2 <= bottom]
        placed.append(((_slot(ys, top), _slot(ys, bottom), _slot(xs, x0), _slot(xs, x1)), inside))
    all_words = [w for _, ws in placed for w in ws]
    if not all_words:
        return []
    heights = sorted(w["bottom"] - w["top"] for w in all_words)
    h = heights[len(heights) // 2] or 1.0
    # whitespace splits inside ruled rows
    splits: dict[int, list[float]] = {}
    for band in range(len(ys) - 1):
        ws = [w for (r0, r1, _, _), cw in placed if r0 == band and r1 == band + 1 for w in cw]
        cuts = _gaps([(w["top"], w["bottom"]) for w in ws], ROW_GAP * h)
        if cuts:
            splits[band] = cuts
    row_index: dict[tuple[int, int], int] = {}
    n = 0
    for band in range(len(ys) - 1):
        for k in range(len(splits.get(band, [])) + 1):
            row_index[(band, k)] = n
            n += 1
    ncols = max(len(xs) - 1, 1)
    grid: list[list[list[str]]] = [[[] for _ in range(ncols)] for _ in range(n)]
    for (r0, r1, c0, c1), cw in placed:
        if not cw or r1 <= r0 or c1 <= c0:
            continue
        by_row: dict[int, list[dict]] = {}
        for w in cw:
            k = 0
            if r1 == r0 + 1 and r0 in splits:
                cy = (w["top"] + w["bottom"]) / 2
                k = sum(1 for c in splits[r0] if cy > c)
            by_row.setdefault(row_index[(r0, k)], []).append(w)
        for ri, rw in by_row.items():
            groups = _x_groups(rw, COL_GAP * h) if c1 - c0 > 1 else [rw]
            cols = [max(c0, min(c1 - 1, max(i for i in range(len(xs)) if xs[i] <= min(w["x0"] for w in g) + 1.0)))
                    for g in groups]
            if len(set(cols)) < 2:  # one block (e.g. a centred heading): its text at the first column
                grid[ri][c0].append(_text_of(rw))
                continue
            for g, col in zip(groups, cols):
                grid[ri][col].append(_text_of(g))
    return [[" ".join(parts) for parts in row] for row in grid]


def cells_by_word_centre(grid: list[list[tuple[float, float, float, float] | None]], words: list[dict]) -> list[list[str]]:
    """Cell texts of a grid of cell boxes (``None`` = no cell) from the page's words: each word goes
    whole to the cell containing its centre, words of a cell in reading order."""
    out = []
    for row in grid:
        texts = []
        for box in row:
            if box is None:
                texts.append("")
                continue
            x0, top, x1, bottom = box
            inside = [w for w in words
                      if x0 <= (w["x0"] + w["x1"]) / 2 < x1 and top <= (w["top"] + w["bottom"]) / 2 < bottom]
            texts.append(_text_of(inside))
        out.append(texts)
    return out


def _block_bbox(boxes: list[tuple[float, float, float, float]]) -> tuple[float, float, float, float]:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def _text_blocks(raw: list[list], row_boxes: list, detector: str, page_number: int) -> list[Candidate]:
    """Candidates of a grid found by text alignment: its blocks of rows that hold figures
    (:func:`_tabular_blocks`) and do not look like justified prose, each with the box of its rows."""
    out: list[Candidate] = []
    filled = [i for i, r in enumerate(raw) if any(_cell(c) for c in r)]
    rows = clean_rows(raw)  # drops exactly the rows not in `filled`
    for a, b in _tabular_blocks(rows):
        block = clean_rows(rows[a:b])
        if _degenerate(block) or _prose_like(block):
            continue
        bbox = _block_bbox([row_boxes[i] for i in filled[a:b]])
        out.append(Candidate(detector, page_number, block, bbox, ruled=False))
    return out


def _page_candidates(page, settings: dict, detector: str, words: list[dict], text_mode: bool = False,
                     text_flow: bool = False) -> list[Candidate]:
    """pdfplumber's tables of one page as candidates.  `text_flow`: words in content-stream order (a PDF
    made from OCR words writes each word in one piece; sorting by position would interleave the glyphs
    of two overlapping OCR boxes)."""
    out: list[Candidate] = []
    view = page if text_mode else _shading_filter(page)
    if text_flow:
        settings = {**settings, "text_use_text_flow": True}
    for t in view.find_tables(table_settings=settings):
        if text_mode:
            # whole words into the cell that holds their centre: a column edge found by text
            # alignment never cuts a word ('Prijs p | er stu | k')
            raw = cells_by_word_centre([[c for c in r.cells] for r in t.rows], words)
            out += _text_blocks(raw, [r.bbox for r in t.rows], detector, page.page_number)
            continue
        try:
            rows = clean_rows(structure_lattice(list(t.cells), words))
        except Exception as e:  # never lose a table to the refinement step
            log.warning("lattice refinement failed on page %d: %s", page.page_number, e)
            rows = clean_rows(t.extract())
        if not _degenerate(rows):
            out.append(Candidate(detector, page.page_number, rows, tuple(t.bbox), ruled=True))
    return out


def _camelot_tables(pdf_bytes: bytes, pages: list[int], flavor: str) -> list:
    """camelot's tables of the given pages (``flavor`` lattice or stream); [] when camelot is missing
    or fails.  Lattice renders the pages with pypdfium2 (no ghostscript)."""
    if not pages:
        return []
    try:
        import camelot
    except ImportError:  # pragma: no cover - a locked dependency
        return []
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kw = {"backend": "pdfium"} if flavor == "lattice" else {}
            return list(camelot.read_pdf(io.BytesIO(pdf_bytes), pages=",".join(map(str, pages)), flavor=flavor,
                                         suppress_stdout=True, **kw))
    except Exception as e:  # camelot raises on pages without text, odd content streams...
        log.warning("camelot %s failed: %s", flavor, e)
        return []


def _camelot_candidates(t, page, words: list[dict], detector: str) -> list[Candidate]:
    """One camelot table as a candidate, its cell texts read from pdfplumber's words (whole words by
    their centre, as for pdfplumber's own grids) so that every detector sees the same words.

    Lattice: cells joined where camelot found no ruling between them are one spanning cell, then
    refined like pdfplumber's ruled cells (:func:`structure_lattice`).  Stream: the grid of camelot's
    column and row bands."""
    height = float(page.height)
    cols = [(float(a), float(b)) for a, b in t.cols]
    rows_y = [(float(a), float(b)) for a, b in t.rows]  # (y top, y bottom), PDF space (origin bottom left)
    if len(cols) < 2 or len(rows_y) < 2:
        return []
    if detector == "camelot_lattice":
        nr, nc = len(rows_y), len(cols)
        parent = list(range(nr * nc))

        def find(i):
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for r in range(nr):
            for c in range(nc):
                cell = t.cells[r][c]
                if c + 1 < nc and not cell.right:
                    parent[find(r * nc + c + 1)] = find(r * nc + c)
                if r + 1 < nr and not cell.bottom:
                    parent[find((r + 1) * nc + c)] = find(r * nc + c)
        groups: dict[int, list[tuple[int, int]]] = {}
        for r in range(nr):
            for c in range(nc):
                groups.setdefault(find(r * nc + c), []).append((r, c))
        boxes = []
        for members in groups.values():
            r0, r1 = min(r for r, _ in members), max(r for r, _ in members)
            c0, c1 = min(c for _, c in members), max(c for _, c in members)
            boxes.append((cols[c0][0], height - rows_y[r0][0], cols[c1][1], height - rows_y[r1][1]))
        grid = clean_rows(structure_lattice(boxes, words))
    else:
        boxes = [[(x0, height - y_top, x1, height - y_bottom) for x0, x1 in cols] for y_top, y_bottom in rows_y]
        row_boxes = [(cols[0][0], height - y_top, cols[-1][1], height - y_bottom) for y_top, y_bottom in rows_y]
        return _text_blocks(cells_by_word_centre(boxes, words), row_boxes, detector, page.page_number)
    if _degenerate(grid):
        return []
    bbox = (cols[0][0], height - rows_y[0][0], cols[-1][1], height - rows_y[-1][1])
    return [Candidate(detector, page.page_number, grid, bbox, ruled=True)]


def _to_tables(kept: list[Candidate], source: str) -> list[Table]:
    return [Table(page=c.page, rows=c.rows, source=source, bbox=c.bbox) for c in kept]


def extract_pdf_tables(
    pdf_bytes: bytes,
    page_numbers: Iterable[int] | None = None,
    *,
    text_fallback: bool = True,
    text_flow: bool = False,
    detectors: Iterable[str] = DEFAULT_DETECTORS,
) -> list[Table]:
    """Tables of the given 1-based pages (all pages when ``None``).

    Per page, the candidates of every detector (``detectors``, by default ``DEFAULT_DETECTORS``:
    pdfplumber ruled and unruled, camelot stream) are scored by their structure and the best one per table region is kept
    (:func:`idp_assets.logic.table_score.choose`).  Ruled tables (``source="pdf_ruling"``) win: when
    no requested page has a usable ruled table and ``text_fallback`` is set, the pages' unruled
    candidates are chosen from (``source="pdf_text_alignment"``), keeping only blocks of rows that
    hold figures and do not look like justified prose.
    A page that cannot be read is logged and skipped, never raised.
    """
    import pdfplumber

    detectors = set(detectors)
    tables: list[Table] = []
    try:
        pdf = pdfplumber.open(io.BytesIO(pdf_bytes))
    except Exception as e:
        log.warning("pdfplumber cannot open document: %s", e)
        return []
    with pdf:
        n = len(pdf.pages)
        wanted = sorted({p for p in (page_numbers or range(1, n + 1)) if 1 <= p <= n})
        words: dict[int, list[dict]] = {}
        cands: dict[int, list[Candidate]] = {}
        for pno in wanted:
            page = pdf.pages[pno - 1]
            try:
                words[pno] = page.extract_words(keep_blank_chars=False, use_text_flow=text_flow)
                cands[pno] = (_page_candidates(page, LATTICE_SETTINGS, "pdfplumber_lattice", words[pno],
                                               text_flow=text_flow) if "pdfplumber_lattice" in detectors else [])
            except Exception as e:  # pdfminer can choke on odd content streams
                log.warning("ruled-table extraction failed on page %d: %s", pno, e)
                cands[pno] = []
            page.flush_cache()
        # camelot's lattice finds its rules in the rendered page (rules drawn as images too); it is run
        # only on the pages where pdfplumber found no ruled table (on the others it gives the same grids)
        if "camelot_lattice" in detectors:
            for t in _camelot_tables(pdf_bytes, [p for p in wanted if p in words and not cands[p]], "lattice"):
                pno = int(t.page)
                try:
                    cands[pno] += _camelot_candidates(t, pdf.pages[pno - 1], words[pno], "camelot_lattice")
                except Exception as e:
                    log.warning("camelot lattice candidate failed on page %d: %s", pno, e)
        ruled: dict[int, list[Table]] = {
            pno: _to_tables(choose(cands[pno], words.get(pno)), "pdf_ruling") for pno in wanted}
        # A document that rules its tables does so everywhere: text alignment on its other
        # pages only finds prose and page furniture.  Fall back only for documents
        # without any ruled table.
        use_text = text_fallback and not any(ruled.values())
        streams: dict[int, list] = {}
        if use_text and "camelot_stream" in detectors:
            for t in _camelot_tables(pdf_bytes, [p for p in wanted if p in words], "stream"):
                streams.setdefault(int(t.page), []).append(t)
        for pno in wanted:
            found = ruled[pno]
            if not found and use_text:
                page = pdf.pages[pno - 1]
                try:
                    page_cands = []
                    if "pdfplumber_stream" in detectors:
                        page_cands += _page_candidates(page, TEXT_SETTINGS, "pdfplumber_stream", words[pno],
                                                  text_mode=True, text_flow=text_flow)
                    page_cands += [c for t in streams.get(pno, [])
                                   for c in _camelot_candidates(t, page, words[pno], "camelot_stream")]
                    found = _to_tables(choose(page_cands, words[pno]), "pdf_text_alignment")
                except Exception as e:
                    log.warning("text-aligned table extraction failed on page %d: %s", pno, e)
                    found = []
                page.flush_cache()
            tables.extend(found)
    return tables


def einvoice_table(einvoice: dict | None, page: int = 1) -> Table | None:
    """The e-invoice line items as a table (header ``line_id, name, quantity, unit,
    net_unit_price, line_total``), or ``None`` when there are no line items."""
    rows = line_items_rows(einvoice)
    if not rows:
        return None
    return Table(page=page, rows=rows, source="einvoice_xml", bbox=None)


def document_tables(
    pdf_bytes: bytes | None,
    page_numbers: Iterable[int] | None = None,
    einvoice: dict | None = None,
    *,
    pdf_tables_for_einvoice: bool = False,
) -> list[Table]:
    """All tables of a document: the e-invoice line-item table first (when there is
    one), then the tables found on the born-digital pages.

    With an e-invoice table the printed tables are skipped unless
    ``pdf_tables_for_einvoice``: they repeat the same line items less reliably (on the
    development corpus adding them drops e-invoice table F1 from 1.00 to about 0.4)."""
    out: list[Table] = []
    xml_table = einvoice_table(einvoice)
    if xml_table is not None:
        out.append(xml_table)
    if pdf_bytes and (xml_table is None or pdf_tables_for_einvoice):
        out.extend(extract_pdf_tables(pdf_bytes, page_numbers))
    return out


# --------------------------------------------------------------------------- normalisation

# UN/ECE Recommendation 20 unit codes for unit words printed on invoices
UNIT_CODES: dict[str, str] = {
    "stk": "H87", "stk.": "H87", "stück": "H87", "st": "H87", "st.": "H87", "pcs": "H87", "pc": "H87",
    "pce": "H87", "piece": "H87", "pieces": "H87", "x": "H87", "units": "C62", "unit": "C62", "unité": "C62",
    "ea": "EA", "each": "EA", "kg": "KGM", "g": "GRM", "t": "TNE", "l": "LTR", "ltr": "LTR", "liter": "LTR",
    "litre": "LTR", "ml": "MLT", "m": "MTR", "km": "KMT", "cm": "CMT", "mm": "MMT", "m2": "MTK", "m²": "MTK",
    "qm": "MTK", "m3": "MTQ", "m³": "MTQ", "h": "HUR", "std": "HUR", "std.": "HUR", "hour": "HUR",
    "hours": "HUR", "hr": "HUR", "hrs": "HUR", "stunde": "HUR", "stunden": "HUR", "min": "MIN",
    "day": "DAY", "days": "DAY", "tag": "DAY", "tage": "DAY", "night": "DAY", "nights": "DAY",
    "week": "WEE", "woche": "WEE", "month": "MON", "months": "MON", "monat": "MON", "monate": "MON",
    "year": "ANN", "jahr": "ANN", "pauschal": "LS", "psch": "LS", "psch.": "LS", "pauschale": "LS",
    "lump sum": "LS", "kwh": "KWH", "set": "SET", "pack": "PK", "pkg": "PK", "paar": "PR", "pair": "PR",
}
UNECE_CODES = frozenset(UNIT_CODES.values()) | {"C62", "H87", "XPP", "NAR", "ZZ"}

_PERCENT_RX = re.compile(r"^([-+]?\d{1,3}(?:[.,]\d+)?)\s?%$")
_QTY_UNIT_RX = re.compile(r"^([-+]?\d[\d.,]*)\s*([^\d\s][\w.²³/ ]{0,11})$")
_UNIT_QTY_RX = re.compile(r"^([^\d\s][\w.²³]{0,7})\s*([-+]?\d[\d.,]*)$")


def _unit_code(word: str) -> str | None:
    w = " ".join(word.strip().split()).lower()
    if w.upper() in UNECE_CODES:
        return w.upper()
    return UNIT_CODES.get(w) or UNIT_CODES.get(w.rstrip("."))


def normalize_cell(text: str, *, day_first: bool = True) -> dict:
    """The typed reading of one cell: ``{"kind", "value", "currency", "unit"}``.

    ``kind`` is ``percent`` (``19 %``), ``date`` (the whole cell is one date), ``amount``
    (a number with a currency code or symbol), ``quantity`` (a number with a unit word,
    ``unit`` its UN/ECE code), ``number`` (German or English format) or ``text``."""
    s = " ".join((text or "").split())
    out = {"kind": "text", "value": None, "currency": None, "unit": None}
    if not s:
        return out
    m = _PERCENT_RX.match(s)
    if m:
        v = parse_amount(m.group(1), decimal_sep="," if "," in m.group(1) else ".")
        if v is not None:
            return {**out, "kind": "percent", "value": str(v)}
    dates = find_dates(s, day_first=day_first)
    if len(dates) == 1 and len(dates[0].raw.strip()) >= len(s) - 1:
        return {**out, "kind": "date", "value": dates[0].value.isoformat()}
    if any(ch.isdigit() for ch in s):
        v = parse_amount(s)
        if v is not None:
            cur = detect_currency(s)
            return {**out, "kind": "amount" if cur else "number", "value": str(v), "currency": cur}
        for rx, qi, ui in ((_QTY_UNIT_RX, 1, 2), (_UNIT_QTY_RX, 2, 1)):
            m = rx.match(s)
            if m:
                code = _unit_code(m.group(ui))
                q = parse_amount(m.group(qi))
                if code and q is not None:
                    return {**out, "kind": "quantity", "value": str(q), "unit": code}
    return out


def _is_data_row(cells: list[dict], texts: list[str] | None = None) -> bool:
    """A row with a typed cell; years (``2009``) and dates as column titles do not count."""
    for j, c in enumerate(cells):
        if c["kind"] == "text":
            continue
        raw = (texts[j] if texts else "").strip()
        if c["kind"] == "number" and re.fullmatch(r"(?:19|20)\d{2}", raw):
            continue
        return True
    return False


def detect_header_rows(rows: list[list[str]], typed: list[list[dict]] | None = None, max_rows: int = 3) -> int:
    """Leading rows without any typed (numeric/date) cell, followed by a row that has one;
    0 when the table starts with data or never has typed cells."""
    typed = typed or [[normalize_cell(c) for c in r] for r in rows]
    n = 0
    for r, cells in zip(rows, typed):
        if n >= max_rows or _is_data_row(cells, r) or not any(r):
            break
        n += 1
    if n == len(rows) or n == 0:
        return 0
    return n


def column_names(rows: list[list[str]], header_rows: int) -> list[str]:
    """Column names: the header rows' texts per column (a spanning header's text is
    carried to the columns it covers when they have no header text of their own)."""
    if not rows:
        return []
    width = max(len(r) for r in rows)
    names = [""] * width
    for r in rows[:header_rows]:
        carry = ""
        for j in range(width):
            c = r[j] if j < len(r) else ""
            if c:
                carry = c
                names[j] = (names[j] + " " + c).strip()
            elif carry and not names[j]:
                names[j] = carry
    return names


# header keywords per line-item role (checked in this order; stronger, more specific first)
_ROLE_PATTERNS: list[tuple[str, re.Pattern, float]] = [
    ("unit_price", re.compile(r"(?i)unit[ _]?price|einzelpreis|e-?preis|stückpreis|prix[ _]unitaire|"
                              r"vk-?preis|\bp\.?u\.?\b|eenheidsprijs"), 0.95),
    ("line_total", re.compile(r"(?i)line[ _]?total|gesamt(?:preis|betrag)?|zeilenbetrag|amount|betrag|bedrag|"
                              r"montant|total|summe|subtotal|netto(?:betrag)?"), 0.9),
    ("tax_rate", re.compile(r"(?i)mwst|ust\b|vat|tax|btw|tva|steuer"), 0.85),
    ("quantity", re.compile(r"(?i)quantity|qty|menge|anzahl|anz\.?|quantit[ée]|qt[ée]|hoeveelheid|aantal|"
                            r"\bstk\b|\bunits?\b(?=.*\d)?"), 0.9),
    ("unit", re.compile(r"(?i)^(?:unit|einheit|me|eh|uom|unit[ée]|eenheid)$"), 0.9),
    ("unit_price", re.compile(r"(?i)price|preis|prix|prijs|rate|tarif"), 0.75),
    ("description", re.compile(r"(?i)description|beschreibung|bezeichnung|artikel|article|item|produkt|product|"
                               r"leistung|omschrijving|d[ée]signation|libell[ée]|name|text|service|position"), 0.85),
]
_NUMERIC_ROLES = ("quantity", "unit_price", "line_total", "tax_rate")
# vocabulary line column (idp_assets/logic/data/invoice_labels.json, EN 16931 line terms) -> role
_VOCAB_ROLES = {"name": "description", "quantity": "quantity", "unit": "unit", "net_unit_price": "unit_price",
                "line_total": "line_total", "vat_rate": "tax_rate"}


def map_columns(names: list[str]) -> dict[str, tuple[int, float]]:
    """Line-item role -> (column, header match strength), each column used once."""
    scores: list[tuple[float, str, int]] = []
    for j, name in enumerate(names):
        if not name:
            continue
        if name.strip() in _VOCAB_ROLES:  # the semantic column name itself (the e-invoice table's header)
            scores.append((0.95, _VOCAB_ROLES[name.strip()], j))
            continue
        n0 = len(scores)
        for role, rx, w in _ROLE_PATTERNS:
            if rx.search(name):
                scores.append((w, role, j))
        if len(scores) == n0:
            # else the EN 16931 line terms (BT-126 ... BT-153) of the label vocabulary, all languages
            col = _VOCAB_ROLES.get((line_column(name) or ("",))[0])
            if col:
                scores.append((0.85, col, j))
    out: dict[str, tuple[int, float]] = {}
    used: set[int] = set()
    for w, role, j in sorted(scores, key=lambda x: -x[0]):
        if role in out or j in used:
            continue
        out[role] = (j, w)
        used.add(j)
    return out


def map_line_items(rows: list[list[str]], header_rows: int, typed: list[list[dict]]) -> list[dict]:
    """Rows under the header mapped to ``{description, quantity, unit, unit_price,
    line_total, tax_rate}``; each value ``{"value", "text", "confidence"}``.

    Confidence per cell = header match strength x type agreement (a numeric role whose
    cell does not parse counts 0.4) x arithmetic agreement (quantity x unit price =
    line total within a cent confirms all three: x1.0, contradicts: x0.6, unknown: x0.85).
    Rows without a description or an amount (subtotal lines, spacers) are skipped."""
    cols = map_columns(column_names(rows, header_rows))
    if "description" not in cols or not ({"line_total", "unit_price"} & set(cols)):
        return []
    items = []
    for i in range(header_rows, len(rows)):
        row, trow = rows[i], typed[i]
        vals: dict[str, dict] = {}
        for role, (j, w) in cols.items():
            if j >= len(row) or not row[j]:
                continue
            t = trow[j]
            if role in _NUMERIC_ROLES:
                ok = t["kind"] in ("number", "amount", "percent", "quantity")
                value = t["value"] if ok else None
                agree = 1.0 if ok else 0.4
            elif role == "unit":
                value = _unit_code(row[j]) or row[j]
                agree = 1.0 if _unit_code(row[j]) else 0.6
            else:
                value, agree = row[j], 1.0 if t["kind"] == "text" else 0.5
            if role == "quantity" and t.get("unit") and "unit" not in vals:
                vals["unit"] = {"value": t["unit"], "text": row[j], "confidence": round(w * 0.8, 4)}
            vals[role] = {"value": value, "text": row[j], "confidence": w * agree}
        if "description" not in vals or not any(vals.get(k, {}).get("value") for k in ("line_total", "unit_price")):
            continue
        arith = 0.85
        try:
            q, p, tot = (Decimal(vals[k]["value"]) for k in ("quantity", "unit_price", "line_total"))
            arith = 1.0 if abs(q * p - tot) <= Decimal("0.01") else 0.6
        except (KeyError, TypeError, ArithmeticError, ValueError):
            pass
        for k in ("quantity", "unit_price", "line_total"):
            if k in vals:
                vals[k]["confidence"] = round(max(0.01, min(1.0, vals[k]["confidence"] * arith)), 4)
        for v in vals.values():
            v["confidence"] = round(max(0.01, min(1.0, v["confidence"])), 4)
        items.append({"row": i, **vals})
    return items


def normalize_table(table: Table) -> Table:
    """The table with typed cells, header rows, column names and line items filled in;
    ``rows`` (the printed cell texts) stay as they are."""
    rows = table.rows
    typed = [[normalize_cell(c) for c in r] for r in rows]
    header = 1 if table.source == "einvoice_xml" else detect_header_rows(rows, typed)
    cells = [NormalizedCell(row=i, col=j, text=c, **typed[i][j])
             for i, r in enumerate(rows) for j, c in enumerate(r) if c]
    items = [LineItem(**it) for it in map_line_items(rows, header, typed)] if header else []
    return table.model_copy(update={"header_rows": header, "columns": column_names(rows, header),
                                    "cells": cells, "line_items": items})


def pdf_layout_text(pdf_bytes: bytes, page_numbers: Iterable[int] | None = None) -> list[str]:
    """Per page (all pages, '' for pages not asked for), the words in visual line order
    (pdfplumber), so that a label and the value printed beside it share a line."""
    import pdfplumber

    try:
        pdf = pdfplumber.open(io.BytesIO(pdf_bytes))
    except Exception as e:
        log.warning("pdfplumber cannot open document: %s", e)
        return []
    out: list[str] = []
    with pdf:
        wanted = set(page_numbers) if page_numbers is not None else None
        for i, page in enumerate(pdf.pages, start=1):
            text = ""
            if wanted is None or i in wanted:
                try:
                    text = page.extract_text() or ""
                except Exception as e:
                    log.warning("layout text failed on page %d: %s", i, e)
                page.flush_cache()
            out.append(text)
    return out


def ocr_layout_text(words) -> str:
    """The OCR words (:class:`~idp_assets.models.OcrWord`) of one page in visual line order, so that a
    label and the value printed beside it share a line even where the engine read the page column by
    column ('Name:' ... 'Lieferant GmbH')."""
    ws = [{"text": w.text, "x0": w.bbox[0], "top": w.bbox[1], "x1": w.bbox[2], "bottom": w.bbox[3]}
          for w in words or () if w.text and w.text.strip()]
    return "\n".join(" ".join(w["text"] for w in ln) for ln in _lines_of(ws))
