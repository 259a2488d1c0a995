"""Indexing and hybrid search over Chroma (meaning) and the knowledge graph (connections).

Indexing (used by the `embeddings` / `graph_nodes` assets, the corpus tests and the benchmark):
`embed_document` writes a document's chunks to `document_chunks` and its entities to
`entities`; `write_graph` writes its subgraph.

Search (`search()`, `idp search`):
1. vector hits: the query embedding against `document_chunks` (filters: supplier, date) and
   against `entities` (a supplier's name, a product ...); per document the best chunk counts;
2. exact matches: identifiers in the query (IBAN, VAT id, invoice-number-like tokens,
   amounts, ISO dates) looked up as graph Entity keys and as substrings of chunk texts;
3. dates in the query ("October 2022", "2022-10") boost documents dated in that period;
4. graph expansion / re-ranking: documents connected to the strongest candidates by the same
   supplier, a shared identifying entity (IBAN, VAT id, organisation, address) or DUPLICATE_OF
   are added or lifted, each with the reason.
Every hit carries its document, page, snippet, score and the reasons it matched.
`mode="vector"` runs step 1 only (the baseline for the recall benchmark).
"""

from __future__ import annotations

import calendar
import math
import hashlib
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import date

import numpy as np

from idp_assets.logic.chunking import chunk_document, embedding_input
from idp_assets.logic.textguard import bounded_pages
from idp_assets.logic.entities import (
    _IBAN_TEXT,
    _VAT_TEXT,
    date_number,
    document_properties,
    entity_key,
    extract_entities,
    normalize_value,
)
from idp_assets.logic.suppliers import iban_valid, normalize_name
from idp_assets.models import (
    Chunk,
    EmbeddingsResult,
    ExtractedFields,
    GraphResult,
    OcrPages,
    SourceDocument,
    SupplierMatch,
    Table,
)
from resources.vectors import CHUNKS_COLLECTION, ENTITIES_COLLECTION, filter_where

# entity kinds matched by meaning and kept in the `entities` collection (identifiers, amounts and
# dates only match exactly, through the graph and the chunk texts)
NAME_KINDS = ("Organization", "Product", "Address", "Person")

# -- indexing ---------------------------------------------------------------------------


def _context(props: dict) -> str:
    """Document context embedded with every chunk: type, supplier and the date spelled out."""
    bits = [props.get("doc_type") or ""]
    if props.get("supplier_name"):
        bits.append(f"from {props['supplier_name']}")
    d = props.get("date")
    if d and re.fullmatch(r"\d{4}-\d{2}-\d{2}", d):
        y, m, dd = (int(x) for x in d.split("-"))
        if 1 <= m <= 12:
            bits.append(f"dated {dd} {calendar.month_name[m]} {y}")
    return " ".join(b for b in bits if b)


def chunk_metadata(chunk: Chunk, source: SourceDocument, supplier: SupplierMatch, props: dict) -> dict:
    """Filterable metadata of one chunk (Chroma accepts str/int/float/bool only, no None)."""
    return {
        "document_id": chunk.document_id,
        "page": chunk.page or 0,
        "kind": chunk.kind,
        "heading": chunk.heading or "",
        "filename": source.filename,
        "media_type": source.media_type,
        "supplier_id": supplier.supplier_id or "",
        "supplier_key": normalize_name(props.get("supplier_name") or ""),  # --supplier by name
        "supplier_name": props.get("supplier_name") or "",
        "doc_type": props.get("doc_type") or "",
        "date": props.get("date") or "",
        "date_num": date_number(props.get("date")),
        "invoice_number": props.get("invoice_number") or "",
    }


def entity_entry_id(document_id: str, key: str) -> str:
    return hashlib.sha1(f"{document_id}|{key}".encode()).hexdigest()


def prepare_document(source: SourceDocument, ocr: OcrPages, tables: list[Table], fields: ExtractedFields | None,
                     supplier: SupplierMatch, chunks: list[Chunk] | None = None, llm_entities: list | None = None):
    """(chunks, entities, props): everything the two stores need, as pure data.

    `llm_entities`: grounded candidates of the optional LLM entity extraction
    (`idp_assets.logic.llm_entities.request_llm_entities`), merged after the rule entities (rules win)."""
    chunks = chunk_document(ocr, tables) if chunks is None else chunks
    props = document_properties(fields, tables, supplier.supplier_id, supplier.name, source.media_type)
    # entities from at most MAX_RULE_CHARS of page text (a hostile 4 MB line must not cost minutes)
    page_texts = dict(zip((p.number for p in ocr.pages), bounded_pages([p.text for p in ocr.pages])))
    entities = extract_entities(fields, chunks, tables, page_texts=page_texts)
    if llm_entities:
        from idp_assets.logic.llm_entities import merge_llm_entities

        entities = merge_llm_entities(entities, llm_entities, chunks)
    return chunks, entities, props


def embed_document(embedder, vector_store, source: SourceDocument, ocr: OcrPages, tables: list[Table],
                   fields: ExtractedFields | None, supplier: SupplierMatch,
                   llm_entities: list | None = None) -> tuple[EmbeddingsResult, int]:
    """Chunk, embed and store one document (chunks and name entities); returns the result and the number of
    entries written to the `entities` collection."""
    doc_id = source.document_id
    chunks, entities, props = prepare_document(source, ocr, tables, fields, supplier, llm_entities=llm_entities)
    ctx = _context(props)
    inputs = [embedding_input(c, ctx) for c in chunks]
    # only names are matched by meaning; identifiers, amounts and dates are found exactly (graph, chunk text)
    entities = [e for e in entities if e.kind in NAME_KINDS]
    ent_texts = [e.value for e in entities]  # the value alone: the kind's name must not match query words
    vectors = embedder.embed(inputs + ent_texts)
    chunk_vecs, ent_vecs = vectors[: len(chunks)], vectors[len(chunks):]
    metas = [chunk_metadata(c, source, supplier, props) for c in chunks]
    vector_store.replace_document_chunks(doc_id, [c.chunk_id for c in chunks], chunk_vecs,
                                         [c.text for c in chunks], metas)
    page_of = {c.chunk_id: c.page or 0 for c in chunks}
    ent_metas = [
        {"document_id": doc_id, "entity_key": e.key, "kind": e.kind, "value": e.value,
         "chunk_id": e.chunk_ids[0], "page": page_of.get(e.chunk_ids[0], 0),
         "supplier_id": supplier.supplier_id or "", "supplier_key": metas[0]["supplier_key"] if metas else "",
         "doc_type": props.get("doc_type") or "", "date_num": date_number(props.get("date"))}
        for e in entities
    ]
    vector_store.replace_document_chunks(doc_id, [entity_entry_id(doc_id, e.key) for e in entities], ent_vecs,
                                         ent_texts, ent_metas, collection=ENTITIES_COLLECTION)
    res = EmbeddingsResult(document_id=doc_id, collection=CHUNKS_COLLECTION, model=embedder.version,
                           chunk_ids=[c.chunk_id for c in chunks], chunks=chunks,
                           dimensions=len(chunk_vecs[0]) if chunk_vecs else 0)
    return res, len(entities)


def write_graph(graph_store, source: SourceDocument, ocr: OcrPages, chunks: list[Chunk], tables: list[Table],
                fields: ExtractedFields | None, supplier: SupplierMatch,
                llm_entities: list | None = None) -> tuple[GraphResult, list]:
    _, entities, props = prepare_document(source, ocr, tables, fields, supplier, chunks=chunks,
                                          llm_entities=llm_entities)
    res = graph_store.write_document(source, ocr, chunks, supplier, tables=tables, entities=entities,
                                     properties=props)
    return res, entities


def self_retrieval(embedder, vector_store, chunks: list[Chunk], sample: int = 3, k: int = 10) -> list[dict]:
    """Embed a deterministic sample of chunks by their own text and check each comes back in the top k."""
    picked = sorted(chunks, key=lambda c: hashlib.sha1(c.chunk_id.encode()).hexdigest())[:sample]
    out = []
    if not picked:
        return out
    vecs = embedder.embed([c.text for c in picked])
    for c, v in zip(picked, vecs):
        got = vector_store.query(v, k=k)
        ids = got["ids"][0]
        out.append({"chunk_id": c.chunk_id, "found": c.chunk_id in ids,
                    "rank": ids.index(c.chunk_id) + 1 if c.chunk_id in ids else None})
    return out


# -- query understanding ------------------------------------------------------------------

_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
_MONTHS.update({"januar": 1, "februar": 2, "märz": 3, "maerz": 3, "mai": 5, "juni": 6, "juli": 7, "oktober": 10,
                "dezember": 12, "sept": 9})
_MONTH_YEAR = re.compile(r"(?i)\b(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?\s+((?:19|20)\d{2})\b")
_YEAR_MONTH = re.compile(r"\b((?:19|20)\d{2})-(0[1-9]|1[0-2])(?!-\d)\b")
_ISO_DATE = re.compile(r"\b((?:19|20)\d{2})-(\d{2})-(\d{2})\b")
_AMOUNT = re.compile(r"(?<![\w.,])(\d{1,3}(?:[.,]\d{3})*[.,]\d{2}|\d+[.,]\d{2})(?![\w.,]*\d)")
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9/\-_.]*[A-Za-z0-9]")


@dataclass
class QueryInfo:
    text: str
    identifiers: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, norm, raw)
    periods: list[tuple[int, int, str]] = field(default_factory=list)  # (from yyyymmdd, to yyyymmdd, label)


def parse_query(query: str) -> QueryInfo:
    q = " ".join(query.split())
    info = QueryInfo(text=q)
    seen: set[tuple[str, str]] = set()

    def ident(kind: str, raw: str) -> None:
        norm = normalize_value(kind, raw)
        if norm and (kind, norm) not in seen:
            seen.add((kind, norm))
            info.identifiers.append((kind, norm, raw))

    up = q.upper()
    for m in _IBAN_TEXT.findall(up):
        if iban_valid(m):
            ident("IBAN", m)
    for m in _VAT_TEXT.findall(up):
        ident("VATId", m)
    for y, mo, d in _ISO_DATE.findall(q):
        try:
            dt = date(int(y), int(mo), int(d))
        except ValueError:
            continue
        ident("Date", dt.isoformat())
        info.periods.append((date_number(dt.isoformat()),) * 2 + (dt.isoformat(),))
    for name, y in _MONTH_YEAR.findall(q):
        m = _MONTHS[name.lower()]
        last = calendar.monthrange(int(y), m)[1]
        info.periods.append((int(y) * 10000 + m * 100 + 1, int(y) * 10000 + m * 100 + last,
                             f"{calendar.month_name[m]} {y}"))
    for y, mo in _YEAR_MONTH.findall(q):
        m = int(mo)
        last = calendar.monthrange(int(y), m)[1]
        info.periods.append((int(y) * 10000 + m * 100 + 1, int(y) * 10000 + m * 100 + last, f"{y}-{mo}"))
    for raw in _AMOUNT.findall(q):
        ident("Amount", raw.replace(",", ".") if re.fullmatch(r"\d+,\d{2}", raw) else raw.replace(",", ""))
    ibans_vats = {n for k, n, _ in info.identifiers if k in ("IBAN", "VATId")}
    for tok in _TOKEN.findall(q):
        if _ISO_DATE.fullmatch(tok) or _YEAR_MONTH.fullmatch(tok) or _AMOUNT.fullmatch(tok):
            continue
        if re.fullmatch(r"(?:19|20)\d{2}", tok):  # a bare year is a period, not an identifier
            continue
        norm = normalize_value("InvoiceNumber", tok)
        if sum(ch.isdigit() for ch in norm) >= 3 and len(norm) >= 4 and norm not in ibans_vats:
            ident("InvoiceNumber", tok)
    return info


# -- search -----------------------------------------------------------------------------------

ENTITY_MIN_SIM = 0.5
GRAPH_FACTOR = 0.5
MAX_SHARED_REASONS = 3  # "shares <entity> with ..." reasons listed per hit
KIND_LABEL = {"InvoiceNumber": "invoice number", "IBAN": "IBAN", "VATId": "VAT id"}
VIA_WEIGHT = {"duplicate": 0.9, "supplier": 0.6, "entity": 0.5}


@dataclass
class SearchHit:
    document_id: str
    page: int | None
    chunk_id: str | None
    snippet: str
    score: float
    reasons: list[str]
    filename: str | None = None
    supplier_name: str | None = None
    doc_type: str | None = None
    date: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Cand:
    document_id: str
    vector: float = 0.0
    entity_sim: float = 0.0
    exact: float = 0.0
    period: float = 0.0
    graph: float = 0.0
    keyword: float = 0.0
    chunk_id: str | None = None
    page: int | None = None
    snippet: str = ""
    meta: dict = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    chunk_sim: float = -1.0

    @property
    def score(self) -> float:
        return self.vector + 0.5 * self.entity_sim + self.exact + self.period + self.graph + min(self.keyword, 0.5)

    def take_chunk(self, chunk_id, page, text, sim, meta, prefer: bool = False) -> None:
        if prefer or sim > self.chunk_sim:
            self.chunk_id, self.page, self.snippet, self.chunk_sim = chunk_id, page, text or "", sim
            if prefer:
                self.chunk_sim = 2.0  # exact-match chunks stay the shown snippet
        if meta and not self.meta:
            self.meta = meta

    def why(self, reason: str) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)


KEYWORD_LIMIT = 30  # a word in this many chunks or more is too common to mean anything
_STOPWORDS = frozenset(
    "the and for from with into over under this that these those all any are was were has have had not but you your "
    "our out per via der die das und von mit für ein eine des den dem bei zur zum auf aus les des une pour avec "
    "invoice invoices receipt receipts bill bills rechnung rechnungen factuur facture document documents shop store "
    "paid payment total amount date".split()
)


def _keyword_hits(vector_store, text: str, filters: dict, max_words: int = 3):
    """[(word, {document_id: (chunk_id, page, text, meta)})] for distinctive words of the query
    (case-insensitive, a word may begin a longer one: resources/keywords.py)."""
    words = []
    for w in re.findall(r"[A-Za-zÀ-ÿ][A-Za-zÀ-ÿ'&-]{2,}", text):
        if w.casefold() not in _STOPWORDS and w.casefold() not in {x.casefold() for x in words}:
            words.append(w)
    out = []
    for w in words[:max_words]:
        found: dict[str, tuple] = {}
        got = vector_store.find_words(w, limit=KEYWORD_LIMIT, **filters)
        for cid, doc, meta in zip(got["ids"], got["documents"], got["metadatas"]):
            found.setdefault(meta["document_id"], (cid, meta.get("page") or None, doc, meta))
        if found and len(got["ids"]) < KEYWORD_LIMIT:
            out.append((w, found))
    return out


def _filters(supplier: str | None, after: str | None) -> dict:
    """search's filters as `VectorStore.find_words` / `filter_where` take them: a supplier by id or by key,
    a document date from `after` on (ValueError for a date that is not ISO)."""
    min_date = None
    if after:
        min_date = date_number(after)
        if not min_date:
            raise ValueError(f"--after needs an ISO date (YYYY-MM-DD), got {after!r}")
    return {"supplier_id": supplier or None,
            "supplier_key": (normalize_name(supplier) or supplier) if supplier else None,
            "min_date_num": min_date}


def _passes(meta: dict, supplier: str | None, after: str | None) -> bool:
    if supplier and meta.get("supplier_id") != supplier and meta.get("supplier_key") != (normalize_name(supplier) or supplier):
        return False
    if after and (meta.get("date_num") or 0) < date_number(after):
        return False
    return True


def _snippet(text: str, needle: str | None = None, width: int = 240) -> str:
    text = " ".join((text or "").split())
    if needle:
        i = text.lower().find(needle.lower())
        if i > width // 2:
            start = max(0, i - width // 3)
            return ("…" + text[start : start + width]).strip()
    return text[:width] + ("…" if len(text) > width else "")


def _fill(vector_store, cands: dict, doc_ids: list[str], qvec: list[float]) -> None:
    """Candidates found by other means than the vector query (exact, keyword, entity, graph) get their real
    best-chunk similarity to the query, their metadata and a snippet, from their stored chunks."""
    if not doc_ids:
        return
    got = vector_store.collection(CHUNKS_COLLECTION).get(where={"document_id": {"$in": sorted(set(doc_ids))}},
                                                         include=["metadatas", "documents", "embeddings"])
    if not got["ids"]:
        return
    # both normalised: cosine = dot product, for all chunks at once
    sims = np.asarray(got["embeddings"], dtype=np.float32) @ np.asarray(qvec, dtype=np.float32)
    for cid, meta, text, sim in zip(got["ids"], got["metadatas"], got["documents"], sims.tolist()):
        c = cands[meta["document_id"]]
        if sim > c.vector:
            c.vector = sim
        if not c.meta:
            c.meta = meta
        c.take_chunk(cid, meta.get("page") or None, text, sim, meta)


def search(query: str, embedder, vector_store, graph_store=None, k: int = 10, supplier: str | None = None,
           after: str | None = None, mode: str = "hybrid", timings: dict | None = None) -> list[SearchHit]:
    """Top-k documents for the query, best first (one hit per document)."""
    if mode not in ("hybrid", "vector"):
        raise ValueError(f"mode must be 'hybrid' or 'vector', not {mode!r}")
    if not query or not query.strip():
        raise ValueError("empty query")
    t0 = time.perf_counter()
    filters = _filters(supplier, after)
    where = filter_where(**filters)
    info = parse_query(query)
    qvec = embedder.embed([info.text])[0]
    cands: dict[str, _Cand] = {}

    def cand(doc_id: str) -> _Cand:
        return cands.setdefault(doc_id, _Cand(doc_id))

    # 1. vector hits over chunks: per document the best chunk
    n_chunks = max(8 * k, 50)
    res = vector_store.query(qvec, k=n_chunks, where=where)
    for cid, text, meta, dist in zip(res["ids"][0], res["documents"][0], res["metadatas"][0], res["distances"][0]):
        sim = 1.0 - float(dist)
        c = cand(meta["document_id"])
        if sim > c.vector:
            c.vector = sim
        c.take_chunk(cid, meta.get("page") or None, text, sim, meta)
    for c in cands.values():
        c.why(f"text similar to the query ({c.vector:.2f})")
    t_vec = time.perf_counter()

    if mode == "hybrid":
        # 1b. entities that mean the same as the query (supplier names, products, addresses)
        # the collection holds name kinds only (see embed_document): no kind filter, which costs ~250 ms at 10k docs
        ent = vector_store.query(qvec, k=3 * k, where=where, collection=ENTITIES_COLLECTION)
        for meta, dist in zip(ent["metadatas"][0], ent["distances"][0]):
            sim = 1.0 - float(dist)
            if sim < ENTITY_MIN_SIM or meta.get("kind") not in NAME_KINDS:
                continue
            c = cand(meta["document_id"])
            if sim > c.entity_sim:
                c.entity_sim = sim
                c.why(f"mentions {meta['kind']} {meta['value']} ({sim:.2f})")

        # 2. exact identifiers: graph entity keys, then chunk texts
        if info.identifiers:
            keys: dict[str, tuple[str, str]] = {}
            for kind, norm, raw in info.identifiers:
                keys[entity_key(kind, norm)] = (kind, raw)
                if kind == "InvoiceNumber":  # an unlabeled number may be any identifier
                    for other in ("VATId", "IBAN"):
                        keys.setdefault(entity_key(other, norm), (other, raw))
            if graph_store is not None:
                for row in graph_store.documents_mentioning(list(keys)):
                    kind, raw = keys[row["entity"]]
                    weight = 1.0 if kind in ("IBAN", "VATId", "InvoiceNumber") else 0.3
                    c = cand(row["document_id"])
                    if weight > c.exact:
                        c.exact = weight
                    c.take_chunk(row["chunk_id"], row.get("page"), row.get("text") or "", 2.0, {},
                                 prefer=weight >= 1.0)
                    c.why(f"exact {kind} {row['value']}")
            for kind, norm, raw in info.identifiers:
                if kind not in ("IBAN", "VATId", "InvoiceNumber") or len(norm) < 4:
                    continue
                variants = {raw, norm} | ({" ".join(norm[i:i + 4] for i in range(0, len(norm), 4))} if kind == "IBAN" else set())
                for needle in sorted(variants):
                    # whole tokens in order, case-insensitive (resources/keywords.py)
                    got = vector_store.find_words(needle, limit=20, prefix=False, **filters)
                    for cid, text, meta in zip(got["ids"], got["documents"], got["metadatas"]):
                        c = cand(meta["document_id"])
                        c.exact = max(c.exact, 0.9)
                        c.take_chunk(cid, meta.get("page") or None, text, 2.0, meta, prefer=c.chunk_sim < 2.0)
                        c.why(f"text contains {KIND_LABEL.get(kind, kind)} '{needle}'")
        # 2b. distinctive query words found verbatim in chunk texts (OCR'd names the model does not know)
        for word, found in _keyword_hits(vector_store, info.text, filters):
            # rarer words weigh more (an idf in miniature): 1 document 0.4 ... KEYWORD_LIMIT documents 0.1
            weight = 0.1 + 0.3 * (1 - math.log(len(found)) / math.log(KEYWORD_LIMIT))
            for doc_id, (cid, page, text, meta) in found.items():
                c = cand(doc_id)
                c.keyword += weight
                c.take_chunk(cid, page, text, c.chunk_sim, meta)
                c.why(f"text contains '{word}'")
        t_exact = time.perf_counter()

        # 3. dates in the query
        if info.periods:
            for c in cands.values():
                dn = (c.meta or {}).get("date_num") or 0
                for lo, hi, label in info.periods:
                    if dn and lo <= dn <= hi:
                        c.period = 0.15
                        c.why(f"dated in {label}")

        _fill(vector_store, cands, [d for d, c in cands.items() if not c.meta or c.vector == 0.0], qvec)

        # 4. graph expansion / re-ranking from the strongest candidates
        if graph_store is not None and cands:
            seeds = sorted(cands.values(), key=lambda c: -c.score)[: max(k, 5)]
            base = {c.document_id: c.score for c in seeds}
            names = {c.document_id: (c.meta or {}).get("filename") or c.document_id[:12] for c in seeds}
            for link in graph_store.related_documents(list(base)):
                src, dst, via = link["document_id"], link["related_id"], link["via"]
                bonus = GRAPH_FACTOR * VIA_WEIGHT[via] * base[src]
                c = cand(dst)
                if bonus > c.graph:
                    c.graph = bonus
                if via == "entity":
                    shared = sum(r.startswith("shares ") for r in c.reasons)
                    if shared < MAX_SHARED_REASONS:
                        c.why(f"shares {link['detail']} with {names[src]}")
                else:
                    c.why(f"{'duplicate of' if via == 'duplicate' else 'same supplier as'} {names[src]}")
        t_graph = time.perf_counter()

        # documents only reached through the graph: similarity, chunk and metadata; then the filters
        _fill(vector_store, cands, [d for d, c in cands.items() if not c.meta], qvec)
        cands = {d: c for d, c in cands.items() if c.meta and _passes(c.meta, supplier, after)}
    else:
        t_exact = t_graph = time.perf_counter()

    ranked = sorted(cands.values(), key=lambda c: (-c.score, c.document_id))[:k]
    needle = next((raw for kind, _, raw in info.identifiers if kind in ("IBAN", "VATId", "InvoiceNumber")), None)
    hits = [
        SearchHit(document_id=c.document_id, page=c.page, chunk_id=c.chunk_id, snippet=_snippet(c.snippet, needle),
                  score=round(c.score, 4), reasons=c.reasons, filename=c.meta.get("filename"),
                  supplier_name=c.meta.get("supplier_name") or None, doc_type=c.meta.get("doc_type") or None,
                  date=c.meta.get("date") or None)
        for c in ranked
    ]
    if timings is not None:
        end = time.perf_counter()
        timings.update({"vector_ms": (t_vec - t0) * 1000, "exact_ms": (t_exact - t_vec) * 1000,
                        "graph_ms": (t_graph - t_exact) * 1000, "total_ms": (end - t0) * 1000})
    return hits


# -- pipeline outputs as index input ----------------------------------------------------------

_PAGE_KEEP = ("number", "width", "height", "dpi", "rotation", "engine", "compute", "route_reason", "confidence",
              "text", "empty_reason")


def trim_export(d: dict) -> dict:
    """The parts of an `idp process` JSON export that indexing needs (no OCR words / attempts)."""
    return {
        "document_id": d["document_id"],
        "source": d["source"],
        "pages": [{k: p.get(k) for k in _PAGE_KEEP if k in p} for p in d.get("pages") or []],
        "tables": d.get("tables") or [],
        "fields": d.get("fields") or {},
        "supplier_match": d.get("supplier_match"),
    }


def from_export(d: dict) -> tuple[SourceDocument, OcrPages, list[Table], ExtractedFields, SupplierMatch]:
    """Rebuild the asset inputs of `embeddings` / `graph_nodes` from an export (or `trim_export`) dict."""
    from idp_assets.models import OcrPage

    doc_id = d["document_id"]
    src = SourceDocument(document_id=doc_id, **{k: d["source"][k] for k in
                                                ("uri", "filename", "media_type", "bytes", "store_uri")})
    ocr = OcrPages(document_id=doc_id,
                   pages=[OcrPage(**{k: p[k] for k in _PAGE_KEEP if k in p}) for p in d.get("pages") or []])
    tables = [Table(**t) for t in d.get("tables") or []]
    fields = ExtractedFields(document_id=doc_id, fields=d.get("fields") or {})
    sm = d.get("supplier_match") or {}
    supplier = SupplierMatch(document_id=doc_id, supplier_id=sm.get("supplier_id"), name=sm.get("name"),
                             score=sm.get("score", 0.0), method=sm.get("method", "new"))
    return src, ocr, tables, fields, supplier


def index_export(d: dict, embedder, vector_store, graph_store=None) -> dict:
    """Index one export into Chroma (and the graph when given); returns counts."""
    src, ocr, tables, fields, supplier = from_export(d)
    res, n_ent = embed_document(embedder, vector_store, src, ocr, tables, fields, supplier)
    out = {"document_id": src.document_id, "chunks": len(res.chunks), "entities": n_ent}
    if graph_store is not None:
        g, _ = write_graph(graph_store, src, ocr, res.chunks, tables, fields, supplier)
        out["graph"] = g.model_dump()
    return out
