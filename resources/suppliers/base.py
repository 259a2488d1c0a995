"""The interface both supplier-master back ends implement, and the CSV rules they share."""

from __future__ import annotations

import csv
import hashlib
import io
from abc import ABC, abstractmethod

from idp_assets.logic.suppliers import (
    Supplier, TokenWeights, gln_valid, iban_valid, normalize_id, normalize_name, vat_valid,
)

CSV_COLUMNS = ["supplier_id", "name", "vat_id", "tax_number", "iban", "street", "postal_code", "city", "country",
               "aliases", "gln"]
ROW_COLUMNS = ["supplier_id", "name", "name_norm", "vat_id", "tax_number", "iban", "gln", "street", "postal_code",
               "city", "country", "aliases"]
ID_KINDS = ("vat_id", "tax_number", "iban", "gln")


def parse_csv(text: str) -> tuple[list[dict], list[dict]]:
    """Validated rows and bad rows ({line, supplier_id, error}) of a master CSV.

    Required: supplier_id, name.  Identifiers are normalised (separators removed); an IBAN must pass
    mod-97, a VAT ID its country format, a GLN its check digit.  A supplier_id twice in one file is
    an error on the later line.  Aliases are separated by '|'.
    """
    reader = csv.DictReader(io.StringIO(text))
    cols = reader.fieldnames or []
    missing = [c for c in ("supplier_id", "name") if c not in cols]
    if missing:
        raise ValueError(f"CSV lacks required columns: {missing} (columns: {','.join(CSV_COLUMNS)})")
    unknown = [c for c in cols if c not in CSV_COLUMNS]
    if unknown:
        raise ValueError(f"CSV has unknown columns: {unknown} (allowed: {','.join(CSV_COLUMNS)})")
    good: list[dict] = []
    bad: list[dict] = []
    seen: dict[str, int] = {}
    line = 1
    for row in reader:
        line = reader.line_num
        if None in row:  # more fields than header columns
            bad.append({"line": line,
                        "error": f"{len(cols) + len(row[None])} fields, header has {len(cols)}"})
            continue
        r = {k: (v or "").strip() for k, v in row.items()}
        errs = []
        sid, name = r.get("supplier_id", ""), r.get("name", "")
        if not sid or not name:
            errs.append("supplier_id and name are required")
        elif not normalize_name(name):
            errs.append(f"name {name!r} has no letters besides a legal form")
        if sid in seen:
            errs.append(f"supplier_id {sid!r} already on line {seen[sid]}")
        vat, iban, gln = normalize_id(r.get("vat_id")), normalize_id(r.get("iban")), normalize_id(r.get("gln"))
        if vat and not vat_valid(vat):
            errs.append(f"vat_id {r['vat_id']!r} is not a valid VAT ID")
        if iban and not iban_valid(iban):
            errs.append(f"iban {r['iban']!r} fails the IBAN check")
        if gln and not gln_valid(gln):
            errs.append(f"gln {r['gln']!r} fails the GLN check digit")
        if errs:
            bad.append({"line": line, "error": "; ".join(errs)})
            continue
        seen[sid] = line
        aliases = [a.strip() for a in r.get("aliases", "").split("|") if a.strip()]
        good.append({
            "supplier_id": sid, "name": name, "name_norm": normalize_name(name), "vat_id": vat or None,
            "tax_number": normalize_id(r.get("tax_number")) or None, "iban": iban or None, "gln": gln or None,
            "street": r.get("street") or None, "postal_code": r.get("postal_code") or None,
            "city": r.get("city") or None, "country": (r.get("country") or "").upper() or None,
            "aliases": "|".join(aliases),
        })
    return good, bad


def content_version(rows) -> str:
    """Content hash of the master (rows sorted by supplier_id): the same content gives the same version
    on both back ends."""
    h = hashlib.sha256()
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
    return {t for t in toks if len(t) >= 2}


def rank_by_tokens(hits: dict[str, set[str]], weights: TokenWeights, pool: int) -> list[str]:
    """Supplier ids sharing tokens with the document, by summed IDF of the shared tokens."""
    ranked = sorted(hits.items(), key=lambda kv: (-sum(weights(t) for t in kv[1]), kv[0]))
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

    def close(self) -> None:  # pragma: no cover - default
        pass
