"""A readable view of an XML e-invoice: a small born-digital PDF (A4, standard fonts, WinAnsi
text, so it has a complete text layer) written without extra dependencies.

The platform treats it like any other PDF page: page images and thumbnails are rendered from
it, its text layer feeds OCR routing, fields and embeddings.  Monospaced columns keep the line
table aligned; characters outside Windows-1252 print as ``?``.
"""

from __future__ import annotations

import textwrap
import zlib

from .model import Invoice, Party

__all__ = ["render_pdf", "view_lines"]

PAGE_W, PAGE_H = 595, 842  # A4 in points
MARGIN = 40
SIZE = 8.5
LEADING = 11
COLS = int((PAGE_W - 2 * MARGIN) / (0.6 * SIZE))  # Courier is 0.6 em wide
ROWS = int((PAGE_H - 2 * MARGIN) / LEADING)

TYPE_NAMES = {"380": "Invoice", "381": "Credit note", "384": "Corrected invoice", "389": "Self-billed invoice",
              "326": "Partial invoice", "751": "Invoice information", "875": "Partial construction invoice",
              "876": "Partial final construction invoice", "877": "Final construction invoice"}
MEANS_NAMES = {"30": "credit transfer", "31": "debit transfer", "42": "payment to bank account", "48": "card",
               "49": "direct debit", "57": "standing agreement", "58": "SEPA credit transfer",
               "59": "SEPA direct debit", "1": "not defined", "10": "cash", "20": "cheque", "97": "clearing"}


def _wrap(text: str, width: int = COLS, indent: str = "") -> list[str]:
    out = []
    for para in (text or "").splitlines() or [""]:
        out.extend(textwrap.wrap(" ".join(para.split()), width=width, initial_indent=indent,
                                 subsequent_indent=indent) or ([indent] if para.strip() == "" else []))
    return out


def _party_lines(title: str, p: Party | None) -> list[tuple[str, str]]:
    if p is None or not any(p.model_dump(exclude_none=True, exclude_defaults=True).values()):
        return []
    out = [("h", title)]
    for ln in (p.name or "").splitlines():
        if ln.strip():
            out.append(("t", ln.strip()))
    if p.trading_name:
        out.append(("t", f"Trading name: {p.trading_name}"))
    a = p.address
    if a is not None:
        for ln in (a.line1, a.line2, a.line3):
            if ln:
                out.append(("t", ln))
        city = " ".join(x for x in (a.postcode, a.city) if x)
        if city or a.country or a.subdivision:
            out.append(("t", ", ".join(x for x in (city, a.subdivision, a.country) if x)))
    for label, value in (("VAT ID", p.vat_id), ("Tax number", p.tax_number),
                         ("Legal registration", p.legal_id.value if p.legal_id else None),
                         ("Identifier", ", ".join(i.value for i in p.ids) or None),
                         ("Electronic address", p.endpoint.value if p.endpoint else None), ("Legal info", p.legal_info)):
        if value:
            out.extend(("t", w) for w in _wrap(f"{label}: {value}"))
    c = p.contact
    if c is not None:
        out.append(("t", "Contact: " + ", ".join(x for x in (c.name, c.phone, c.email) if x)))
    out.append(("t", ""))
    return out


def view_lines(inv: Invoice, source: str = "") -> list[tuple[str, str]]:
    """The view as ``(style, text)`` lines; style ``T`` title, ``h`` heading, ``t`` text."""
    cur = inv.currency or ""
    kind = TYPE_NAMES.get(inv.type_code or "", "Invoice")
    out: list[tuple[str, str]] = [("T", f"{kind} {inv.number or ''}".strip())]
    head = [("Invoice number", inv.number), ("Invoice date", inv.issue_date), ("Due date", inv.due_date),
            ("Type code", inv.type_code), ("Currency", inv.currency), ("Delivery date", inv.delivery_date),
            ("Period", " - ".join(x or "" for x in (inv.period.start, inv.period.end)) if inv.period else None),
            ("Buyer reference", inv.buyer_reference), ("Order reference", inv.order_reference),
            ("Sales order", inv.sales_order_reference), ("Contract", inv.contract_reference),
            ("Project", inv.project_reference), ("Despatch advice", inv.despatch_advice),
            ("Preceding invoice", ", ".join(f"{p.id} {p.date or ''}".strip() for p in inv.preceding_invoices) or None)]
    out += [("t", f"{k}: {v}") for k, v in head if v]
    out.append(("t", ""))
    out += _party_lines("Seller", inv.seller)
    out += _party_lines("Buyer", inv.buyer)
    out += _party_lines("Payee", inv.payee)
    out += _party_lines("Deliver to", inv.deliver_to)
    if inv.lines:
        out.append(("h", "Invoice lines"))
        out.append(("t", f"{'Pos':<5}{'Item':<40}{'Quantity':>12} {'Unit':<5}{'Net price':>13}{'Net amount':>13} VAT"))
        for li in inv.lines:
            name = " ".join((li.name or "").split())
            first = True
            for chunk in (textwrap.wrap(name, 38) or [""]):
                if first:
                    vat = f"{li.tax_category or ''} {li.tax_rate + ' %' if li.tax_rate else ''}".strip()
                    out.append(("t", f"{(li.id or '')[:4]:<5}{chunk:<40}{li.quantity or '':>12} {(li.unit or '')[:4]:<5}"
                                     f"{li.net_price or '':>13}{li.net_amount or '':>13} {vat}"))
                    first = False
                else:
                    out.append(("t", f"{'':<5}{chunk}"))
            for extra in (li.description, li.note):
                if extra:
                    out.extend(("t", w) for w in _wrap(extra, COLS - 5, " " * 5))
            for ac in li.allowances_charges:
                out.append(("t", f"     {'Charge' if ac.charge else 'Allowance'} {ac.amount or ''} {ac.reason or ''}"))
        out.append(("t", ""))
    if inv.allowances_charges:
        out.append(("h", "Allowances and charges"))
        for ac in inv.allowances_charges:
            out.append(("t", f"{'Charge' if ac.charge else 'Allowance'}: {ac.amount or ''} {cur}  {ac.reason or ''}"
                             f"  (VAT {ac.category or ''} {ac.rate or ''})"))
        out.append(("t", ""))
    if inv.tax_breakdown:
        out.append(("h", "VAT breakdown"))
        for tb in inv.tax_breakdown:
            line = f"Category {tb.category} {tb.rate or ''} %: basis {tb.basis or ''} {cur}, VAT {tb.amount or ''} {cur}"
            out.extend(("t", w) for w in _wrap(line + (f" ({tb.exemption_reason})" if tb.exemption_reason else "")))
        out.append(("t", ""))
    t = inv.totals
    totals = [("Sum of line net amounts", t.line_total), ("Allowances", t.allowance_total), ("Charges", t.charge_total),
              ("Total without VAT", t.tax_exclusive), ("VAT total", t.tax_total),
              ("Total with VAT", t.tax_inclusive), ("Prepaid", t.prepaid), ("Rounding", t.rounding),
              ("Amount due", t.payable)]
    if any(v for _, v in totals):
        out.append(("h", "Totals"))
        out += [("t", f"{k:<28}{v:>16} {cur}") for k, v in totals if v]
        out.append(("t", ""))
    if inv.payment_means or inv.payment_terms or inv.remittance_info:
        out.append(("h", "Payment"))
        for pm in inv.payment_means:
            bits = [MEANS_NAMES.get(pm.code, f"code {pm.code}")]
            bits += [f"IBAN {pm.account_id}" if pm.account_id else "", f"BIC {pm.bic}" if pm.bic else "",
                     pm.account_name or "", f"card {pm.card_pan}" if pm.card_pan else ""]
            out.extend(("t", w) for w in _wrap("Payment means: " + ", ".join(b for b in bits if b)))
        if inv.remittance_info:
            out.append(("t", f"Remittance information: {inv.remittance_info}"))
        if inv.payment_terms:
            out.extend(("t", w) for w in _wrap(f"Payment terms: {inv.payment_terms}"))
        out.append(("t", ""))
    if inv.notes:
        out.append(("h", "Notes"))
        for n in inv.notes:
            out.extend(("t", w) for w in _wrap(n.content))
        out.append(("t", ""))
    if inv.documents:
        out.append(("h", "Supporting documents"))
        for d in inv.documents:
            size = f", {len(d.content) * 3 // 4} bytes attached" if d.content else ""
            out.extend(("t", w) for w in _wrap(f"{d.id}: {d.description or ''} {d.filename or ''} {d.mime or ''}"
                                               f"{size} {d.uri or ''}"))
    if source:
        out.append(("t", ""))
        out.extend(("s", w) for w in _wrap(source))
    return out


def _pdf_text(s: str) -> bytes:
    raw = s.encode("cp1252", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _page_stream(lines: list[tuple[str, str]]) -> bytes:
    parts = [b"BT"]
    y = PAGE_H - MARGIN
    for style, text in lines:
        font, size = {"T": (b"/F2", 14), "h": (b"/F2", 10)}.get(style, (b"/F1", SIZE))
        if style == "s":
            font, size = b"/F3", 7
        parts.append(font + b" %g Tf 1 0 0 1 %d %g Tm (" % (size, MARGIN, y) + _pdf_text(text) + b") Tj")
        y -= LEADING + (6 if style == "T" else 0)
    parts.append(b"ET")
    return b"\n".join(parts)


def render_pdf(inv: Invoice, source: str = "") -> bytes:
    """PDF bytes of the view (one or more A4 pages)."""
    lines = view_lines(inv, source)
    pages, cur, used = [], [], 0
    for ln in lines:
        h = 2 if ln[0] == "T" else 1
        if used + h > ROWS - 1 and cur:
            pages.append(cur)
            cur, used = [], 0
        cur.append(ln)
        used += h
    pages.append(cur)
    objs: list[bytes] = []

    def add(body: bytes) -> int:
        objs.append(body)
        return len(objs)

    catalog = add(b"")  # filled once the page tree exists
    tree = add(b"")
    fonts = [add(b"<< /Type /Font /Subtype /Type1 /BaseFont /%s /Encoding /WinAnsiEncoding >>" % name)
             for name in (b"Courier", b"Helvetica-Bold", b"Helvetica")]
    kids = []
    for content in pages:
        stream = zlib.compress(_page_stream(content))
        c = add(b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream")
        kids.append(add(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %d %d] /Contents %d 0 R "
                        b"/Resources << /Font << /F1 %d 0 R /F2 %d 0 R /F3 %d 0 R >> >> >>"
                        % (tree, PAGE_W, PAGE_H, c, *fonts)))
    objs[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % tree
    objs[tree - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), len(kids))
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, catalog, xref)
    return bytes(out)
