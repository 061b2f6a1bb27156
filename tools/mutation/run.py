"""Mutation testing per module: each module is mutated by mutmut and checked only by the fast tests that cover it.

    .venv/bin/python tools/mutation/run.py [MODULE ...]      # default: every module in MODULES

    .venv/bin/python tools/mutation/run.py --report             # rewrite the report from the last runs

Each module runs in its own copy of the tree under var/mutation/work/<name> (a snapshot: edits made meanwhile do
not disturb a run), with one worker process. The Markdown report (every module's latest run) goes to
var/mutation/report.md, the survivors' diffs to var/mutation/survivors/<name>.diff.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "var" / "mutation"
MUTMUT = Path(sys.executable).with_name("mutmut")
TARGET = 0.85
PG_DSN_ENV = "CALLAGENT_TEST_PG_DSN"  # tests/conftest.py reuses this server instead of starting its own


@dataclass(frozen=True)
class Module:
    path: str  # the file mutated
    tests: tuple[str, ...]  # pure, fast tests that cover it (never the database or a whole call)
    deselect: tuple[str, ...] = ()  # node ids left out: slow or needing the embedded database
    database: bool = False  # its tests need PostgreSQL: one server is started for the whole run
    # mutmut gives a mutant (tests' time + 1 s) × this before calling it a timeout (its default is 15): a module
    # whose mutants often hang a loop on a socket sets it lower so that each hang costs seconds, not half a minute.
    timeout_multiplier: float = 15.0

    @property
    def name(self) -> str:
        return self.path.removeprefix("agent/").removesuffix(".py").replace("/", ".")


MODULES: tuple[Module, ...] = (
    Module("agent/call/turns/barge_in.py", ("tests/call/test_barge_in.py", "tests/call/test_barge_in_mutants.py")),
    Module("agent/call/turns/keypad.py", ("tests/call/test_keypad_idle.py", "tests/call/test_keypad_mutants.py")),
    Module("agent/call/turns/idle.py", ("tests/call/test_keypad_idle.py", "tests/call/test_idle_mutants.py")),
    Module("agent/call/turns/backchannel.py",
           ("tests/call/test_barge_in.py", "tests/call/test_backchannel_mutants.py")),
    Module("agent/call/speech.py", ("tests/call/test_speech.py", "tests/call/test_speech_mutants.py")),
    Module("agent/call/actions/listen.py", ("tests/call/test_listen.py", "tests/call/test_listen_mutants.py")),
    Module("agent/call/deadlines.py", ("tests/call/test_deadlines_mutants.py",)),
    Module("agent/call/fork_events.py", ("tests/call/test_fork_events_mutants.py", "tests/call/test_preemptive.py")),
    Module("agent/call/turn.py", ("tests/call/test_turn_mutants.py",)),
    Module("agent/call/actions/say.py", ("tests/call/test_say_mutants.py",)),
    Module("agent/call/actions/transfer.py", ("tests/call/test_transfer_mutants.py",)),
    Module("agent/call/actions/hangup.py", ("tests/call/test_record_audio_mutants.py",)),
    Module("agent/call/record.py", ("tests/call/test_record_mutants.py",)),
    Module("agent/call/actions/record_audio.py", ("tests/call/test_record_audio_mutants.py",)),
    Module("agent/esl/connection.py", ("tests/esl/test_connection_mutants.py",)),
    Module("agent/call/channel.py", ("tests/call/test_channel_threads_mutants.py",)),
    Module("agent/call/threads.py", ("tests/call/test_channel_threads_mutants.py",)),
    Module("agent/call/session.py",
           ("tests/call/test_session_routing_mutants.py", "tests/call/test_session_lifecycle_mutants.py")),
    Module("agent/call/controller.py", ("tests/call/test_controller_mutants.py",
                                        "tests/call/test_controller_thread_mutants.py"), timeout_multiplier=4.0),
    Module("agent/esl/codec.py", ("tests/esl/test_codec.py", "tests/esl/test_codec_mutants.py")),
    Module("agent/esl/commands.py", ("tests/esl/test_commands.py", "tests/esl/test_commands_mutants.py")),
    Module("agent/dialog/guardrails.py",
           ("tests/dialog/test_guardrails.py", "tests/dialog/test_guardrails_mutants.py")),
    Module("agent/dialog/escalation.py",
           ("tests/dialog/test_escalation.py", "tests/dialog/test_escalation_mutants.py"),
           deselect=("tests/dialog/test_escalation.py::test_summary_mentions_intent_order_and_what_was_tried",
                     "tests/dialog/test_escalation.py::test_must_not_escalate")),  # these two need PostgreSQL
    Module("agent/dialog/sentiment.py", ("tests/dialog/test_sentiment_mutants.py",)),
    Module("agent/dialog/llm_guard.py", ("tests/dialog/test_llm_guard_core.py",)),
    Module("agent/privacy/pii.py", ("tests/privacy/test_pii.py", "tests/privacy/test_pii_mutants.py")),
    # PostgreSQL-bound: database=True starts one embedded server for the run (each test still gets a new database).
    Module("agent/store/calls.py", ("tests/store/test_calls.py", "tests/store/test_finished_calls.py",
                                    "tests/store/test_quarantine.py", "tests/store/test_calls_mutants.py",
                                    "tests/store/test_calls_outage_mutants.py"),
           database=True),
    Module("agent/store/db.py", ("tests/store/test_calls.py", "tests/store/test_finished_calls.py",
                                 "tests/store/test_db_mutants.py"), database=True),
    Module("agent/store/spool.py", ("tests/store/test_calls.py", "tests/store/test_quarantine.py",
                                    "tests/store/test_spool_mutants.py"), database=True),
    Module("agent/store/quarantine.py", ("tests/store/test_quarantine.py", "tests/store/test_quarantine_mutants.py"),
           database=True),
    Module("agent/store/crm.py", ("tests/dialog/test_tools.py", "tests/dialog/test_check_delivery_mutants.py",
                                  "tests/store/test_crm_mutants.py"), database=True),
    Module("agent/store/kb.py", ("tests/dialog/test_knowledge.py", "tests/store/test_kb_mutants.py"), database=True),
    *(Module(f"agent/dialog/tools/{tool}.py",
             ("tests/dialog/test_tools.py", "tests/dialog/test_check_delivery_mutants.py",
              "tests/dialog/test_delivery_status_mutants.py", f"tests/dialog/test_{tool}_mutants.py"), database=True)
      for tool in ("base", "check_delivery", "escalate_to_human", "lookup_account", "lookup_order",
                   "process_return", "search_faq", "update_customer_info", "verify_identity")),
    Module("agent/media/fork_protocol.py",
           ("tests/media/test_fork_protocol.py", "tests/media/test_fork_protocol_mutants.py")),
    Module("agent/media/resample.py", ("tests/media/test_resample.py", "tests/media/test_resample_mutants.py")),
    Module("agent/worker/stream.py", ("tests/worker/test_stream_mutants.py",)),
    Module("agent/worker/ratelimit.py",
           ("tests/worker/test_ratelimit_mutants.py", "tests/worker/test_worker_memory_bounds.py")),
    Module("agent/worker/server.py",
           # The older loopback tests (test_worker_limits, test_worker_server) repeat what these check.
           ("tests/worker/test_server_mutants.py", "tests/worker/test_server_run_mutants.py",
            "tests/worker/test_worker_idle.py", "tests/worker/test_worker_memory_bounds.py")),
    Module("agent/media/echo.py", ("tests/media/test_echo.py", "tests/media/test_echo_mutants.py")),
    Module("agent/media/smart_turn.py", ("tests/media/test_smart_turn.py", "tests/media/test_smart_turn_mutants.py")),
    Module("agent/media/korean_endings.py",
           ("tests/media/test_turn_end.py", "tests/media/test_korean_endings_mutants.py")),
    Module("agent/media/turn_end.py", ("tests/media/test_turn_end.py", "tests/media/test_turn_end_mutants.py",
                                       "tests/worker/test_worker_closed_reading.py")),
    Module("agent/media/vad.py",
           ("tests/media/test_vad.py", "tests/media/test_speech_tail.py", "tests/media/test_vad_mutants.py")),
    Module("agent/media/endpointing.py",
           ("tests/media/test_endpointing.py", "tests/media/test_speech_tail.py",
            "tests/media/test_endpointing_mutants.py")),
    Module("agent/worker/partials.py", ("tests/worker/test_partials_mutants.py",)),
    # Its older tests (test_turn_taking, test_live_checkpoint) run real speech through a real decoder: seconds each.
    Module("agent/worker/session.py",
           ("tests/worker/test_worker_session_mutants.py", "tests/worker/test_worker_session_failures_mutants.py",
            "tests/worker/test_worker_closed_reading.py"),
           timeout_multiplier=4.0),
    Module("agent/worker/live.py",
           ("tests/worker/test_live_mutants.py", "tests/worker/test_live_checkpoint.py",
            "tests/worker/test_live_decoder_close.py"),
           deselect=("tests/worker/test_live_decoder_close.py::test_a_hangup_stops_the_worker_decoding_that_call",
                     "tests/worker/test_live_checkpoint.py::test_vosk_checkpoint_closes_the_words_so_far_and_the_result_after_it_adds_nothing",
                     "tests/worker/test_live_checkpoint.py::test_vosk_decodes_on_after_a_checkpoint_on_the_same_clock")),
)


def _copy_tree(work: Path) -> None:
    """A snapshot of the code and tests; mutmut copies `agent` again into work/mutants and mutates it there."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("agent", "tests", "sql"):  # sql: the migrations the PostgreSQL tests apply
        shutil.copytree(REPO / name, work / name, ignore=ignore)
    shutil.copy2(REPO / "pyproject.toml", work / "pyproject.toml")


def _setup_cfg(module: Module, work: Path) -> None:
    existing = [t for t in module.tests if (REPO / t).exists()]
    if not existing:  # an empty selection would make mutmut run the whole suite
        raise SystemExit(f"none of the tests mapped to {module.path} exist: {', '.join(module.tests)}")
    pytest_args = ["-p", "no:cacheprovider", "-q", "-x", f"--basetemp={work / 'pt'}"]
    pytest_args += [f"--deselect={d}" for d in module.deselect]
    lines = [
        "[tool:pytest]", "filterwarnings =", "    ignore::DeprecationWarning", "",
        "[mutmut]",
        "source_paths = agent",
        f"only_mutate = {module.path}",
        "mutate_only_covered_lines = false",
        "use_setproctitle = false",
        f"timeout_multiplier = {module.timeout_multiplier}",
        "also_copy =", "    sql",  # next to mutants/agent, where agent/store/db.py looks for it
        "pytest_add_cli_args =", *(f"    {a}" for a in pytest_args),
        "pytest_add_cli_args_test_selection =", *(f"    {t}" for t in existing),
        "",
    ]
    (work / "setup.cfg").write_text("\n".join(lines))


@dataclass
class Score:
    module: Module
    counts: dict[str, int]
    survivors: list[str]
    error: str = ""
    when: str = ""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def killed(self) -> int:
        return self.counts.get("killed", 0) + self.counts.get("timeout", 0)

    @property
    def score(self) -> float:
        return self.killed / self.total if self.total else 0.0


# mutmut's exit codes (mutmut/stats.py): 1 and 3 = a test failed, 0 = every test passed, 33/5 = no test ran it.
_STATUS = {0: "survived", 1: "killed", 3: "killed", 5: "no tests", 33: "no tests", 34: "skipped", 36: "timeout",
           24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout"}


def run_module(module: Module) -> Score:
    work = OUT / "work" / module.name
    _copy_tree(work)
    _setup_cfg(module, work)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("CI", None)  # the copy has no ../shared/speech next to it; the mapped tests never need it
    with _postgres(module.database) as dsn:
        if dsn:
            env[PG_DSN_ENV] = dsn
        proc = subprocess.run([str(MUTMUT), "run", "--max-children", "1"], cwd=work, env=env,
                              capture_output=True, text=True)
    (OUT / "logs").mkdir(parents=True, exist_ok=True)
    (OUT / "logs" / f"{module.name}.log").write_text(proc.stdout + proc.stderr)
    score = collect(module)
    if score.error:
        score.error = f"mutmut exited {proc.returncode}; see var/mutation/logs"
    else:
        _write_survivor_diffs(module, work, score.survivors)
    return score


@contextmanager
def _postgres(wanted: bool) -> Iterator[str]:
    """One embedded PostgreSQL for a module's whole run (mutmut's stats run and every forked mutant run): a
    server started per pytest session would cost each mutant a second. It lives in this process, above mutmut
    and its forks, and is stopped and deleted when the run ends; each test still gets a new database."""
    if not wanted:
        yield ""
        return
    import pgserver  # the same wheel the tests' own server comes from

    server = pgserver.get_server(Path(tempfile.mkdtemp(prefix="callagent-mut-pg-")), cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def collect(module: Module) -> Score:
    """The result of the module's last run, read from mutmut's own record in its work folder."""
    work = OUT / "work" / module.name
    meta = work / "mutants" / (module.path + ".meta")
    if not meta.exists():
        return Score(module, {}, [], error="not run")
    codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    counts: dict[str, int] = {}
    survivors = []
    for key, code in sorted(codes.items()):
        status = _STATUS.get(code, "suspicious") if code is not None else "not checked"
        counts[status] = counts.get(status, 0) + 1
        if status not in ("killed", "timeout"):
            survivors.append(key)
    when = dt.datetime.fromtimestamp(meta.stat().st_mtime, dt.UTC).strftime("%Y-%m-%d %H:%M")
    return Score(module, counts, survivors, when=when)


def _write_survivor_diffs(module: Module, work: Path, survivors: list[str]) -> None:
    diffs = []
    for key in survivors:
        shown = subprocess.run([str(MUTMUT), "show", key], cwd=work, capture_output=True, text=True)
        diffs.append(shown.stdout.strip())
    (OUT / "survivors").mkdir(parents=True, exist_ok=True)
    (OUT / "survivors" / f"{module.name}.diff").write_text("\n\n".join(diffs) + "\n")


def report(scores: list[Score]) -> str:
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = [f"# Mutation score ({today})", "",
            f"Target: at least {TARGET:.0%} of mutants killed per module. Survivors' diffs: var/mutation/survivors/.",
            "", "| module | run (UTC) | mutants | killed | survived | no tests | score | target |",
            "|---|---|---:|---:|---:|---:|---:|---|"]
    for s in scores:
        if s.error:
            rows.append(f"| {s.module.path} | – | – | – | – | – | – | {s.error} |")
            continue
        mark = "met" if s.score >= TARGET else "NOT met"
        rows.append(f"| {s.module.path} | {s.when} | {s.total} | {s.killed} | {s.counts.get('survived', 0)} | "
                    f"{s.counts.get('no tests', 0)} | {s.score:.1%} | {mark} |")
    rows.append("")
    for s in scores:
        if s.survivors:
            rows += [f"## {s.module.path}: {len(s.survivors)} not killed", "",
                     *(f"- `{k}`" for k in s.survivors), ""]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="*", help="paths such as agent/esl/codec.py (default: all)")
    parser.add_argument("--report", action="store_true", help="only rewrite the report from the last runs")
    args = parser.parse_args(argv)
    chosen = [m for m in MODULES if not args.modules or m.path in args.modules or m.name in args.modules]
    unknown = set(args.modules) - {m.path for m in chosen} - {m.name for m in chosen}
    if unknown:
        parser.error(f"not in the module table: {', '.join(sorted(unknown))}")
    scores = []
    for module in [] if args.report else chosen:
        print(f"mutating {module.path} ...", flush=True)
        score = run_module(module)
        print(f"  {score.killed}/{score.total} killed ({score.score:.1%}) {score.error}", flush=True)
        scores.append(score)
    OUT.mkdir(parents=True, exist_ok=True)
    # The report covers every module of the table, each with its latest run, so one module can be rerun alone.
    text = report([collect(m) for m in MODULES])
    (OUT / "report.md").write_text(text)
    print(f"\nreport: {OUT / 'report.md'}")
    return 0 if all(s.score >= TARGET and not s.error for s in scores) else 1  # only the modules just run


if __name__ == "__main__":
    sys.exit(main())
