"""A judging run: the answers judged under the judge config's protocol (Arena-Hard pairwise, or an MT-Bench `mode:`).

gen_judgment.py and run_eval.py call `judge_bench` with configs already loaded; so does a notebook
(arenajudge.api.judge). Judgments on disk that still count are skipped, stale ones moved aside;
one writer per judgment file (locks), the judge's managed server started only when something is
left, the files sorted and the run logged to runs.jsonl, also when stopped.
"""

from __future__ import annotations

import asyncio
import functools
import random
import sys
from pathlib import Path
from typing import Any

from arenajudge.config.models import JudgeConfig, ModelEntry
from arenajudge.core.errors import UserError
from arenajudge.endpoints.client import ModelClient, RequestPolicy
from arenajudge.endpoints.context_budget import ContextBudget, wants_budget
from arenajudge.endpoints.engine import Lane, RunReport, finish_files, log_run, run_lanes
from arenajudge.endpoints.probe import probe_endpoints
from arenajudge.endpoints.run_options import RunOptions
from arenajudge.endpoints.servers import ServerSession
from arenajudge.judge.arena_hard import order_judge_items
from arenajudge.judge.kinds import JudgingKind
from arenajudge.judge.protocol import protocol_for
from arenajudge.records import locks
from arenajudge.records.storage import Appenders, BenchPaths, load_questions


def sample_questions(questions: list[dict[str, Any]], n: int, seed: int) -> list[dict[str, Any]]:
    """A sample that depends only on the question ids, n and the seed (not on file order or model)."""
    if n < 1:
        raise UserError(f"--sample must be at least 1, got {n}")
    ids = sorted(str(q["question_id"]) for q in questions)
    chosen = set(random.Random(seed).sample(ids, min(n, len(ids))))
    return [q for q in questions if str(q["question_id"]) in chosen]


def judge_bench(config: JudgeConfig, judge: ModelEntry, *, data_dir: Path = Path("data"),
                options: RunOptions | None = None, sample: int | None = None, sample_seed: int = 0,
                rejudge_missing: bool = False, judge_order: str = "question-major") -> RunReport:
    """Judge what is left of `config.model_list` with `judge` (the judge model's entry, with its keys).

    `sample`: only a fixed random sample of that many questions (seeded by `sample_seed`);
    `rejudge_missing`: judge again the judgments with a game without a verdict. Bad input raises a
    UserError before anything is written; the report's `exit_code` is the command's."""
    options = options or RunOptions()
    policy = options.policy()
    paths = BenchPaths(config.bench_name, data_dir)
    all_questions = load_questions(paths.question_file)
    order = [q["question_id"] for q in all_questions]
    questions = sample_questions(all_questions, sample, sample_seed) if sample is not None else all_questions
    protocol = protocol_for(config).load(config, judge, paths, questions, all_questions)  # bad input writes nothing
    # one writer per output file, from reading what is done to the final sort
    with locks.hold(protocol.lock_files(), wait=options.wait):
        return run_judging(options, policy, protocol, judge, paths, order, sample=sample,
                           rejudge_missing=rejudge_missing, judge_order=judge_order)


def run_judging(options: RunOptions, policy: RequestPolicy, protocol: JudgingKind[Any], judge: ModelEntry,
                paths: BenchPaths, order: list[Any], *, sample: int | None, rejudge_missing: bool,
                judge_order: str) -> RunReport:
    """Judge what is left under `protocol`: stale records moved aside, the items sent under the server
    session, the record files sorted and the run logged (also when stopped)."""
    report = RunReport()
    session = ServerSession(paths.bench_dir / "server_logs", prefix_cache=True, ray=options.ray)
    # first: client processes (if any) start while the records load; under Ray, once the replicas have URLs
    client = ModelClient(judge, policy) if session.ray is None else None
    items = order_judge_items(protocol.items(protocol.done(rejudge_missing, report), report), judge_order)
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
            asyncio.run(run_lanes([lane], report, quiet=options.quiet))
    except BaseException:
        interrupted = True
        raise
    finally:
        appenders.close()
        report.capped += budget.capped if budget else 0
        finish_files(report, [functools.partial(protocol.sort_records, path, order) for path in protocol.record_files()])
        log_run(paths.runs_file, "gen_judgment", report, {**protocol.log_fields(sample), **session.log_fields()},
                interrupted=interrupted)
    print(report.summary("judgments"), file=sys.stderr)
    return report
