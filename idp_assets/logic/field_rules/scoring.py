"""Confidence: the OCR confidence of a value's words and the winner among a field's candidates."""

from __future__ import annotations

import unicodedata
from collections import defaultdict

from idp_assets.logic.field_rules.candidates import Candidate
from idp_assets.models import FieldValue

# confidence assumed for a born-digital text layer when no OCR confidence is known
TEXT_LAYER_CONFIDENCE = 0.97


class _Conf:
    def __init__(self, words_by_page, page_confidences):
        self.words = {}
        for pno, words in enumerate(words_by_page or [], start=1):
            d = defaultdict(list)
            for w in words or []:
                t = _tok(w.text)
                if t:
                    d[t].append(w.confidence)
            self.words[pno] = d
        self.pages = list(page_confidences or [])

    def of(self, raw: str, page: int) -> float:
        toks = [_tok(t) for t in (raw or "").split()]
        toks = [t for t in toks if t]
        d = self.words.get(page)
        if d and toks:
            confs = []
            for t in toks:
                if t in d:
                    confs.append(sum(d[t]) / len(d[t]))
            if confs:
                # every token counts; tokens not found as words take the page level
                page_c = self._page(page)
                confs += [page_c] * (len(toks) - len(confs))
                return max(0.0, min(1.0, sum(confs) / len(confs)))
        return self._page(page)

    def is_ocr(self, page: int) -> bool:
        """Whether the page was read by OCR (word or page confidences below a text layer's)."""
        if self.words.get(page):
            return True
        return 1 <= page <= len(self.pages) and self.pages[page - 1] is not None and float(self.pages[page - 1]) < 0.999

    def _page(self, page: int) -> float:
        if 1 <= page <= len(self.pages) and self.pages[page - 1] is not None:
            return float(self.pages[page - 1])
        if self.words.get(page):
            vals = [c for cs in self.words[page].values() for c in cs]
            return sum(vals) / len(vals)
        return TEXT_LAYER_CONFIDENCE


def _tok(s: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", s).casefold() if ch.isalnum())


def _choose(cands: list[Candidate], conf: _Conf, key=lambda v: v) -> tuple[Candidate, float, int, dict] | None:
    """Winner by noisy-or support over candidates sharing a (normalised) value: ``(candidate, rule
    score, votes, evidence)``; ``evidence`` holds what the fitted confidence model reads (support,
    the runner-up's support, competing values, OCR confidence of the value's words)."""
    if not cands:
        return None
    groups: dict[str, list[Candidate]] = defaultdict(list)
    for c in cands:
        groups[key(c.value)].append(c)

    def support(cs: list[Candidate]) -> float:
        # one vote per (rule, location): repeated hits by the same rule on the same line count once
        seen = {}
        for c in cs:
            k = (c.rule, c.page, c.line)
            seen[k] = max(seen.get(k, 0.0), c.strength * (1.0 if c.validated else 0.5))
        p = 1.0
        for s in seen.values():
            p *= 1.0 - min(s, 0.99)
        return 1.0 - p

    scored = sorted(((support(cs), cs) for cs in groups.values()), key=lambda x: -x[0])
    best_s, best_cs = scored[0]
    second = scored[1][0] if len(scored) > 1 else 0.0
    top = max(best_cs, key=lambda c: c.strength)
    ocr = conf.of(top.raw, top.page)
    valid = 1.0 if top.validated else 0.5
    c = best_s * (1.0 - 0.5 * second) * (0.3 + 0.7 * ocr) * valid
    votes = len({(x.rule, x.page, x.line) for x in best_cs})
    evidence = {"support": best_s, "second": second, "competitors": len(groups) - 1, "ocr": ocr,
                "ocr_source": conf.is_ocr(top.page), "validated": top.validated, "strength": top.strength,
                "votes": votes}
    return top, max(0.01, min(0.99, c)), votes, evidence


def _fv(cand: Candidate, confidence: float, value: str | None = None) -> FieldValue:
    return FieldValue(
        value=value if value is not None else cand.value,
        confidence=round(confidence, 4),
        source="rules:" + cand.rule,
        page=cand.page,
        raw=cand.raw,
    )
