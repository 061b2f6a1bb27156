"""Knowledge-base rows: a document's chunks replaced whole, what is stored to search (lower-cased heading and
body, embeddings and their model), and the ranking: keyword share (a heading hit counts 1.5), trigram word
similarity and cosine similarity, weighed 0.6 / 0.4 / 0.5, best first, per pack, at most k."""

from __future__ import annotations

import pytest

from agent.store import kb
from agent.store.db import Database

CHUNKS = [("반품 정책", "단순 변심 반품은 7일 이내에 가능합니다."),
          ("교환 안내", "교환은 14일 이내에 신청하세요. 반품 아님.")]


def _word_similarity(db: Database, query: str, text: str) -> float:
    with db.connection() as conn:
        return float(conn.execute("SELECT word_similarity(%s, %s) AS s", (query, text)).fetchone()["s"])


def test_a_document_is_stored_and_replaced_whole(db: Database) -> None:
    assert kb.document_state(db, "shop", "faq.md") is None
    doc_id = kb.replace_document(db, pack="shop", source="faq.md", title="FAQ", sha256="aa", chunks=CHUNKS)
    assert kb.document_state(db, "shop", "faq.md") == {"doc_id": doc_id, "sha256": "aa", "chunks": 2}
    assert kb.document_state(db, "bank", "faq.md") is None
    with db.connection() as conn:
        rows = conn.execute("SELECT seq, pack, heading, body, search_text, embedding, embedding_model FROM kb_chunks"
                            " ORDER BY seq").fetchall()
    assert rows[0] == {"seq": 0, "pack": "shop", "heading": "반품 정책", "body": CHUNKS[0][1],
                       "search_text": "반품 정책\n단순 변심 반품은 7일 이내에 가능합니다.", "embedding": None,
                       "embedding_model": None}
    assert rows[1]["seq"] == 1
    again = kb.replace_document(db, pack="shop", source="faq.md", title="FAQ 2", sha256="bb",
                                chunks=[("Exchange", "교환 ABC")])
    assert again == doc_id
    assert kb.document_state(db, "shop", "faq.md") == {"doc_id": doc_id, "sha256": "bb", "chunks": 1}
    with db.connection() as conn:
        doc = conn.execute("SELECT title FROM kb_documents").fetchall()
        text = conn.execute("SELECT search_text FROM kb_chunks").fetchall()
    assert doc == [{"title": "FAQ 2"}] and text == [{"search_text": "exchange\n교환 abc"}]
    assert kb.count_chunks(db) == 1 and kb.count_chunks(db, "shop") == 1 and kb.count_chunks(db, "bank") == 0


def test_embeddings_and_their_model_are_stored(db: Database) -> None:
    assert kb.has_vector(db)
    plain = kb.replace_document(db, pack="p", source="a.md", title="", sha256="1", chunks=CHUNKS[:1])
    assert kb.embedded_with(db, plain) is None
    doc_id = kb.replace_document(db, pack="p", source="b.md", title="", sha256="2", chunks=CHUNKS,
                                 embeddings=[[1.0, 0.0], [0.123456789, -2.0]], embedding_model="toy")
    assert kb.embedded_with(db, doc_id) == "toy"
    with db.connection() as conn:
        rows = conn.execute("SELECT embedding::text AS e FROM kb_chunks WHERE doc_id = %s ORDER BY seq",
                            (doc_id,)).fetchall()
    assert [r["e"] for r in rows] == ["[1,0]", "[0.1234568,-2]"]


def test_without_pgvector_there_is_no_vector_and_no_model(db: Database) -> None:
    doc_id = kb.replace_document(db, pack="p", source="a.md", title="", sha256="1", chunks=CHUNKS[:1])
    with db.connection() as conn:
        conn.execute("ALTER TABLE kb_chunks DROP COLUMN embedding")
    assert not kb.has_vector(db) and kb.embedded_with(db, doc_id) is None


def test_keyword_share_counts_a_heading_hit_one_and_a_half(db: Database) -> None:
    kb.replace_document(db, pack="shop", source="faq.md", title="FAQ", sha256="aa", chunks=CHUNKS)
    hits = kb.search_chunks(db, query="반품 기간", keywords=["반품", "기간"], packs=["shop"], k=5)
    assert [(h["heading"], h["seq"]) for h in hits] == [("반품 정책", 0), ("교환 안내", 1)]
    first, second = hits
    assert float(first["kw"]) == pytest.approx((1 + 0.5) / 2)  # 반품 in text and heading, 기간 nowhere
    assert float(second["kw"]) == pytest.approx(1 / 2)
    for hit in hits:
        searched = f"{hit['heading']}\n{hit['body']}".lower()
        assert float(hit["tg"]) == pytest.approx(_word_similarity(db, "반품 기간", searched))
        assert float(hit["score"]) == pytest.approx(0.6 * float(hit["kw"]) + 0.4 * float(hit["tg"]))
        assert float(hit["vec"]) == 0 and hit["source"] == "faq.md" and hit["title"] == "FAQ"


def test_keywords_are_lower_cased_and_the_query_stands_in_for_none(db: Database) -> None:
    kb.replace_document(db, pack="shop", source="faq.md", title="", sha256="aa",
                        chunks=[("VIP Club", "members only"), ("기타", "무관한 내용")])
    (hit,) = kb.search_chunks(db, query="VIP", keywords=[], packs=["shop"], k=5)
    assert hit["heading"] == "VIP Club" and float(hit["kw"]) == pytest.approx(1.5)
    (hit,) = kb.search_chunks(db, query="x", keywords=["MEMBERS"], packs=["shop"], k=5)
    assert float(hit["kw"]) == pytest.approx(1.0)


def test_only_the_packs_asked_for_at_most_k_ties_by_document_then_chunk(db: Database) -> None:
    same = [("반품", "반품"), ("반품", "반품")]
    first = kb.replace_document(db, pack="shop", source="a.md", title="", sha256="1", chunks=same)
    second = kb.replace_document(db, pack="", source="b.md", title="", sha256="2", chunks=same)
    kb.replace_document(db, pack="bank", source="c.md", title="", sha256="3", chunks=same)
    hits = kb.search_chunks(db, query="반품", keywords=["반품"], packs=["", "shop"], k=3)
    assert [(h["doc_id"], h["seq"]) for h in hits] == [(first, 0), (first, 1), (second, 0)]


def test_cosine_similarity_adds_half_its_weight_and_admits_any_chunk(db: Database) -> None:
    kb.replace_document(db, pack="v", source="a.md", title="", sha256="1",
                        chunks=[("가", "전혀 다른 글"), ("나", "또 다른 글")],
                        embeddings=[[1.0, 0.0], [0.0, 1.0]], embedding_model="toy")
    kb.replace_document(db, pack="v", source="b.md", title="", sha256="2", chunks=[("다", "벡터 없는 글")])
    hits = kb.search_chunks(db, query="포인트", keywords=["포인트"], packs=["v"], k=5, embedding=[0.6, 0.8])
    by_heading = {h["heading"]: h for h in hits}
    assert [h["heading"] for h in hits] == ["나", "가", "다"]
    assert float(by_heading["나"]["vec"]) == pytest.approx(0.5 * 0.8)
    assert float(by_heading["가"]["vec"]) == pytest.approx(0.5 * 0.6)
    assert float(by_heading["다"]["vec"]) == 0
    assert kb.search_chunks(db, query="포인트", keywords=["포인트"], packs=["v"], k=5) == []
