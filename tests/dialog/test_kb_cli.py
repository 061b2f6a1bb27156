"""`callagent kb index` as an operator runs it: a subprocess on a config that points at a real PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

from agent.dialog.knowledge import search
from agent.store import kb as store
from agent.store.db import Database

REPO = Path(__file__).resolve().parents[2]
DOC = """# 멤버십 안내

## 골드 등급 혜택
골드 회원은 매달 무료 배송 쿠폰 다섯 장과 생일 쿠폰을 받습니다.

## 등급 산정
최근 6개월 구매 금액으로 매달 1일에 등급을 다시 정합니다.
"""


def _cli(tmp_path: Path, db: Database, *args: str) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "callagent.yaml"
    # A key=value DSN that starts with dbname, one of the forms the config accepts.
    parts = sorted(conninfo_to_dict(db.dsn).items(), key=lambda kv: kv[0] != "dbname")
    dsn = " ".join(f"{k}={v}" for k, v in parts)
    cfg.write_text(f"store: {{dsn: '{dsn}'}}\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("CALLAGENT_DB_DSN", "CALLAGENT_CONFIG")}
    return subprocess.run([sys.executable, "-m", "agent.ops.cli", "--config", str(cfg), "kb", "index", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_kb_index_stores_the_operators_documents_and_skips_them_when_unchanged(tmp_path: Path, db: Database) -> None:
    docs = tmp_path / "kb"
    docs.mkdir()
    (docs / "membership.md").write_text(DOC, encoding="utf-8")
    (docs / "notes.txt").write_text("상담 가능 시간은 평일 오전 9시부터 오후 6시까지입니다.", encoding="utf-8")
    (docs / "image.png").write_bytes(b"\x89PNG")  # not text: not indexed

    done = _cli(tmp_path, db, str(docs), "--pack", "ecommerce")
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    assert stats["files"] == 2 and stats["indexed"] == 2 and stats["unchanged"] == 0 and stats["chunks"] >= 3
    assert store.count_chunks(db, "ecommerce") == stats["chunks"]
    [best, *_] = search(db, "골드 회원 혜택이 뭐예요", "ecommerce")
    assert "무료 배송 쿠폰" in best.text and best.source == str((docs / "membership.md").resolve())

    again = _cli(tmp_path, db, str(docs), "--pack", "ecommerce")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.strip().splitlines()[-1])["unchanged"] == 2

    (docs / "membership.md").write_text(DOC.replace("다섯 장", "세 장"), encoding="utf-8")
    changed = json.loads(_cli(tmp_path, db, str(docs), "--pack", "ecommerce").stdout.strip().splitlines()[-1])
    assert changed["indexed"] == 1 and changed["unchanged"] == 1
    [best, *_] = search(db, "골드 회원 혜택이 뭐예요", "ecommerce")
    assert "세 장" in best.text and "다섯 장" not in best.text


def test_kb_index_says_what_is_wrong(tmp_path: Path, db: Database) -> None:
    before = store.count_chunks(db)
    missing = _cli(tmp_path, db, str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "nowhere" in missing.stderr
    (tmp_path / "a.md").write_text(DOC, encoding="utf-8")
    bad_pack = _cli(tmp_path, db, str(tmp_path / "a.md"), "--pack", "insurance")
    assert bad_pack.returncode == 2 and "insurance" in bad_pack.stderr
    assert store.count_chunks(db) == before
