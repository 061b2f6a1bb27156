"""Knowledge base: Markdown chunking, indexing into PostgreSQL (re-index replaces), Hangul trigram search
with pack filtering, and pgvector embeddings through litellm against a local embeddings server."""

from __future__ import annotations

from pathlib import Path

from dialog_llm_server import OpenAIServer

from agent.dialog.knowledge import KnowledgeBase, chunk_text, index_paths, keywords, search
from agent.dialog.packs import load_pack
from agent.store import kb as store
from agent.store.db import Database

DOC = """# 반품 정책

## 기간
반품은 받으신 날부터 7일 이내에 신청하실 수 있어요.

## 배송비
단순 변심이면 왕복 배송비 6,000원이 들어요.

두 번째 문단입니다.
"""


def test_chunks_follow_headings_and_stay_short() -> None:
    chunks = chunk_text(DOC)
    assert [c.heading for c in chunks] == ["반품 정책 > 기간", "반품 정책 > 배송비"]
    assert "두 번째 문단" in chunks[1].body
    long = "# 긴 글\n\n" + " ".join(f"문장 {i}번은 조금 길게 써 봅니다." for i in range(60))
    pieces = chunk_text(long, max_chars=400)
    assert len(pieces) > 3 and all(len(c.body) <= 400 for c in pieces)


def test_keywords_drop_particles_and_question_words() -> None:
    assert keywords("반품 정책이 어떻게 되나요?") == ["반품", "정책"]
    assert keywords("카드 분실했어요") == ["카드", "분실"]


def test_sample_kb_answers_in_korean(indexed: Database) -> None:
    kb = KnowledgeBase(indexed, "ecommerce")
    answer, hit = kb.answer("반품 정책이 어떻게 되나요?")
    assert "7일" in answer and hit.heading.startswith("반품 정책")
    answer, hit = kb.answer("새벽배송 되나요")
    assert "새벽배송" in answer
    answer, hit = kb.answer("환불은 언제 되나요")
    assert hit.heading.startswith("환불 안내")
    assert kb.answer("오늘 날씨 어때요") is None


def test_packs_do_not_see_each_others_kb(indexed: Database) -> None:
    hits = search(indexed, "로밍 신청", "ecommerce", 5)
    assert hits and all("로밍" not in h.text and "ecommerce" in h.source for h in hits)
    assert search(indexed, "로밍 신청", "telecom", 1)[0].heading.endswith("로밍")


def test_reindex_replaces_and_skips_unchanged(db: Database, tmp_path: Path) -> None:
    doc = tmp_path / "faq.md"
    doc.write_text(DOC, encoding="utf-8")
    first = index_paths(db, [tmp_path], "testpack")
    assert first["indexed"] == 1 and first["chunks"] == 2
    assert index_paths(db, [doc], "testpack")["unchanged"] == 1
    doc.write_text("# 교환\n\n교환은 14일 이내에 가능해요.\n", encoding="utf-8")
    again = index_paths(db, [doc], "testpack")
    assert again["indexed"] == 1
    assert store.count_chunks(db, "testpack") == 1
    [hit] = search(db, "교환 기간", "testpack", 5)
    assert "14일" in hit.text


def test_embeddings_are_stored_and_used(db: Database, tmp_path: Path) -> None:
    assert store.has_vector(db)
    doc = tmp_path / "membership.md"
    doc.write_text(load_pack("ecommerce").kb_dir.joinpath("membership.md").read_text(encoding="utf-8"),
                   encoding="utf-8")
    with OpenAIServer(lambda body, n: []) as srv:
        stats = index_paths(db, [doc], "vecpack", embedding_model="openai/toy-embed", api_base=srv.base)
        assert stats["embedded"] == stats["chunks"] > 0
        kb = KnowledgeBase(db, "vecpack", embedding_model="openai/toy-embed", api_base=srv.base)
        hits = kb.search("포인트 유효기간")
        assert srv.embeddings[-1] == ["포인트 유효기간"]  # the query itself was embedded
    assert hits[0].heading.endswith("포인트와 쿠폰")
    with db.connection() as conn:
        row = conn.execute("SELECT count(*) AS n FROM kb_chunks WHERE pack = 'vecpack' AND embedding IS NOT NULL"
                           ).fetchone()
    assert row["n"] == stats["chunks"]
