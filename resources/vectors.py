"""Chroma vector store: embedded PersistentClient by default, HttpClient for a server."""

from __future__ import annotations

from typing import Literal

from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

CHUNKS_COLLECTION = "document_chunks"


class VectorStore(ConfigurableResource):
    mode: Literal["persistent", "http"] = "persistent"
    path: str = Field(default="./.idp_chroma", description="folder for mode=persistent")
    host: str = "127.0.0.1"
    port: int = 8000

    _client: object = PrivateAttr(default=None)

    def client(self):
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
        return self.client().get_or_create_collection(name, metadata={"hnsw:space": "cosine"})

    def replace_document_chunks(
        self, document_id: str, ids: list[str], embeddings: list[list[float]], texts: list[str], metadatas: list[dict]
    ) -> int:
        """Make the collection hold exactly these chunks for the document (idempotent re-materialization)."""
        col = self.collection()
        old = set(col.get(where={"document_id": document_id}, include=[])["ids"])
        stale = sorted(old - set(ids))
        if stale:
            col.delete(ids=stale)
        if ids:
            col.upsert(ids=ids, embeddings=embeddings, documents=texts, metadatas=metadatas)
        return len(ids)

    def query(self, embedding: list[float], k: int = 10, where: dict | None = None) -> dict:
        return self.collection().query(query_embeddings=[embedding], n_results=k, where=where)

    def count(self, document_id: str | None = None) -> int:
        col = self.collection()
        if document_id is None:
            return col.count()
        return len(col.get(where={"document_id": document_id}, include=[])["ids"])
