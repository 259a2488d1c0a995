"""Supplier master back ends behind one interface: embedded SQLite and PostgreSQL (pg_trgm)."""

from resources.suppliers.base import CSV_COLUMNS, MasterBackend, parse_csv

__all__ = ["CSV_COLUMNS", "MasterBackend", "parse_csv"]
