"""Bounds on text, so that no stage's work grows faster than the input.

Hostile text inputs are one huge line (a 4 MB CSV without a newline), megabytes of
HTML, or 100,000 repetitions of a label.  Every per-line rule (field regexes,
chunking, entities) is linear in the number of lines but may be quadratic in the
length of one line; so:

* :func:`wrap_long_lines` cuts lines longer than :data:`MAX_LINE_CHARS` at whitespace
  (every character is kept; a real document never has such lines);
* text formats (CSV, HTML, Markdown) above :func:`office_text_max_bytes` skip docling,
  whose converters take a minute for a few MB, and are read by linear stdlib parsers
  (:func:`csv_fast`, :func:`html_text`);
* :func:`bounded` caps the text a rule engine looks at (:data:`MAX_RULE_CHARS`).
"""

from __future__ import annotations

import csv
import io
import os
from html.parser import HTMLParser

MAX_LINE_CHARS = 4000
MAX_RULE_CHARS = 1_000_000
DEFAULT_OFFICE_TEXT_MAX_BYTES = 1_000_000
MAX_TABLE_CELLS = 100_000
MAX_TABLE_COLUMNS = 500


def office_text_max_bytes() -> int:
    """CSV/HTML/Markdown larger than this are read without docling (IDP_OFFICE_TEXT_MAX_BYTES)."""
    return int(os.environ.get("IDP_OFFICE_TEXT_MAX_BYTES") or DEFAULT_OFFICE_TEXT_MAX_BYTES)


def longest_line(text: str) -> int:
    longest = start = 0
    while True:
        end = text.find("\n", start)
        if end < 0:
            return max(longest, len(text) - start)
        longest = max(longest, end - start)
        start = end + 1


def wrap_long_lines(text: str, max_chars: int = MAX_LINE_CHARS) -> str:
    """Lines longer than `max_chars` split at the last whitespace before the limit (or hard cut);
    linear in the text length, text without such lines returned unchanged."""
    if not text or longest_line(text) <= max_chars:
        return text
    out: list[str] = []
    for line in text.split("\n"):
        start, n = 0, len(line)
        while n - start > max_chars:
            cut = line.rfind(" ", start + max_chars // 2, start + max_chars)
            if cut < 0:
                cut = start + max_chars
            out.append(line[start:cut].rstrip())
            start = cut + 1 if line[cut:cut + 1] == " " else cut
        out.append(line[start:])
    return "\n".join(out)


def bounded(text: str, max_chars: int = MAX_RULE_CHARS) -> str:
    """At most `max_chars` characters of `text`, cut at a line end where possible."""
    if len(text) <= max_chars:
        return text
    cut = text.rfind("\n", 0, max_chars)
    return text[: cut if cut > max_chars // 2 else max_chars]


def csv_fast(text: str) -> tuple[str, list[list[str]]]:
    """(text, tables) of a big CSV without docling: rows as ` | `-joined lines, one table grid
    when it is a real table (2+ rows, at most MAX_TABLE_COLUMNS columns, MAX_TABLE_CELLS cells)."""
    sample = text[:65536]
    delim = max((",", ";", "\t"), key=lambda d: sample.count(d))
    rows: list[list[str]] = []
    lines: list[str] = []
    cells = 0
    try:
        csv.field_size_limit(max(csv.field_size_limit(), 1 << 24))
        for row in csv.reader(io.StringIO(text), delimiter=delim):
            lines.append(" | ".join(c.strip() for c in row))
            if cells <= MAX_TABLE_CELLS:
                rows.append([c.strip() for c in row][:MAX_TABLE_COLUMNS])
                cells += len(row)
    except csv.Error:
        return text, []
    table_ok = len(rows) > 1 and cells <= MAX_TABLE_CELLS and max(len(r) for r in rows) <= MAX_TABLE_COLUMNS
    return "\n".join(lines), ([rows] if table_ok else [])


_BLOCK_TAGS = {"p", "div", "br", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5", "h6", "section",
               "article", "header", "footer", "pre", "blockquote", "dt", "dd", "hr", "address"}
_CELL_TAGS = {"td", "th"}
_SKIP_TAGS = {"script", "style", "head", "template", "noscript"}


class _TextParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in _SKIP_TAGS:
            self.skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")
        elif tag in _CELL_TAGS:
            self.parts.append(" | ")

    def handle_endtag(self, tag):
        if tag in _SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def html_text(html: str) -> str:
    """Visible text of an HTML document (stdlib parser, linear), block elements on their own lines."""
    parser = _TextParser()
    parser.feed(html)
    parser.close()
    lines = (" ".join(ln.split()) for ln in "".join(parser.parts).split("\n"))
    return "\n".join(ln for ln in lines if ln)


def bounded_pages(texts: list[str], max_chars: int = MAX_RULE_CHARS) -> list[str]:
    """Page texts cut to `max_chars` in all: the first pages (3/4 of the budget) and the last pages
    (the rest), where totals are printed; pages in between become ''.  Unchanged when within."""
    if sum(len(t or "") for t in texts) <= max_chars:
        return list(texts)
    out = [""] * len(texts)
    head = max_chars * 3 // 4
    used = 0
    i = 0
    while i < len(texts) and used < head:
        out[i] = bounded(texts[i] or "", head - used)
        used += len(out[i])
        i += 1
    first_unused = i
    j = len(texts) - 1
    while j >= first_unused and used < max_chars:
        t = texts[j] or ""
        room = max_chars - used
        out[j] = t if len(t) <= room else t[len(t) - room:]
        used += len(out[j])
        j -= 1
    return out
