"""The interface both supplier-master back ends implement, and the CSV rules they share."""

from __future__ import annotations

import csv
import hashlib
import io
from abc import ABC, abstractmethod

from idp_assets.logic.suppliers import Supplier, TokenWeights, fold, gln_valid, iban_valid, normalize_id, normalize_name

CSV_COLUMNS = ["supplier_id", "name", "vat_id", "tax_number", "iban", "street", "postal_code", "city", "country",
               "aliases", "gln"]
ROW_COLUMNS = ["supplier_id", "name", "name_norm", "vat_id", "tax_number", "iban", "gln", "street", "postal_code",
               "city", "country", "aliases", "id_checks"]
ID_KINDS = ("vat_id", "tax_number", "iban", "gln")
DECISION_COLUMNS = ["document_id", "decision", "supplier_id", "evidence", "decided_by", "decided_at"]


def _check_ids(r: dict) -> tuple[dict, list[str], str]:
    """Normalised identifier columns, warnings, and the per-column scheme/verification summary."""
    from idp_assets.logic.supplier_identifiers import classify, warning_for

    country = (r.get("country") or "").upper() or None
    out, warnings, checks = {}, [], []
    for col in ("vat_id", "tax_number"):
        raw = r.get(col) or ""
        chk = classify(raw, country)
        out[col] = chk.value if chk else None
        if chk:
            checks.append(f"{col}={chk.scheme or 'unknown'}:{'verified' if chk.verified else 'unverified'}")
            w = warning_for(col, raw, chk)
            if w:
                warnings.append(w)
    iban, gln = normalize_id(r.get("iban")), normalize_id(r.get("gln"))
    if iban:
        ok = iban_valid(iban)
        checks.append(f"iban=iban:{'verified' if ok else 'unverified'}")
        if not ok:
            warnings.append(f"iban {r['iban']!r} fails the IBAN check (mod 97), kept as unverified identifier")
    if gln:
        ok = gln_valid(gln)
        checks.append(f"gln=gs1.gln:{'verified' if ok else 'unverified'}")
        if not ok:
            warnings.append(f"gln {r['gln']!r} fails the GLN check digit, kept as unverified identifier")
    out["iban"], out["gln"] = iban or None, gln or None
    return out, warnings, ";".join(checks)


def parse_csv(text: str) -> tuple[list[dict], list[dict], list[dict]]:
    """(rows, rejected, warnings) of a master CSV.

    Every line with a supplier_id and a name becomes a row.  Identifiers are normalised (separators
    removed) and checked per scheme (`idp_assets.logic.supplier_identifiers`); one that fails its check
    or whose scheme is unknown is kept as an unverified identifier with a warning, never a reason to drop
    the supplier.  A supplier_id twice in one file: the later line wins (warning).  Rejected - with the
    line number - are only lines that cannot be a supplier: no supplier_id, no name, more fields than
    the header.  Aliases are separated by '|'.
    """
    reader = csv.DictReader(io.StringIO(text))
    cols = reader.fieldnames or []
    missing = [c for c in ("supplier_id", "name") if c not in cols]
    if missing:
        raise ValueError(f"CSV lacks required columns: {missing} (columns: {','.join(CSV_COLUMNS)})")
    unknown = [c for c in cols if c not in CSV_COLUMNS]
    if unknown:
        raise ValueError(f"CSV has unknown columns: {unknown} (allowed: {','.join(CSV_COLUMNS)})")
    good: dict[str, dict] = {}
    bad: list[dict] = []
    warns: list[dict] = []
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if None in row:  # more fields than header columns
            bad.append({"line": line, "supplier_id": row.get("supplier_id"),
                        "error": f"{len(cols) + len(row[None])} fields, header has {len(cols)}"})
            continue
        r = {k: (v or "").strip() for k, v in row.items()}
        sid, name = r.get("supplier_id", ""), r.get("name", "")
        if not sid or not name:
            bad.append({"line": line, "supplier_id": sid or None, "error": "supplier_id and name are required"})
            continue
        w: list[str] = []
        norm = normalize_name(name)
        if not norm:
            norm = " ".join(fold(name).split())
            w.append(f"name {name!r} has no letters besides a legal form; matched as written")
        if sid in seen:
            w.append(f"supplier_id {sid!r} also on line {seen[sid]}; this line wins")
        ids, id_warn, checks = _check_ids(r)
        w += id_warn
        seen[sid] = line
        aliases = [a.strip() for a in r.get("aliases", "").split("|") if a.strip()]
        good[sid] = {
            "supplier_id": sid, "name": name, "name_norm": norm, **ids,
            "street": r.get("street") or None, "postal_code": r.get("postal_code") or None,
            "city": r.get("city") or None, "country": (r.get("country") or "").upper() or None,
            "aliases": "|".join(dict.fromkeys(aliases)), "id_checks": checks,
        }
        warns += [{"line": line, "supplier_id": sid, "warning": x} for x in w]
    return list(good.values()), bad, warns


def merge_learned(rows: list[dict], learned: dict[str, list[tuple[str, str]]]) -> list[dict]:
    """Rows with the aliases that review decisions taught (kind 'alias') added: a re-import of the master
    never loses them."""
    out = []
    for r in rows:
        extra = [v for k, v in learned.get(r["supplier_id"], []) if k == "alias"]
        if extra:
            have = [a for a in (r.get("aliases") or "").split("|") if a]
            r = dict(r, aliases="|".join(dict.fromkeys(have + extra)))
        out.append(r)
    return out


def content_version(rows, decisions=()) -> str:
    """Content hash of the master (rows sorted by supplier_id) and of the review decisions: the same
    content gives the same version on both back ends; a decision changes it (matches go stale)."""
    h = hashlib.sha256()
    for d in sorted(decisions):
        h.update("\x1f".join("" if x is None else str(x) for x in d).encode())
        h.update(b"\x1d")
    for r in sorted(rows, key=lambda r: r["supplier_id"]):
        h.update("\x1f".join("" if r.get(c) is None else str(r.get(c)) for c in ROW_COLUMNS).encode())
        h.update(b"\x1e")
    return h.hexdigest()[:16]


def row_tokens(r: dict) -> set[str]:
    """Exact tokens of a supplier's name and aliases (legal forms stripped)."""
    from idp_assets.logic.suppliers import name_tokens

    toks = set(r["name_norm"].split())
    for a in (r.get("aliases") or "").split("|"):
        toks.update(name_tokens(a))
    return {t for t in toks if len(t) >= 2 and t != "and"}


def rank_by_tokens(hits: dict[str, set[str]], weights: TokenWeights, pool: int,
                   name_tokens_of: dict[str, set[str]] | None = None) -> list[str]:
    """Supplier ids sharing tokens with the document, by the IDF-weighted share of the supplier's name
    tokens the document has (a name printed in full first), then by the summed IDF of the shared tokens."""
    def key(kv):
        shared = sum(weights(t) for t in kv[1])
        own = name_tokens_of.get(kv[0]) if name_tokens_of else None
        share = shared / max(sum(weights(t) for t in own), 1e-9) if own else 0.0
        return (-round(min(share, 1.0), 3), -shared, kv[0])

    ranked = sorted(hits.items(), key=key)
    return [sid for sid, _ in ranked[:pool]]


def to_supplier(r: dict) -> Supplier:
    return Supplier(
        supplier_id=r["supplier_id"], name=r["name"], vat_id=r.get("vat_id"), iban=r.get("iban"), city=r.get("city"),
        postal_code=r.get("postal_code"), aliases=[a for a in (r.get("aliases") or "").split("|") if a],
        tax_number=r.get("tax_number"), gln=r.get("gln"), street=r.get("street"), country=r.get("country"),
    )


class MasterBackend(ABC):
    """Storage of the supplier master.  Every write is one transaction."""

    kind: str

    @abstractmethod
    def migrate(self) -> int:
        """Apply pending numbered migrations; returns the schema version."""

    @abstractmethod
    def upsert(self, rows: list[dict]) -> str:
        """Insert or update rows (from `parse_csv`) in ONE transaction; returns the new master version."""

    @abstractmethod
    def rows(self) -> list[dict]:
        """Every supplier row, sorted by supplier_id."""

    @abstractmethod
    def by_identifiers(self, ids: dict[str, set[str]]) -> list[tuple[Supplier, str, str]]:
        """(supplier, kind, value) for every supplier whose vat_id/tax_number/iban/gln is among `ids`."""

    @abstractmethod
    def name_candidates(self, queries: list[str], limit: int, pool: int = 25) -> list[Supplier]:
        """Suppliers whose normalised name or alias is similar to any query string (top `limit` per
        query), the `pool` most similar overall, best first."""

    @abstractmethod
    def token_candidates(self, tokens: list[str], pool: int = 25, weights: TokenWeights | None = None) -> list[Supplier]:
        """Suppliers whose name/alias has any of these exact tokens, most (IDF-)shared first."""

    @abstractmethod
    def version(self) -> str:
        """Version of the master content (changes with every import that changes a row)."""

    @abstractmethod
    def count(self) -> int: ...

    @abstractmethod
    def token_weights(self, version: str | None = None) -> TokenWeights:
        """IDF weights of the master's name tokens (cached per master version)."""

    @abstractmethod
    def record_decision(self, decision: dict, new_row: dict | None = None) -> str:
        """Store one review decision ({document_id, decision, supplier_id, evidence, decided_by, decided_at,
        learned: [(supplier_id, kind, value)]}) and, for 'create', the new supplier row, in ONE transaction;
        a later decision on the same document replaces it.  Returns the new master version."""

    @abstractmethod
    def decisions(self) -> list[dict]: ...

    @abstractmethod
    def get(self, supplier_id: str) -> Supplier | None: ...

    @abstractmethod
    def decision_for(self, document_id: str, version: str | None = None) -> dict | None:
        """The review decision on this document, if any."""

    @abstractmethod
    def existing_ids(self, ids: list[str]) -> set[str]: ...

    @abstractmethod
    def by_postcode(self, postcodes: list[str], max_per_code: int = 30) -> list[Supplier]:
        """Suppliers at these postal codes (codes shared by more than `max_per_code` suppliers are skipped)."""

    def close(self) -> None:  # pragma: no cover - default
        pass
