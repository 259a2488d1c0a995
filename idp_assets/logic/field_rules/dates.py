"""Dates: the invoice (issue) date, with OCR digit repair, and the due date."""

from __future__ import annotations

import re
from datetime import date, timedelta

from idp_assets.logic.field_rules.candidates import Candidate, _after, _labels
from idp_assets.logic.field_rules.labels import label_patterns, payment_terms_days
from idp_assets.logic.numbers import find_dates


_DATE_LABELS = label_patterns("date")  # idp_assets/logic/data/invoice_labels.json
_NOT_ISSUE_DATE = re.compile(
    r"(?i)(?:Leistungs|Liefer|Bestell|Order|Lieferschein|Auftrag|Vertrags|Versand|Zahlungs|Buchungs)[- ]?(?:datum|date)"
    r"|Leistungszeitraum|Zeitraum|Due|F[äa]llig|Vervaldatum|[ée]ch[ée]ance|Check[ \t]*(?:In|Out)|Period|Termin|"
    r"Geburts|Orderdatum|valid|g[üu]ltig|expir|bis[ \t]*(?:zum)?$|"
    r"deliver|Lieferung|livraison|levering|consegna|entrega|shipp?(?:ed|ing|ment)|Versand"
)


_INVOICE_CONTEXT = re.compile(r"(?i)rechnung|invoice|facture|factuur|gutschrift|beleg|(?:nr|no)\.?[ \t]*[:#]?[ \t]*\S*\d")


def _dates_in(text: str, today: date) -> list:
    return find_dates(text, today=today)


def _date_ok(d: date, today: date) -> bool:
    return date(1980, 1, 1) <= d <= today


# digits OCR commonly mistakes for the right one on receipts (read -> possibly meant)
_DIGIT_CONFUSIONS = {"4": "1", "6": "0", "8": "0", "7": "1", "9": "0", "5": "6"}
_BROKEN_DATE = re.compile(r"^[\s:.\-]*(\d{1,2})[ \t]*([/.\-])[ \t]*(\d{1,2})[ \t]*\2[ \t]*((?:19|20)\d{2}|\d{2})(?!\d)")
OCR_REPAIR_WEIGHT = 0.6


def _repair_date(rest: str, today: date) -> tuple[date, str] | None:
    """A labelled day-first date whose day or month is impossible (``45/07/2017``,
    ``30/64/2018``) read again with one common OCR digit confusion undone; only when
    exactly one reading is a valid date not in the future."""
    m = _BROKEN_DATE.match(rest)
    if not m:
        return None
    dd, mm, yy = m.group(1), m.group(3), m.group(4)
    year = int(yy) if len(yy) == 4 else 2000 + int(yy)
    if 1 <= int(dd) <= 31 and 1 <= int(mm) <= 12:
        return None  # not broken (the date parser rejected it for another reason)
    found = set()
    for part in ("d", "m"):
        s = dd if part == "d" else mm
        for i, ch in enumerate(s):
            alt = _DIGIT_CONFUSIONS.get(ch)
            if alt is None:
                continue
            fixed = s[:i] + alt + s[i + 1:]
            d_, m_ = (fixed, mm) if part == "d" else (dd, fixed)
            try:
                value = date(year, int(m_), int(d_))
            except ValueError:
                continue
            if value <= today:
                found.add(value)
    if len(found) != 1:
        return None
    return found.pop(), m.group(0).strip(" :.-")


def _date_candidates(lines, today: date) -> list[Candidate]:
    out: list[Candidate] = []
    for k, (pno, li, ln) in enumerate(lines):
        labelled_spans = []
        for rx, w in _DATE_LABELS:
            for m in rx.finditer(ln):
                before = ln[max(0, m.start() - 25): m.end()]
                if _NOT_ISSUE_DATE.search(before):
                    continue
                if w < 0.5 and not (_INVOICE_CONTEXT.search(ln[: m.start()]) or (
                        not ln[: m.start()].strip() and k > 0 and lines[k - 1][0] == pno
                        and _INVOICE_CONTEXT.search(lines[k - 1][2]))):
                    continue  # 'vom' / 'du' only right after an invoice reference (same or previous line)
                rest = _after(ln, m)
                ds = _dates_in(rest, today)
                if ds and _NOT_ISSUE_DATE.search(rest[: ds[0].start]):
                    continue  # 'Date of delivery 10.11.2020'
                if ds and ds[0].start <= 40:
                    d = ds[0]
                    out.append(Candidate(d.value.isoformat(), d.raw, pno, li, "label", w, _date_ok(d.value, today)))
                    labelled_spans.append(m.end() + d.start)
                    continue
                fixed = _repair_date(rest, today)
                if fixed is not None:
                    out.append(Candidate(fixed[0].isoformat(), fixed[1], pno, li, "label_ocr_repair", w * OCR_REPAIR_WEIGHT,
                                         _date_ok(fixed[0], today)))
                    continue
                if rest.strip(" :") == "":
                    for off, f in ((1, 0.8), (2, 0.55)):
                        if k + off < len(lines) and lines[k + off][0] == pno:
                            ds = _dates_in(lines[k + off][2], today)
                            if ds:
                                d = ds[0]
                                out.append(
                                    Candidate(
                                        d.value.isoformat(), d.raw, pno, lines[k + off][1], "label_next_line",
                                        w * f, _date_ok(d.value, today),
                                    )
                                )
                                break
        # every other date: weak evidence (first ones on the document a bit more)
        for d in _dates_in(ln, today):
            if d.start in labelled_spans:
                continue
            if _NOT_ISSUE_DATE.search(ln[max(0, d.start - 30): d.start]):
                continue
            w = 0.3 if not out and k < 40 else 0.15
            out.append(Candidate(d.value.isoformat(), d.raw, pno, li, "first_date" if w > 0.2 else "any_date", w,
                                 _date_ok(d.value, today)))
    return out


_DUE_LABELS = label_patterns("due_date") + _labels(
    [(r"(?:zahlbar|[üu]berweisen)[^\n]{0,50}?bis(?:[ \t]*zum)?", 0.7)]  # 'zahlbar ohne Abzug bis zum <date>'
)


def _due_date_candidates(lines, today: date) -> list[Candidate]:
    out: list[Candidate] = []
    for k, (pno, li, ln) in enumerate(lines):
        for rx, w in _DUE_LABELS:
            for m in rx.finditer(ln):
                rest = _after(ln, m)
                ds = find_dates(rest, today=today)
                if ds and ds[0].start <= 30:
                    out.append(Candidate(ds[0].value.isoformat(), ds[0].raw, pno, li, "label", w))
                elif k + 1 < len(lines) and lines[k + 1][0] == pno:
                    # label alone: value below; label a column header ('Beschreibung Fälligkeit
                    # Teilzahlung'): the first date of the row below, more weakly
                    alone = rest.strip(" :") == ""
                    if not alone and find_dates(rest, today=today):
                        continue
                    ds = find_dates(lines[k + 1][2], today=today)
                    if ds:
                        out.append(Candidate(ds[0].value.isoformat(), ds[0].raw, pno, lines[k + 1][1],
                                             "label_next_line" if alone else "label_column", w * (0.8 if alone else 0.6)))
    return out


def _payment_terms_candidates(lines, issue_date: str | None) -> list[Candidate]:
    """'zahlbar innerhalb von 14 Tagen' / 'payable within 30 days' (vocabulary ``payment_terms``):
    due date = issue date + N days."""
    if not issue_date:
        return []
    try:
        start = date.fromisoformat(issue_date)
    except ValueError:
        return []
    out = []
    for pno, li, ln in lines:
        got = payment_terms_days(ln)
        if got:
            days, raw = got
            out.append(Candidate((start + timedelta(days=days)).isoformat(), raw, pno, li, "payment_terms", 0.6))
    return out
