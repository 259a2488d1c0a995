"""`embeddings` (chunks + entities into Chroma) and `graph_nodes` (the document's knowledge subgraph over Bolt).

Thin Dagster wiring: the work is in `idp_assets.hybrid_search.embed_document` /
`write_graph` (shared with `idp search`, the corpus tests and the benchmark).
"""


from dagster import AssetExecutionContext, Output, asset

from idp_assets.common import ASSET_GROUP, DOCUMENT_BACKFILL_POLICY, PARTITIONS, SERVICE_RETRY_POLICY, check_result, check_spec, timed
from idp_assets.budget import budgeted
from idp_assets.hybrid_search import embed_document, self_retrieval, write_graph
from idp_assets.logic.llm_entities import LLM_SOURCE, request_llm_entities
from idp_assets.models import (
    EmbeddingsResult,
    ExtractedFields,
    OcrPages,
    SourceDocument,
    SupplierMatch,
    Tables,
)
from resources.embedder import Embedder, configured_version
from resources.graph import GraphStore
from resources.llm import LlmRouter
from resources.vectors import CHUNKS_COLLECTION, ENTITIES_COLLECTION, VectorStore

# the model name + version is part of the code version: another model marks every partition stale
EMBEDDINGS_CODE_VERSION = f"2+{configured_version()}"


@asset(
    partitions_def=PARTITIONS,
    group_name=ASSET_GROUP,
    code_version=EMBEDDINGS_CODE_VERSION,
    backfill_policy=DOCUMENT_BACKFILL_POLICY,
    retry_policy=SERVICE_RETRY_POLICY,
    description=(
        "Layout-aware chunks (page / heading / paragraph / table) embedded into the Chroma collection "
        "`document_chunks`, entities into `entities`, with filter metadata (document, page, supplier, doc type, "
        "dates). Stable ids: re-runs replace."
    ),
    check_specs=[
        check_spec("embeddings", "chunks_stored", "Chroma holds exactly this document's chunks and entities"),
        check_spec("embeddings", "self_retrieval", "a sample of chunks is found again (top 10) by its own text"),
    ],
)
@budgeted("embeddings")
def embeddings(
    context: AssetExecutionContext,
    ocr_pages: OcrPages,
    normalized_tables: Tables,
    extracted_fields: ExtractedFields,
    supplier_matches: SupplierMatch,
    source_documents: SourceDocument,
    embedder: Embedder,
    vector_store: VectorStore,
    llm_router: LlmRouter,
):
    # optional LLM entities (task alias idp-entities): nothing is called unless the router is configured for it
    llm = request_llm_entities(ocr_pages.text, llm_router)
    if llm.error:
        context.log.warning(f"LLM entity extraction failed, rule entities only: {llm.error}")
    with timed() as t:
        res, n_entities = embed_document(embedder, vector_store, source_documents, ocr_pages,
                                         normalized_tables.tables, extracted_fields, supplier_matches,
                                         llm_entities=llm.candidates)
    res = res.model_copy(update={"llm_entities": [c.model_dump() for c in llm.candidates]})
    stored = vector_store.count(res.document_id)
    stored_entities = vector_store.count(res.document_id, collection=ENTITIES_COLLECTION)
    probe = self_retrieval(embedder, vector_store, res.chunks, sample=3, k=10)
    yield Output(res, metadata={"chunks": len(res.chunks), "entities": n_entities, "model": embedder.version,
                                "collection": CHUNKS_COLLECTION, "embed_seconds": t["seconds"],
                                "llm_entities": llm.metadata(),
                                "kinds": {k: sum(c.kind == k for c in res.chunks) for k in
                                          ("heading", "paragraph", "table", "page")}})
    yield check_result("embeddings", "chunks_stored", stored == len(res.chunks) and stored_entities == n_entities,
                       stored=stored, expected=len(res.chunks), stored_entities=stored_entities,
                       expected_entities=n_entities)
    yield check_result("embeddings", "self_retrieval", all(p["found"] for p in probe), probes=probe)


@asset(
    partitions_def=PARTITIONS,
    group_name=ASSET_GROUP,
    code_version="2",
    backfill_policy=DOCUMENT_BACKFILL_POLICY,
    retry_policy=SERVICE_RETRY_POLICY,
    description=(
        "Document, Page, Chunk, Table, LineItem, Supplier and Entity nodes with HAS_PAGE, CONTAINS, MENTIONS, "
        "ISSUED_BY, HAS_TABLE, HAS_ITEM and DUPLICATE_OF edges, MERGEd over Bolt (Neo4j or ArcadeDB) in one "
        "transaction per document."
    ),
    check_specs=[
        check_spec("graph_nodes", "pages_written", "one Page node per page"),
        check_spec("graph_nodes", "entities_linked", "every entity of the document is mentioned by one of its chunks"),
    ],
)
@budgeted("graph_nodes")
def graph_nodes(
    context: AssetExecutionContext,
    source_documents: SourceDocument,
    ocr_pages: OcrPages,
    embeddings: EmbeddingsResult,
    supplier_matches: SupplierMatch,
    extracted_fields: ExtractedFields,
    normalized_tables: Tables,
    graph_store: GraphStore,
):
    res, entities = write_graph(graph_store, source_documents, ocr_pages, embeddings.chunks,
                                normalized_tables.tables, extracted_fields, supplier_matches,
                                llm_entities=getattr(embeddings, "llm_entities", None))
    yield Output(res, metadata={"nodes": sum(res.nodes.values()), "relationships": sum(res.relationships.values()),
                                "llm_entities": sum(LLM_SOURCE in e.sources for e in entities),
                                **{f"nodes_{k}": v for k, v in res.nodes.items()},
                                **{f"rel_{k}": v for k, v in res.relationships.items()}})
    yield check_result("graph_nodes", "pages_written", res.nodes.get("Page", 0) == len(ocr_pages.pages),
                       written=res.nodes.get("Page", 0), pages=len(ocr_pages.pages))
    yield check_result("graph_nodes", "entities_linked",
                       res.nodes.get("Entity", 0) == len(entities) and all(e.chunk_ids for e in entities),
                       entities=len(entities), written=res.nodes.get("Entity", 0),
                       mentions=res.relationships.get("MENTIONS", 0))
