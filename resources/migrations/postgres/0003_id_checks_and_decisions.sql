-- identifiers kept whatever their check says: the scheme and result per identifier column
ALTER TABLE suppliers ADD COLUMN id_checks TEXT NOT NULL DEFAULT '';
-- address candidates: suppliers at a postal code printed on the document
CREATE INDEX suppliers_postal_code ON suppliers(postal_code);
-- review decisions on documents (who/when); never touched by a master import
CREATE TABLE supplier_decisions (
  document_id TEXT PRIMARY KEY,
  decision TEXT NOT NULL CHECK (decision IN ('confirm', 'reject', 'create')),
  supplier_id TEXT,
  evidence TEXT NOT NULL DEFAULT '{}',
  decided_by TEXT NOT NULL,
  decided_at TEXT NOT NULL
);
-- what a decision taught the master: aliases and identifiers of a supplier; merged into every import
CREATE TABLE supplier_learned (
  supplier_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  value TEXT NOT NULL,
  document_id TEXT NOT NULL,
  PRIMARY KEY (supplier_id, kind, value)
);
CREATE INDEX supplier_learned_value ON supplier_learned(kind, value);
