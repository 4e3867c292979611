"""An answering run: every model of an answer config answers every question of its bench, resuming what is on disk.

gen_answer.py and run_eval.py call `answer_bench` with configs already loaded; so does a notebook
(arenajudge.api.answer). One writer per answer file (locks), managed servers in waves, stale
answers moved aside, the files sorted and the run logged to runs.jsonl, also when stopped.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from pathlib import Path
from typing import Any

from arenajudge.answer.answering import answer_question
from arenajudge.config.models import AnswerConfig, ModelEntry
from arenajudge.endpoints.client import ModelClient, RequestPolicy
from arenajudge.endpoints.context_budget import ContextBudget, wants_budget
from arenajudge.endpoints.engine import Lane, RunReport, finish_files, log_run, run_lanes
from arenajudge.endpoints.probe import probe_endpoints
from arenajudge.endpoints.run_options import RunOptions
from arenajudge.endpoints.servers import ServerSession
from arenajudge.records import locks
from arenajudge.records.provenance import question_fingerprints
from arenajudge.records.stale import move_aside
from arenajudge.records.storage import (
    Appenders,
    BenchPaths,
    answer_problem,
    load_answer_file,
    load_questions,
    repair_tail,
    sort_by_question,
)


def answers_another_text(record: dict[str, Any], question_fingerprint: str | None) -> bool:
    """True when an answer we wrote was generated for another text of its question (reworded since).

    Answers without provenance (arena-hard-local's) and answers to questions no longer in the
    bench are left as they are."""
    made = record.get("provenance")
    return question_fingerprint is not None and isinstance(made, dict) and made.get("question") != question_fingerprint


def answer_bench(config: AnswerConfig, models: list[ModelEntry], *, data_dir: Path = Path("data"),
                 options: RunOptions | None = None) -> RunReport:
    """Answer every question of `config.bench_name` with each of `models` (entries with their keys, in
    `config.model_list`'s order); what is answered already is skipped. The report's `exit_code` is the command's."""
    options = options or RunOptions()
    policy = options.policy()
    paths = BenchPaths(config.bench_name, data_dir)
    questions = load_questions(paths.question_file)
    order = [q["question_id"] for q in questions]
    # one writer per answer file, from reading what is done to the final sort
    with locks.hold([locks.answer_lock(paths, entry.name) for entry in models], wait=options.wait):
        return _run(options, policy, config, models, paths, questions, order)


def _run(options: RunOptions, policy: RequestPolicy, config: AnswerConfig, models: list[ModelEntry],
         paths: BenchPaths, questions: list[dict[str, Any]], order: list[Any]) -> RunReport:
    report = RunReport()
    fingerprints = question_fingerprints(questions)
    appenders = Appenders()
    lanes: list[Lane[Any]] = []
    budgets: list[ContextBudget] = []
    redo = 0
    # managed servers: models sharing GPUs are served one after the other, disjoint ones at once (under Ray:
    # all at once, each entry placed before its client is made: the replicas' URLs are its endpoints)
    session = ServerSession(paths.bench_dir / "server_logs", ray=options.ray)
    for entry in models:
        path = paths.answer_file(entry.name)
        repair_tail(path)
        done = load_answer_file(path) if path.exists() else {}
        stale = [r for qid, r in done.items() if answers_another_text(r, fingerprints.get(str(qid)))]
        if stale:
            for record in stale:
                del done[record["question_id"]]
            move_aside(path, paths.replaced_answer_file(entry.name), list(done.values()),
                       [(r, "question_changed") for r in stale])
            report.stale += len(stale)
            report.stale_where = str(paths.replaced_answer_file(entry.name).parent)
        # a stored turn without text (written by another tool) is answered again; the new line wins
        broken = {qid for qid, record in done.items() if answer_problem(record) is not None}
        redo += len(broken)
        todo = [q for q in questions if q["question_id"] not in done or q["question_id"] in broken]
        report.skipped += len(questions) - len(todo)
        client = session.watch(ModelClient(session.place(entry) if todo else entry, policy))
        budget = ContextBudget(client) if wants_budget(entry) else None
        budgets += [budget] if budget else []

        def work(question: dict[str, Any], client: ModelClient = client, entry=entry, budget=budget) -> Any:
            return answer_question(client, entry, question, config, config.max_tokens, budget)

        def write(question: dict[str, Any], record: dict[str, Any], path: Path = path) -> None:
            appenders.write(path, record)

        lanes.append(Lane(name=entry.name, client=client, items=todo, work=work, write=write,
                          describe=lambda q, name=entry.name: f"{name} / question {q['question_id']}",
                          max_items=max(1, client.capacity // config.num_choices)))
    probe_endpoints([lane.client.entry for lane in lanes if lane.items])
    print(f"answering {sum(len(lane.items) for lane in lanes)} questions for {len(models)} model(s) "
          f"({report.skipped} already answered" + (f"; {redo} stored without text, asked again" if redo else "") + ")",
          file=sys.stderr)
    by_name = {lane.name: lane for lane in lanes}
    interrupted = False
    try:
        session.run_in_waves([e for e in models if by_name[e.name].items], lambda group: asyncio.run(
            run_lanes([by_name[e.name] for e in group], report, quiet=options.quiet)))
    except BaseException:
        interrupted = True
        raise
    finally:
        appenders.close()
        report.capped += sum(budget.capped for budget in budgets)
        finish_files(report, [functools.partial(sort_by_question, paths.answer_file(e.name), order) for e in models])
        log_run(paths.runs_file, "gen_answer", report, {"models": config.model_list, "bench": config.bench_name,
                                                         **session.log_fields()}, interrupted=interrupted)
    print(report.summary("answers"), file=sys.stderr)
    return report
