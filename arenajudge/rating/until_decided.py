"""Judging until decided (gen_judgment.py --until-decided A B ...): judge in batches until every pair is settled.

Questions are judged in one seeded random order (the same for every model; `--sample-seed`),
a batch at a time. After each batch (a planned look) every open pair's interval is updated: by
default the group-sequential repeated confidence interval of that look, with `--rule cs` the
anytime-valid confidence sequence (arenajudge.rating.sequential); a pair is settled when its
interval excludes 0 or, with `--margin M`, lies inside (-M, M). After the first batch a forecast
says how many questions, judge requests and tokens a decision is expected to need. Judging stops
when every pair is settled or the questions run out. Judgments are ordinary records, so a later
full run only adds the rest; runs.jsonl keeps the design, so show_result.py --compare can decide
again the same way. `judge_until_decided` runs it from configs already loaded (gen_judgment.py,
arenajudge.api.judge_until_decided) and returns the decisions; it sits with the ratings because
the ratings steer what is judged next.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arenajudge.config.models import JudgeConfig, ModelEntry
from arenajudge.core.errors import UserError
from arenajudge.endpoints.client import ModelClient
from arenajudge.endpoints.context_budget import ContextBudget, wants_budget
from arenajudge.endpoints.engine import Lane, RunReport, finish_files, log_run, run_lanes
from arenajudge.endpoints.run_options import RunOptions
from arenajudge.endpoints.servers import ServerSession
from arenajudge.judge.arena_hard import JudgeItem, judge_item
from arenajudge.judge.judge_run import judge_item_for, judgment_basis, require_answers, require_baseline, resume
from arenajudge.records import locks
from arenajudge.records.storage import Appenders, BenchPaths, load_judgment_file, load_questions, read_jsonl, sort_by_question

if TYPE_CHECKING:
    import numpy as np

    from arenajudge.rating.sequential import Design, Forecast, PairDecision

WEIGHT = 3  # battles a strong verdict counts for: show_result's default --weight
# the rule and spending function that won the simulation of bench/bench_until_decided.py (README)
DEFAULTS: dict[str, Any] = {"alpha": 0.05, "min_questions": 50, "batch": 50, "rule": "gs", "spending": "hsd"}
RULE_NAMES = {"gs": "group-sequential looks at the planned batches", "cs": "confidence sequence, valid at any time"}
FORECAST_GAPS = (2.0, 5.0, 10.0)  # points


@dataclass(frozen=True)
class UntilDecided:
    """What an until-decided run compares and how it decides; the defaults are gen_judgment.py's."""

    models: tuple[str, ...]
    alpha: float = DEFAULTS["alpha"]  # chance of any wrong decision over all pairs, split evenly between them
    margin: float | None = None  # also settle a pair as equivalent when its interval lies inside (-margin, margin)
    min_questions: int = DEFAULTS["min_questions"]  # nothing is decided before this many questions
    batch: int = DEFAULTS["batch"]  # questions judged between two looks
    rule: str = DEFAULTS["rule"]  # "gs" (group-sequential looks) or "cs" (confidence sequence)
    spending: str | None = DEFAULTS["spending"]  # alpha spending of rule gs: obf, pocock or hsd (ignored by cs)
    seed: int = 0  # seed of the question order

    def checked(self) -> list[str]:
        """The distinct models to compare; a UserError (naming the flag) for anything that cannot work."""
        models = list(dict.fromkeys(self.models))
        if len(models) < 2:
            raise UserError("--until-decided needs at least two different models")
        if not 0 < self.alpha < 1:
            raise UserError(f"--alpha must lie between 0 and 1, got {self.alpha}")
        if self.margin is not None and not 0 < self.margin <= 100:
            raise UserError(f"--margin must lie in (0, 100] points, got {self.margin}")
        if self.min_questions < 0:
            raise UserError(f"--min-questions must be 0 or more, got {self.min_questions}")
        if self.batch < 1:
            raise UserError(f"--batch must be at least 1, got {self.batch}")
        from arenajudge.rating.group_sequential import SPENDING_FUNCTIONS  # here: scipy, for this mode only

        if self.rule not in RULE_NAMES:
            raise UserError(f"--rule must be one of {', '.join(RULE_NAMES)}, got {self.rule!r}")
        if self.rule == "gs" and self.spending not in SPENDING_FUNCTIONS:
            raise UserError(f"--spending must be one of {', '.join(SPENDING_FUNCTIONS)}, got {self.spending!r}")
        return models

    @property
    def spending_of_rule(self) -> str | None:
        """The spending function the design uses: none for the confidence sequence."""
        return None if self.rule == "cs" else self.spending


@dataclass
class UntilDecidedResult:
    """What an until-decided run did and decided."""

    report: RunReport
    judge: str
    baseline: str
    models: list[str]
    decisions: dict[tuple[str, str], PairDecision]  # pair -> its decision (every pair, when the report is ok)
    covered: int  # questions of the order looked at
    total: int  # questions of the bench
    needed: int  # judgments of the covered questions (each two judge requests)

    @property
    def exit_code(self) -> int:
        return self.report.exit_code

    def lines(self) -> list[str]:
        """The outcome as gen_judgment.py prints it on stdout (after a run whose report is ok)."""
        full = len(self.models) * self.total
        return [f"# until decided: {self.covered} of {self.total} questions looked at, judge {self.judge}, "
                f"baseline {self.baseline}; differences in points of mean outcome against the baseline",
                *(pair_line(d, self.total) for d in self.decisions.values()),
                f"judge requests: {2 * self.needed} of the full run's {2 * full} "
                f"({1 - self.needed / full:.0%} not needed)"]


def pair_line(d: PairDecision, total: int) -> str:
    """One pair's outcome: questions judged, decision, interval, share of the full run's requests saved."""
    level = f"{100 * (1 - d.alpha):.4g}%"
    saved = 1 - d.judged / total if total else 0.0
    if d.questions == 0:
        return f"{d.model_b} - {d.model_a}: no question of {d.judged} judged has a verdict for both"
    if d.rule == "gs" and d.look == 0:
        head = f"{d.model_b} - {d.model_a}: {d.diff:+.1f} points, no planned look yet"
    elif d.rule == "gs":
        head = (f"{d.model_b} - {d.model_a}: {d.diff:+.1f} points, {level} group-sequential interval "
                f"({d.lower:+.1f}, {d.upper:+.1f}) at look {d.look} of {d.looks}")
    else:
        head = f"{d.model_b} - {d.model_a}: {d.diff:+.1f} points, {level} anytime-valid interval ({d.lower:+.1f}, {d.upper:+.1f})"
    if d.decision == "better":
        what = f"decided after {d.judged} of {total} questions: {d.describe()}"
    elif d.decision == "equivalent":
        what = f"equivalent within the margin after {d.judged} of {total} questions"
    else:
        what = f"not settled at {d.judged} questions"
    return f"{head}; {what}; {saved:.0%} of the full run's judge requests for this pair not needed"


Answers = dict[Any, dict[str, Any]]


def check_inputs(until: UntilDecided, config: JudgeConfig, paths: BenchPaths, questions: list[dict[str, Any]]
                 ) -> tuple[list[str], Answers, dict[str, Answers]]:
    """(models, baseline answers, answers per model), or a UserError; called before anything is written."""
    if config.mode is not None:
        raise UserError(f"{config.path}: key 'mode': --until-decided judges arena-hard pairs against a "
                        "baseline, not MT-Bench modes")
    require_baseline(config)
    models = until.checked()
    baseline = require_answers(paths, config.path, config.baseline_model, questions, "baseline_model")
    answers = {m: require_answers(paths, config.path, m, questions, f"--until-decided {m}") for m in models}
    if config.reference:
        raise UserError(f"{config.path}: key 'reference': --until-decided does not judge against reference answers")
    return models, baseline, answers


def judge_until_decided(config: JudgeConfig, judge: ModelEntry, until: UntilDecided, *, data_dir: Path = Path("data"),
                        options: RunOptions | None = None, rejudge_missing: bool = False) -> UntilDecidedResult:
    """Judge `until.models` against the config's baseline with `judge` (its entry, with its keys), a batch at a
    time, until every pair is decided or the questions run out. Bad input raises a UserError before anything is
    written; judgments on disk that still count are used, not asked again."""
    options = options or RunOptions()
    policy = options.policy()
    paths = BenchPaths(config.bench_name, data_dir)
    questions = load_questions(paths.question_file)
    order = [q["question_id"] for q in questions]
    models, baseline, answers = check_inputs(until, config, paths, questions)  # before the lock: bad input writes nothing
    # imported here: they bring pandas, which a plain gen_judgment.py run would load for nothing (~0.6 s)
    from arenajudge.rating.battles import battles_from_judgments
    from arenajudge.rating.sequential import outcome_table, pair_decision, paired_differences, plan, question_order

    by_id = {str(q["question_id"]): q for q in questions}
    judging_order = question_order(by_id, until.seed)
    total = len(judging_order)
    pairs = list(itertools.combinations(models, 2))
    # Bonferroni: every pair gets alpha / pairs, so all pairs are right together with chance >= 1 - alpha
    design = plan(until.rule, until.spending_of_rule, total, until.batch, until.min_questions, until.alpha, len(pairs),
                  until.margin)
    forecasts: list[dict[str, Any]] = []

    # one writer per judgment file (as gen_judgment.py), taken after the checks above: bad flags write nothing
    with locks.hold([*locks.judgment_locks(paths, config.judge_model, models), *locks.server_locks(paths, [judge])],
                    wait=options.wait):
        report = RunReport()
        # Stale judgments (another baseline, changed answers or settings) are moved aside first, exactly as a
        # full run does; what stays is every model's judgments by question, read once, then kept up to date
        # as records are written (a question judged again, with --rejudge-missing, keeps its last record).
        basis = judgment_basis(config, questions, baseline, answers, [])
        judged: dict[str, dict[str, dict[str, Any]]] = {}
        done: dict[str, set[str]] = {}
        for model in models:
            done[model] = {str(qid) for qid in resume(paths, config.judge_model, model, questions, basis,
                                                      rejudge_missing, report)}
            path = paths.judgment_file(config.judge_model, model)
            judged[model] = {str(r["question_id"]): r for r in (load_judgment_file(path) if path.exists() else [])}

        def write(item: JudgeItem, record: dict[str, Any]) -> None:
            appenders.write(paths.judgment_file(config.judge_model, item.model), record)
            judged[item.model][str(item.question_id)] = record

        decisions: dict[tuple[str, str], PairDecision] = {}
        appenders = Appenders()
        covered = 0  # questions of judging_order looked at so far

        async def judge_batch(items: list[JudgeItem]) -> RunReport:
            client = session.watch(ModelClient(judge, policy))
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
            await run_lanes([lane], batch_report, quiet=options.quiet)
            batch_report.capped += budget.capped if budget else 0
            return batch_report

        async def until_settled() -> None:
            nonlocal covered
            while covered < total and len(decisions) < len(pairs):
                active = sorted({m for pair in pairs if pair not in decisions for m in pair}, key=models.index)
                batch = judging_order[covered:covered + until.batch]
                items = []
                for qid in batch:
                    for model in active:
                        if qid in done[model]:
                            report.skipped += 1
                            continue
                        items.append(judge_item_for(config, judge, basis, by_id[qid], model, answers, baseline, []))
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
                first_batch = covered == min(until.batch, total)
                for pair in pairs:
                    if pair in decisions:
                        continue
                    d = pair_decision(outcomes, *pair, judging_order[:covered], design)
                    if d.settled or covered == total:
                        decisions[pair] = d
                    if not options.quiet:
                        print(f"after {covered} questions: {pair_line(d, total)}", file=sys.stderr)
                    if first_batch and not d.settled and covered < total and design.looks:
                        diffs = paired_differences(outcomes, *pair, judging_order[:covered])
                        record = pair_forecast(pair, diffs, design, covered, tokens_per_request(report, paths,
                                                                                                 config.judge_model))
                        forecasts.append(record)
                        print(forecast_lines(record), file=sys.stderr)  # a cost, not progress: also with --quiet

        print(f"judging {', '.join(models)} against {config.baseline_model} with {config.judge_model} until decided: "
              f"batches of {until.batch} questions in the order of seed {until.seed}, alpha {until.alpha:g} "
              f"over {len(pairs)} pair(s)" + (f", margin {until.margin:g} points" if until.margin is not None else ""),
              file=sys.stderr)
        print(design_line(design), file=sys.stderr)
        session = ServerSession(paths.bench_dir / "server_logs", prefix_cache=True, ray=options.ray)
        try:
            # a managed judge server is started only if some judgment is missing
            missing = any(qid not in done[m] for m in models for qid in judging_order)
            judge = session.place(judge) if missing else judge  # under Ray: its replicas' URLs are its endpoints
            with session.serving([judge] if missing else []):
                asyncio.run(until_settled())
        finally:
            appenders.close()
            finish_files(report, [functools.partial(sort_by_question, paths.judgment_file(config.judge_model, model), order)
                                  for model in models])
            record = {"seed": until.seed, "alpha": until.alpha, "margin": until.margin,
                      "min_questions": until.min_questions, "batch": until.batch, "weight": WEIGHT,
                      "design": design.as_record(),
                      "questions": judging_order[:covered],
                      "pairs": [decisions[p].as_dict() | {"saved_share": round(1 - decisions[p].judged / total, 4)}
                                for p in pairs if p in decisions],
                      "forecast": forecasts}
            log_run(paths.runs_file, "gen_judgment", report,
                    {"judge": config.judge_model, "baseline": config.baseline_model, "models": models,
                     "bench": config.bench_name, "sample": None, "until_decided": record, **session.log_fields()})
        print(report.summary("judgments"), file=sys.stderr)
        needed = sum(len(done[m] & set(judging_order[:covered])) for m in models)
        assert config.baseline_model is not None
        return UntilDecidedResult(report, config.judge_model, config.baseline_model, models,
                                  {p: decisions[p] for p in pairs if p in decisions}, covered, total, needed)


def design_line(design: Design) -> str:
    """The run's design, said before the first question: rule, looks and (gs) the boundaries."""
    if not design.looks:
        return f"rule {design.rule}: no look at all ({design.total} questions, fewer than --min-questions)"
    looks = ", ".join(str(n) for n in design.looks)
    if design.rule == "cs":
        return f"rule cs ({RULE_NAMES['cs']}): looks after {looks} questions"
    bounds = " ".join(f"{c:.2f}" for c in design.bounds())
    return (f"rule gs ({RULE_NAMES['gs']}), {design.spending} alpha spending: looks after {looks} questions; "
            f"|Z| boundaries {bounds} (Student t at the looks' questions); valid at these looks only")


def tokens_per_request(report: RunReport, paths: BenchPaths, judge_model: str) -> float | None:
    """Judge tokens (prompt and completion) per request: this run's so far, else its judge's earlier runs in
    runs.jsonl; None when neither made a request."""
    usage = report.usage
    if usage.requests:
        return (usage.prompt_tokens + usage.completion_tokens) / usage.requests
    runs = read_jsonl(paths.runs_file, allow_torn_tail=True) if paths.runs_file.exists() else []
    mine = [r for r in runs if r.get("command") == "gen_judgment" and r.get("judge") == judge_model]
    requests = sum(int(r.get("requests") or 0) for r in mine)
    tokens = sum(int(r.get("prompt_tokens") or 0) + int(r.get("completion_tokens") or 0) for r in mine)
    return tokens / requests if requests else None


def pair_forecast(pair: tuple[str, str], diffs: np.ndarray, design: Design, covered: int, per_request: float | None
                  ) -> dict[str, Any]:
    """The cost forecast of one pair after `covered` questions, as runs.jsonl keeps it."""
    from arenajudge.rating.sequential import forecast  # here: pandas and scipy, for this mode only

    seen = 100 * float(diffs.mean()) if len(diffs) else 0.0
    direction = -1.0 if seen < 0 else 1.0  # the model ahead so far stays ahead in the hypothetical gaps
    gaps = [direction * g for g in FORECAST_GAPS] + ([seen] if seen != 0 else [])
    sd = 100 * float(diffs.std(ddof=1)) if len(diffs) > 1 else 0.0
    rows = [forecast_row(f, per_request) for f in forecast(diffs, design, gaps)]
    return {"model_a": pair[0], "model_b": pair[1], "after": covered, "sd": round(sd, 3), "seen": round(seen, 3),
            "tokens_per_request": None if per_request is None else round(per_request, 1), "gaps": rows}


def forecast_row(f: Forecast, per_request: float | None) -> dict[str, Any]:
    """Questions, judge requests (2 models x 2 games a question) and tokens for one gap."""
    if f.questions is None:
        return {"gap": f.gap, "questions": None, "decided_share": 0.0, "requests": None, "tokens": None}
    questions = math.ceil(f.questions)
    requests = 4 * questions
    return {"gap": f.gap, "questions": questions, "decided_share": round(f.decided, 4), "requests": requests,
            "tokens": None if per_request is None else round(requests * per_request)}


def forecast_lines(record: dict[str, Any]) -> str:
    """The forecast as printed: a head line and one line per gap."""
    per_request = record["tokens_per_request"]
    cost = (f"{per_request:,.0f} judge tokens per request so far" if per_request is not None
            else "judge tokens per request not known yet")
    lines = [f"forecast for {record['model_b']} - {record['model_a']} after {record['after']} questions (standard "
             f"deviation of the per-question difference {record['sd']:.1f} points; {cost}): a decision that one "
             "model is better is expected to need"]
    for i, row in enumerate(record["gaps"]):
        gap = f"{abs(row['gap']):g} points" if i < len(FORECAST_GAPS) else f"{row['gap']:+.1f} points (the gap so far)"
        if row["questions"] is None:
            why = "the differences so far do not vary" if record["sd"] == 0 else "the differences so far cannot have that mean"
            lines.append(f"  gap {gap}: no forecast ({why})")
            continue
        tokens = f"{row['tokens']:,} judge tokens" if row["tokens"] is not None else "judge tokens unknown"
        lines.append(f"  gap {gap}: {row['questions']} questions on average, decided by the last look in "
                     f"{row['decided_share']:.0%} of runs; {row['requests']:,} judge requests, {tokens}")
    return "\n".join(lines)
