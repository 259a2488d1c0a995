"""Field confidence from a model fitted on development data, not set by hand.

Each extracted field carries *evidence* (what the rules saw: label strength, value on the label's
line or below it, text layer / OCR / e-invoice XML, OCR word confidence, competing values, the
validation findings about it).  :func:`feature_vector` turns evidence into numbers and
:func:`calibrated` applies a logistic regression per field group whose parameters live in
``idp_assets/logic/data/field_confidence.json`` - written by ``idp bench-fields calibrate``
(``idp_assets.bench.fields``), which fits on corpus families and reports out-of-fold figures.

A field whose group has no fitted parameters (or whose confidence is below the file's
``review_threshold``) is marked ``needs_review``: no confidence is invented for it.
"""

from __future__ import annotations

import hashlib
import json
import math
from functools import lru_cache
from pathlib import Path

MODEL_PATH = Path(__file__).resolve().parents[1] / "data" / "field_confidence.json"

FIELD_GROUPS = {
    "invoice_number": "invoice_number", "vat_id": "vat_id", "iban": "iban",
    # a due date is its own group: issue dates are almost always right, due dates (often computed from
    # payment terms, or printed where the XML has none) far less often, and no feature tells the two apart
    "date": "date", "due_date": "due_date",
    "total": "amount", "net_total": "amount", "tax_total": "amount",
    "supplier_name": "name",  # buyer_name has its own (not yet fitted) group: seller-name data says nothing of it
    "currency": "currency",
}
XML_GROUP = "einvoice_xml"

FEATURES = (
    "score_logit",  # the rules' noisy-or score of the value (label strength, agreement, runner-up)
    "support",  # noisy-or support of the winning value
    "margin",  # its support minus the runner-up's
    "competitors",  # log(1 + number of other values)
    "labelled",  # read next to a label of the vocabulary
    "same_line",  # ... on the label's own line
    "layout",  # read from re-ordered layout lines
    "weak_rule",  # fallback / first-lines / any-date kind of rule
    "ocr_source",  # the page was OCR'd (vs a born-digital text layer)
    "ocr_conf",  # OCR confidence of the value's words (1 for a text layer)
    "check_pass",  # a validation about this field passed (check digits, net + tax = gross, dates)
    "check_fail",  # one failed
    "xml_printed",  # e-invoice XML value found in the printed text
    "xml_not_printed",  # ... not found
    "xml_agrees",  # the rules read the same value from the print
    "parts_disagree",  # a net or tax total while net + tax = gross fails (the labelled gross is usually right)
)

# the direction evidence may push the confidence (+1 up, -1 down, 0 free): the fit keeps each weight
# on its side, so that a quirk of the development corpus (e.g. fictitious sample VAT IDs that fail their
# check digits yet are the truth) cannot teach that a failed check or a worse OCR reading is good news
FEATURE_SIGNS = (1, 1, 1, -1, 1, 1, 0, -1, 0, 1, 1, -1, 1, -1, 1, -1)

# validation rules that speak about a field
FIELD_CHECKS = {
    "total": ("totals_consistent", "tax_rate_plausible", "credit_note_sign"),
    "net_total": ("totals_consistent", "tax_rate_plausible"),
    "tax_total": ("totals_consistent", "tax_rate_plausible"),
    "iban": ("iban_checksum",),
    "vat_id": ("vat_id_format",),
    "date": ("date_not_in_future", "due_date_after_issue", "date_valid"),
    "due_date": ("due_date_after_issue", "due_date_valid"),
    "currency": ("currency_known",),
}
_WEAK_RULES = ("fallback", "first_lines", "any_date", "first_date", "legal_form", "tax_rate_lines", "currency_marker")


def group_of(name: str, evidence: dict) -> str:
    if evidence.get("xml"):
        return XML_GROUP
    return FIELD_GROUPS.get(name, "identifier")


def checks_for(name: str, validation: list[dict]) -> tuple[bool, bool]:
    """(any passed, any failed) among the validation findings about the field."""
    rules = FIELD_CHECKS.get(name, ())
    mine = [v for v in validation
            if v.get("rule") in rules or v.get("rule") == f"einvoice_matches_print:{name}"]
    return any(v.get("ok") for v in mine), any(not v.get("ok", True) for v in mine)


def feature_vector(evidence: dict) -> list[float]:
    rule = str(evidence.get("rule", ""))
    score = min(max(float(evidence.get("score", 0.5)), 1e-3), 1 - 1e-3)
    xml = bool(evidence.get("xml"))
    printed = evidence.get("printed")
    return [
        math.log(score / (1 - score)),
        float(evidence.get("support", score)),
        float(evidence.get("support", score)) - float(evidence.get("second", 0.0)),
        math.log1p(float(evidence.get("competitors", 0))),
        float("label" in rule),
        float(rule.startswith(("label", "layout_label")) and "next_line" not in rule and "column" not in rule),
        float(rule.startswith("layout_")),
        float(any(w in rule for w in _WEAK_RULES)),
        float(bool(evidence.get("ocr_source"))),
        float(evidence.get("ocr", 1.0)),
        float(bool(evidence.get("check_pass"))),
        float(bool(evidence.get("check_fail"))),
        float(xml and printed is True),
        float(xml and printed is False),
        float(xml and bool(evidence.get("agrees"))),
        float(bool(evidence.get("parts_disagree"))),
    ]


@lru_cache(maxsize=1)
def load_model(path: str | None = None) -> dict | None:
    p = Path(path) if path else MODEL_PATH
    if not p.is_file():
        return None
    return json.loads(p.read_text(encoding="utf-8"))


def model_hash() -> str:
    return hashlib.sha256(MODEL_PATH.read_bytes()).hexdigest()[:12] if MODEL_PATH.is_file() else "none"


def predict(params: dict, x: list[float]) -> float:
    z = params["intercept"] + sum(w * v for w, v in zip(params["coef"], x, strict=True))
    return min(1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z)))), params.get("ceiling", 1.0))


def calibrated(name: str, evidence: dict, model: dict | None = None) -> tuple[float | None, bool]:
    """``(confidence, needs_review)`` of a field; ``(None, True)`` when no fitted model covers it."""
    model = model if model is not None else load_model()
    if not model or model.get("features", list(FEATURES)) != list(FEATURES):
        return None, True  # no model, or one fitted on other features: refit (`idp bench fields-calibrate`)
    params = model.get("groups", {}).get(group_of(name, evidence))
    if not params:
        return None, True
    c = round(predict(params, feature_vector(evidence)), 4)
    return c, c < float(model.get("review_threshold", 0.9))


# -- fitting (used by `idp bench-fields calibrate`; numpy only) ----------------------------------------------


def fit_logistic(x: list[list[float]], y: list[int], l2: float = 1.0, iters: int = 100,
                 signs: tuple[int, ...] | None = FEATURE_SIGNS) -> dict:
    """L2-regularised logistic regression by projected Newton steps (the intercept not penalised);
    ``signs`` keeps each weight >= 0 (+1), <= 0 (-1) or free (0)."""
    import numpy as np

    X = np.asarray(x, dtype=float)
    Y = np.asarray(y, dtype=float)
    n, d = X.shape
    A = np.hstack([np.ones((n, 1)), X])
    w = np.zeros(d + 1)
    if 0 < Y.mean() < 1:
        w[0] = math.log(Y.mean() / (1 - Y.mean()))
    reg = np.eye(d + 1) * l2
    reg[0, 0] = 1e-6
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(A @ w, -50, 50)))
        g = A.T @ (p - Y) + reg @ w
        H = A.T @ (A * (p * (1 - p))[:, None]) + reg
        step = np.linalg.solve(H, g)
        new = w - step
        if signs is not None:
            sg = np.asarray((0, *signs), dtype=float)
            new = np.where(sg * new < 0, 0.0, new)  # project onto the allowed side
        if np.abs(new - w).max() < 1e-8:
            w = new
            break
        w = new
    out = {"intercept": float(w[0]), "coef": [float(v) for v in w[1:]], "n": int(n), "correct": int(Y.sum())}
    if Y.min() == 1:
        # every training value was right: the data cannot tell 1.0 from 'right n times in a row';
        # cap at the Jeffreys posterior mean (n + 0.5) / (n + 1) instead of claiming certainty
        out["ceiling"] = round((n + 0.5) / (n + 1), 4)
    return out


def reliability(conf: list[float], correct: list[int], bins: int = 10) -> dict:
    """Expected calibration error, precision among confidences >= 0.9 and the reliability table."""
    rows = []
    n = len(conf)
    ece = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        idx = [i for i, c in enumerate(conf) if lo <= c < hi or (b == bins - 1 and c == 1.0)]
        if not idx:
            continue
        mc = sum(conf[i] for i in idx) / len(idx)
        acc = sum(correct[i] for i in idx) / len(idx)
        ece += len(idx) / n * abs(mc - acc)
        rows.append({"bin": f"{lo:.1f}-{hi:.1f}", "n": len(idx), "mean_confidence": round(mc, 4),
                     "accuracy": round(acc, 4)})
    hi_idx = [i for i, c in enumerate(conf) if c >= 0.9]
    return {"n": n, "ece": round(ece, 4) if n else None,
            "precision_at_0.9": round(sum(correct[i] for i in hi_idx) / len(hi_idx), 4) if hi_idx else None,
            "n_at_0.9": len(hi_idx), "accuracy": round(sum(correct) / n, 4) if n else None, "table": rows}
