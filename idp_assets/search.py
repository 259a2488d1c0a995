"""`embeddings` (chunks into Chroma) and `graph_nodes` (Document/Page/Chunk/Supplier over Bolt)."""


from dagster import AssetExecutionContext, Output, asset

from idp_assets.common import ASSET_GROUP, PARTITIONS, check_result, check_spec, timed
from idp_assets.logic.chunking import chunk_document
from idp_assets.models import (
    EmbeddingsResult,
    GraphResult,
    OcrPages,
    SourceDocument,
    SupplierMatch,
    Tables,
)
from resources.embedder import Embedder
from resources.graph import GraphStore
from resources.vectors import CHUNKS_COLLECTION, VectorStore


@asset(
    partitions_def=PARTITIONS,
    group_name=ASSET_GROUP,
    code_version="1+all-MiniLM-L6-v2@gt-0.1.0",
    description="Layout-aware chunks embedded into the Chroma collection `document_chunks` (stable ids: re-runs replace).",
    check_specs=[check_spec("embeddings", "chunks_stored", "Chroma holds exactly this document's chunks")],
)
def embeddings(
    context: AssetExecutionContext,
    ocr_pages: OcrPages,
    normalized_tables: Tables,
    supplier_matches: SupplierMatch,
    source_documents: SourceDocument,
    embedder: Embedder,
    vector_store: VectorStore,
):
    chunks = chunk_document(ocr_pages, normalized_tables.tables)
    with timed() as t:
        vectors = embedder.embed([c.text for c in chunks])
    metas = [
        {
            "document_id": c.document_id,
            "page": c.page or 0,
            "kind": c.kind,
            "filename": source_documents.filename,
            "media_type": source_documents.media_type,
            "supplier_id": supplier_matches.supplier_id or "",
        }
        for c in chunks
    ]
    vector_store.replace_document_chunks(ocr_pages.document_id, [c.chunk_id for c in chunks], vectors,
                                         [c.text for c in chunks], metas)
    stored = vector_store.count(ocr_pages.document_id)
    res = EmbeddingsResult(document_id=ocr_pages.document_id, collection=CHUNKS_COLLECTION, model=embedder.version,
                           chunk_ids=[c.chunk_id for c in chunks], chunks=chunks,
                           dimensions=len(vectors[0]) if vectors else 0)
    yield Output(res, metadata={"chunks": len(chunks), "model": embedder.version, "embed_seconds": t["seconds"]})
    yield check_result("embeddings", "chunks_stored", stored == len(chunks), stored=stored, expected=len(chunks))


@asset(
    partitions_def=PARTITIONS,
    group_name=ASSET_GROUP,
    code_version="1",
    description="Document, Page, Chunk and Supplier nodes with their edges, MERGEd over Bolt (Neo4j or ArcadeDB).",
    check_specs=[check_spec("graph_nodes", "pages_written", "one Page node per page")],
)
def graph_nodes(
    context: AssetExecutionContext,
    source_documents: SourceDocument,
    ocr_pages: OcrPages,
    embeddings: EmbeddingsResult,
    supplier_matches: SupplierMatch,
    graph_store: GraphStore,
):
    res = graph_store.write_document(source_documents, ocr_pages, embeddings.chunks, supplier_matches)
    yield Output(res, metadata={"nodes": sum(res.nodes.values()), "relationships": sum(res.relationships.values()),
                                **{f"nodes_{k}": v for k, v in res.nodes.items()}})
    yield check_result("graph_nodes", "pages_written", res.nodes.get("Page", 0) == len(ocr_pages.pages),
                       written=res.nodes.get("Page", 0), pages=len(ocr_pages.pages))
