"""gen_judgment.py --until-decided A B [C ...]: judge in batches until every pair's comparison is settled.

Questions are judged in one seeded random order (the same for every model; `--sample-seed`),
a batch at a time. After each batch every open pair's anytime-valid interval
(arenajudge.rating.sequential) is updated; a pair is settled when its interval excludes 0 or, with
`--margin M`, lies inside (-M, M). Judging stops when every pair is settled or the questions run
out. Judgments are ordinary records, so a later full run only adds the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import sys
from typing import TYPE_CHECKING, Any

from arenajudge.cli.common import Appenders, request_policy
from arenajudge.config.models import JudgeConfig, ModelEntry
from arenajudge.core.errors import UserError
from arenajudge.endpoints.client import ModelClient
from arenajudge.endpoints.context_budget import ContextBudget, wants_budget
from arenajudge.endpoints.engine import Lane, RunReport, finish_files, log_run, run_lanes
from arenajudge.endpoints.servers import ServerSession
from arenajudge.judge.arena_hard import JudgeItem, judge_item
from arenajudge.judge.judge_run import judge_item_for, judgment_basis, require_answers, resume
from arenajudge.records import locks
from arenajudge.records.storage import BenchPaths, load_judgment_file, sort_by_question

if TYPE_CHECKING:
    from arenajudge.rating.sequential import PairDecision

WEIGHT = 3  # battles a strong verdict counts for: show_result's default --weight
DEFAULTS = {"alpha": 0.05, "min_questions": 50, "batch": 50}


def add_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--until-decided", nargs="+", metavar="MODEL",
                   help="judge these models in batches, in one seeded random question order (--sample-seed), "
                        "until each pair's anytime-valid interval for its score difference excludes 0 (or, with "
                        "--margin, lies inside +-margin); a later full run only adds the rest")
    p.add_argument("--margin", type=float, metavar="M",
                   help="with --until-decided: also settle a pair as equivalent when its interval lies inside (-M, M) points")
    p.add_argument("--alpha", type=float,
                   help=f"with --until-decided: chance of any wrong decision over all pairs, split evenly "
                        f"between them (default: {DEFAULTS['alpha']})")
    p.add_argument("--min-questions", type=int, metavar="N",
                   help=f"with --until-decided: decide nothing before N questions (default: {DEFAULTS['min_questions']})")
    p.add_argument("--batch", type=int, metavar="N",
                   help=f"with --until-decided: questions judged between two looks at the intervals "
                        f"(default: {DEFAULTS['batch']})")


def check_unused(args: argparse.Namespace) -> None:
    """Flags of --until-decided given without it are a mistake, not something to ignore."""
    if args.until_decided:
        for name, value in DEFAULTS.items():
            if getattr(args, name) is None:
                setattr(args, name, value)
        return
    for name in ("margin", *DEFAULTS):
        if getattr(args, name) is not None:
            raise UserError(f"--{name.replace('_', '-')} only works with --until-decided")


def check_flags(args: argparse.Namespace) -> list[str]:
    """The distinct models to compare; a UserError for anything that cannot work."""
    models = list(dict.fromkeys(args.until_decided))
    if len(models) < 2:
        raise UserError("--until-decided needs at least two different models")
    if args.sample is not None:
        raise UserError("--until-decided chooses its own questions; it cannot be used with --sample")
    if not 0 < args.alpha < 1:
        raise UserError(f"--alpha must lie between 0 and 1, got {args.alpha}")
    if args.margin is not None and not 0 < args.margin <= 100:
        raise UserError(f"--margin must lie in (0, 100] points, got {args.margin}")
    if args.min_questions < 0:
        raise UserError(f"--min-questions must be 0 or more, got {args.min_questions}")
    if args.batch < 1:
        raise UserError(f"--batch must be at least 1, got {args.batch}")
    return models


def pair_line(d: PairDecision, total: int) -> str:
    """One pair's outcome: questions judged, decision, interval, share of the full run's requests saved."""
    level = f"{100 * (1 - d.alpha):.4g}%"
    saved = 1 - d.judged / total if total else 0.0
    if d.questions == 0:
        return f"{d.model_b} - {d.model_a}: no question of {d.judged} judged has a verdict for both"
    head = f"{d.model_b} - {d.model_a}: {d.diff:+.1f} points, {level} anytime-valid interval ({d.lower:+.1f}, {d.upper:+.1f})"
    if d.decision == "better":
        what = f"decided after {d.judged} of {total} questions: {d.describe()}"
    elif d.decision == "equivalent":
        what = f"equivalent within the margin after {d.judged} of {total} questions"
    else:
        what = f"not settled at {d.judged} questions"
    return f"{head}; {what}; {saved:.0%} of the full run's judge requests for this pair not needed"


Answers = dict[Any, dict[str, Any]]


def check_inputs(args: argparse.Namespace, config: JudgeConfig, paths: BenchPaths, questions: list[dict[str, Any]]
                 ) -> tuple[list[str], Answers, dict[str, Answers]]:
    """(models, baseline answers, answers per model), or a UserError; called before anything is written."""
    models = check_flags(args)
    baseline = require_answers(paths, config.path, config.baseline_model, questions, "baseline_model")
    answers = {m: require_answers(paths, config.path, m, questions, f"--until-decided {m}") for m in models}
    if config.reference:
        raise UserError(f"{args.setting_file}: key 'reference': --until-decided does not judge against reference answers")
    return models, baseline, answers


def run(args: argparse.Namespace, config: JudgeConfig, judge: ModelEntry, paths: BenchPaths,
        questions: list[dict[str, Any]], order: list[Any], all_questions: list[dict[str, Any]],
        inputs: tuple[list[str], Answers, dict[str, Answers]]) -> int:
    # imported here: they bring pandas, which a plain gen_judgment.py run would load for nothing (~0.6 s)
    from arenajudge.rating.battles import battles_from_judgments
    from arenajudge.rating.sequential import outcome_table, pair_decision, question_order

    models, baseline, answers = inputs
    policy = request_policy(args)
    by_id = {str(q["question_id"]): q for q in questions}
    judging_order = question_order(by_id, args.sample_seed)
    total = len(judging_order)
    pairs = list(itertools.combinations(models, 2))
    alpha_pair = args.alpha / len(pairs)  # Bonferroni: all pairs right together with chance >= 1 - alpha

    # one writer per judgment file (as gen_judgment.py), taken after the checks above: bad flags write nothing
    with locks.hold([*locks.judgment_locks(paths, config.judge_model, models), *locks.server_locks(paths, [judge])],
                    wait=args.wait):
        report = RunReport()
        # Stale judgments (another baseline, changed answers or settings) are moved aside first, exactly as a
        # full run does; what stays is every model's judgments by question, read once, then kept up to date
        # as records are written (a question judged again, with --rejudge-missing, keeps its last record).
        basis = judgment_basis(config, all_questions, baseline, answers, [])
        judged: dict[str, dict[str, dict[str, Any]]] = {}
        done: dict[str, set[str]] = {}
        for model in models:
            done[model] = {str(qid) for qid in resume(paths, config.judge_model, model, questions, basis,
                                                                    args.rejudge_missing, report)}
            path = paths.judgment_file(config.judge_model, model)
            judged[model] = {str(r["question_id"]): r for r in (load_judgment_file(path) if path.exists() else [])}

        def write(item: JudgeItem, record: dict[str, Any]) -> None:
            appenders.write(paths.judgment_file(config.judge_model, item.model), record)
            judged[item.model][str(item.question_id)] = record

        decisions: dict[tuple[str, str], PairDecision] = {}
        appenders = Appenders()
        covered = 0  # questions of judging_order looked at so far

        async def judge_batch(items: list[JudgeItem]) -> RunReport:
            client = ModelClient(judge, policy)
            for dropped in report.dropped:  # an endpoint dropped in an earlier batch stays dropped
                client.mark_dead(dropped.index, dropped.reason)
            batch_report = RunReport()
            budget = ContextBudget(client) if wants_budget(judge) else None  # counted before sending
            lane: Lane[JudgeItem] = Lane(
                name=config.judge_model, client=client, items=items,
                work=lambda item: judge_item(client, config, item, budget),
                write=write,
                describe=lambda item: f"{item.model} / question {item.question_id}",
                max_items=max(1, client.capacity // 2) + 1,
            )
            await run_lanes([lane], batch_report, quiet=args.quiet)
            batch_report.capped += budget.capped if budget else 0
            return batch_report

        async def until_settled() -> None:
            nonlocal covered
            while covered < total and len(decisions) < len(pairs):
                active = sorted({m for pair in pairs if pair not in decisions for m in pair}, key=models.index)
                batch = judging_order[covered:covered + args.batch]
                items = []
                for qid in batch:
                    for model in active:
                        if qid in done[model]:
                            report.skipped += 1
                            continue
                        items.append(judge_item_for(config, judge, basis, by_id[qid], model, answers,
                                                                 baseline, []))
                if items:
                    part = await judge_batch(items)
                    report.merge(part)
                    if not part.ok:
                        return  # a gap in the order: stop; the rerun completes it and goes on
                for item in items:
                    done[item.model].add(str(item.question_id))
                covered += len(batch)
                records = {m: list(judged[m].values()) for m in models}
                outcomes = outcome_table(battles_from_judgments(records, config.baseline_model, config.judge_model,
                                                                weight=WEIGHT).battles, models)
                for pair in pairs:
                    if pair in decisions:
                        continue
                    d = pair_decision(outcomes, *pair, judging_order[:covered], alpha_pair, args.margin,
                                      args.min_questions, total)
                    if d.settled or covered == total:
                        decisions[pair] = d
                    if not args.quiet:
                        print(f"after {covered} questions: {pair_line(d, total)}", file=sys.stderr)

        print(f"judging {', '.join(models)} against {config.baseline_model} with {config.judge_model} until decided: "
              f"batches of {args.batch} questions in the order of seed {args.sample_seed}, alpha {args.alpha:g} "
              f"over {len(pairs)} pair(s)" + (f", margin {args.margin:g} points" if args.margin is not None else ""),
              file=sys.stderr)
        session = ServerSession(paths.bench_dir / "server_logs", prefix_cache=True)
        try:
            # a managed judge server is started only if some judgment is missing
            missing = any(qid not in done[m] for m in models for qid in judging_order)
            with session.serving([judge] if missing else []):
                asyncio.run(until_settled())
        finally:
            appenders.close()
            finish_files(report, [functools.partial(sort_by_question, paths.judgment_file(config.judge_model, model), order)
                                  for model in models])
            record = {"seed": args.sample_seed, "alpha": args.alpha, "margin": args.margin,
                      "min_questions": args.min_questions, "batch": args.batch, "weight": WEIGHT,
                      "questions": judging_order[:covered],
                      "pairs": [decisions[p].as_dict() | {"saved_share": round(1 - decisions[p].judged / total, 4)}
                                for p in pairs if p in decisions]}
            log_run(paths.runs_file, "gen_judgment", report,
                    {"judge": config.judge_model, "baseline": config.baseline_model, "models": models,
                     "bench": config.bench_name, "sample": None, "until_decided": record, **session.log_fields()})
        print(report.summary("judgments"), file=sys.stderr)
        if not report.ok:
            return report.exit_code
        print(f"# until decided: {covered} of {total} questions looked at, judge {config.judge_model}, "
              f"baseline {config.baseline_model}; differences in points of mean outcome against the baseline")
        for pair in pairs:
            print(pair_line(decisions[pair], total))
        needed = sum(len(done[m] & set(judging_order[:covered])) for m in models)
        print(f"judge requests: {2 * needed} of the full run's {2 * len(models) * total} "
              f"({1 - needed / (len(models) * total):.0%} not needed)")
        return 0

