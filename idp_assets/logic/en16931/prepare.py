"""Getting an invoice ready for a CII / UBL export, and saying what it still lacks.

* :func:`for_export` - a copy with the terms EN 16931 *derives* filled in where the source leaves
  them out (each derivation is listed): line ids numbered, the VAT category of a line taken from
  the only VAT category of the invoice, a standard-rated category for a positive rate, the net
  price of a line as net amount / quantity when that division is exact, document totals by
  their defining formulas (BR-CO-10/11/12/13/15/16), ZUGFeRD 1.0 text-only lines moved to notes.
  Nothing is guessed: unknown parties, addresses, numbers or dates stay unknown.
* :func:`gaps` - the EN 16931 rules the invoice cannot satisfy with the data it has, each with
  the rule id and the reason; the rule check of an export is expected to fail exactly these.
"""

from __future__ import annotations

import re
from decimal import Decimal

from .model import Invoice, InvoiceLine, Note, amount, decimal, to_decimal

__all__ = ["explains", "for_export", "gaps"]

_CENT = Decimal("0.01")
_ICD = re.compile(r"^\d{4}$")  # ISO 6523 ICD codes (0002 ... 0240)
# UNTDID 5189 allowance reason codes (EN 16931 restriction)
_ALLOWANCE_CODES = frozenset("41 42 60 62 63 64 65 66 67 68 70 71 88 95 100 102 103 104 105".split())
_VAT_CATEGORIES = frozenset({"S", "Z", "E", "AE", "K", "G", "O", "L", "M", "B"})  # UNCL 5305 (EN 16931 subset)
_EAS = re.compile(r"^(?:\d{4}|EM|AQ|AS|AU|XX|[A-Z]{2}:[A-Z]+)$")


def _d(v) -> Decimal | None:
    return to_decimal(v)


def _sum(values) -> Decimal:
    return sum((v for v in values if v is not None), Decimal("0"))


def _is_text_line(li: InvoiceLine) -> bool:
    return not li.name and li.quantity is None and li.net_amount is None and li.net_price is None


def for_export(inv: Invoice) -> tuple[Invoice, list[dict]]:
    """``(prepared copy, derivations)``; each derivation ``{"term", "note"}``."""
    inv = inv.model_copy(deep=True)
    derived: list[dict] = []

    def note(term: str, text: str) -> None:
        derived.append({"term": term, "note": text})

    if len(inv.buyer.ids) > 1:
        note("BT-46", f"buyer: the first of {len(inv.buyer.ids)} identifiers written (EN 16931 has one buyer "
                      f"identifier); {', '.join(i.value for i in inv.buyer.ids[1:])} left out")
        inv.buyer.ids = inv.buyer.ids[:1]
    text_lines = [li for li in inv.lines if _is_text_line(li)]
    if text_lines:
        inv.lines = [li for li in inv.lines if not _is_text_line(li)]
        for li in text_lines:
            if li.note:
                inv.notes.append(Note(content=li.note))
        note("BG-25", f"{len(text_lines)} text-only line(s) of the source (no item, quantity or amount) "
                      "written as invoice notes (BG-1)")
    if inv.lines and any(not li.id for li in inv.lines):
        used = {li.id for li in inv.lines if li.id}
        n = 0
        for li in inv.lines:
            if not li.id:
                n += 1
                while str(n) in used:
                    n += 1
                li.id = str(n)
        note("BT-126", "line ids numbered in document order (the source has none)")
    for t in inv.tax_breakdown:
        if not t.category and t.rate is not None and (_d(t.rate) or 0) > 0:
            t.category = "S"
            note("BT-118", f"VAT breakdown {t.rate} %: category S (standard rate)")
    categories = {(t.category, t.rate) for t in inv.tax_breakdown if t.category}
    for li in inv.lines:
        if not li.tax_category and li.tax_rate is not None and (_d(li.tax_rate) or 0) > 0:
            li.tax_category = "S"
            note("BT-151", f"line {li.id}: VAT category S (standard rate) for the rate {li.tax_rate} %")
        if not li.tax_category and len(categories) == 1:
            li.tax_category, rate = next(iter(categories))
            li.tax_rate = li.tax_rate if li.tax_rate is not None else rate
            note("BT-151", f"line {li.id}: VAT category {li.tax_category} of the invoice's only VAT breakdown")
        if li.net_price is None and li.net_amount is not None and li.quantity not in (None, "0"):
            price = _d(li.net_amount) / _d(li.quantity)
            if price == price.quantize(Decimal("0.0001")):
                li.net_price = decimal(price)
                note("BT-146", f"line {li.id}: net price {li.net_price} = net amount / quantity")

    tot = inv.totals
    if tot.line_total is None and inv.lines and all(li.net_amount is not None for li in inv.lines):
        tot.line_total = amount(_sum(_d(li.net_amount) for li in inv.lines))
        note("BT-106", "sum of line net amounts (BR-CO-10)")
    allowances = [ac for ac in inv.allowances_charges if not ac.charge]
    charges = [ac for ac in inv.allowances_charges if ac.charge]
    if tot.allowance_total is None and allowances and all(a.amount is not None for a in allowances):
        tot.allowance_total = amount(_sum(_d(a.amount) for a in allowances))
        note("BT-107", "sum of document-level allowances (BR-CO-11)")
    if tot.charge_total is None and charges and all(c.amount is not None for c in charges):
        tot.charge_total = amount(_sum(_d(c.amount) for c in charges))
        note("BT-108", "sum of document-level charges (BR-CO-12)")
    if tot.tax_exclusive is None and tot.line_total is not None:
        tot.tax_exclusive = amount(_d(tot.line_total) - _d(tot.allowance_total or 0) + _d(tot.charge_total or 0))
        note("BT-109", "line total - allowances + charges (BR-CO-13)")
    if tot.tax_total is None and inv.tax_breakdown and all(t.amount is not None for t in inv.tax_breakdown):
        tot.tax_total = amount(_sum(_d(t.amount) for t in inv.tax_breakdown))
        note("BT-110", "sum of the VAT breakdown amounts (BR-CO-14)")
    if tot.tax_inclusive is None and tot.tax_exclusive is not None and tot.tax_total is not None:
        tot.tax_inclusive = amount(_d(tot.tax_exclusive) + _d(tot.tax_total))
        note("BT-112", "total without VAT + VAT (BR-CO-15)")
    if tot.payable is None and tot.tax_inclusive is not None:
        tot.payable = amount(_d(tot.tax_inclusive) - _d(tot.prepaid or 0) + _d(tot.rounding or 0))
        note("BT-115", "total with VAT - prepaid + rounding (BR-CO-16)")
    return inv, derived


def _close(a, b, tol: Decimal = _CENT) -> bool:
    return a is not None and b is not None and abs(a - b) <= tol


def gaps(inv: Invoice) -> list[dict]:
    """EN 16931 rules the (prepared) invoice cannot satisfy: ``{"rule", "reason"}`` (``also``: the
    ids the same gap has in one syntax's rule set; a trailing ``*`` covers a rule family)."""
    out: list[dict] = []

    def gap(rule: str, reason: str, also: list[str] | None = None) -> None:
        out.append({"rule": rule, "reason": reason, **({"also": also} if also else {})})

    s, b, t = inv.seller, inv.buyer, inv.totals
    # an unknown total also breaks the sum rules it takes part in (they compare with nothing)
    for rule, value, term, also in (("BR-02", inv.number, "invoice number (BT-1)", None),
                                    ("BR-03", inv.issue_date, "issue date (BT-2)", None),
                                    ("BR-04", inv.type_code, "invoice type code (BT-3)", None),
                                    ("BR-05", inv.currency, "invoice currency (BT-5)", None),
                                    ("BR-06", s.name, "seller name (BT-27)", None),
                                    ("BR-07", b.name, "buyer name (BT-44)", None),
                                    ("BR-12", t.line_total, "sum of line net amounts (BT-106)", ["BR-CO-10", "BR-CO-13"]),
                                    ("BR-13", t.tax_exclusive, "total without VAT (BT-109)", ["BR-CO-13", "BR-CO-15"]),
                                    ("BR-14", t.tax_inclusive, "total with VAT (BT-112)", ["BR-CO-15", "BR-CO-16"]),
                                    ("BR-15", t.payable, "amount due (BT-115)", ["BR-CO-16"])):
        if not value:
            gap(rule, f"{term} unknown", also=also)
    if s.address is None or not s.address.country:
        gap("BR-08", "seller postal address (BG-5) unknown")
        gap("BR-09", "seller country code (BT-40) unknown")
    if b.address is None or not b.address.country:
        gap("BR-10", "buyer postal address (BG-8) unknown")
        gap("BR-11", "buyer country code (BT-55) unknown")
    payee = inv.payee
    if payee is not None:
        same = (payee.name and payee.name == s.name) or {i.value for i in payee.ids} & {i.value for i in s.ids} or (
            payee.legal_id and s.legal_id and payee.legal_id.value == s.legal_id.value)
        if not payee.name or same:
            gap("BR-17", "payee (BG-10) without a name (BT-59)" if not payee.name else
                "the payee (BG-10) stated in the source is the seller itself; EN 16931 has a payee only when it "
                "differs from the seller", also=["UBL-SR-19", "UBL-SR-20", "UBL-SR-21"])
    if not inv.lines:
        gap("BR-16", "no invoice line read")
    for li in inv.lines:
        for rule, value, term in (("BR-21", li.id, "line id (BT-126)"), ("BR-22", li.quantity, "quantity (BT-129)"),
                                  ("BR-23", li.unit, "unit (BT-130)"), ("BR-24", li.net_amount, "net amount (BT-131)"),
                                  ("BR-25", li.name, "item name (BT-153)"), ("BR-26", li.net_price, "net price (BT-146)"),
                                  ("BR-CO-04", li.tax_category, "VAT category (BT-151)")):
            if not value:
                gap(rule, f"line {li.id or '?'}: {term} unknown",
                    also={"BR-CO-04": ["UBL-SR-48"], "BR-26": ["CII-SR-439"]}.get(rule))
        if li.net_price is None or (_d(li.net_price) or 0) < 0:
            gap("BR-27", f"line {li.id or '?'}: net price (BT-146) unknown or negative")
    if not inv.tax_breakdown:
        gap("BR-CO-18", "no VAT breakdown (BG-23) known: VAT rate(s) not read",
            also=["BR-CO-14"] if _d(t.tax_total) else None)
    for pm in inv.payment_means:
        if pm.code in ("30", "58") and not pm.account_id:
            gap("BR-61", f"credit transfer (code {pm.code}) without payment account (BT-84)", also=["CII-SR-470"])
    if not (s.vat_id or s.legal_id or s.ids):
        gap("BR-CO-26", "no seller VAT id, legal registration id or identifier")
    if any(li.tax_category == "S" for li in inv.lines) or any(x.category == "S" for x in inv.tax_breakdown):
        if not (s.vat_id or s.tax_number or (inv.tax_representative and inv.tax_representative.vat_id)):
            gap("BR-S-02", "standard-rated invoice without seller VAT id or tax registration (BT-31/BT-32/BT-63)")
    for cat in sorted({x.category for x in inv.tax_breakdown if x.category}):
        has = any(li.tax_category == cat for li in inv.lines) or any(a.category == cat for a in inv.allowances_charges)
        if not has:
            gap(f"BR-{cat}-01", f"VAT breakdown has category {cat}, but no line or allowance/charge is known to have it",
                also=["UBL-SR-48"] if inv.lines else None)
    if len(b.ids) > 1:
        gap("UBL-SR-16", f"the buyer has {len(b.ids)} identifiers, EN 16931 allows one (BT-46)")
    for kind, items, total, rule in (("allowances", [a for a in inv.allowances_charges if not a.charge],
                                      t.allowance_total, "BR-CO-11"),
                                     ("charges", [a for a in inv.allowances_charges if a.charge],
                                      t.charge_total, "BR-CO-12")):
        got = _sum(_d(a.amount) for a in items)
        if total is not None and not _close(got, _d(total)):
            gap(rule, f"document-level {kind} sum to {got}, the total (BT-{107 if rule == 'BR-CO-11' else 108}) "
                      f"is {total}")
    for a in inv.allowances_charges + [ac for li in inv.lines for ac in li.allowances_charges]:
        if a.reason_code and not a.charge and a.reason_code not in _ALLOWANCE_CODES:
            gap("BR-CL-19", f"allowance reason code {a.reason_code!r} is not in UNTDID 5189")
        if a.reason_code and a.charge and not re.fullmatch(r"[A-Z]{2,3}", a.reason_code):
            gap("BR-CL-20", f"charge reason code {a.reason_code!r} is not in UNTDID 7161")
    money = [t.line_total, t.allowance_total, t.charge_total, t.tax_exclusive, t.tax_total, t.tax_inclusive,
             t.prepaid, t.rounding, t.payable] + [li.net_amount for li in inv.lines] + \
            [x.basis for x in inv.tax_breakdown] + [x.amount for x in inv.tax_breakdown] + \
            [a.amount for a in inv.allowances_charges] + [a.base for a in inv.allowances_charges]
    if any(m is not None and _d(m) is not None and _d(m) != _d(m).quantize(_CENT) for m in money):
        gap("BR-DEC-*", "an amount of the source has more than two decimals")
    # arithmetic: the source's own totals, when they contradict each other
    lines_sum = _sum(_d(li.net_amount) for li in inv.lines)
    if inv.lines and t.line_total and all(li.net_amount for li in inv.lines) and not _close(lines_sum, _d(t.line_total)):
        gap("BR-CO-10", f"line net amounts sum to {lines_sum}, the line total (BT-106) is {t.line_total}")
    if t.tax_exclusive and t.line_total:
        want = _d(t.line_total) - _d(t.allowance_total or 0) + _d(t.charge_total or 0)
        if not _close(want, _d(t.tax_exclusive)):
            gap("BR-CO-13", f"BT-106 - BT-107 + BT-108 = {want}, the total without VAT (BT-109) is {t.tax_exclusive}")
    if t.tax_total and inv.tax_breakdown and all(x.amount for x in inv.tax_breakdown):
        got = _sum(_d(x.amount) for x in inv.tax_breakdown)
        if not _close(got, _d(t.tax_total)):
            gap("BR-CO-14", f"VAT breakdown amounts sum to {got}, the VAT total (BT-110) is {t.tax_total}")
    if t.tax_inclusive and t.tax_exclusive:
        want = _d(t.tax_exclusive) + _d(t.tax_total or 0)
        if not _close(want, _d(t.tax_inclusive)):
            gap("BR-CO-15", f"BT-109 + BT-110 = {want}, the total with VAT (BT-112) is {t.tax_inclusive}")
    if t.payable and t.tax_inclusive:
        want = _d(t.tax_inclusive) - _d(t.prepaid or 0) + _d(t.rounding or 0)
        if not _close(want, _d(t.payable)):
            gap("BR-CO-16", f"BT-112 - BT-113 + BT-114 = {want}, the amount due (BT-115) is {t.payable}")
    for x in inv.tax_breakdown:
        if x.category == "S" and x.basis and x.amount and x.rate:
            want = (_d(x.basis) * _d(x.rate) / 100).quantize(_CENT)
            if not _close(want, _d(x.amount)):
                gap("BR-S-09", f"VAT {x.rate} %: {x.basis} x rate = {want}, the breakdown says {x.amount}")
        if x.category == "S" and x.basis and x.rate is not None:
            rate = _d(x.rate)
            base = _sum(_d(li.net_amount) for li in inv.lines if li.tax_category == "S" and _d(li.tax_rate) == rate)
            base += _sum(_d(a.amount) if a.charge else -_d(a.amount) for a in inv.allowances_charges
                         if a.category == "S" and _d(a.rate) == rate and a.amount)
            if not _close(base, _d(x.basis), _CENT * max(1, len(inv.lines))):
                gap("BR-S-08", f"VAT {x.rate} %: lines and allowances/charges at that rate sum to {base}, "
                               f"the breakdown basis (BT-116) is {x.basis}")
    for who, p in (("seller", s), ("buyer", b)):
        for i in p.ids:
            if i.scheme and not _ICD.match(i.scheme):
                gap("BR-CL-10", f"{who} identifier scheme {i.scheme!r} is not an ISO 6523 ICD code")
        if p.legal_id and p.legal_id.scheme and not _ICD.match(p.legal_id.scheme):
            gap("BR-CL-11", f"{who} legal registration scheme {p.legal_id.scheme!r} is not an ISO 6523 ICD code")
        if p.endpoint and p.endpoint.scheme and not _EAS.match(p.endpoint.scheme):
            gap("BR-CL-25", f"{who} electronic address scheme {p.endpoint.scheme!r} is not an EAS code")
    cats = {li.tax_category for li in inv.lines} | {x.category for x in inv.tax_breakdown} | {
        a.category for a in inv.allowances_charges}
    for c in sorted(x for x in cats if x and x not in _VAT_CATEGORIES):
        gap("BR-CL-18", f"VAT category code {c!r} is not in UNCL 5305")
    for li in inv.lines:
        if li.standard_id and li.standard_id.scheme and not _ICD.match(li.standard_id.scheme):
            gap("BR-CL-21", f"line {li.id}: item identifier scheme {li.standard_id.scheme!r} is not an ISO 6523 ICD code")
        if li.standard_id and not li.standard_id.scheme:
            gap("BR-64", f"line {li.id}: item standard identifier without scheme")
    if inv.deliver_to is not None:
        for i in inv.deliver_to.ids:
            if i.scheme and not _ICD.match(i.scheme):
                gap("BR-CL-26", f"delivery location scheme {i.scheme!r} is not an ISO 6523 ICD code")
    return out


def explains(gap_list: list[dict], rule_id: str) -> dict | None:
    """The gap that accounts for a failed rule id, if any."""
    for g in gap_list:
        for r in [g["rule"], *g.get("also", [])]:
            if r == rule_id or (r.endswith("*") and rule_id.startswith(r[:-1])):
                return g
    return None
