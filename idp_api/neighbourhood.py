"""A document's neighbourhood for `GET /api/v1/graph/documents/{id}`: its supplier and entities (graph),
documents connected to it (same supplier, shared identifying entities, duplicates: graph) and the
documents most similar in meaning (Chroma: the mean of its chunk vectors against other documents' chunks)."""

from __future__ import annotations

import math

from idp_api.models import GraphEdge, GraphNode, GraphOut
from resources.vectors import CHUNKS_COLLECTION

MAX_ENTITIES = 200
SIMILAR = 5

_DOCUMENT = ("MATCH (d:Document {id: $id}) RETURN d.filename AS filename, d.doc_type AS doc_type, d.date AS date, "
             "d.invoice_number AS invoice_number, d.total AS total, d.currency AS currency, "
             "d.supplier_name AS supplier_name")
_SUPPLIER = ("MATCH (d:Document {id: $id})-[r:ISSUED_BY]->(s:Supplier) "
             "RETURN s.id AS id, s.name AS name, r.score AS score, r.method AS method")
_ENTITIES = ("MATCH (d:Document {id: $id})-[:CONTAINS]->(:Chunk)-[:MENTIONS]->(e:Entity) "
             "RETURN DISTINCT e.id AS id, e.kind AS kind, e.value AS value LIMIT $limit")


def _read(graph_store, query: str, **params) -> list[dict]:
    def work(tx):
        return [dict(r.items()) for r in tx.run(query, **params)]

    with graph_store.driver().session(database=graph_store.database) as session:
        return session.execute_read(work)


def similar_documents(vector_store, document_id: str, n: int = SIMILAR) -> list[tuple[str, float]]:
    col = vector_store.collection(CHUNKS_COLLECTION)
    got = col.get(where={"document_id": document_id}, include=["embeddings"])
    embs = got.get("embeddings")
    if embs is None or len(embs) == 0:
        return []
    dim = len(embs[0])
    mean = [sum(float(e[i]) for e in embs) / len(embs) for i in range(dim)]
    norm = math.sqrt(sum(x * x for x in mean)) or 1.0
    mean = [x / norm for x in mean]
    res = vector_store.query(mean, k=8 * n, where={"document_id": {"$ne": document_id}})
    best: dict[str, float] = {}
    for meta, dist in zip(res["metadatas"][0], res["distances"][0]):
        sim = round(1.0 - float(dist), 4)
        d = meta["document_id"]
        if sim > best.get(d, -2.0):
            best[d] = sim
    return sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def neighbourhood(graph_store, vector_store, document_id: str) -> GraphOut | None:
    doc = _read(graph_store, _DOCUMENT, id=document_id)
    if not doc:
        return None
    props = {k: v for k, v in doc[0].items() if v is not None}
    nodes: dict[str, GraphNode] = {document_id: GraphNode(id=document_id, kind="Document",
                                                          label=props.get("filename"), properties=props)}
    edges: list[GraphEdge] = []
    for s in _read(graph_store, _SUPPLIER, id=document_id):
        nodes.setdefault(s["id"], GraphNode(id=s["id"], kind="Supplier", label=s["name"]))
        edges.append(GraphEdge(source=document_id, target=s["id"], type="ISSUED_BY", detail=s.get("method"),
                               score=s.get("score")))
    for e in _read(graph_store, _ENTITIES, id=document_id, limit=MAX_ENTITIES):
        nodes.setdefault(e["id"], GraphNode(id=e["id"], kind="Entity", label=e["value"],
                                            properties={"entity_kind": e["kind"]}))
        edges.append(GraphEdge(source=document_id, target=e["id"], type="MENTIONS"))
    related = graph_store.related_documents([document_id])
    similar = similar_documents(vector_store, document_id)
    others = sorted({r["related_id"] for r in related} | {d for d, _ in similar})
    info = graph_store.document_properties(others) if others else {}
    for d in others:
        p = {k: v for k, v in (info.get(d) or {}).items() if v is not None and k != "id"}
        nodes.setdefault(d, GraphNode(id=d, kind="Document", label=p.get("filename"), properties=p))
    seen: set[tuple[str, str]] = set()
    for r in related:
        if (r["related_id"], r["via"] + str(r["detail"])) in seen:
            continue
        seen.add((r["related_id"], r["via"] + str(r["detail"])))
        edges.append(GraphEdge(source=document_id, target=r["related_id"], type=f"RELATED_BY_{r['via'].upper()}",
                               detail=r["detail"]))
    for d, sim in similar:
        edges.append(GraphEdge(source=document_id, target=d, type="SIMILAR_TO", score=sim))
    return GraphOut(document_id=document_id, nodes=list(nodes.values()), edges=edges)
