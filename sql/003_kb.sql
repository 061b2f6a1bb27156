-- Knowledge base: documents split into ~400-character chunks, searched by trigram similarity (works on
-- Hangul) with a GIN index, plus optional pgvector embeddings when dialog.kb.embedding_model is set.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE kb_documents (
    doc_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pack        text NOT NULL DEFAULT '',          -- '' = shared by every pack
    source      text NOT NULL,                     -- resolved file path (re-indexing replaces its chunks)
    title       text NOT NULL DEFAULT '',
    sha256      text NOT NULL,
    indexed_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (pack, source)
);

CREATE TABLE kb_chunks (
    doc_id      bigint NOT NULL REFERENCES kb_documents (doc_id) ON DELETE CASCADE,
    seq         integer NOT NULL,
    pack        text NOT NULL DEFAULT '',
    heading     text NOT NULL DEFAULT '',          -- the Markdown heading path, e.g. "반품 정책 > 단순 변심"
    body        text NOT NULL,
    search_text text NOT NULL,                     -- heading + body, lower-cased: what the trigram index sees
    PRIMARY KEY (doc_id, seq)
);
CREATE INDEX kb_chunks_trgm ON kb_chunks USING gin (search_text gin_trgm_ops);
CREATE INDEX kb_chunks_pack ON kb_chunks (pack);

-- pgvector is optional: without it the KB still works (trigram + keyword search only).
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS vector;
    -- No fixed dimension: any embedding model fits; the KB is small enough for an exact scan.
    ALTER TABLE kb_chunks ADD COLUMN embedding vector;
    ALTER TABLE kb_chunks ADD COLUMN embedding_model text;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pgvector not available; knowledge base search uses trigrams only';
END
$$;
