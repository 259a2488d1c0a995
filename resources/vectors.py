"""Chroma vector store: embedded PersistentClient by default, HttpClient for a server.

Collections (cosine space):
- `document_chunks`: one entry per chunk; metadata document_id, page, kind, heading, supplier_id,
  supplier_name, doc_type, date (ISO) and date_num (yyyymmdd, for range filters), filename, media_type.
- `entities`: one entry per (document, entity): "Kind: value" embedded; metadata document_id,
  entity_key, kind, value, chunk_id (first mentioning chunk), page.
Both are replaced per document, so re-materializing a partition never adds duplicates.

In `persistent` mode the chunk texts are also kept in a keyword index (SQLite FTS5,
`<path>/keywords.sqlite`, resources/keywords.py), written together with `document_chunks`
and rebuilt from it when behind; `find_words` uses it (a Chroma server has no such
index: `find_words` then falls back to case variants of `$contains`).
"""

from __future__ import annotations

import os
import threading
from typing import Literal

from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

CHUNKS_COLLECTION = "document_chunks"
ENTITIES_COLLECTION = "entities"


_CLIENT_LOCK = threading.RLock()


def filter_where(supplier_id: str | None = None, supplier_key: str | None = None,
                 min_date_num: int | None = None) -> dict | None:
    """A Chroma ``where`` for chunks of a supplier (by id or by key) dated on or after yyyymmdd."""
    conds: list[dict] = []
    supplier = [{f: v} for f, v in (("supplier_id", supplier_id), ("supplier_key", supplier_key)) if v]
    if supplier:
        conds.append(supplier[0] if len(supplier) == 1 else {"$or": supplier})
    if min_date_num:
        conds.append({"date_num": {"$gte": int(min_date_num)}})
    if not conds:
        return None
    return conds[0] if len(conds) == 1 else {"$and": conds}


class VectorStore(ConfigurableResource):
    mode: Literal["persistent", "http"] = "persistent"
    path: str = Field(default="./.idp_chroma", description="folder for mode=persistent")
    host: str = "127.0.0.1"
    port: int = 8001  # Chroma's own default, 8000, is the document API's port

    _client: object = PrivateAttr(default=None)
    _collections: dict = PrivateAttr(default_factory=dict)
    _keywords: object = PrivateAttr(default=None)

    def client(self):
        with _CLIENT_LOCK:  # chromadb's client cache is not safe against two threads creating the first client
            return self._make_client()

    def _make_client(self):
        if self._client is None:
            import chromadb
            from chromadb.config import Settings

            settings = Settings(anonymized_telemetry=False)
            if self.mode == "http":
                self._client = chromadb.HttpClient(host=self.host, port=self.port, settings=settings)
            else:
                self._client = chromadb.PersistentClient(path=self.path, settings=settings)
        return self._client

    def collection(self, name: str = CHUNKS_COLLECTION):
        col = self._collections.get(name)
        if col is None:
            with _CLIENT_LOCK:
                col = self.client().get_or_create_collection(name, metadata={"hnsw:space": "cosine"})
            self._collections[name] = col
        return col

    def keywords(self):
        """The keyword index of a persistent store (opened and brought up to date once), else None."""
        if self.mode != "persistent":
            return None
        if self._keywords is None:
            with _CLIENT_LOCK:
                if self._keywords is None:
                    from resources.keywords import KeywordIndex

                    index = KeywordIndex(os.path.join(self.path, "keywords.sqlite"))
                    if index.count() != self.collection(CHUNKS_COLLECTION).count():
                        self._rebuild_keywords(index)
                    self._keywords = index
        return self._keywords

    def _rebuild_keywords(self, index, page: int = 5000) -> None:
        """Fill the keyword index from the chunks collection (a store written before the index existed)."""
        col = self.collection(CHUNKS_COLLECTION)
        index.clear()
        offset = 0
        while True:
            got = col.get(include=["documents", "metadatas"], limit=page, offset=offset)
            if not got["ids"]:
                break
            index.add_many(got["ids"], got["documents"], got["metadatas"])
            offset += len(got["ids"])

    def replace_document_chunks(
        self,
        document_id: str,
        ids: list[str],
        embeddings: list[list[float]],
        texts: list[str],
        metadatas: list[dict],
        collection: str = CHUNKS_COLLECTION,
    ) -> int:
        """Make the collection hold exactly these entries for the document (idempotent re-materialization)."""
        if not (len(ids) == len(embeddings) == len(texts) == len(metadatas)):
            raise ValueError("ids, embeddings, texts and metadatas must have the same length")
        col = self.collection(collection)
        old = set(col.get(where={"document_id": document_id}, include=[])["ids"])
        stale = sorted(old - set(ids))
        if stale:
            col.delete(ids=stale)
        if ids:
            col.upsert(ids=ids, embeddings=embeddings, documents=texts, metadatas=metadatas)
        if collection == CHUNKS_COLLECTION and (kw := self.keywords()) is not None:
            kw.replace_document(document_id, ids, texts, metadatas)
        return len(ids)

    def add_many(self, ids, embeddings, texts, metadatas, collection: str = CHUNKS_COLLECTION) -> int:
        """Bulk upsert (benchmarks / re-indexing); callers guarantee ids are stable."""
        if ids:
            self.collection(collection).upsert(ids=ids, embeddings=embeddings, documents=texts, metadatas=metadatas)
            if collection == CHUNKS_COLLECTION and (kw := self.keywords()) is not None:
                kw.add_many(ids, texts, metadatas)
        return len(ids)

    def delete_document(self, document_id: str) -> None:
        for name in (CHUNKS_COLLECTION, ENTITIES_COLLECTION):
            self.collection(name).delete(where={"document_id": document_id})
        if (kw := self.keywords()) is not None:
            kw.delete_document(document_id)

    def query(self, embedding: list[float], k: int = 10, where: dict | None = None,
              collection: str = CHUNKS_COLLECTION, where_document: dict | None = None) -> dict:
        col = self.collection(collection)
        n = col.count()
        if n == 0:
            return {"ids": [[]], "documents": [[]], "metadatas": [[]], "distances": [[]]}
        return col.query(query_embeddings=[embedding], n_results=min(k, n), where=where,
                         where_document=where_document, include=["documents", "metadatas", "distances"])

    def find_text(self, needle: str | list[str], limit: int = 50, where: dict | None = None,
                  collection: str = CHUNKS_COLLECTION) -> dict:
        """Chunks whose text contains `needle` (or any of several; exact, case-sensitive substrings)."""
        needles = [needle] if isinstance(needle, str) else list(dict.fromkeys(needle))
        if not needles:
            raise ValueError("find_text needs at least one needle")
        wd = {"$contains": needles[0]} if len(needles) == 1 else {"$or": [{"$contains": n} for n in needles]}
        return self.collection(collection).get(where=where, where_document=wd, limit=limit,
                                               include=["documents", "metadatas"])

    def find_words(self, word: str, limit: int = 50, supplier_id: str | None = None,
                   supplier_key: str | None = None, min_date_num: int | None = None, prefix: bool = True) -> dict:
        """Chunks containing the word (its tokens in order; ``prefix``: the last may begin a longer one),
        case-insensitively, with search's filters (supplier id or key, date)."""
        kw = self.keywords()
        if kw is not None:
            return kw.find(word, limit=limit, supplier_id=supplier_id, supplier_key=supplier_key,
                           min_date_num=min_date_num, prefix=prefix)
        where = filter_where(supplier_id, supplier_key, min_date_num)
        variants = [word] if not prefix else list(dict.fromkeys((word, word.upper(), word.capitalize(), word.lower())))
        return self.find_text(variants, limit=limit, where=where)

    def count(self, document_id: str | None = None, collection: str = CHUNKS_COLLECTION) -> int:
        col = self.collection(collection)
        if document_id is None:
            return col.count()
        return len(col.get(where={"document_id": document_id}, include=[])["ids"])
