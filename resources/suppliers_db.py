"""Supplier master: embedded SQLite by default (no server needed).

The production Postgres back end with pg_trgm indexes is planned in the supplier
issue; both share `SupplierMaster`'s interface.
"""

from __future__ import annotations

import csv
import hashlib
import io
import sqlite3
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from idp_assets.logic.suppliers import Supplier, normalize_id, normalize_name

CSV_COLUMNS = ["supplier_id", "name", "vat_id", "tax_number", "iban", "street", "postal_code", "city", "country", "aliases"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS suppliers (
  supplier_id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  name_norm TEXT NOT NULL,
  vat_id TEXT, tax_number TEXT, iban TEXT,
  street TEXT, postal_code TEXT, city TEXT, country TEXT,
  aliases TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS suppliers_vat ON suppliers(vat_id);
CREATE INDEX IF NOT EXISTS suppliers_iban ON suppliers(iban);
CREATE INDEX IF NOT EXISTS suppliers_tax ON suppliers(tax_number);
"""


class ImportReport(dict):
    pass


class SupplierMaster(ConfigurableResource):
    path: str = Field(default="./.idp_suppliers.sqlite", description="SQLite file of the embedded master")

    def _conn(self) -> sqlite3.Connection:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path)
        con.executescript(_SCHEMA)
        return con

    def import_csv(self, text: str) -> ImportReport:
        """Upsert rows in ONE transaction; bad rows are reported with line numbers and skipped."""
        reader = csv.DictReader(io.StringIO(text))
        missing = [c for c in ("supplier_id", "name") if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"CSV lacks required columns: {missing}")
        good, bad = [], []
        for row in reader:
            line = reader.line_num
            sid, name = (row.get("supplier_id") or "").strip(), (row.get("name") or "").strip()
            if not sid or not name:
                bad.append({"line": line, "error": "supplier_id and name are required"})
                continue
            good.append(
                (
                    sid, name, normalize_name(name),
                    normalize_id(row.get("vat_id")) or None, normalize_id(row.get("tax_number")) or None,
                    normalize_id(row.get("iban")) or None,
                    row.get("street") or None, row.get("postal_code") or None, row.get("city") or None,
                    row.get("country") or None, row.get("aliases") or "",
                )
            )
        with self._conn() as con:  # one transaction
            con.executemany(
                "INSERT INTO suppliers VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(supplier_id) DO UPDATE SET "
                "name=excluded.name, name_norm=excluded.name_norm, vat_id=excluded.vat_id, tax_number=excluded.tax_number, "
                "iban=excluded.iban, street=excluded.street, postal_code=excluded.postal_code, city=excluded.city, "
                "country=excluded.country, aliases=excluded.aliases",
                good,
            )
        return ImportReport(imported=len(good), skipped=bad)

    def export_csv(self) -> str:
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(CSV_COLUMNS)
        with self._conn() as con:
            for r in con.execute(
                "SELECT supplier_id,name,vat_id,tax_number,iban,street,postal_code,city,country,aliases FROM suppliers ORDER BY supplier_id"
            ):
                w.writerow(["" if v is None else v for v in r])
        return out.getvalue()

    @staticmethod
    def _row(r) -> Supplier:
        return Supplier(r[0], r[1], r[2], r[3], r[4], r[5], [a for a in (r[6] or "").split("|") if a])

    _COLS = "supplier_id, name, vat_id, iban, city, postal_code, aliases"

    def by_identifiers(self, vat_ids: set[str], ibans: set[str]) -> list[tuple[Supplier, str]]:
        out = []
        with self._conn() as con:
            for v in sorted(vat_ids):
                out += [(self._row(r), "vat_id") for r in con.execute(f"SELECT {self._COLS} FROM suppliers WHERE vat_id=?", (v,))]
            for v in sorted(ibans):
                out += [(self._row(r), "iban") for r in con.execute(f"SELECT {self._COLS} FROM suppliers WHERE iban=?", (v,))]
        return out

    def all_suppliers(self) -> list[Supplier]:
        with self._conn() as con:
            return [self._row(r) for r in con.execute(f"SELECT {self._COLS} FROM suppliers")]

    def version(self) -> str:
        """Content hash of the master: matches record the master version they used."""
        return hashlib.sha256(self.export_csv().encode()).hexdigest()[:16]
