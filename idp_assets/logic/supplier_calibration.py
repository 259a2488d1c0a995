"""Confidence of a supplier match: the measured precision of matches like it, not a constant.

`CALIBRATION` holds, per evidence group ('identifier', 'name', 'decision') and score bin, the counts of
right and wrong matches measured by `idp bench suppliers calibrate-confidence` on the development
corpus against the hard generated master (`idp_assets/bench/suppliers.py hard_master`).  The confidence
is the Laplace-smoothed precision of the bin: (right + 1) / (right + wrong + 2), so a bin seen rarely is
never near-certain.  Re-fit with the same command after changing the matcher.
"""

from __future__ import annotations

BINS = (0.0, 0.8, 0.9, 0.95, 0.98, 1.0001)

# group -> [(right, wrong) per bin of BINS]; fitted counts (see module docstring; README "Supplier recognition")
CALIBRATION: dict[str, list[tuple[int, int]]] = {
    "identifier": [(0, 0), (0, 0), (1, 0), (2, 0), (61, 0)],
    "name": [(0, 0), (0, 0), (1, 0), (2, 0), (11, 0)],
}
SOURCE = ("`idp bench suppliers hard` (SQLite, 100,000-row hard master, 89 development documents of the four "
          "families, in-sample), 2026-12-04")


def group_of(method: str) -> str:
    if method in ("vat_id", "tax_number", "iban", "gln"):
        return "identifier"
    if method == "decision":
        return "decision"
    return "name"


def bin_of(score: float) -> int:
    for k in range(len(BINS) - 1):
        if BINS[k] <= score < BINS[k + 1]:
            return k
    return len(BINS) - 2


def match_confidence(method: str, score: float, candidates=None, table: dict | None = None) -> float | None:
    """Laplace-smoothed measured precision of matches of this evidence group and score bin; None for a
    person's decision (nothing measured: the decision and who made it are in the evidence)."""
    if group_of(method) == "decision":
        return None
    right, wrong = (table or CALIBRATION).get(group_of(method), CALIBRATION["name"])[bin_of(score)]
    return round((right + 1) / (right + wrong + 2), 4)


def fit(rows: list[tuple[str, float, bool]]) -> dict[str, list[tuple[int, int]]]:
    """Counts per group and bin from (method, score, right?) of evaluated matches."""
    out = {g: [(0, 0)] * (len(BINS) - 1) for g in ("identifier", "name", "decision")}
    for method, score, ok in rows:
        g, b = group_of(method), bin_of(score)
        r, w = out[g][b]
        out[g][b] = (r + ok, w + (not ok))
    return out
