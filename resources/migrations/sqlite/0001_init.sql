-- supplier master, embedded back end (same columns as PostgreSQL)
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
CREATE INDEX suppliers_name_norm ON suppliers(name_norm);
CREATE TABLE supplier_aliases (
  supplier_id TEXT NOT NULL REFERENCES suppliers(supplier_id) ON DELETE CASCADE,
  alias TEXT NOT NULL,
  alias_norm TEXT NOT NULL,
  PRIMARY KEY (supplier_id, alias)
);
CREATE INDEX supplier_aliases_norm ON supplier_aliases(alias_norm);
CREATE TABLE master_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
