"""gen_judgment.py: judge the answers under the judge config's protocol (Arena-Hard pairwise, or an MT-Bench `mode:`)."""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
import sys
from typing import Any

from arenajudge.cli import until_decided
from arenajudge.cli.common import Appenders, command_parser, ray_settings, request_policy, require_entry
from arenajudge.config.models import ModelEntry, load_api_config, load_judge_config
from arenajudge.core.errors import UserError, run_cli
from arenajudge.endpoints.client import ModelClient, RequestPolicy
from arenajudge.endpoints.context_budget import ContextBudget, wants_budget
from arenajudge.endpoints.engine import Lane, RunReport, finish_files, log_run, run_lanes
from arenajudge.endpoints.probe import probe_endpoints
from arenajudge.endpoints.servers import ServerSession
from arenajudge.judge.arena_hard import ORDERS, order_judge_items
from arenajudge.judge.judge_run import require_baseline
from arenajudge.judge.kinds import JudgingKind
from arenajudge.judge.protocol import protocol_for
from arenajudge.records import locks
from arenajudge.records.storage import BenchPaths, load_questions


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(
        "gen_judgment.py",
        "Judge every model of model_list against the baseline on every question (two games, "
        "positions swapped); judgments go to data/<bench>/model_judgment/<judge>/<model>.jsonl. "
        "Existing judgments are kept and skipped, so a rerun completes an interrupted run.",
        "config/judge_config.yaml", "judge config")
    p.add_argument("--sample", type=int, metavar="N",
                   help="judge only a fixed random sample of N questions (the same for every model and judge); "
                        "a later full run reuses these judgments and asks only for the rest")
    p.add_argument("--sample-seed", type=int, default=0,
                   help="seed of --sample and of the question order of --until-decided (default: %(default)s)")
    p.add_argument("--judge-order", choices=ORDERS, default="question-major", help=argparse.SUPPRESS)  # tests, benches
    p.add_argument("--rejudge-missing", action="store_true",
                   help="judge again the questions whose stored judgment has a game without a verdict")
    until_decided.add_flags(p)
    return p


def sample_questions(questions: list[dict[str, Any]], n: int, seed: int) -> list[dict[str, Any]]:
    """A sample that depends only on the question ids, n and the seed (not on file order or model)."""
    if n < 1:
        raise UserError(f"--sample must be at least 1, got {n}")
    ids = sorted(str(q["question_id"]) for q in questions)
    chosen = set(random.Random(seed).sample(ids, min(n, len(ids))))
    return [q for q in questions if str(q["question_id"]) in chosen]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    until_decided.check_unused(args)
    policy = request_policy(args)
    ray_settings(args)  # checked before anything runs
    config = load_judge_config(args.setting_file)
    entries = load_api_config(args.endpoint_file)
    judge = require_entry(entries, config.judge_model, args.setting_file, "judge_model", args.endpoint_file)
    paths = BenchPaths(config.bench_name, args.data_dir)
    questions = load_questions(paths.question_file)
    all_questions = questions
    order = [q["question_id"] for q in questions]
    if args.sample is not None:
        questions = sample_questions(questions, args.sample, args.sample_seed)
    if args.until_decided:
        if config.mode is not None:
            raise UserError(f"{args.setting_file}: key 'mode': --until-decided judges arena-hard pairs against a "
                            "baseline, not MT-Bench modes")
        require_baseline(config)
        inputs = until_decided.check_inputs(args, config, paths, questions)  # before the lock: bad input writes nothing
        return until_decided.run(args, config, judge, paths, questions, order, all_questions, inputs)  # takes the lock

    protocol = protocol_for(config).load(config, judge, paths, questions, all_questions)  # bad input writes nothing
    # one writer per output file, from reading what is done to the final sort
    with locks.hold(protocol.lock_files(), wait=args.wait):
        return run_judging(args, policy, protocol, judge, paths, order)


def run_judging(args: argparse.Namespace, policy: RequestPolicy, protocol: JudgingKind[Any], judge: ModelEntry,
                paths: BenchPaths, order: list[Any]) -> int:
    """Judge what is left under `protocol`: stale records moved aside, the items sent under the server
    session, the record files sorted and the run logged (also when stopped)."""
    report = RunReport()
    session = ServerSession(paths.bench_dir / "server_logs", prefix_cache=True, ray=ray_settings(args))
    # first: client processes (if any) start while the records load; under Ray, once the replicas have URLs
    client = ModelClient(judge, policy) if session.ray is None else None
    items = order_judge_items(protocol.items(protocol.done(args.rejudge_missing, report), report), args.judge_order)
    if client is None:
        judge = session.place(judge) if items else judge
        client = session.watch(ModelClient(judge, policy))
    # judge prompts are counted by the judge's server (as answers are) and cut to fit before sending
    budget = ContextBudget(client) if wants_budget(judge) else None
    appenders = Appenders()

    def write(item: Any, record: dict[str, Any]) -> None:
        appenders.write(protocol.record_file(item), record)
        report.missing_verdicts += protocol.unread_verdicts(record)

    lane: Lane[Any] = Lane(
        name=judge.name, client=client, items=items,
        work=lambda item: protocol.judge(client, item, budget),
        write=write,
        describe=protocol.describe,
        max_items=protocol.in_flight(client.capacity),
    )
    probe_endpoints([judge] if items else [])
    print(f"judging {protocol.announce(len(items))} ({report.skipped} already judged"
          + (f", {report.stale} stale ones moved to {report.stale_where} to be judged again" if report.stale else "")
          + (f", {report.restored} restored from {report.stale_where}" if report.restored else "")
          + ")", file=sys.stderr)
    interrupted = False
    try:
        with session.serving([judge] if items else []):
            asyncio.run(run_lanes([lane], report, quiet=args.quiet))
    except BaseException:
        interrupted = True
        raise
    finally:
        appenders.close()
        report.capped += budget.capped if budget else 0
        finish_files(report, [functools.partial(protocol.sort_records, path, order) for path in protocol.record_files()])
        log_run(paths.runs_file, "gen_judgment", report, {**protocol.log_fields(args.sample), **session.log_fields()},
                interrupted=interrupted)
    print(report.summary("judgments"), file=sys.stderr)
    return report.exit_code


def run() -> None:
    sys.exit(run_cli(main))
