-- supplier master, PostgreSQL back end (runs with search_path = <schema>, public)
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE TABLE suppliers (
  supplier_id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  name_norm TEXT NOT NULL,
  vat_id TEXT, tax_number TEXT, iban TEXT, gln TEXT,
  street TEXT, postal_code TEXT, city TEXT, country TEXT,
  aliases TEXT NOT NULL DEFAULT ''
);
CREATE INDEX suppliers_vat ON suppliers(vat_id);
CREATE INDEX suppliers_tax ON suppliers(tax_number);
CREATE INDEX suppliers_iban ON suppliers(iban);
CREATE INDEX suppliers_gln ON suppliers(gln);
-- fastupdate off: a read-mostly master; no pending list for every lookup to scan after an import
CREATE INDEX suppliers_name_trgm ON suppliers USING gin (name_norm gin_trgm_ops) WITH (fastupdate = off);
CREATE TABLE supplier_aliases (
  supplier_id TEXT NOT NULL REFERENCES suppliers(supplier_id) ON DELETE CASCADE,
  alias TEXT NOT NULL,
  alias_norm TEXT NOT NULL,
  PRIMARY KEY (supplier_id, alias)
);
CREATE INDEX supplier_aliases_trgm ON supplier_aliases USING gin (alias_norm gin_trgm_ops) WITH (fastupdate = off);
CREATE TABLE master_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
