"""show_result.py sections that help decide: paired comparison, combined score, CI projection,
judge tokens per model, and the run log (`--compare`, `--category-weights`, `--diagnostics`, `--runs`)."""

from __future__ import annotations

import argparse
from typing import Any

import pandas as pd

from ..compare import PairResult, biggest_differences, combined_score, compare_models, projected_half_width
from ..errors import UserError
from ..storage import BenchPaths, load_questions, read_jsonl, turn_text


def add_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--compare", nargs="+", metavar="MODEL",
                   help="paired comparison of two or more models (all judged against the same baseline): score "
                        "differences with 95%% CIs and p-values from a bootstrap over questions, Holm-corrected; "
                        "per category; the questions where they differ most, with links into qa_browser.py")
    p.add_argument("--compare-rounds", type=int, default=1000, help="bootstrap rounds of --compare (default: %(default)s)")
    p.add_argument("--top-questions", type=int, default=5,
                   help="questions listed per compared pair (default: %(default)s)")
    p.add_argument("--browser-url", default="http://127.0.0.1:7860/",
                   help="where qa_browser.py runs, for the links of --compare (default: %(default)s)")
    p.add_argument("--category-weights", nargs="+", metavar="CATEGORY=WEIGHT",
                   help="with --category: weights of the combined score (default: question counts)")
    p.add_argument("--runs", action="store_true", help="print what each gen_answer/gen_judgment run did and cost, then exit")


def parse_weights(items: list[str] | None) -> dict[str, float] | None:
    if not items:
        return None
    weights = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        try:
            weights[name] = float(value)
        except ValueError:
            name = ""
        if not sep or not name or weights.get(name, 0) < 0:
            raise UserError(f"--category-weights: expected CATEGORY=WEIGHT with a weight >= 0, got {item!r}")
    return weights


# ---------------------------------------------------------------- paired comparison

def _fmt(value: float) -> str:
    return f"{value:+.1f}"


def pair_line(r: PairResult) -> str:
    better = r.model_b if r.diff > 0 else r.model_a
    verdict = f"{better} is better" if r.significant else "no significant difference"
    return (f"{r.model_b} - {r.model_a}: {_fmt(r.diff)} points, 95% CI ({_fmt(r.lower)}, {_fmt(r.upper)}), "
            f"p = {r.p_value:.3g}, Holm p = {r.p_holm:.3g}: {verdict}")


def matrix_lines(results: list[PairResult], models: list[str]) -> list[str]:
    """Row minus column, '*' where the Holm-corrected p < 0.05."""
    cell = {}
    for r in results:
        mark = "*" if r.significant else " "
        cell[(r.model_b, r.model_a)] = f"{_fmt(r.diff)}{mark}"
        cell[(r.model_a, r.model_b)] = f"{_fmt(-r.diff)}{mark}"
    width = max(12, *(len(m) for m in models)) + 1
    lines = [" " * width + "".join(f"{m[:width - 1]:>{width}}" for m in models)]
    for row in models:
        lines.append(f"{row:<{width}}" + "".join(f"{cell.get((row, col), '-'):>{width}}" for col in models))
    lines.append("(row minus column, points of win rate; * = significant after Holm correction, p < 0.05)")
    return lines


def check_compare(args: argparse.Namespace, battles: pd.DataFrame) -> None:
    """Everything --compare needs, checked before the board is printed or any cache written."""
    models = list(dict.fromkeys(args.compare))
    if len(models) < 2:
        raise UserError("--compare needs at least two different models")
    if args.compare_rounds < 100:
        raise UserError(f"--compare-rounds must be at least 100, got {args.compare_rounds}")
    judged = set(battles["model_a"].unique()) | set(battles["model_b"].unique())
    if unknown := [m for m in models if m not in judged]:
        raise UserError(f"--compare: {', '.join(map(repr, unknown))} {'has' if len(unknown) == 1 else 'have'} no battles "
                        f"against {args.baseline} (models with battles: {', '.join(sorted(judged))})")


def compare_section(args: argparse.Namespace, battles: pd.DataFrame, paths: BenchPaths, judge: str
                    ) -> tuple[list[str], list[dict[str, Any]], list[PairResult]]:
    """Lines to print, output records, and the overall pair results."""
    models = list(dict.fromkeys(args.compare))
    if len(models) < 2:
        raise UserError("--compare needs at least two different models")
    if args.compare_rounds < 100:
        raise UserError(f"--compare-rounds must be at least 100, got {args.compare_rounds}")
    questions = {str(q["question_id"]): q for q in load_questions(paths.question_file)} if paths.question_file.exists() else {}
    lines = [f"## paired comparison: bootstrap over questions, {args.compare_rounds} rounds, seed {args.seed}; "
             f"differences in points of win rate against {args.baseline}"]
    results, _ = compare_models(battles, models, args.baseline, rounds=args.compare_rounds, seed=args.seed)
    anytime = anytime_lines(args, battles, paths, judge, models)
    for r in results:
        lines.append(pair_line(r))
        lines += anytime.get((r.model_a, r.model_b), [])
    lines += anytime.get(("", ""), [])
    if len(models) > 2:
        lines += matrix_lines(results, models)
    records = [r.as_dict() for r in results]

    categories = {qid: str(q.get("category")) for qid, q in questions.items() if q.get("category") is not None}
    qcat = battles["question_id"].astype(str).map(categories)
    if qcat.nunique() > 1:
        for name in sorted(qcat.dropna().unique()):
            subset = battles[(qcat == name).to_numpy()]
            try:
                cat_results, _ = compare_models(subset, models, args.baseline, rounds=args.compare_rounds,
                                                seed=args.seed, category=name)
            except UserError as exc:
                lines.append(f"note: category {name}: {exc}")
                continue
            lines.append(f"## paired comparison, category {name} ({subset['question_id'].nunique()} questions)")
            lines += [pair_line(r) for r in cat_results]
            records += [r.as_dict() for r in cat_results]

    from ..browser import deep_link  # here: only --compare needs the browser's link format

    for r in results:
        top = biggest_differences(battles, r.model_a, r.model_b, n=args.top_questions)
        lines.append(f"## questions where {r.model_b} and {r.model_a} differ most "
                     f"(mean battle outcome of {r.model_b} minus {r.model_a}; 1 = always wins vs always loses)")
        for qid, row in top.iterrows():
            text = " ".join(turn_text(questions[qid]["turns"][0]).split()) if qid in questions else ""
            text = text[:70] + ("..." if len(text) > 70 else "")
            link = deep_link(args.browser_url, bench=args.bench_name, judge=judge, model=r.model_b, question=qid,
                             vs=r.model_a)
            lines.append(f"{_fmt(row['diff']):>5}  {qid}  {text}  {link}")
    return lines, records, results


def question_differences(args: argparse.Namespace, battles: pd.DataFrame, paths: BenchPaths, judge: str,
                         results: list[PairResult], judgments: dict[str, list[dict[str, Any]]]) -> list:
    """For the HTML report: per compared pair, the questions where the two differ most, with a prompt
    excerpt, both models' verdicts by `judge` and a link into qa_browser.py."""
    if not results:
        return []
    from ..browser import deep_link
    from ..html_report import QuestionDiff

    questions = {str(q["question_id"]): q for q in load_questions(paths.question_file)} if paths.question_file.exists() else {}
    verdicts: dict[tuple[str, str], list[str | None]] = {}
    for file_model, records in judgments.items():
        for record in records:
            verdicts[(record.get("model") or file_model, str(record["question_id"]))] = [
                g.get("score") if isinstance(g, dict) else None for g in record["games"]]
    out = []
    for r in results:
        rows = []
        for qid, row in biggest_differences(battles, r.model_a, r.model_b, n=args.top_questions).iterrows():
            text = " ".join(turn_text(questions[qid]["turns"][0]).split()) if qid in questions else ""
            rows.append(QuestionDiff(
                question_id=str(qid), diff=float(row["diff"]), excerpt=text[:160] + ("..." if len(text) > 160 else ""),
                verdicts_a=verdicts.get((r.model_a, str(qid)), []), verdicts_b=verdicts.get((r.model_b, str(qid)), []),
                link=deep_link(args.browser_url, bench=args.bench_name, judge=judge, model=r.model_b, question=qid,
                               vs=r.model_a)))
        out.append((r, rows))
    return out


def _until_decided_run(paths: BenchPaths, judge: str, baseline: str, models: list[str]) -> dict[str, Any] | None:
    """The newest `gen_judgment --until-decided` run of this judge and baseline that compared all `models`."""
    if not paths.runs_file.exists():
        return None
    for run in reversed(read_jsonl(paths.runs_file, allow_torn_tail=True)):
        plan = run.get("until_decided")
        if (isinstance(plan, dict) and run.get("judge") == judge and run.get("baseline") == baseline
                and set(models) <= set(run.get("models") or [])):
            return run
    return None


def anytime_lines(args: argparse.Namespace, battles: pd.DataFrame, paths: BenchPaths, judge: str, models: list[str]
                  ) -> dict[tuple[str, str], list[str]]:
    """Per pair, the anytime-valid interval of the run that judged it until decided, recomputed from the
    records in that run's question order (the same function the run used); ("", "") holds notes."""
    import itertools

    from ..sequential import outcome_table, pair_decision, question_order
    from .until_decided import pair_line as decision_line

    run = _until_decided_run(paths, judge, args.baseline, models)
    if run is None or not paths.question_file.exists():
        return {}
    plan = run["until_decided"]
    if plan.get("weight") != args.weight or args.first_game_only:
        return {("", ""): [f"note: the until-decided run counted strong verdicts {plan.get('weight')} times and both "
                           "games; its anytime-valid interval is shown only with those settings"]}
    order = question_order((q["question_id"] for q in load_questions(paths.question_file)), int(plan["seed"]))
    recorded = [str(q) for q in plan.get("questions", [])]
    if order[:len(recorded)] != recorded:
        return {("", ""): [f"note: {paths.question_file} no longer matches the order the until-decided run of "
                           f"{run.get('start')} judged in; no anytime-valid interval"]}
    judged = {}
    for model in models:
        path = paths.judgment_file(judge, model)
        judged[model] = {str(r["question_id"]) for r in read_jsonl(path, allow_torn_tail=True)} if path.exists() else set()
    run_models = list(run["models"])
    alpha = float(plan["alpha"]) / (len(run_models) * (len(run_models) - 1) // 2)
    outcomes = outcome_table(battles[battles["judge"] == judge] if "judge" in battles else battles, models)
    lines: dict[tuple[str, str], list[str]] = {}
    for a, b in itertools.combinations(models, 2):
        prefix = 0  # the longest prefix of the order judged for both
        while prefix < len(order) and order[prefix] in judged[a] and order[prefix] in judged[b]:
            prefix += 1
        # the run's pairs go in its model order; a pair named the other way round is mirrored
        first, second = (a, b) if run_models.index(a) < run_models.index(b) else (b, a)
        stopped = {(p["model_a"], p["model_b"]): int(p["judged"]) for p in plan.get("pairs", [])}.get((first, second))
        ends = [n for n in (stopped, prefix) if n is not None and n <= prefix]
        lines[(a, b)] = []
        for n in dict.fromkeys(ends):
            d = pair_decision(outcomes, first, second, order[:n], alpha, plan.get("margin"),
                              int(plan.get("min_questions") or 0), len(order))
            when = "where the run stopped" if n == stopped else f"first {n} questions of its order"
            lines[(a, b)].append(f"  anytime-valid (until-decided run of {run.get('start')}, seed {plan['seed']}, "
                                 f"{when}): {decision_line(d, len(order))}")
    return lines


def pair_markdown(results: list[PairResult]) -> str:
    lines = ["| comparison | difference | 95% CI | p | Holm p | significant |", "|---|---:|---|---:|---:|:---:|"]
    for r in results:
        lines.append(f"| {r.model_b} vs {r.model_a} | {_fmt(r.diff)} | ({_fmt(r.lower)}, {_fmt(r.upper)}) | "
                     f"{r.p_value:.3g} | {r.p_holm:.3g} | {'yes' if r.significant else 'no'} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- combined score and projection

def combined_lines(args: argparse.Namespace, battles: pd.DataFrame, category_of: dict[str, str]) -> list[str]:
    weights = parse_weights(args.category_weights)
    frame = combined_score(battles, category_of, args.baseline, weights, rounds=max(args.num_rounds, 200), seed=args.seed)
    shown = ", ".join(f"{k}={v:g}" for k, v in weights.items()) if weights else "question counts"
    lines = [f"## combined score over {args.category} (weights: {shown}; 95% CI: bootstrap over questions "
             "within each category)"]
    for model, row in frame.iterrows():
        lines.append(f"{model : <50} | score: {row['score']:^5.1f} | 95% CI: "
                     f"{(round(row['lower'] - row['score'], 1), round(row['upper'] - row['score'], 1)) !s: ^15}")
    return lines


def projection_lines(battles: pd.DataFrame, paths: BenchPaths, baseline: str) -> list[str]:
    """With a sample judged, the CI half-width each model would have on every question of the bench."""
    if not paths.question_file.exists():
        return []
    total = len(load_questions(paths.question_file))
    judged = battles["question_id"].astype(str).nunique()
    if judged >= total:
        return []
    lines = [f"## projected 95% CI half-width with all {total} questions (now {judged} judged): 1.96 x the standard "
             "error of each model's mean battle outcome per question (win 1, tie 0.5, loss 0), in points; it "
             "measures question-to-question spread, like --bootstrap questions, so it is wider than a board "
             "interval from the bootstrap over battles"]
    for model in sorted(set(battles["model_b"]) - {baseline}):
        now, full = projected_half_width(battles, model, total)
        lines.append(f"{model : <50} | now: ±{now:.1f} | with {total} questions: ±{full:.1f}")
    return lines


# ---------------------------------------------------------------- cost

def judge_tokens(judgments_by_judge: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, dict[str, int]]:
    """Judge tokens spent per judged model, from the `usage` our judgment records carry."""
    totals: dict[str, dict[str, int]] = {}
    for judgments in judgments_by_judge.values():
        for file_model, records in judgments.items():
            for record in records:
                for game in record["games"]:
                    usage = game.get("usage") if isinstance(game, dict) else None
                    if not usage:
                        continue
                    t = totals.setdefault(record.get("model") or file_model,
                                          {"judge_prompt_tokens": 0, "judge_completion_tokens": 0})
                    t["judge_prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
                    t["judge_completion_tokens"] += int(usage.get("completion_tokens") or 0)
    return totals


RUN_COLUMNS = ["start", "command", "models", "judge", "done", "skipped", "failed", "requests", "retried",
               "prompt_tokens", "completion_tokens", "completion_tokens_per_second", "wall_seconds", "servers",
               "cache_hit_rate"]


def _servers(started: Any) -> str:
    """The servers a run started, as `model@gpus (held seconds)`."""
    if not isinstance(started, list):
        return ""
    return "; ".join(f"{s.get('model')}@{s.get('gpus')} ({s.get('held_seconds')} s)" for s in started)


def runs_table(paths: BenchPaths) -> str:
    if not paths.runs_file.exists():
        raise UserError(f"{paths.runs_file}: no runs recorded yet (gen_answer.py and gen_judgment.py write it)")
    records = read_jsonl(paths.runs_file, allow_torn_tail=True)
    frame = pd.DataFrame.from_records(records)
    for column in RUN_COLUMNS:
        if column not in frame:
            frame[column] = None
    frame["models"] = frame["models"].map(lambda m: ",".join(m) if isinstance(m, list) else m)
    frame["servers"] = frame["servers"].map(_servers)
    if "prefix_cache" in frame:
        frame["cache_hit_rate"] = frame["prefix_cache"].map(lambda c: c.get("hit_rate") if isinstance(c, dict) else "")
    frame = frame[RUN_COLUMNS].fillna("")
    # compact: minutes are enough for a start time, and columns no run filled say nothing
    frame["start"] = frame["start"].map(lambda t: str(t)[:16].replace("T", " "))
    frame["models"] = frame["models"].map(lambda m: m if len(str(m)) <= 30 else str(m)[:27] + "...")
    empty = [c for c in frame if frame[c].map(lambda v: v is None or v == "").all()]
    frame = frame.drop(columns=empty)
    frame = frame.rename(columns={"completion_tokens_per_second": "tokens/s"})
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.max_colwidth", 40):
        return frame.to_string(index=False)
