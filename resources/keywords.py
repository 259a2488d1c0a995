"""Keyword index over chunk texts: SQLite FTS5 beside the embedded Chroma folder.

Hybrid search looks up distinctive query words verbatim (names the embedding model has never
seen, OCR'd words). Chroma's ``$contains`` is a case-sensitive substring scan: four case
variants of three words cost about 150 ms at 10,000 documents. An FTS5 index with the
``unicode61`` tokenizer (case folded, diacritics removed) answers a word or a word prefix in
about a millisecond, with the filters search uses (supplier, date) as columns of the same row.

The index is written by ``VectorStore`` together with the ``document_chunks`` collection
(replace per document, bulk add, delete) and rebuilt from Chroma when it is missing or behind
(an index made before it existed).
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from pathlib import Path

SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS chunk_words USING fts5(
    text, chunk_id UNINDEXED, document_id UNINDEXED, supplier_id UNINDEXED, supplier_key UNINDEXED,
    date_num UNINDEXED, meta UNINDEXED, tokenize = 'unicode61 remove_diacritics 2'
);
"""
# FTS5 cannot index its UNINDEXED columns: "DELETE ... WHERE document_id = ?" scans every row (2.8 ms at
# 2,000 documents, linear in the index). The FTS rowid of every chunk, by chunk and by document, lives in
# an ordinary indexed table beside it, so a document's rows are replaced in constant time.
KEYS_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunk_keys (
    rowid INTEGER PRIMARY KEY, chunk_id TEXT NOT NULL UNIQUE, document_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunk_keys_document ON chunk_keys(document_id);
"""
_WORD = re.compile(r"\w+", re.UNICODE)


def match_expression(word: str, prefix: bool = True) -> str | None:
    """FTS5 query: the word's tokens as one phrase, the last one a prefix ("Müller" -> '"Müller"*');
    without ``prefix`` whole tokens only (identifiers: "RE-2024/0815" -> '"RE 2024 0815"')."""
    tokens = _WORD.findall(word)
    if not tokens:
        return None
    return '"' + " ".join(tokens) + ('"*' if prefix else '"')  # a phrase; \w tokens hold no quote


class KeywordIndex:
    """One SQLite file; safe to share between threads (one connection behind a lock)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        with self._lock, self._conn:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(SCHEMA)
            fresh = self._conn.execute("SELECT name FROM sqlite_master WHERE name = 'chunk_keys'").fetchone() is None
            self._conn.executescript(KEYS_SCHEMA)
            if fresh:  # an index written before chunk_keys existed: key its rows once
                self._conn.execute("INSERT OR REPLACE INTO chunk_keys(rowid, chunk_id, document_id) "
                                   "SELECT rowid, chunk_id, document_id FROM chunk_words")

    @staticmethod
    def _row(chunk_id: str, text: str, meta: dict) -> tuple:
        return (text or "", chunk_id, meta.get("document_id", ""), meta.get("supplier_id") or "",
                meta.get("supplier_key") or "", int(meta.get("date_num") or 0), json.dumps(meta, sort_keys=True))

    def _insert(self, ids: list[str], texts: list[str], metas: list[dict]) -> None:  # caller holds the lock
        for i, t, m in zip(ids, texts, metas):
            row = self._row(i, t, m)
            cur = self._conn.execute("INSERT INTO chunk_words(text, chunk_id, document_id, supplier_id, supplier_key, "
                                     "date_num, meta) VALUES (?, ?, ?, ?, ?, ?, ?)", row)
            self._conn.execute("INSERT INTO chunk_keys(rowid, chunk_id, document_id) VALUES (?, ?, ?)",
                               (cur.lastrowid, i, row[2]))

    def _delete_where(self, column: str, values: list[str]) -> None:  # caller holds the lock
        for v in values:
            self._conn.execute(f"DELETE FROM chunk_words WHERE rowid IN (SELECT rowid FROM chunk_keys WHERE {column} = ?)",
                               (v,))
            self._conn.execute(f"DELETE FROM chunk_keys WHERE {column} = ?", (v,))

    def replace_document(self, document_id: str, ids: list[str], texts: list[str], metas: list[dict]) -> None:
        with self._lock, self._conn:
            self._delete_where("document_id", [document_id])
            self._insert(ids, texts, metas)

    def add_many(self, ids: list[str], texts: list[str], metas: list[dict]) -> None:
        """Bulk add; an id already present is replaced."""
        with self._lock, self._conn:
            self._delete_where("chunk_id", list(ids))
            self._insert(ids, texts, metas)

    def clear(self) -> None:
        with self._lock, self._conn:
            self._conn.execute("DELETE FROM chunk_words")
            self._conn.execute("DELETE FROM chunk_keys")

    def delete_document(self, document_id: str) -> None:
        with self._lock, self._conn:
            self._delete_where("document_id", [document_id])

    def count(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT count(*) FROM chunk_words").fetchone()[0]

    def find(self, word: str, limit: int = 50, supplier_id: str | None = None, supplier_key: str | None = None,
             min_date_num: int | None = None, prefix: bool = True) -> dict:
        """Chunks containing the word (case and accents ignored; the word may be the start of a longer
        one), as Chroma's ``get`` shapes them: ``{"ids", "documents", "metadatas"}``, best BM25 first.
        ``supplier_id`` / ``supplier_key``: a chunk matching either passes; ``min_date_num``: yyyymmdd,
        inclusive; ``prefix=False``: the last token must be whole too."""
        expr = match_expression(word, prefix=prefix)
        if expr is None:
            return {"ids": [], "documents": [], "metadatas": []}
        sql = "SELECT chunk_id, text, meta FROM chunk_words WHERE chunk_words MATCH ?"
        args: list = [expr]
        if supplier_id or supplier_key:
            sql += " AND (supplier_id = ? OR supplier_key = ?)"
            args += [supplier_id or "\x00", supplier_key or "\x00"]
        if min_date_num:
            sql += " AND date_num >= ?"
            args.append(int(min_date_num))
        sql += " ORDER BY rank LIMIT ?"
        args.append(int(limit))
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return {"ids": [r[0] for r in rows], "documents": [r[1] for r in rows],
                "metadatas": [json.loads(r[2]) for r in rows]}

    def close(self) -> None:
        with self._lock:
            self._conn.close()
