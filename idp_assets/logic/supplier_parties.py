"""Which lines of a printed document speak for the seller, and which for another party.

`split_parties(text)` marks every line with a role:

* ``buyer`` / ``delivery`` / ``intermediary`` - a block opened by a label from `party_vocab`
  ('Rechnungsempfänger:', 'Bill to', 'Adresse de livraison', 'Ihr Vermittler') running to the end
  of its postal address (a line with a postcode), a blank line, another label, or 7 lines;
  also a single line whose identifier label is qualified as the buyer's ('N° TVA client ...');
* ``seller`` - a block opened by a seller label ('Verkäufer:', 'Lieferant', 'Vendeur');
* ``other`` - everything else: letterhead, footer, bank block, the issuer's tax line.

Only ``seller`` and ``other`` lines are evidence of the seller; the first name-like line of a
buyer block is recorded as the buyer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from idp_assets.logic import party_vocab as V


def _label_re(words: list[str]) -> re.Pattern:
    # the label alone on its line, or followed by ':' / '/' / '-' and (optionally) content
    return re.compile(r"(?i)^[\s\W]{0,3}(?:" + "|".join(words) + r")(?:\s*(?:[:/]|-\s)|\s*$)\s*(.*)$")


_ROLE_RES = [("seller", _label_re(V.SELLER_LABELS)), ("buyer", _label_re(V.BUYER_LABELS)),
             ("delivery", _label_re(V.DELIVERY_LABELS)), ("intermediary", _label_re(V.INTERMEDIARY_LABELS))]
_BUYER_ID_LINE = re.compile(
    r"(?i)(?:\b(?:" + "|".join(V.BUYER_QUALIFIERS) + r")\b[\s.\-]*(?:" + "|".join(V.ID_LABELS) + r"))|"
    r"(?:(?:" + "|".join(V.ID_LABELS) + r")[\w.\-]*\s+(?:des\s+|du\s+|of\s+the\s+)?(?:" + "|".join(V.BUYER_QUALIFIERS) + r")\b)"
)
_DEBIT_IBAN_LINE = re.compile(r"(?i)(?:" + "|".join(V.DEBIT_WORDS) + r").*\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){3,}")
_POSTCODE_LINE = re.compile(r"(?<![\w])(?:[A-Z]{1,2}[- ]?)?\d{4,6}(?: ?[A-Z]{2})?\s+\w{2,}")
MAX_BLOCK = 7


@dataclass
class Parties:
    lines: list[str]
    roles: list[str]
    buyer_names: list[str] = field(default_factory=list)
    intermediary_names: list[str] = field(default_factory=list)

    def seller_text(self) -> str:
        """The document text without other parties' blocks (the seller's evidence)."""
        return "\n".join(ln for ln, r in zip(self.lines, self.roles) if r in ("seller", "other"))

    def role_text(self, role: str) -> str:
        return "\n".join(ln for ln, r in zip(self.lines, self.roles) if r == role)


def _name_like(s: str) -> bool:
    s = s.strip()
    letters = sum(c.isalpha() for c in s)
    if letters < 3 or ":" in s or letters / max(len(s.replace(" ", "")), 1) < 0.6:
        return False  # 'Nummer : 009420', 'GLN 4304171000002'
    if _POSTCODE_LINE.search(s.upper()):
        return False  # 'DE 69876 Frankfurt': the address, the name was not on its own line
    if any(rx.match(s) for _, rx in _ROLE_RES):
        return False  # 'Käufer/Leistungsempfänger:' - a second label, not a name
    return not re.match(r"(?i)^(?:herrn?|frau|mr|mrs|ms|m\.|mme|attn)\.?\s*$", s)


def split_parties(text: str) -> Parties:
    lines = (text or "").splitlines()
    roles = ["other"] * len(lines)
    out = Parties(lines, roles)
    role, left, first_name_pending = None, 0, False
    for i, ln in enumerate(lines):
        hit = next(((r, m) for r, rx in _ROLE_RES if (m := rx.match(ln))), None)
        if hit:
            role, left = hit[0], MAX_BLOCK
            roles[i] = role
            rest = hit[1].group(1).strip()
            first_name_pending = role in ("buyer", "intermediary")
            if rest and first_name_pending and _name_like(rest):
                (out.buyer_names if role == "buyer" else out.intermediary_names).append(rest)
                first_name_pending = False
            if rest and _POSTCODE_LINE.search(rest):
                role, left = None, 0
            continue
        if role is not None and left > 0:
            if not ln.strip():
                role, left = None, 0
                continue
            roles[i] = role
            left -= 1
            if first_name_pending and _name_like(ln):
                (out.buyer_names if role == "buyer" else out.intermediary_names).append(ln.strip())
                first_name_pending = False
            if _POSTCODE_LINE.search(ln.upper()):  # the block's address ends with the postcode + city line
                role, left = None, 0
            continue
        role = None
        if _BUYER_ID_LINE.search(ln) or _DEBIT_IBAN_LINE.search(ln):
            roles[i] = "buyer"
    return out
