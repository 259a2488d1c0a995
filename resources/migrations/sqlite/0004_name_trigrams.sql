-- embedded trigram index of the normalised names and aliases (SQLite FTS5 'trigram' tokenizer, SQLite >= 3.34):
-- candidate retrieval for words the master does not know exactly (OCR variants), the counterpart of pg_trgm
CREATE VIRTUAL TABLE supplier_names_trgm USING fts5(name, supplier_id UNINDEXED, tokenize = 'trigram');
