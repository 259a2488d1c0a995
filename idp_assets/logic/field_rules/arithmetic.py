"""Totals that add up: the net, tax and gross totals are chosen together (BT-109 + BT-110 = BT-112).

The label rules read each total on its own, and labels are ambiguous across documents ('Net total'
is the gross on some receipts and the net on invoices; a VAT column header sits above the per-rate
lines).  Arithmetic is not ambiguous: among all amounts printed in the document, a set (net, tax,
gross) with ``net + tax == gross`` to the cent and a tax share a VAT rate can have is strong evidence,
and it is strongest where the rules' own labels agree with the roles and the three amounts stand
close together in reading order (a totals block).

:func:`solve_totals` scores every consistent set by the label support of each role (the rules'
candidates for that field and value), adds a bonus for a compact, ordered block, and, when the best
set is clear, returns extra candidates (rule ``arithmetic``) for the three fields and weakens the
candidates that contradict it.  When the rules' own winners already add up, nothing changes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from idp_assets.logic.field_rules.amounts import _fix_ocr_amounts, _plain
from idp_assets.logic.field_rules.candidates import Candidate
from idp_assets.logic.numbers import find_amounts

# a tax share above this cannot be VAT (highest standard rate in the EU: 27 %, HU)
MAX_TAX_SHARE = Decimal("0.28")
MAX_DISTINCT_AMOUNTS = 600  # pairs grow quadratically; real invoices stay far below
BLOCK_LINES = 12  # a totals block: the three amounts within this many lines, on one page
MIN_SCORE = 0.8  # label support + block bonus a set needs before it may override the rules
MIN_LABELLED = 2  # amounts of the set that carry a label of any total role
MIN_MARGIN = 0.25  # over the next-best set
CONTRADICTION_FACTOR = 0.5  # strength left to a candidate whose value is not the solved one
ROLES = ("net_total", "tax_total", "total")
MAX_ROUNDING = Decimal("0.10")  # cash rounding adjusts by a few cents at most


@dataclass(frozen=True)
class _Occurrence:
    value: Decimal
    raw: str
    page: int
    line: int  # index within the page
    order: int  # position in reading order over the document


def _occurrences(lines) -> list[_Occurrence]:
    out = []
    for order, (pno, li, ln) in enumerate(lines):
        for a in find_amounts(_fix_ocr_amounts(ln)):
            out.append(_Occurrence(a.value, a.raw, pno, li, order))
    return out


def _support(cands: list[Candidate]) -> dict[Decimal, float]:
    """Noisy-or label support per value (one vote per rule and line)."""
    seen: dict[Decimal, dict] = defaultdict(dict)
    for c in cands:
        try:
            v = Decimal(c.value)
        except ArithmeticError:
            continue
        k = (c.rule, c.page, c.line)
        seen[v][k] = max(seen[v].get(k, 0.0), min(c.strength, 0.99))
    out = {}
    for v, votes in seen.items():
        p = 1.0
        for s in votes.values():
            p *= 1.0 - s
        out[v] = 1.0 - p
    return out


def consistent_sets(values: set[Decimal]) -> list[tuple[Decimal, Decimal, Decimal]]:
    """Every (net, tax, gross) among ``values`` (all of one sign) with net + tax = gross and
    0 < tax <= MAX_TAX_SHARE x net."""
    out = []
    for sign in (1, -1):
        vs = sorted({abs(v) for v in values if v * sign > 0})[:MAX_DISTINCT_AMOUNTS]
        present = set(vs)
        for i, net in enumerate(vs):
            for tax in vs[:i]:
                if tax > MAX_TAX_SHARE * net:
                    continue
                if net + tax in present:
                    out.append((sign * net, sign * tax, sign * (net + tax)))
    return out


def _block_bonus(occ: dict[Decimal, list[_Occurrence]], triple) -> tuple[float, tuple[_Occurrence, ...]]:
    """1.0 when the three amounts appear in order net, tax, gross within BLOCK_LINES lines of one page,
    0.5 when they are close on one page in another order, else 0; with the occurrences used."""
    best, used = 0.0, tuple(occ[v][-1] for v in triple)
    for g in occ[triple[2]]:
        for n in occ[triple[0]]:
            if n.page != g.page or abs(g.order - n.order) > BLOCK_LINES:
                continue
            for t in occ[triple[1]]:
                if t.page != g.page or abs(g.order - t.order) > BLOCK_LINES:
                    continue
                b = 1.0 if n.order <= t.order <= g.order and n.order < g.order else 0.5
                if b > best:
                    best, used = b, (n, t, g)
    return best, used


def solve_totals(lines, cands: dict[str, list[Candidate]]) -> dict[str, list[Candidate]]:
    """``cands`` maps net_total / tax_total / total to the rules' candidates; returns the same keys
    with the lists to choose from (unchanged when the rules already add up or no set is clear)."""
    support = {r: _support(cands.get(r, [])) for r in ROLES}
    winners = {r: max(s.items(), key=lambda kv: kv[1])[0] for r, s in support.items() if s}
    if len(winners) == 3 and winners["net_total"] + winners["tax_total"] == winners["total"]:
        return cands
    occs = _occurrences(lines)
    by_value: dict[Decimal, list[_Occurrence]] = defaultdict(list)
    for o in occs:
        by_value[o.value].append(o)
    any_role: dict[Decimal, float] = defaultdict(float)
    for s in support.values():
        for v, x in s.items():
            any_role[v] = max(any_role[v], x)
    scored = []
    for triple in consistent_sets(set(by_value)):
        # a label of another total role still marks a summary amount ('Net total' read as the gross)
        labels = sum(max(support[r].get(v, 0.0), 0.5 * any_role.get(v, 0.0)) for r, v in zip(ROLES, triple))
        labelled = sum(any_role.get(v, 0.0) > 0 for v in triple)
        bonus, used = _block_bonus(by_value, triple)
        scored.append((labels + bonus, labelled, triple, used))
    if not scored:
        return cands
    scored.sort(key=lambda x: (-x[0], -x[2][2]))
    score, labelled, triple, used = scored[0]
    runner = scored[1][0] if len(scored) > 1 else 0.0
    # two of the three amounts must carry a total label: paid cash - change = total, or subtotal +
    # service charge, add up as well
    if score < MIN_SCORE or labelled < MIN_LABELLED or score - runner < MIN_MARGIN:
        return cands
    out = {}
    strength = min(0.9, 0.3 + 0.3 * score)
    # a total already chosen as the rounded amount paid (rounding_adjusted) stays: gross + rounding
    rounded = any(c.rule == "arithmetic_rounding" for c in cands.get("total", []))
    for role, value, o in zip(ROLES, triple, used):
        if (role == "total" and rounded and "total" in winners
                and abs(winners["total"] - value) <= MAX_ROUNDING):
            out[role] = cands["total"]
            continue
        kept = []
        for c in cands.get(role, []):
            try:
                agrees = Decimal(c.value) == value
            except ArithmeticError:
                agrees = False
            if not agrees:
                c = Candidate(c.value, c.raw, c.page, c.line, c.rule, c.strength * CONTRADICTION_FACTOR, c.validated)
            kept.append(c)
        kept.append(Candidate(_plain(value), o.raw, o.page, o.line, "arithmetic", strength))
        out[role] = kept
    return out



def rounding_adjusted(lines, totals: list[Candidate]) -> list[Candidate]:
    """Receipts that print the total, a rounding adjustment and the rounded total: of two total
    candidates that differ by exactly the printed adjustment, the one printed after the adjustment
    line is the amount paid (BT-115 after rounding, BT-114); it gains an ``arithmetic`` vote and
    the other is weakened."""
    from idp_assets.logic.field_rules.amounts import _ROUNDING, _amount_after

    adjustments = []
    for order, (_pno, _li, ln) in enumerate(lines):
        m = _ROUNDING.search(ln)
        if m:
            a = _amount_after(ln, m.end(), "first")
            if a is not None and Decimal(0) < abs(a.value) <= MAX_ROUNDING:
                adjustments.append((order, abs(a.value)))
    if not adjustments or len(totals) < 2:
        return totals
    order_of = {(pno, li): k for k, (pno, li, _) in enumerate(lines)}
    values = {}
    for c in totals:
        try:
            values.setdefault(Decimal(c.value), []).append(c)
        except ArithmeticError:
            continue
    for at, r in adjustments:
        for v, cs in values.items():
            for w in (v + r, v - r):
                after = [c for c in values.get(w, []) if order_of.get((c.page, c.line), -1) > at]
                before = [c for c in cs if order_of.get((c.page, c.line), 10**9) < at]
                if after and before:
                    out = [c if Decimal(c.value) != v else
                           Candidate(c.value, c.raw, c.page, c.line, c.rule, c.strength * CONTRADICTION_FACTOR, c.validated)
                           for c in totals]
                    top = max(after, key=lambda c: c.strength)
                    return out + [Candidate(top.value, top.raw, top.page, top.line, "arithmetic_rounding", 0.8)]
    return totals
