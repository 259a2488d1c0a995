"""CSV exports of an export record: one file of header fields, one of line items.

UTF-8; ``delimiter=";"`` with ``decimal_comma=True`` gives files German Excel opens
directly (amounts written ``1234,56``); ``bom=True`` prefixes a UTF-8 byte-order mark so
Excel detects the encoding.
"""

from __future__ import annotations

import csv
import io

from .numbers import parse_amount

__all__ = ["FIELD_COLUMNS", "LINE_COLUMNS", "fields_csv", "line_items_csv"]

FIELD_COLUMNS = ["document_id", "field", "value", "confidence", "source", "page", "raw"]
LINE_COLUMNS = ["document_id", "table", "row", "description", "quantity", "unit", "unit_price", "line_total",
                "tax_rate", "confidence"]
_AMOUNT_FIELDS = {"total", "net_total", "tax_total"}
_NUMERIC_ROLES = {"quantity", "unit_price", "line_total", "tax_rate"}


def _num(value, decimal_comma: bool) -> str:
    if value in (None, ""):
        return ""
    s = str(value)
    if decimal_comma and parse_amount(s) is not None:
        return s.replace(".", ",")
    return s


def _write(rows: list[list], delimiter: str, bom: bool) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    w.writerows(rows)
    return (("\ufeff" if bom else "") + buf.getvalue()).encode("utf-8")


def fields_csv(record: dict, *, delimiter: str = ",", decimal_comma: bool = False, bom: bool = False) -> bytes:
    """One row per extracted field (``FIELD_COLUMNS``)."""
    rows: list[list] = [FIELD_COLUMNS]
    for name, f in sorted((record.get("fields") or {}).items()):
        value = f.get("value")
        conf = f.get("confidence")
        rows.append([record.get("document_id") or "", name,
                     _num(value, decimal_comma) if name in _AMOUNT_FIELDS else (value or ""),
                     _num(conf, decimal_comma), f.get("source") or "", f.get("page") or "", f.get("raw") or ""])
    return _write(rows, delimiter, bom)


def line_items_csv(record: dict, *, delimiter: str = ",", decimal_comma: bool = False, bom: bool = False) -> bytes:
    """One row per mapped line item of every table (``LINE_COLUMNS``); ``confidence`` is
    the lowest cell confidence of the row."""
    rows: list[list] = [LINE_COLUMNS]
    for ti, t in enumerate(record.get("tables") or []):
        for li in t.get("line_items") or []:
            cells = {k: li.get(k) for k in LINE_COLUMNS[3:9]}
            confs = [c["confidence"] for c in cells.values() if isinstance(c, dict)]
            rows.append([record.get("document_id") or "", ti, li.get("row", "")]
                        + [(_num(c.get("value"), decimal_comma) if k in _NUMERIC_ROLES else c.get("value") or "")
                           if isinstance(c, dict) else "" for k, c in cells.items()]
                        + [_num(min(confs), decimal_comma) if confs else ""])
    return _write(rows, delimiter, bom)
