"""The keyword index beside Chroma (resources/keywords.py) and VectorStore.find_words."""

from __future__ import annotations

import pytest

from resources.keywords import KeywordIndex, match_expression
from resources.vectors import VectorStore


def _meta(doc: str, supplier: str = "", key: str = "", date_num: int = 0, page: int = 1) -> dict:
    return {"document_id": doc, "supplier_id": supplier, "supplier_key": key, "date_num": date_num, "page": page}


@pytest.fixture
def index(tmp_path):
    kw = KeywordIndex(tmp_path / "kw.sqlite")
    kw.replace_document("d1", ["d1:0", "d1:1"], ["Rechnung der Müller GmbH", "Lieferung Schrauben M8"],
                        [_meta("d1", "S1", "muller", 20240105), _meta("d1", "S1", "muller", 20240105, 2)])
    kw.replace_document("d2", ["d2:0"], ["Invoice from ACME Corp, screws"], [_meta("d2", "S2", "acme", 20230301)])
    yield kw
    kw.close()


def test_case_accents_and_prefixes_are_ignored(index):
    assert index.find("MÜLLER")["ids"] == ["d1:0"]
    assert index.find("muller")["ids"] == ["d1:0"]
    assert index.find("acme")["ids"] == ["d2:0"]
    assert index.find("Schraub")["ids"] == ["d1:1"]  # the start of a longer word
    assert index.find("crews")["ids"] == []  # but not the middle of one
    assert index.find("Rechnungsnummer")["ids"] == []


def test_filters_and_limit(index):
    assert index.find("screws", supplier_id="S2")["ids"] == ["d2:0"]
    assert index.find("screws", supplier_key="acme")["ids"] == ["d2:0"]
    assert index.find("screws", supplier_id="S1", supplier_key="muller")["ids"] == []
    assert index.find("screws", min_date_num=20240101)["ids"] == []
    assert index.find("Müller", min_date_num=20240105)["ids"] == ["d1:0"]
    index.add_many([f"d3:{i}" for i in range(5)], ["bolt"] * 5, [_meta("d3")] * 5)
    assert len(index.find("bolt", limit=3)["ids"]) == 3
    got = index.find("bolt", limit=10)
    assert len(got["ids"]) == 5 and got["metadatas"][0]["document_id"] == "d3" and got["documents"][0] == "bolt"


def test_replace_delete_and_hostile_queries(index):
    index.replace_document("d1", ["d1:0"], ["Gutschrift"], [_meta("d1")])
    assert index.find("Müller")["ids"] == [] and index.find("gutschrift")["ids"] == ["d1:0"]
    assert index.count() == 2
    index.add_many(["d1:0"], ["Gutschrift neu"], [_meta("d1")])  # the same id again: replaced
    assert index.count() == 2
    index.delete_document("d1")
    assert index.count() == 1
    for q in ('"', "AND", "x OR y", "NEAR(", "*", "a:b", "-", "col:text"):
        index.find(q)  # FTS5 syntax in a query word is quoted, never an error
    assert match_expression("---") is None and index.find("---")["ids"] == []
    assert match_expression("O'Brien") == '"O Brien"*'
    index.add_many(["d4:0"], ["Pat O'Brien Ltd"], [_meta("d4")])
    assert index.find("o'brien")["ids"] == ["d4:0"] and index.find("O Bri")["ids"] == ["d4:0"]


def test_vector_store_keeps_the_index_with_the_chunks_and_rebuilds_it(tmp_path):
    vs = VectorStore(path=str(tmp_path / "chroma"))
    vec = [1.0] + [0.0] * 7
    vs.replace_document_chunks("d1", ["d1:0", "d1:1"], [vec, vec], ["Hotel Adlon Kempinski", "Zimmer 12"],
                               [_meta("d1", "S1"), _meta("d1", "S1")])
    vs.add_many(["d2:0"], [vec], ["Kempinski Berlin"], [_meta("d2", "S2")])
    assert sorted(vs.find_words("kempinski")["ids"]) == ["d1:0", "d2:0"]
    vs.replace_document_chunks("d1", ["d1:0"], [vec], ["Hotel Adlon"], [_meta("d1", "S1")])
    assert vs.find_words("kempinski")["ids"] == ["d2:0"]
    vs.delete_document("d2")
    assert vs.find_words("kempinski")["ids"] == [] and vs.find_words("adlon")["ids"] == ["d1:0"]

    # an index lost (or a store written before it existed) is rebuilt from Chroma when opened
    vs.keywords().close()
    (tmp_path / "chroma" / "keywords.sqlite").unlink()
    again = VectorStore(path=str(tmp_path / "chroma"))
    assert again.find_words("ADLON")["ids"] == ["d1:0"]
    assert again.keywords().count() == again.count()


def test_identifiers_match_whole_tokens(index):
    index.add_many(["d5:0", "d6:0"], ["Rechnung Nr. RE-2024/0815 vom 3.1.", "Rechnung RE-2024/08151"],
                   [_meta("d5"), _meta("d6")])
    assert index.find("RE-2024/0815", prefix=False)["ids"] == ["d5:0"]
    assert index.find("re 2024 0815", prefix=False)["ids"] == ["d5:0"]  # separators and case do not matter
    assert sorted(index.find("RE-2024/0815")["ids"]) == ["d5:0", "d6:0"]  # as a prefix the longer one matches


def test_replacing_a_document_finds_its_rows_through_an_index(index):
    """FTS5 cannot index its UNINDEXED columns: the rows of a document are found through chunk_keys."""
    plan = index._conn.execute(
        "EXPLAIN QUERY PLAN DELETE FROM chunk_words WHERE rowid IN (SELECT rowid FROM chunk_keys WHERE document_id = ?)",
        ("d1",)).fetchall()
    assert any("chunk_keys_document" in str(row) for row in plan), plan
    index.replace_document("d1", ["d1:0"], ["Gutschrift Müller"], [_meta("d1", "S1", "muller", 20240106)])
    index.add_many(["d2:0"], ["Invoice ACME again"], [_meta("d2", "S2", "acme", 20230301)])
    assert index.count() == 2 and index.find("Gutschrift")["ids"] == ["d1:0"] and index.find("Schrauben")["ids"] == []
    assert index._conn.execute("SELECT count(*) FROM chunk_keys").fetchone()[0] == 2


def test_an_index_written_before_chunk_keys_is_keyed_when_opened(tmp_path):
    import sqlite3

    from resources.keywords import SCHEMA

    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)
    con.executescript(SCHEMA)  # the schema without chunk_keys, as older versions wrote it
    with con:
        con.executemany("INSERT INTO chunk_words(text, chunk_id, document_id, supplier_id, supplier_key, date_num, meta) "
                        "VALUES (?, ?, ?, '', '', 0, '{}')",
                        [("alte Rechnung", "a:0", "a"), ("old invoice", "b:0", "b"), ("zweite Seite", "a:1", "a")])
    con.close()
    kw = KeywordIndex(path)
    try:
        kw.delete_document("a")
        assert kw.count() == 1 and kw.find("Rechnung")["ids"] == [] and kw.find("invoice")["ids"] == ["b:0"]
    finally:
        kw.close()
