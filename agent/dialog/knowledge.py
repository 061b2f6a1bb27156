"""Knowledge base (plan §3-2): Markdown/text split by heading and paragraph into ~400-character chunks,
indexed in PostgreSQL (agent.store.kb), searched by keywords + trigrams (+ embeddings when configured).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.store import kb as store
from agent.store.db import Database

log = logging.getLogger(__name__)

CHUNK_CHARS = 400
MIN_SCORE = 0.45  # below this a hit is not an answer (tuned on the shipped sample KBs)
TEXT_SUFFIXES = (".md", ".markdown", ".txt")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_JOSA = re.compile(r"(으로|에서|에게|까지|부터|이랑|하고|처럼|보다|은|는|이|가|을|를|에|도|의|로|와|과|만|요)$")
STOPWORDS = {
    "어떻게", "되나요", "돼요", "되요", "있나요", "있어요", "알려", "주세요", "궁금해요", "궁금합니다",
    "뭐예요", "무엇",
    "언제", "얼마나", "하나요", "해요", "하면", "좀", "저", "제", "그", "이", "거", "것", "수", "있", "나요", "어떤",
    "가능한가요", "가능해요", "싶어요", "문의", "질문", "the", "a", "is", "how", "what", "do", "i", "can", "my",
}


@dataclass(frozen=True)
class Chunk:
    heading: str
    body: str


@dataclass(frozen=True)
class Hit:
    source: str
    title: str
    heading: str
    text: str
    score: float


def chunk_text(text: str, max_chars: int = CHUNK_CHARS) -> list[Chunk]:
    """Splits Markdown by heading, then packs paragraphs up to `max_chars` (long ones split by sentence)."""
    chunks: list[Chunk] = []
    path: list[str] = []
    paragraph: list[str] = []
    sections: list[tuple[str, list[str]]] = []

    def close_paragraph() -> None:
        if paragraph:
            para = " ".join(paragraph).strip()
            if para:
                sections.append((" > ".join(path), [para]))
            paragraph.clear()

    for line in text.splitlines():
        m = _HEADING.match(line)
        if m:
            close_paragraph()
            # The heading path keeps one title per level: "반품 정책 > 단순 변심 반품".
            level = len(m.group(1))
            path[:] = path[: level - 1] + [m.group(2)]
            continue
        if not line.strip():
            close_paragraph()
        else:
            paragraph.append(line.strip().lstrip("-*+ ").strip())
    close_paragraph()

    current_heading, current = "", ""
    for heading, (para,) in sections:
        pieces = [para] if len(para) <= max_chars else _split_long(para, max_chars)
        for piece in pieces:
            if current and (heading != current_heading or len(current) + 1 + len(piece) > max_chars):
                chunks.append(Chunk(current_heading, current))
                current = ""
            current_heading = heading
            current = f"{current} {piece}".strip()
    if current:
        chunks.append(Chunk(current_heading, current))
    return chunks


def _split_long(para: str, max_chars: int) -> list[str]:
    out: list[str] = []
    current = ""
    for sentence in sentences(para):
        if current and len(current) + 1 + len(sentence) > max_chars:
            out.append(current)
            current = ""
        current = f"{current} {sentence}".strip()
    if current:
        out.append(current)
    return out


def sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]


def keywords(query: str) -> list[str]:
    """Content words of a question, particles stripped: "반품 정책이 어떻게 되나요?" → [반품, 정책]."""
    words: list[str] = []
    for raw in re.findall(r"[0-9a-zA-Z가-힣]+", query.lower()):
        word = raw
        if word in STOPWORDS:
            continue
        stripped = _JOSA.sub("", word)
        if len(stripped) >= 2:
            word = stripped
        # Verb endings carry no topic: "분실했어요" → 분실, "교환하려면" → 교환.
        word = re.sub(r"(하려면|하면|했어요|했어|했는데|해요|하고|할게요|되나요|인가요|이에요|예요|에요|어요|아요|"
                      r"나요|까요|죠)$", "", word) or word
        if len(word) >= 2 and word not in STOPWORDS and word not in words:
            words.append(word)
    return words


def _files(paths: Sequence[Path]) -> list[Path]:
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found.extend(sorted(f for f in p.rglob("*") if f.suffix.lower() in TEXT_SUFFIXES and f.is_file()))
        elif p.is_file():
            found.append(p)
        else:
            raise FileNotFoundError(f"no such file or folder: {p}")
    return found


def index_paths(db: Database, paths: list[Path], pack: str | None = None, *, embedding_model: str | None = None,
                api_base: str | None = None, api_key: str | None = None) -> dict[str, int]:
    """Indexes Markdown/text files (folders are walked) for `pack` (None: every pack). Re-indexing a file
    replaces its chunks; an unchanged file is skipped. Returns counts: files, indexed, unchanged, chunks,
    embedded."""
    pack_key = pack or ""
    use_vectors = bool(embedding_model) and store.has_vector(db)
    if embedding_model and not use_vectors:
        log.warning("kb: pgvector is not installed; indexing without embeddings")
    stats = {"files": 0, "indexed": 0, "unchanged": 0, "chunks": 0, "embedded": 0}
    for path in _files([Path(p) for p in paths]):
        stats["files"] += 1
        text = path.read_text(encoding="utf-8")
        sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
        source = str(path.resolve())
        known = store.document_state(db, pack_key, source)
        if known and known["sha256"] == sha and (
            not use_vectors or store.embedded_with(db, known["doc_id"]) == embedding_model
        ):
            stats["unchanged"] += 1
            continue
        chunks = chunk_text(text)
        title = next((c.heading.split(" > ")[0] for c in chunks if c.heading), path.stem)
        vectors = None
        if use_vectors and chunks:
            from agent.dialog.llm import embed

            vectors = embed([f"{c.heading}\n{c.body}" for c in chunks], model=embedding_model or "",
                            api_base=api_base, api_key=api_key)
            stats["embedded"] += len(vectors)
        store.replace_document(db, pack=pack_key, source=source, title=title, sha256=sha,
                               chunks=[(c.heading, c.body) for c in chunks], embeddings=vectors,
                               embedding_model=embedding_model if vectors is not None else None)
        stats["indexed"] += 1
        stats["chunks"] += len(chunks)
        log.info("kb: indexed %s (%d chunks)", path.name, len(chunks))
    return stats


def index_configured(db: Database, dialog: Mapping[str, object], paths: Sequence[str | Path],
                     pack: str | None = None) -> dict[str, int]:
    """`callagent kb index`: the files under `paths`, embedded as the `dialog.kb` block of the config says.

    Raises ConfigError for an unknown pack or an unset api_key_env, FileNotFoundError for a missing path.
    """
    from agent.config_reader import ConfigError
    from agent.dialog.settings import PACKS, parse_dialog_settings

    if pack is not None and pack not in PACKS:
        raise ConfigError("--pack", f"unknown pack {pack!r} (one of: {', '.join(PACKS)})")
    kb = parse_dialog_settings(dialog).kb
    api_key = os.environ.get(kb.api_key_env) if kb.api_key_env else None
    if kb.api_key_env and not api_key:
        raise ConfigError("dialog.kb.api_key_env", f"environment variable {kb.api_key_env} is not set")
    return index_paths(db, [Path(p) for p in paths], pack, embedding_model=kb.embedding_model,
                       api_base=kb.api_base, api_key=api_key)


def search(db: Database, query: str, pack: str | None = None, k: int = 3, *,
           embedding: Sequence[float] | None = None) -> list[Hit]:
    """Best chunks for `query` among `pack`'s and the shared ones, best first."""
    packs = ["", pack] if pack else [""]
    if not pack:
        with db.connection() as conn:
            packs = [r["pack"] for r in conn.execute("SELECT DISTINCT pack FROM kb_chunks").fetchall()] or [""]
    rows = store.search_chunks(db, query=query, keywords=keywords(query), packs=packs, k=k, embedding=embedding)
    return [Hit(source=r["source"], title=r["title"], heading=r["heading"], text=r["body"],
                score=float(r["score"])) for r in rows]


def spoken_answer(hit: Hit, query: str, max_chars: int = 160) -> str:
    """The one or two sentences of a chunk that best answer `query`, short enough to say on the phone."""
    kws = keywords(query) or [query]
    parts = sentences(hit.text)
    if not parts:
        return ""
    scored = sorted(range(len(parts)), key=lambda i: (-sum(k in parts[i] for k in kws), i))
    chosen = sorted(scored[:2]) if len(parts[scored[0]]) < max_chars else scored[:1]
    answer = " ".join(parts[i] for i in chosen)
    return answer if len(answer) <= max_chars * 1.5 else parts[scored[0]]


class KnowledgeBase:
    """The search handle the tools get: one pack, optional query embeddings."""

    def __init__(self, db: Database, pack: str | None, *, embedding_model: str | None = None,
                 api_base: str | None = None, api_key: str | None = None, top_k: int = 3):
        self.db = db
        self.pack = pack
        self.embedding_model = embedding_model
        self.api_base = api_base
        self.api_key = api_key
        self.top_k = top_k
        self._vectors = bool(embedding_model) and store.has_vector(db)

    def for_pack(self, pack: str) -> KnowledgeBase:
        return KnowledgeBase(self.db, pack, embedding_model=self.embedding_model, api_base=self.api_base,
                             api_key=self.api_key, top_k=self.top_k)

    def search(self, query: str, k: int | None = None) -> list[Hit]:
        embedding = None
        if self._vectors:
            from agent.dialog.llm import LlmError, embed

            try:
                embedding = embed([query], model=self.embedding_model or "", api_base=self.api_base,
                                  api_key=self.api_key, timeout_s=2.0)[0]
            except LlmError:
                log.warning("kb: query embedding failed; trigram search only")
        return search(self.db, query, self.pack, k or self.top_k, embedding=embedding)

    def answer(self, query: str) -> tuple[str, Hit] | None:
        hits = self.search(query, 1)
        if not hits or hits[0].score < MIN_SCORE:
            return None
        return spoken_answer(hits[0], query), hits[0]
