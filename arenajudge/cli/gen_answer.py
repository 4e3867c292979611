"""gen_answer.py: every model of the answer config answers every question of the bench."""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
from pathlib import Path
from typing import Any

from arenajudge.answer.answering import answer_question
from arenajudge.cli.common import Appenders, command_parser, ray_settings, request_policy, require_entry
from arenajudge.config.models import AnswerConfig, ModelEntry, load_answer_config, load_api_config
from arenajudge.core.errors import run_cli
from arenajudge.endpoints.client import ModelClient, RequestPolicy
from arenajudge.endpoints.context_budget import ContextBudget, wants_budget
from arenajudge.endpoints.engine import Lane, RunReport, finish_files, log_run, run_lanes
from arenajudge.endpoints.probe import probe_endpoints
from arenajudge.endpoints.servers import ServerSession
from arenajudge.records import locks
from arenajudge.records.provenance import question_fingerprints
from arenajudge.records.stale import move_aside
from arenajudge.records.storage import BenchPaths, answer_problem, load_answer_file, load_questions, repair_tail, sort_by_question


def build_parser() -> argparse.ArgumentParser:
    return command_parser(
        "gen_answer.py",
        "Ask each model of model_list every question of the bench; answers go to "
        "data/<bench>/model_answer/<model>.jsonl. Questions already answered are skipped, "
        "so a rerun completes an interrupted or partly failed run.",
        "config/gen_answer_config.yaml", "answer config")


def answers_another_text(record: dict[str, Any], question_fingerprint: str | None) -> bool:
    """True when an answer we wrote was generated for another text of its question (reworded since).

    Answers without provenance (arena-hard-local's) and answers to questions no longer in the
    bench are left as they are."""
    made = record.get("provenance")
    return question_fingerprint is not None and isinstance(made, dict) and made.get("question") != question_fingerprint


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    policy = request_policy(args)
    ray_settings(args)  # checked before anything runs
    config = load_answer_config(args.setting_file)
    entries = load_api_config(args.endpoint_file)
    models = [require_entry(entries, name, args.setting_file, f"model_list[{i}]", args.endpoint_file)
              for i, name in enumerate(config.model_list)]
    paths = BenchPaths(config.bench_name, args.data_dir)
    questions = load_questions(paths.question_file)
    order = [q["question_id"] for q in questions]

    # one writer per answer file, from reading what is done to the final sort
    with locks.hold([locks.answer_lock(paths, entry.name) for entry in models], wait=args.wait):
        return _run(args, policy, config, models, paths, questions, order)


def _run(args: argparse.Namespace, policy: RequestPolicy, config: AnswerConfig, models: list[ModelEntry],
         paths: BenchPaths, questions: list[dict[str, Any]], order: list[Any]) -> int:
    report = RunReport()
    fingerprints = question_fingerprints(questions)
    appenders = Appenders()
    lanes: list[Lane[Any]] = []
    budgets: list[ContextBudget] = []
    redo = 0
    # managed servers: models sharing GPUs are served one after the other, disjoint ones at once (under Ray:
    # all at once, each entry placed before its client is made: the replicas' URLs are its endpoints)
    session = ServerSession(paths.bench_dir / "server_logs", ray=ray_settings(args))
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
            run_lanes([by_name[e.name] for e in group], report, quiet=args.quiet)))
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
    return report.exit_code


def run() -> None:
    sys.exit(run_cli(main))
