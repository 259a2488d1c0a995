-- exact name tokens (legal forms stripped, of names and aliases): rare-token candidate retrieval
CREATE TABLE supplier_tokens (
  token TEXT NOT NULL,
  supplier_id TEXT NOT NULL REFERENCES suppliers(supplier_id) ON DELETE CASCADE,
  PRIMARY KEY (token, supplier_id)
);
CREATE INDEX supplier_tokens_supplier ON supplier_tokens(supplier_id);
