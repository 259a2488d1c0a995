"""Supplier recognition: test master from the development corpus, distractors, quality evaluation
and the Postgres throughput benchmark (`idp bench suppliers quality|calibrate|speed`).

The test master is *built at run time* from `../shared/corpus` (nothing of the corpus is copied
into git): e-invoice seller parties from `einvoices/gt_original/*.xml`, invoice2data issuers
(`invoices_pdf/gt_original/*.json`), SROIE companies and addresses (`receipts/gt_original/*.key.json`),
minus `LEFT_OUT` (documents of those suppliers must come out as "new"), plus deterministic
near-miss distractors (same city and postcode, one name token changed / added / dropped, shared
legal forms) for every corpus supplier, left-out ones included.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
import re
import time
from pathlib import Path
from xml.etree import ElementTree as ET

import click

from idp_assets.logic.suppliers import iban_valid, normalize_name, vat_valid

# suppliers kept out of the test master (their documents test the "new supplier" path); chosen to
# cover shared identifiers (Physiotherapeutin shares a VAT ID with Bei Spiel GmbH, the taxi company
# with Lieferant GmbH), same address as a master supplier (Golden Arches / Gerbang Alaf, MR. D.I.Y.
# (KUCHAI) / MR. D.I.Y.), and plain unknown receipts.
LEFT_OUT = {"physiotherapeutin", "taxiunternehmen tx", "netpresse", "three stooges", "restoran wan sheng",
            "golden arches restaurants", "mr diy kuchai", "kedai papan yew chuan", "amtech electrical supplies"}

DEFAULT_CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"


def _sid(prefix: str, *parts: str) -> str:
    return prefix + hashlib.sha1("|".join(parts).encode()).hexdigest()[:8].upper()


def _local(tag: str) -> str:
    return tag.split("}", 1)[-1]


def _einvoice_seller(path: Path) -> dict | None:
    root = ET.parse(path).getroot()
    seller = next((e for e in root.iter() if _local(e.tag) == "SellerTradeParty"), None)
    if seller is None:
        return None
    rec: dict = {}
    for e in seller.iter():
        t, txt = _local(e.tag), " ".join((e.text or "").split())
        if not txt:
            continue
        scheme = (e.get("schemeID") or "").upper()
        if t == "Name" and "name" not in rec:
            rec["name"] = re.sub(r"^GLN\s+\d+\s+Lief-Nr:?\s*\d+\s*", "", txt)
        elif t == "GlobalID" and scheme == "0088":
            rec["gln"] = txt
        elif t == "ID" and scheme == "VA":
            rec["vat_id"] = txt
        elif t == "ID" and scheme == "FC":
            rec["tax_number"] = txt
        elif t == "PostcodeCode":
            rec["postal_code"] = txt
        elif t == "LineOne":
            rec["street"] = txt
        elif t == "CityName":
            rec["city"] = txt
        elif t == "CountryID":
            rec["country"] = txt
    return rec if rec.get("name") else None


def _sroie_address(addr: str) -> dict:
    parts = [p.strip() for p in addr.split(",") if p.strip()]
    out: dict = {"country": "MY"}
    m = re.search(r"\b(\d{5})\s+([A-Z][A-Z .]+?)(?:,|$|\s+(?:SELANGOR|JOHOR|JOHOR BAHRU)\b)", addr)
    if m:
        out["postal_code"], out["city"] = m.group(1), m.group(2).strip(" .")
    street = next((p for p in parts if re.search(r"\b(JALAN|JLN|JL|ROAD|AUTOROUTE)\b", p)), parts[0] if parts else "")
    out["street"] = re.sub(r"\s*\d{5}\b.*$", "", street).strip()
    return out


def corpus_suppliers(corpus: Path = DEFAULT_CORPUS) -> tuple[list[dict], dict[str, str]]:
    """(supplier records incl. left-out ones, document id -> supplier key) from the corpus ground truth."""
    recs: dict[str, dict] = {}
    doc_key: dict[str, str] = {}

    def add(rec: dict, doc: str) -> None:
        key = normalize_name(rec["name"])
        cur = recs.setdefault(key, {"key": key})
        for k, v in rec.items():
            if v and not cur.get(k):
                cur[k] = v
        doc_key[doc] = key

    for f in sorted((corpus / "einvoices" / "gt_original").glob("*.xml")):
        rec = _einvoice_seller(f)
        if rec:
            add(rec, f.stem)
    for f in sorted((corpus / "invoices_pdf" / "gt_original").glob("*.json")):
        d = json.loads(f.read_text())[0]
        rec = {"name": d["issuer"], "street": d.get("partner_street"), "postal_code": d.get("partner_zip"),
               "city": d.get("partner_city"), "country": (d.get("country_code") or "").upper() or None,
               "vat_id": d.get("vat") or d.get("static_vat"), "iban": d.get("iban"),
               "tax_number": d.get("gstin") or (str(d["siren"]) if d.get("siren") else None)}
        if d.get("partner_name") and normalize_name(d["partner_name"]) != normalize_name(d["issuer"]):
            rec["aliases"] = d["partner_name"]
        add(rec, f.stem)
        add(rec, f.stem.replace("invoice-i2d-", "invoice-img-i2d-"))
    for f in sorted((corpus / "receipts" / "gt_original").glob("*.key.json")):
        d = json.loads(f.read_text())
        add({"name": d["company"], **_sroie_address(d.get("address", ""))}, f.name.replace(".key.json", ""))
    out = []
    for key, r in sorted(recs.items()):
        r["supplier_id"] = _sid("C-", key, r.get("postal_code") or "")
        if r.get("vat_id") and not vat_valid(r["vat_id"]):
            r.pop("vat_id")
        if r.get("iban") and not iban_valid(r["iban"]):
            r.pop("iban")
        out.append(r)
    return out, doc_key


_GENERIC = ["Trading", "Services", "Holding", "Group", "International", "Solutions", "Supplies", "Handel", "Technik",
            "Restaurant", "Enterprise", "Marketing", "Logistik", "Consulting", "Retail", "Food", "Systems", "Partner"]
_QUALIFIERS = ["(KL)", "(JOHOR)", "(PENANG)", "(PERAK)", "Nord", "Süd", "West", "Express", "Asia", "Europe", "Baltic"]
_FORMS = {"DE": ["GmbH", "AG", "KG", "GmbH & Co. KG", "e.K.", "UG"], "MY": ["SDN BHD", "ENTERPRISE", "TRADING", "PLT"],
          "NL": ["B.V.", "N.V."], "US": ["Inc.", "LLC"], "FR": ["SARL", "SAS"], "IN": ["Pvt. Ltd."]}


def _mutate_token(tok: str, rnd: random.Random) -> str:
    """A different but similar-looking word: ~30 % of its letters (at least two) changed, well beyond
    an OCR slip."""
    if len(tok) < 4:
        return tok + rnd.choice("XKZ") + rnd.choice("AEO")
    chars = list(tok)
    for pos in rnd.sample(range(1, len(chars)), max(2, round(len(chars) * 0.3))):
        c = chars[pos]
        pool = "AEIOU" if c.upper() in "AEIOU" else "BCDFGHKLMNPRSTVZ"
        chars[pos] = rnd.choice([x for x in pool if x != c.upper()])
        chars[pos] = chars[pos] if tok.isupper() else chars[pos].lower()
    return "".join(chars)


def distractors(recs: list[dict], per_supplier: int = 6, seed: int = 7) -> list[dict]:
    """Near-miss suppliers for every corpus supplier: same postcode/city, similar names."""
    rnd = random.Random(seed)
    out, seen = [], {normalize_name(r["name"]) for r in recs}
    for r in recs:
        words = r["name"].split()
        core = [w for w in words if normalize_name(w)] or words
        country = (r.get("country") or "DE").upper()
        variants = []
        # 1. the most distinctive (longest) token changed by two letters
        i = max(range(len(core)), key=lambda j: len(core[j]))
        variants.append(" ".join(core[:i] + [_mutate_token(core[i], rnd)] + core[i + 1:]))
        # 2. a generic token swapped / appended
        variants.append(" ".join(core[:-1] + [rnd.choice(_GENERIC)]) if len(core) > 1 else core[0] + " " + rnd.choice(_GENERIC))
        # 3. a branch qualifier added (the parent/child pattern of 'MR. D.I.Y. (JOHOR)')
        variants.append(" ".join(core[:1] + [rnd.choice(_QUALIFIERS)] + core[1:]))
        # 4. a token dropped (a word of 3+ letters, leaving 2+ words; losing 'B' of 'B & BEST' is an OCR slip,
        #    not another company) or a prefix added
        variants.append(" ".join(core[1:]) if len(core) > 2 and len(normalize_name(core[0])) >= 3 else rnd.choice(["Neue", "New", "Euro", "Metro"]) + " " + " ".join(core))
        # 5. first token mutated, 6. another legal form on a mutated name
        variants.append(" ".join([_mutate_token(core[0], rnd)] + core[1:]))
        variants.append(" ".join(core[:-1] + [_mutate_token(core[-1], rnd)]) + " " + rnd.choice(_FORMS.get(country, ["Ltd"])))
        for n, v in enumerate(variants[:per_supplier]):
            if normalize_name(v) in seen or not normalize_name(v):
                continue
            seen.add(normalize_name(v))
            out.append({"supplier_id": _sid("D-", r["supplier_id"], str(n)), "name": v, "street": r.get("street"),
                        "postal_code": r.get("postal_code"), "city": r.get("city"), "country": r.get("country")})
    return out


def test_master(corpus: Path = DEFAULT_CORPUS) -> tuple[list[dict], dict[str, str | None]]:
    """(master rows, document id -> expected supplier_id, None = must be 'new')."""
    recs, doc_key = corpus_suppliers(corpus)
    master = [r for r in recs if r["key"] not in LEFT_OUT]
    ids = {r["key"]: r["supplier_id"] for r in master}
    expected: dict[str, str | None] = {}
    for line in (corpus / "manifest.jsonl").read_text().splitlines():
        d = json.loads(line)
        key = doc_key.get(d["id"])
        expected[d["id"]] = ids.get(key) if key else None
    return master + distractors(recs), expected


def to_csv(rows: list[dict]) -> str:
    from resources.suppliers.base import CSV_COLUMNS

    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in CSV_COLUMNS})
    return out.getvalue()


# ------------------------------------------------------------------------------------------------ quality


def _fields_from_export(rec: dict):
    from idp_assets.models import ExtractedFields, FieldValue

    fields = {k: FieldValue(**v) for k, v in (rec.get("fields") or {}).items() if isinstance(v, dict)}
    return ExtractedFields(document_id=rec.get("document_id") or "x", fields=fields)


def evaluate(master, results_dir: Path, expected: dict[str, str | None], *, text_only: bool = False) -> dict:
    """Match every exported document in `results_dir` (`idp process` JSONs) against `master`."""
    from idp_assets.suppliers import match_supplier

    b = master.backend()
    rows = []
    for doc_id, exp in sorted(expected.items()):
        f = results_dir / f"{doc_id}.json"
        if not f.exists():
            continue
        rec = json.loads(f.read_text())
        fields = None if text_only else _fields_from_export(rec)
        m = match_supplier(doc_id, fields, rec.get("text") or "", master, b)
        rows.append({"doc": doc_id, "expected": exp, "got": m.supplier_id, "method": m.method, "score": m.score,
                     "candidates": [(c.supplier_id, c.score) for c in m.candidates], "evidence": m.evidence})
    known = [r for r in rows if r["expected"]]
    unknown = [r for r in rows if not r["expected"]]
    wrong = [r for r in rows if r["got"] and r["got"] != r["expected"]]
    return {
        "documents": len(rows),
        "in_master": len(known),
        "top1_accuracy": round(sum(r["got"] == r["expected"] for r in known) / max(len(known), 1), 4),
        "not_in_master": len(unknown),
        "new_rate": round(sum(r["got"] is None for r in unknown) / max(len(unknown), 1), 4),
        "wrong_matches": len(wrong),
        "misses": [r for r in known if r["got"] != r["expected"]],
        "wrong": wrong,
        "rows": rows,
    }


# ------------------------------------------------------------------------------------------------ speed

# syllables: onset x vowel x coda (about 2,900), so that generated names have a realistic spread of trigrams
_SYL = [o + v + c for o in ["", "b", "br", "ch", "d", "f", "g", "h", "k", "kr", "l", "m", "n", "p", "r", "s", "sch", "st",
                            "t", "tr", "v", "w", "z"]
        for v in ["a", "e", "i", "o", "u", "au", "ei", "ie", "y", "oo", "ä", "ö"]
        for c in ["", "n", "r", "l", "s", "m", "k", "t", "ng", "nd", "rt"]]
_CITIES = [("10115", "Berlin"), ("80333", "München"), ("20095", "Hamburg"), ("50667", "Köln"), ("60311", "Frankfurt"),
           ("70173", "Stuttgart"), ("40213", "Düsseldorf"), ("04109", "Leipzig"), ("43300", "Seri Kembangan"),
           ("50480", "Kuala Lumpur"), ("81100", "Johor Bahru"), ("47400", "Petaling Jaya"), ("3012 CN", "Rotterdam")]


def _iban_de(rnd: random.Random) -> str:
    bban = "".join(rnd.choice("0123456789") for _ in range(18))
    check = 98 - int("".join(str(int(c, 36)) for c in bban + "DE00")) % 97
    return f"DE{check:02d}{bban}"


def _de_vat(n: int) -> str:
    """A German VAT ID with a valid check digit (ISO 7064 MOD 11,10) from an 8-digit number."""
    from stdnum.iso7064 import mod_11_10

    body = f"{n % 100_000_000:08d}"
    if body[0] == "0":
        body = "1" + body[1:]
    return "DE" + body + mod_11_10.calc_check_digit(body)


def synthetic_master(n: int, seed: int = 1, *, id_offset: int = 0, exclude: set[str] | None = None) -> list[dict]:
    """`n` generated suppliers (names unique after normalisation, none in `exclude`; VAT IDs numbered
    from `id_offset`, so that a second generated set does not share identifiers with the first)."""
    rnd = random.Random(seed)
    rows, seen = [], set(exclude or ())
    while len(rows) < n:
        words = [("".join(rnd.choice(_SYL) for _ in range(rnd.randint(2, 3)))).capitalize() for _ in range(rnd.randint(1, 2))]
        if rnd.random() < 0.5:
            words.append(rnd.choice(_GENERIC))
        name = " ".join(words) + " " + rnd.choice(_FORMS["DE"] + _FORMS["MY"] + _FORMS["NL"])
        key = normalize_name(name)
        if key in seen:
            continue
        seen.add(key)
        pc, city = rnd.choice(_CITIES)
        i = len(rows)
        rows.append({"supplier_id": f"G{id_offset + i:06d}", "name": name,
                     "vat_id": _de_vat(10_000_000 + (id_offset + i) * 7) if rnd.random() < 0.5 else None,
                     "iban": _iban_de(rnd) if rnd.random() < 0.3 else None, "street": f"{rnd.choice(_SYL).capitalize()}straße {rnd.randint(1, 200)}",
                     "postal_code": pc, "city": city, "country": "DE"})
    return rows


def _ocr_noise(s: str, rnd: random.Random, rate: float) -> str:
    conf = {"I": "1", "O": "0", "S": "5", "B": "8", "l": "1", "o": "0", "e": "c", "rn": "m"}
    out = []
    for ch in s:
        if rnd.random() < rate and ch in conf:
            out.append(conf[ch])
        else:
            out.append(ch)
    return "".join(out)


def synthetic_documents(master: list[dict], n: int, seed: int = 2) -> list[tuple[str, dict | None, str, str | None]]:
    """(doc id, fields dict or None, text, expected supplier_id or None): 70 % from master suppliers
    (a third only identifiable by name/address in noisy text), 30 % from unknown suppliers."""
    rnd = random.Random(seed)
    names = {normalize_name(r["name"]) for r in master}
    unknown = iter(synthetic_master(n, seed=seed + 10_000, id_offset=len(master) + 1, exclude=names))
    docs = []
    for i in range(n):
        known = rnd.random() < 0.7
        s = rnd.choice(master) if known else next(unknown)
        name = s["name"]
        lines = [_ocr_noise(name.upper() if rnd.random() < 0.5 else name, rnd, 0.03),
                 f"{s.get('street') or ''}", f"{s.get('postal_code') or ''} {s.get('city') or ''}", "", "RECHNUNG / INVOICE",
                 f"Rechnungsnummer: R-{i:05d}", "Datum: 01.02.2024", "Pos Artikel Menge Preis", "1 Beratung 2 150,00",
                 "Summe 300,00 EUR"]
        use_ids = rnd.random() < 0.5
        if use_ids and s.get("vat_id"):
            lines.append(f"USt-IdNr.: {s['vat_id'][:2]} {s['vat_id'][2:5]} {s['vat_id'][5:8]} {s['vat_id'][8:]}")
        if use_ids and s.get("iban"):
            lines.append("IBAN: " + " ".join(s["iban"][j:j + 4] for j in range(0, len(s["iban"]), 4)))
        fields = {"supplier_name": {"value": name, "confidence": 0.7, "source": "rules:legal_form"}} if rnd.random() < 0.6 else None
        docs.append((f"syn-{i:05d}", fields, "\n".join(lines), s["supplier_id"] if known else None))
    return docs


def run_speed(dsn: str, suppliers: int, documents: int, schema: str = "idp_suppliers_bench", keep: bool = False,
              workers: int = 1) -> dict:
    from idp_assets.models import ExtractedFields, FieldValue
    from idp_assets.suppliers import match_supplier
    from resources.suppliers.postgres import PostgresBackend
    from resources.suppliers_db import SupplierMaster

    t0 = time.perf_counter()
    master_rows = synthetic_master(suppliers)
    docs = synthetic_documents(master_rows, documents)
    from resources.suppliers.base import content_version, parse_csv

    m = SupplierMaster(dsn=dsn, pg_schema=schema)
    b = m.backend()
    assert isinstance(b, PostgresBackend)
    csv_text = to_csv(master_rows)
    if b.version() != content_version(parse_csv(csv_text)[0]):  # a kept schema is reused only if identical
        b.drop_schema()
        b = m.backend()
        rep = m.import_csv(csv_text)
        if rep.rejected:
            raise click.ClickException(f"generated master has rejected rows: {rep.rejected[:3]}")
    load_s = time.perf_counter() - t0
    with b._conn().cursor() as cur:  # autocommit connection: VACUUM may run
        cur.execute("VACUUM ANALYZE suppliers")
        cur.execute("VACUUM ANALYZE supplier_tokens")
        cur.execute("VACUUM ANALYZE supplier_aliases")
    b.token_weights()  # built once per master version (cached), not per document
    prepared = []
    for doc_id, fields, text, exp in docs:
        fx = ExtractedFields(document_id=doc_id, fields={k: FieldValue(**v) for k, v in (fields or {}).items()})
        prepared.append((doc_id, fx, text, exp))
    def one(item):
        d, fx, text, exp = item
        return match_supplier(d, fx, text, m, b), exp  # as the asset does: master version read per document

    t1 = time.perf_counter()
    if workers > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:  # one PostgreSQL connection per thread
            results = list(pool.map(one, prepared))
    else:
        results = [one(x) for x in prepared]
    dt = time.perf_counter() - t1
    known = [(r, e) for r, e in results if e]
    unknown = [(r, e) for r, e in results if not e]
    plan = b.explain_name_query(normalize_name(master_rows[123]["name"]))
    out = {
        "backend": "postgres", "suppliers": suppliers, "documents": len(docs), "workers": workers, "seconds": round(dt, 3),
        "docs_per_second": round(len(docs) / dt, 1), "master_load_seconds": round(load_s, 2),
        "top1_accuracy_known": round(sum(r.supplier_id == e for r, e in known) / max(len(known), 1), 4),
        "new_rate_unknown": round(sum(r.supplier_id is None for r, _ in unknown) / max(len(unknown), 1), 4),
        "wrong_matches": sum(1 for r, e in results if r.supplier_id and r.supplier_id != e),
        "methods": {k: sum(1 for r, _ in results if r.method == k) for k in sorted({r.method for r, _ in results})},
        "trigram_index_used": "suppliers_name_trgm" in plan, "explain": plan.splitlines(),
        "cpu_count": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2),
    }
    if not keep:
        b.drop_schema()
    return out


@click.group("suppliers")
def bench_suppliers() -> None:
    """Supplier recognition: quality on the development corpus, speed on PostgreSQL."""


@bench_suppliers.command("quality")
@click.option("--results", "results_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="folder of `idp process` JSONs of the development corpus")
@click.option("--corpus", default=str(DEFAULT_CORPUS), show_default=True, type=click.Path(exists=True, file_okay=False))
@click.option("--dsn", default=None, help="PostgreSQL DSN (default: a temporary SQLite master)")
@click.option("--text-only", is_flag=True, help="ignore extracted fields: match from the raw text alone")
@click.option("--out", "out_file", default=None, type=click.Path(dir_okay=False), help="write the JSON report here")
def quality(results_dir: str, corpus: str, dsn: str | None, text_only: bool, out_file: str | None) -> None:
    """Top-1 accuracy / 'new' rate / wrong matches against the generated test master."""
    import tempfile

    from resources.suppliers_db import SupplierMaster

    rows, expected = test_master(Path(corpus))
    with tempfile.TemporaryDirectory() as tmp:
        m = SupplierMaster(path=str(Path(tmp) / "m.sqlite"), dsn=dsn, pg_schema="idp_suppliers_quality")
        if dsn:
            m.backend().drop_schema()
        rep = m.import_csv(to_csv(rows))
        res = evaluate(m, Path(results_dir), expected, text_only=text_only)
        if dsn:
            m.backend().drop_schema()
    res.update({"master_size": rep.imported, "backend": "postgres" if dsn else "sqlite", "text_only": text_only})
    summary = {k: v for k, v in res.items() if k != "rows"}
    text = json.dumps(res if out_file else summary, ensure_ascii=False, indent=2)
    if out_file:
        Path(out_file).write_text(text, encoding="utf-8")
    click.echo(json.dumps({k: v for k, v in summary.items() if k not in ("misses", "wrong")}, indent=2))
    for r in res["misses"] + res["wrong"]:
        click.echo(f"  {r['doc']}: expected {r['expected']} got {r['got']} ({r['method']} {r['score']}) {r['candidates'][:2]}",
                   err=True)


def calibrate_grid(rows: list[dict], accepts, margins) -> list[dict]:
    """Re-decide the name path of evaluated documents for threshold pairs (identifier decisions kept):
    top-1 accuracy, 'new' rate and wrong matches per (accept, margin)."""
    out = []
    for acc in accepts:
        for mar in margins:
            right = new_ok = wrong = known = unknown = 0
            for r in rows:
                if r["method"] not in ("name", "new", "needs_review") or not r["candidates"]:
                    got = r["got"]
                else:
                    (best, sc), runner = r["candidates"][0], (r["candidates"][1][1] if len(r["candidates"]) > 1 else 0.0)
                    needed = min(mar, 0.5 * (1.0 - runner)) if sc >= 0.99 else mar
                    conflict = r["method"] == "new" and any("disagree" in e for e in r["evidence"])
                    got = best if sc >= acc and sc - runner >= needed and not conflict else None
                if r["expected"]:
                    known += 1
                    right += got == r["expected"]
                else:
                    unknown += 1
                    new_ok += got is None
                wrong += bool(got and got != r["expected"])
            out.append({"accept": acc, "margin": mar, "top1": round(right / max(known, 1), 4),
                        "new_rate": round(new_ok / max(unknown, 1), 4), "wrong": wrong})
    return out


@bench_suppliers.command("calibrate")
@click.argument("quality_json", type=click.Path(exists=True, dir_okay=False))
def calibrate(quality_json: str) -> None:
    """Threshold grid from a `quality --out` report: pick the highest top-1 with zero wrong matches."""
    rows = json.loads(Path(quality_json).read_text())["rows"]
    grid = calibrate_grid(rows, [round(0.70 + 0.02 * i, 2) for i in range(14)], [0.0, 0.02, 0.04, 0.06, 0.08, 0.1])
    # zero wrong matches, a margin that tolerates score noise (>= 0.04), best top-1; then two thirds up
    # the accept range that achieves it (the plateau): away from its edges, leaning to precision
    safe = [g for g in grid if g["wrong"] == 0 and g["new_rate"] == max(x["new_rate"] for x in grid) and g["margin"] >= 0.04]
    best = None
    if safe:
        top = max(g["top1"] for g in safe)
        plateau = sorted((g for g in safe if g["top1"] == top and g["margin"] == min(x["margin"] for x in safe)),
                         key=lambda g: g["accept"])
        best = dict(plateau[(2 * len(plateau)) // 3], accept_range=[plateau[0]["accept"], plateau[-1]["accept"]])
    click.echo(json.dumps({"chosen": best, "grid": grid}, indent=1))


@bench_suppliers.command("speed")
@click.option("--dsn", default=lambda: os.environ.get("IDP_SUPPLIERS_DSN") or "postgresql://postgres@127.0.0.1:5432/test",
              show_default="$IDP_SUPPLIERS_DSN or postgresql://postgres@127.0.0.1:5432/test")
@click.option("--suppliers", default=100_000, show_default=True)
@click.option("--documents", default=1000, show_default=True)
@click.option("--keep", is_flag=True, help="keep the benchmark schema (re-runs skip the load)")
@click.option("--workers", default=1, show_default=True, help="matching threads (one PostgreSQL connection each)")
@click.option("--out", "out_file", default=None, type=click.Path(dir_okay=False))
def speed(dsn: str, suppliers: int, documents: int, keep: bool, workers: int, out_file: str | None) -> None:
    """Match N generated documents against a generated master on PostgreSQL; JSON with docs/s and EXPLAIN."""
    res = run_speed(dsn, suppliers, documents, keep=keep, workers=workers)
    text = json.dumps(res, indent=2, ensure_ascii=False)
    if out_file:
        Path(out_file).write_text(text, encoding="utf-8")
    click.echo(text)


# ------------------------------------------------------------------------------------------------ hard master
#
# A master shaped like a real ERP export, generated at run time from the corpus ground truth (nothing of
# the corpus is copied into git): every corpus supplier's real record, near-miss variants of each (one- and
# two-letter edits, another legal form, the same name in another city, another company sharing its
# identifier), the buyer parties of the corpus e-invoices, identifiers of several countries in the
# vat_id / tax_number columns (Malaysian GST numbers from the receipts, German VAT/Steuernummer, Dutch,
# French, Indian, Swiss, UK and US identifiers), and unrelated generated fillers up to `size` rows.

HARD_FORMS = {"DE": ["GmbH", "AG", "KG", "UG", "e.K."], "MY": ["SDN BHD", "PLT", "BERHAD"], "NL": ["B.V.", "N.V."],
              "FR": ["SARL", "SAS", "SA"], "US": ["Inc.", "LLC"], "IN": ["Pvt. Ltd.", "LLP"], "GB": ["Ltd", "PLC"]}
_GST_RE = re.compile(r"(?i)GST\s*(?:(?:REG(?:ISTRATION)?|ID|NO|NUMBER)[\s.]*)*[:.]?\s*(\d{12})")
_COREG_RE = re.compile(r"(?i)CO\.?\s*REG(?:ISTRATION)?\.?(?:\s*NO)?\.?\s*[:.]?\s*(\d{3,12}-?[A-Z]?)\b")
_OTHER_CITIES = [("80331", "München", "Sendlinger Str. 3"), ("50667", "Köln", "Hohe Str. 10"),
                 ("81200", "Johor Bahru", "Jalan Tebrau 12"), ("10200", "Penang", "Lebuh Pantai 8"),
                 ("69002", "Lyon", "Rue de la Charité 4"), ("1012 AB", "Amsterdam", "Damrak 5")]


def _einvoice_fields(xml_path: Path) -> dict:
    """What field extraction reads from the embedded XML (source 'einvoice_xml'): seller name, seller VAT
    ID, IBAN, buyer name (as `idp_assets.logic.field_rules.checks` maps them)."""
    from idp_assets.logic.einvoice import parse_einvoice

    d = parse_einvoice(xml_path.read_bytes())
    out = {}
    for name, key in (("supplier_name", "supplier_name"), ("vat_id", "seller_vat_id"), ("iban", "iban"),
                      ("buyer_name", "buyer_name")):
        if d.get(key):
            out[name] = {"value": str(d[key]), "confidence": 0.97, "source": "einvoice_xml"}
    return out


def _pdf_text(path: Path, max_pages: int = 3) -> str:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(path))
    try:
        return "\n".join(pdf[i].get_textpage().get_text_range() for i in range(min(len(pdf), max_pages)))
    finally:
        pdf.close()


def dev_documents(corpus: Path = DEFAULT_CORPUS) -> list[dict]:
    """Development documents with their supplier (ground truth) and the evidence matching sees:
    receipts (ground-truth transcript), e-invoices (PDF text layer + the XML's fields), invoice2data PDFs
    and their images (PDF text layer), invoices_print (text layer of the print without XML).
    Each: {doc, family, text, fields, supplier_name}."""
    docs = []
    for line in (corpus / "manifest.jsonl").read_text().splitlines():
        d = json.loads(line)
        cat, name = d["category"], ((d.get("fields") or {}).get("supplier_name"))
        if cat == "receipts":
            rows = (corpus / "receipts" / "gt_original" / f"{d['id']}.box.csv").read_text(errors="replace").splitlines()
            text = "\n".join(r.split(",", 8)[-1] for r in rows if r.count(",") >= 8)
            docs.append({"doc": d["id"], "family": "receipts", "text": text, "fields": None, "supplier_name": name})
        elif cat == "einvoices":
            docs.append({"doc": d["id"], "family": "einvoices", "text": _pdf_text(corpus / d["file"]),
                         "fields": _einvoice_fields(corpus / "einvoices" / "gt_original" / f"{d['id']}.xml"),
                         "supplier_name": name})
        elif cat in ("invoices_pdf", "invoices_image"):
            pdf = corpus / "invoices_pdf" / (d["id"].replace("invoice-img-", "invoice-") + ".pdf")
            docs.append({"doc": d["id"], "family": "invoice2data", "text": _pdf_text(pdf), "fields": None,
                         "supplier_name": name})
    mp = corpus / "invoices_print" / "manifest-print.jsonl"
    if mp.exists():
        for line in mp.read_text().splitlines():
            d = json.loads(line)
            name = (d.get("fields") or {}).get("supplier_name")
            if name:
                docs.append({"doc": "print-" + d["id"], "family": "invoices_print",
                             "text": _pdf_text(corpus / "invoices_print" / d["file"]), "fields": None, "supplier_name": name,
                             "print_fields": d["fields"]})
    return docs


def _edit(word: str, rnd: random.Random, n: int) -> str:
    """`n` one-letter edits (duplicate, drop or replace a letter) inside a word."""
    chars = list(word)
    for _ in range(n):
        letters = [i for i, c in enumerate(chars) if c.isalpha()]
        if len(letters) < 3:
            chars.append(chars[-1] if chars else "X")
            continue
        i = rnd.choice(letters[1:])
        op = rnd.choice(["dup", "drop", "repl"])
        if op == "dup":
            chars.insert(i, chars[i])
        elif op == "drop" and len(letters) > 4:
            del chars[i]
        else:
            pool = "AEIOU" if chars[i].upper() in "AEIOU" else "BCDFGHKLMNPRSTVZ"
            c = rnd.choice([x for x in pool if x != chars[i].upper()])
            chars[i] = c if chars[i].isupper() else c.lower()
    return "".join(chars)


def _swap_form(name: str, country: str, rnd: random.Random) -> str:
    from idp_assets.logic.suppliers import legal_form

    forms = HARD_FORMS.get(country, HARD_FORMS["DE"])
    cur = legal_form(name)
    others = [f for f in forms if legal_form("x " + f) != cur]
    core = [w for w in name.split() if legal_form("x " + w) is None and w not in ("&", "Co.", "Co")]
    return " ".join(core or name.split()) + " " + rnd.choice(others)


def hard_master(corpus: Path = DEFAULT_CORPUS, size: int = 100_000, seed: int = 11,
                docs: list[dict] | None = None) -> tuple[list[dict], dict[str, str | None], dict]:
    """(master rows, document id -> expected supplier_id or None, stats) - see the section comment."""
    rnd = random.Random(seed)
    recs, doc_key = corpus_suppliers(corpus)
    by_key = {r["key"]: r for r in recs}
    docs = docs if docs is not None else dev_documents(corpus)
    # print-only suppliers (invoices_print) and Malaysian GST numbers printed on the receipts
    for d in docs:
        key = normalize_name(d["supplier_name"])
        if d["family"] == "invoices_print":
            pf = d.get("print_fields") or {}
            r = by_key.setdefault(key, {"key": key, "name": d["supplier_name"], "country": "DE"})
            for k in ("vat_id", "iban"):
                if pf.get(k) and not r.get(k):
                    r[k] = pf[k]
            r.setdefault("supplier_id", _sid("C-", key, r.get("postal_code") or ""))
            doc_key[d["doc"]] = key
        elif d["family"] == "receipts" and key in by_key:
            m = _GST_RE.search(d["text"])
            if m and not by_key[key].get("vat_id"):
                by_key[key]["vat_id"] = m.group(1)  # an ERP keeps the GST registration in vat_id
            m = _COREG_RE.search(d["text"])
            if m and not by_key[key].get("tax_number"):
                by_key[key]["tax_number"] = m.group(1)  # and the company registration (SSM) number
    recs = sorted(by_key.values(), key=lambda r: r["key"])
    real = [dict(r) for r in recs if r["key"] not in LEFT_OUT]
    ids = {r["key"]: r["supplier_id"] for r in real}
    expected = {d["doc"]: ids.get(doc_key.get(d["doc"]) or normalize_name(d["supplier_name"])) for d in docs}
    rows: list[dict] = [{k: v for k, v in r.items() if k != "key"} for r in real]
    names = {normalize_name(r["name"]) for r in recs}
    variants: list[dict] = []

    def add(base: dict, n: int, **kw) -> None:
        row = {"supplier_id": _sid("V-", base["supplier_id"], str(n)), "country": base.get("country"),
               "street": base.get("street"), "postal_code": base.get("postal_code"), "city": base.get("city"), **kw}
        if kw.get("name") and (normalize_name(kw["name"]) not in names or kw.pop("same_name_ok", False)):
            row.pop("same_name_ok", None)
            names.add(normalize_name(row["name"]))
            variants.append(row)

    for r in recs:
        country = (r.get("country") or "DE").upper()
        words = r["name"].split()
        i = max(range(len(words)), key=lambda j: sum(c.isalpha() for c in words[j]))
        in_master = r["key"] not in LEFT_OUT
        if in_master:
            # one- and two-letter edits of the longest word: another company whose name looks alike
            add(r, 1, name=" ".join(words[:i] + [_edit(words[i], rnd, 1)] + words[i + 1:]))
            add(r, 2, name=" ".join(words[:i] + [_edit(words[i], rnd, 2)] + words[i + 1:]))
            # the same name in another city (another entity: a branch or a namesake)
            pc, city, street = rnd.choice([c for c in _OTHER_CITIES if c[0] != r.get("postal_code")])
            add(r, 3, name=r["name"], postal_code=pc, city=city, street=street, same_name_ok=True)
        # another legal form of the same name
        add(r, 4, name=_swap_form(r["name"], country, rnd))
        # another company sharing the identifier (a shared sample ID, a group VAT registration)
        shared = r.get("vat_id") or "DE123456789"
        pc, city, street = rnd.choice([c for c in _OTHER_CITIES if c[0] != r.get("postal_code")])
        add(r, 5, name=" ".join([_mutate_token(w, rnd) if len(w) > 3 else w for w in words]), vat_id=shared,
            postal_code=pc, city=city, street=street)
        add(r, 6, name=" ".join(words[:i] + [_edit(words[i], rnd, 3)] + words[i + 1:]) + " Holding")
    rows += variants + distractors(recs)
    # buyer parties of the corpus e-invoices (a buyer's master row must never be taken for the seller)
    from idp_assets.logic.einvoice import parse_einvoice

    for f in sorted((corpus / "einvoices" / "gt_original").glob("*.xml")):
        e = parse_einvoice(f.read_bytes())
        bname = e.get("buyer_name")
        if bname and normalize_name(bname) not in names:
            names.add(normalize_name(bname))
            rows.append({"supplier_id": _sid("B-", bname), "name": bname, "vat_id": e.get("buyer_vat_id"), "country": "DE"})
    # identifiers of several countries on generated rows (valid check digits where a scheme has them)
    fill = synthetic_master(max(0, size - len(rows)), seed=seed, id_offset=500_000, exclude=names)
    # one identifier per row, unique, in the format of its country's scheme (check digits not computed:
    # most come out 'unverified', as in an ERP export that nobody validated)
    schemes = [("FR", "FR{:02d}{:09d}"), ("NL", "NL{:09d}B{:02d}"), ("CH", "CHE-{:03d}.{:03d}.{:03d}"),
               ("GB", "GB{:09d}"), ("IN", "{:02d}AAPFU{:04d}F1Z{}"), ("US", "{:02d}-{:07d}"),
               ("MY", "W10-{:04d}-{:08d}"), ("MY", "{:012d}"), ("DE", "{:03d}/{:03d}/{:05d}"), ("AT", "ATU{:08d}")]
    for k, r in enumerate(fill):
        if k % 5:
            continue
        cc, fmt = schemes[(k // 5) % len(schemes)]
        n = 700_000 + k
        vals = {"FR": (n % 97, n), "NL": (n, n % 100), "CH": (n // 1_000_000 % 1000, n // 1000 % 1000, n % 1000),
                "GB": (n,), "IN": (n % 36 + 1, n % 10_000, n % 10), "US": (n % 90 + 10, n),
                "DE": (n % 1000, n // 1000 % 1000, n % 100_000), "AT": (n,)}
        v = vals.get(cc, (n % 10_000, n) if "W10" in fmt else (n,))
        r["tax_number" if k % 2 else "vat_id"] = fmt.format(*v)
        r["country"] = cc
    rows += fill
    stats = {"rows": len(rows), "real": len(real), "variants": len(variants), "left_out": len(recs) - len(real),
             "documents": len(docs), "in_master_docs": sum(v is not None for v in expected.values())}
    return rows, expected, stats


def evaluate_docs(master, docs: list[dict], expected: dict[str, str | None], backend=None) -> dict:
    """Match each development document; top-1 on documents whose supplier is in the master, 'new' rate on
    the others, wrong matches, needs_review share, per family."""
    from idp_assets.models import ExtractedFields, FieldValue
    from idp_assets.suppliers import match_supplier

    b = backend or master.backend()
    rows = []
    for d in docs:
        fx = None
        if d.get("fields"):
            fx = ExtractedFields(document_id=d["doc"], fields={k: FieldValue(**v) for k, v in d["fields"].items()})
        m = match_supplier(d["doc"], fx, d["text"], master, b)
        rows.append({"doc": d["doc"], "family": d["family"], "expected": expected.get(d["doc"]), "got": m.supplier_id,
                     "method": m.method, "score": m.score, "confidence": m.confidence,
                     "candidates": [(c.supplier_id, c.score) for c in m.candidates], "evidence": m.evidence[:3]})
    return summarize(rows)


def summarize(rows: list[dict]) -> dict:
    known = [r for r in rows if r["expected"]]
    unknown = [r for r in rows if not r["expected"]]
    wrong = [r for r in rows if r["got"] and r["got"] != r["expected"]]
    return {
        "documents": len(rows), "in_master": len(known), "not_in_master": len(unknown),
        "top1": round(sum(r["got"] == r["expected"] for r in known) / max(len(known), 1), 4),
        "new_rate": round(sum(r["got"] is None for r in unknown) / max(len(unknown), 1), 4),
        "wrong_matches": len(wrong),
        "needs_review_share": round(sum(r["method"] == "needs_review" for r in rows) / max(len(rows), 1), 4),
        "misses": [r for r in known if r["got"] != r["expected"]], "wrong": wrong, "rows": rows,
    }


# folds of corpus families: thresholds are fitted on one and reported on the other
FOLDS = {"A": ("receipts", "invoice2data"), "B": ("einvoices", "invoices_print")}
ACCEPTS = [round(0.70 + 0.02 * i, 2) for i in range(14)]
MARGINS = [0.0, 0.02, 0.04, 0.06, 0.08, 0.1]


def choose_thresholds(rows: list[dict]) -> dict | None:
    """The (accept, margin) with zero wrong matches, the best 'new' rate, then the best top-1, a margin
    >= 0.04 (score noise), in the middle of its accept plateau."""
    grid = calibrate_grid(rows, ACCEPTS, MARGINS)
    safe = [g for g in grid if g["wrong"] == 0 and g["margin"] >= 0.04]
    if not safe:
        return None
    best_new = max(g["new_rate"] for g in safe)
    safe = [g for g in safe if g["new_rate"] == best_new]
    top = max(g["top1"] for g in safe)
    best = [g for g in safe if g["top1"] == top]
    plateau = sorted((g for g in best if g["margin"] == min(x["margin"] for x in best)), key=lambda g: g["accept"])
    return dict(plateau[len(plateau) // 2], accept_range=[plateau[0]["accept"], plateau[-1]["accept"]])


def out_of_fold(rows: list[dict]) -> dict:
    """Thresholds fitted on one fold of families, scored on the other (and in-sample for comparison)."""
    out = {}
    for fit_fold, test_fold in (("A", "B"), ("B", "A")):
        fit_rows = [r for r in rows if r["family"] in FOLDS[fit_fold]]
        test_rows = [r for r in rows if r["family"] in FOLDS[test_fold]]
        th = choose_thresholds(fit_rows)
        if th is None:
            continue
        ins = calibrate_grid(fit_rows, [th["accept"]], [th["margin"]])[0]
        oof = calibrate_grid(test_rows, [th["accept"]], [th["margin"]])[0]
        out[f"fit_{fit_fold}_test_{test_fold}"] = {"thresholds": {"accept": th["accept"], "margin": th["margin"]},
                                                   "in_sample": ins, "out_of_fold": oof}
    return out


def letter_noise(text: str, rnd: random.Random, rate: float) -> str:
    """Every letter replaced by a random capital with probability `rate` (harsher than OCR confusions)."""
    return "".join(rnd.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") if c.isalpha() and rnd.random() < rate else c for c in text)


def run_hard(corpus: Path, size: int, dsn: str | None, schema: str = "idp_suppliers_hard", noise: float = 0.0) -> dict:
    import tempfile

    from idp_assets.logic.supplier_calibration import fit
    from resources.suppliers_db import SupplierMaster

    t0 = time.perf_counter()
    docs = dev_documents(corpus)
    rows, expected, stats = hard_master(corpus, size=size, docs=docs)
    if noise:
        rnd = random.Random(7)
        docs = [dict(d, text=letter_noise(d["text"], rnd, noise)) for d in docs]
    with tempfile.TemporaryDirectory() as tmp:
        m = SupplierMaster(path=str(Path(tmp) / "m.sqlite"), dsn=dsn, pg_schema=schema)
        if dsn:
            m.backend().drop_schema()
        t1 = time.perf_counter()
        rep = m.import_csv(to_csv(rows))
        t2 = time.perf_counter()
        res = evaluate_docs(m, docs, expected)
        t3 = time.perf_counter()
        if dsn:
            m.backend().drop_schema()
    fams = {}
    for fam in sorted({r["family"] for r in res["rows"]}):
        s = summarize([r for r in res["rows"] if r["family"] == fam])
        fams[fam] = {k: v for k, v in s.items() if k not in ("rows", "misses", "wrong")}
    matched = [(r["method"], r["score"], r["got"] == r["expected"]) for r in res["rows"] if r["got"]]
    return {
        "backend": "postgres" if dsn else "sqlite", "master": stats,
        "import": {"rows_read": rep.rows_read, "inserted": rep.inserted, "updated": rep.updated,
                   "rejected": len(rep.rejected), "warnings": len(rep.warnings), "seconds": round(t2 - t1, 1)},
        "summary": {k: v for k, v in res.items() if k not in ("rows", "misses", "wrong")},
        "families": fams, "thresholds_out_of_fold": out_of_fold(res["rows"]),
        "confidence_counts": fit(matched),
        "misses": [{k: r[k] for k in ("doc", "expected", "got", "method", "score", "candidates")} for r in res["misses"]],
        "wrong": [{k: r[k] for k in ("doc", "expected", "got", "method", "score", "candidates")} for r in res["wrong"]],
        "seconds": {"build": round(t1 - t0, 1), "match": round(t3 - t2, 1)},
    }


@bench_suppliers.command("hard")
@click.option("--corpus", default=str(DEFAULT_CORPUS), show_default=True, type=click.Path(exists=True, file_okay=False))
@click.option("--size", default=100_000, show_default=True, help="master rows (real + near-miss + buyers + fillers)")
@click.option("--dsn", default=None, help="PostgreSQL DSN (default: a temporary SQLite master)")
@click.option("--letter-noise", "noise", default=0.0, show_default=True,
              help="replace each letter of the documents' text by a random one with this probability")
@click.option("--out", "out_file", default=None, type=click.Path(dir_okay=False))
def hard(corpus: str, size: int, dsn: str | None, noise: float, out_file: str | None) -> None:
    """Development documents against the hard generated master: top-1, 'new' rate, wrong matches,
    needs_review share, per family; thresholds fitted on one fold of families and scored on the other;
    the right/wrong counts per score bin that `idp_assets.logic.supplier_calibration` is fitted from."""
    res = run_hard(Path(corpus), size, dsn, noise=noise)
    text = json.dumps(res, indent=1, ensure_ascii=False)
    if out_file:
        Path(out_file).write_text(text, encoding="utf-8")
    click.echo(text)
