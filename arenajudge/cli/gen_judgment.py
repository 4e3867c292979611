"""gen_judgment.py: the judge compares each model's answers with the baseline's, twice."""

from __future__ import annotations

import argparse
import asyncio
import functools
import random
import sys
from pathlib import Path
from typing import Any

from .. import locks
from ..client import ModelClient, RetryPolicy
from ..config import JudgeConfig, ModelEntry, load_api_config, load_judge_config
from ..engine import Lane, RunReport, finish_files, log_run, run_lanes
from ..errors import UserError, run_cli
from ..judge_run import judge_item_for, judgment_basis, resume
from ..judging import JudgeItem, check_fillable, judge_item
from ..probe import probe_endpoints
from ..storage import BenchPaths, load_answer_file, load_questions, sort_by_question
from ..vllm.context_budget import ContextBudget, wants_budget
from ..vllm.prefix_cache import ORDERS, order_judge_items
from ..vllm.servers import ServerSession
from . import mtbench_judgment, until_decided
from .common import Appenders, add_engine_flags, require_answers, require_entry, retry_policy


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gen_judgment.py",
        description="Judge every model of model_list against the baseline on every question (two games, "
                    "positions swapped); judgments go to data/<bench>/model_judgment/<judge>/<model>.jsonl. "
                    "Existing judgments are kept and skipped, so a rerun completes an interrupted run.")
    p.add_argument("--setting-file", type=Path, default=Path("config/judge_config.yaml"),
                   help="judge config (default: %(default)s)")
    add_engine_flags(p)
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
    policy = retry_policy(args)
    config = load_judge_config(args.setting_file)
    entries = load_api_config(args.endpoint_file)
    judge = require_entry(entries, config.judge_model, args.setting_file, "judge_model", args.endpoint_file)
    paths = BenchPaths(config.bench_name, args.data_dir)
    questions = load_questions(paths.question_file)
    all_questions = questions
    order = [q["question_id"] for q in questions]
    if args.sample is not None:
        questions = sample_questions(questions, args.sample, args.sample_seed)
    if args.until_decided and config.mode is not None:
        raise UserError(f"{args.setting_file}: key 'mode': --until-decided judges arena-hard pairs against a baseline, "
                        "not MT-Bench modes")
    if config.mode is not None:
        session = ServerSession(paths.bench_dir / "server_logs", prefix_cache=True)
        return mtbench_judgment.run(args, config, judge, paths, questions, order, ModelClient(judge, policy), session,
                                    all_questions)  # takes its output's lock once its input is checked
    if not config.baseline or not config.baseline_model:
        raise UserError(f"{args.setting_file}: key 'baseline': arena-hard judging needs a baseline "
                        "(or set `mode:` for MT-Bench judging)")
    if args.until_decided:
        inputs = until_decided.check_inputs(args, config, paths, questions)  # before the lock: bad input writes nothing
        return until_decided.run(args, config, judge, paths, questions, order, all_questions, inputs)  # takes the lock

    baseline = require_answers(paths, config.path, config.baseline_model, questions, "baseline_model")
    answers = {m: require_answers(paths, config.path, m, questions, f"model_list[{i}]") for i, m in enumerate(config.model_list)}
    references: list[dict[Any, dict[str, Any]]] = []
    if config.reference:
        if not config.ref_model:
            raise UserError(f"{args.setting_file}: key 'ref_model': missing; reference is true")
        ref_path = paths.reference_file(config.ref_model)
        if not ref_path.exists():
            raise UserError(f"{args.setting_file}: key 'ref_model': {ref_path} is missing")
        references.append(load_answer_file(ref_path))

    check_fillable(config, questions, answers, baseline, references)
    # one writer per bench and judge, from reading what is done to the final sort
    with locks.hold([locks.judgment_lock(paths, config.judge_model)], wait=args.wait):
        return _run(args, policy, config, judge, paths, questions, order, baseline, answers, references, all_questions)


def _run(args: argparse.Namespace, policy: RetryPolicy, config: JudgeConfig, judge: ModelEntry, paths: BenchPaths,
         questions: list[dict[str, Any]], order: list[Any], baseline: dict[Any, dict[str, Any]],
         answers: dict[str, dict[Any, dict[str, Any]]], references: list[dict[Any, dict[str, Any]]],
         all_questions: list[dict[str, Any]]) -> int:
    report = RunReport()
    basis = judgment_basis(config, all_questions, baseline, answers, references)
    done = {model: resume(paths, config.judge_model, model, questions, basis, args.rejudge_missing, report)
            for model in config.model_list}
    # Question-major order: the prompts of one question (same system prompt, question and, in
    # game 1, baseline answer first) reach the server together, which suits its prefix cache.
    items = []
    for q in questions:
        for model in config.model_list:
            if q["question_id"] in done[model]:
                report.skipped += 1
                continue
            items.append(judge_item_for(config, judge, basis, q, model, answers, baseline, references))

    items = order_judge_items(items, args.judge_order)
    client = ModelClient(judge, policy)
    # judge prompts are counted by the judge's server (as answers are) and cut to fit before sending
    budget = ContextBudget(client) if wants_budget(judge) else None
    appenders = Appenders()
    lane: Lane[JudgeItem] = Lane(
        name=config.judge_model, client=client, items=items,
        work=lambda item: judge_item(client, config, item, budget),
        write=lambda item, record: appenders.write(paths.judgment_file(config.judge_model, item.model), record),
        describe=lambda item: f"{item.model} / question {item.question_id}",
        max_items=max(1, client.capacity // (2 if config.pairwise else 1)) + 1,
    )
    probe_endpoints([judge] if items else [])
    print(f"judging {len(items)} answers with {config.judge_model} against {config.baseline_model} "
          f"({report.skipped} already judged"
          + (f", {report.stale} stale ones moved to {report.stale_where} to be judged again" if report.stale else "")
          + ")", file=sys.stderr)
    session = ServerSession(paths.bench_dir / "server_logs", prefix_cache=True)  # starts a managed judge server
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
        finish_files(report, [functools.partial(sort_by_question, paths.judgment_file(config.judge_model, model), order)
                              for model in config.model_list])
        log_run(paths.runs_file, "gen_judgment", report,
                {"judge": config.judge_model, "baseline": config.baseline_model, "models": config.model_list,
                 "bench": config.bench_name, "sample": args.sample, **session.log_fields()}, interrupted=interrupted)
    print(report.summary("judgments"), file=sys.stderr)
    return 0 if report.ok else 1


def run() -> None:
    sys.exit(run_cli(main))
