"""Knowledge-base storage (sql/003_kb.sql): replace a document's chunks, and rank chunks for a query by
keyword hits plus pg_trgm word similarity (both work on Hangul), plus pgvector cosine when embedded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.store.db import Database

KEYWORD_WEIGHT = 0.6
TRIGRAM_WEIGHT = 0.4
VECTOR_WEIGHT = 0.5
WORD_SIMILARITY_THRESHOLD = 0.3


def has_vector(db: Database) -> bool:
    """Whether the pgvector column exists (the migration adds it only where the extension is available)."""
    with db.connection() as conn:
        row = conn.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_name = 'kb_chunks' AND column_name = 'embedding'"
        ).fetchone()
    return row is not None


def document_state(db: Database, pack: str, source: str) -> dict[str, Any] | None:
    with db.connection() as conn:
        return conn.execute(
            "SELECT d.doc_id, d.sha256, (SELECT count(*) FROM kb_chunks c WHERE c.doc_id = d.doc_id) AS chunks"
            " FROM kb_documents d WHERE d.pack = %s AND d.source = %s",
            (pack, source),
        ).fetchone()


def embedded_with(db: Database, doc_id: int) -> str | None:
    """The embedding model a document's chunks were embedded with (None: not embedded)."""
    if not has_vector(db):
        return None
    with db.connection() as conn:
        row = conn.execute("SELECT min(embedding_model) AS m FROM kb_chunks WHERE doc_id = %s", (doc_id,)).fetchone()
    return row["m"] if row else None


def replace_document(db: Database, *, pack: str, source: str, title: str, sha256: str,
                     chunks: Sequence[tuple[str, str]], embeddings: Sequence[Sequence[float]] | None = None,
                     embedding_model: str | None = None) -> int:
    """Writes a document and its chunks in one transaction, replacing whatever was indexed from `source`."""
    with db.connection() as conn:
        row = conn.execute(
            "INSERT INTO kb_documents (pack, source, title, sha256) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (pack, source) DO UPDATE SET title = EXCLUDED.title, sha256 = EXCLUDED.sha256,"
            " indexed_at = now() RETURNING doc_id",
            (pack, source, title, sha256),
        ).fetchone()
        doc_id = row["doc_id"]
        conn.execute("DELETE FROM kb_chunks WHERE doc_id = %s", (doc_id,))
        for seq, (heading, body) in enumerate(chunks):
            search_text = f"{heading}\n{body}".lower()
            if embeddings is not None:
                vec = "[" + ",".join(f"{x:.7g}" for x in embeddings[seq]) + "]"
                conn.execute(
                    "INSERT INTO kb_chunks (doc_id, seq, pack, heading, body, search_text, embedding, embedding_model)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s::vector, %s)",
                    (doc_id, seq, pack, heading, body, search_text, vec, embedding_model),
                )
            else:
                conn.execute(
                    "INSERT INTO kb_chunks (doc_id, seq, pack, heading, body, search_text)"
                    " VALUES (%s, %s, %s, %s, %s, %s)",
                    (doc_id, seq, pack, heading, body, search_text),
                )
    return doc_id


def search_chunks(db: Database, *, query: str, keywords: Sequence[str], packs: Sequence[str], k: int,
                  embedding: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """Top `k` chunks, best first. score = 0.6 × keyword share (a keyword also in the heading counts 1.5)
    + 0.4 × trigram word similarity (+ 0.5 × cosine similarity when embeddings are given)."""
    kws = [w.lower() for w in keywords] or [query.lower()]
    params: dict[str, Any] = {
        "kq": " ".join(kws), "kws": kws, "n": float(len(kws)), "packs": list(packs), "k": k,
        "kw_w": KEYWORD_WEIGHT, "tg_w": TRIGRAM_WEIGHT, "likes": [f"%{w}%" for w in kws],
        "use_vec": embedding is not None,
    }
    vector_term = "0"
    if embedding is not None:
        params["emb"] = "[" + ",".join(f"{x:.7g}" for x in embedding) + "]"
        params["v_w"] = VECTOR_WEIGHT
        vector_term = ("CASE WHEN c.embedding IS NULL THEN 0"
                       " ELSE %(v_w)s * (1 - (c.embedding <=> %(emb)s::vector)) END")
    sql = f"""
        SELECT c.doc_id, c.seq, c.heading, c.body, d.source, d.title, s.kw, s.tg, s.vec,
               %(kw_w)s * s.kw + %(tg_w)s * s.tg + s.vec AS score
        FROM kb_chunks c
        JOIN kb_documents d USING (doc_id)
        CROSS JOIN LATERAL (
            SELECT
              ((SELECT count(*) FROM unnest(%(kws)s::text[]) w WHERE c.search_text LIKE '%%' || w || '%%')
               + 0.5 * (SELECT count(*) FROM unnest(%(kws)s::text[]) w WHERE lower(c.heading) LIKE '%%' || w || '%%')
              ) / %(n)s AS kw,
              word_similarity(%(kq)s, c.search_text) AS tg,
              {vector_term} AS vec
        ) s
        WHERE c.pack = ANY(%(packs)s)
          AND (%(kq)s <%% c.search_text OR c.search_text LIKE ANY(%(likes)s) OR %(use_vec)s)
        ORDER BY score DESC, c.doc_id, c.seq
        LIMIT %(k)s
    """
    with db.connection() as conn:
        # `<%` (word similarity, GIN-indexed) is the trigram candidate filter; LIKE is the keyword fallback.
        conn.execute(f"SET LOCAL pg_trgm.word_similarity_threshold = {WORD_SIMILARITY_THRESHOLD}")
        return conn.execute(sql, params).fetchall()


def count_chunks(db: Database, pack: str | None = None) -> int:
    with db.connection() as conn:
        row = conn.execute(
            "SELECT count(*) AS n FROM kb_chunks WHERE %(p)s::text IS NULL OR pack = %(p)s", {"p": pack}
        ).fetchone()
    return int(row["n"])
