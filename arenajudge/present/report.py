"""Ratings and comparisons -> the text users read: board lines, JSON, CSV, and the sections after the board."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pandas as pd

from arenajudge.core.errors import UserError
from arenajudge.rating.bradley_terry import FeatureRatingResult, RatingResult, win_rate
from arenajudge.rating.compare import (
    CompareSpec,
    PairResult,
    biggest_differences,
    compare_models,
    compare_per_category,
    format_p,
    projected_half_width,
)
from arenajudge.records.storage import BenchPaths, load_questions, read_jsonl, replace_atomically, turn_text


@dataclass
class BoardRow:
    model: str
    score: float  # win rate vs the baseline in percent (or Elo with show_elo)
    lower: float
    upper: float
    avg_tokens: int
    results: list[float] = field(default_factory=list)  # bootstrap samples (Elo), as the seed wrote them
    battles: int = 0
    games: int = 0
    missing: int = 0


def _token_len(record: dict[str, Any]) -> float | None:
    """token_len of the first turn of the first choice: 0 when absent (seed rule), None when not a count."""
    turn = record["choices"][0]["turns"][0]
    value = turn.get("token_len", 0) if isinstance(turn, dict) else 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return None
    return value


def average_tokens(answers: dict[Any, dict[str, Any]] | None) -> int:
    """Mean token_len of the first turn of the first choice over a model's answers (seed rule).

    A token_len that is not a count (NaN, infinite, negative, not a number) is left out; see bad_token_lens."""
    values = [v for v in map(_token_len, (answers or {}).values()) if v is not None]
    if not values:
        return 0
    return int(sum(values) / len(values))


def bad_token_lens(answers: dict[Any, dict[str, Any]] | None) -> tuple[int, Any]:
    """(answers whose token_len is not a count, the first one's question_id)."""
    bad = [qid for qid, record in (answers or {}).items() if _token_len(record) is None]
    return len(bad), (bad[0] if bad else None)


def leaderboard(
    result: RatingResult,
    baseline: str,
    answers: dict[str, dict[Any, dict[str, Any]]],
    *,
    show_elo: bool = False,
    battle_counts: dict[str, int] | None = None,
    games: dict[str, int] | None = None,
    missing: dict[str, int] | None = None,
) -> list[BoardRow]:
    """One row per rated model, best first, numbers rounded as the seed rounds them."""
    base_elo = float(result.point[baseline])
    rows = []
    for model in result.point.index:
        elo = float(result.point[model])
        lo, hi = result.lower(model), result.upper(model)
        if show_elo:
            score, lower, upper = float(int(elo)), float(int(lo)), float(int(hi))
        else:
            # the seed rounds the win rate to 2 decimals, then prints 1
            score, lower, upper = (round(float(win_rate(x, base_elo)) * 100, 2) for x in (elo, lo, hi))
        rows.append(BoardRow(
            model=model, score=score, lower=lower, upper=upper,
            avg_tokens=average_tokens(answers.get(model)),
            results=[float(v) for v in result.samples[model]],
            battles=(battle_counts or {}).get(model, 0),
            games=(games or {}).get(model, 0),
            missing=(missing or {}).get(model, 0),
        ))
    rows.sort(key=lambda r: (-r.score, r.model))
    return rows


def board_numbers(row: BoardRow, decimal: int) -> tuple[float, tuple[float, float]]:
    """The score and its CI offsets exactly as the printed board shows them (`decimal` places, whole numbers at 0):
    every readout of a board (show_result, the browser's table and chart) rounds through here."""
    if decimal == 0:
        return int(round(row.score, 0)), (int(row.lower - row.score), int(row.upper - row.score))
    return round(row.score, decimal), (round(row.lower - row.score, decimal), round(row.upper - row.score, decimal))


def format_line(row: BoardRow, decimal: int, ci_level: float = 95.0) -> str:
    """The seed's exact line, so scripts that grep it keep working (the label follows --ci-level)."""
    score, offsets = board_numbers(row, decimal)
    interval = str(offsets)
    return f"{row.model : <50} | score: {score : ^5} | {ci_level:g}% CI: {interval : ^15} | average #tokens: {row.avg_tokens}"


def coefficient_lines(title: str, result: FeatureRatingResult, strip: str = "") -> list[str]:
    assert result.coefficients is not None and result.coefficient_samples is not None
    level = result.level
    lines = [f"{title}; {level:g}% CI: bootstrap over {result.coefficient_unit}, {len(result.coefficient_samples)} rounds"]
    for name, value in result.coefficients.items():
        lo, hi = np.percentile(result.coefficient_samples[name], [(100 - level) / 2, (100 + level) / 2])
        lines.append(f"{str(name).removeprefix(strip) : <50} | coefficient: {value:+.3f} | {level:g}% CI: ({lo:+.3f}, {hi:+.3f})")
    return lines


def unjudged_note(models: list[str], judge_label: str, shown: int = 3) -> str:
    """One line for all models with answers but no battles (an answer folder often holds many)."""
    if len(models) == 1:
        return f"note: {models[0]} has answers but no battles (not judged by {judge_label}?)"
    names = ", ".join(models[:shown]) + (f" and {len(models) - shown} more" if len(models) > shown else "")
    return f"note: {len(models)} models have answers but no battles (not judged by {judge_label}?): {names}"


def write_outputs(rows: list[BoardRow], directory: Path, stem: str, meta: dict[str, Any]) -> list[Path]:
    """`<stem>.json` (records with bootstrap samples, as the seed) and `<stem>.csv` (no samples)."""
    records = [asdict(r) for r in rows]
    for record in records:
        record.update(meta)
    return write_records(records, directory, stem)


def write_records(records: list[dict[str, Any]], directory: Path, stem: str) -> list[Path]:
    """`<stem>.json` with the records as they are, `<stem>.csv` without the bootstrap samples."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / f"{stem}.json"
    csv_path = directory / f"{stem}.csv"
    replace_atomically(json_path, json.dumps(records, indent=4, ensure_ascii=False))
    frame = pd.DataFrame(records).drop(columns=["results"], errors="ignore")
    for column in frame:  # counts absent for some rows (judge tokens) stay integers, not 1234.0
        values = [r[column] for r in records if r.get(column) is not None]
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            frame[column] = frame[column].astype("Int64")
    replace_atomically(csv_path, frame.to_csv(index=False))
    return [json_path, csv_path]


def board_records(boards: list[tuple[str, list[BoardRow]]], meta: dict[str, Any],
                  columns: dict[str, dict[str, Any]], category_field: str | None) -> list[dict[str, Any]]:
    """Output records: the overall board, then each category's, with the extra columns of the overall rows."""
    records = []
    for title, board_rows in boards:
        for row in board_rows:
            record = asdict(row)
            record.update(meta)
            if category_field:
                record[category_field] = "all" if title == "overall" else title
            if title == "overall":
                record.update(columns.get(row.model, {}))
            records.append(record)
    return records


def _cell(row: BoardRow, decimal: int) -> str:
    fmt = f"{{:.{decimal}f}}"
    fmt_signed = f"{{:+.{decimal}f}}"
    return f"{fmt.format(row.score)} ({fmt_signed.format(row.lower - row.score)}, {fmt_signed.format(row.upper - row.score)})"


def markdown_table(boards: list[tuple[str, list[BoardRow]]], decimal: int, ci_level: float = 95.0) -> str:
    """A model-card table: one row per model of the first board, its score with the 95% CI
    offsets, average tokens, then one score column per further board (e.g. categories)."""
    (first_title, first_rows), *others = boards
    columns = ["Model", f"{first_title} ({ci_level:g}% CI)", "Avg #tokens", *(title for title, _ in others)]
    lookup = [{r.model: r for r in rows} for _, rows in others]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(["---", "---:", "---:", *["---:"] * len(others)]) + "|"]
    fmt = f"{{:.{decimal}f}}"
    for row in first_rows:
        cells = [row.model.replace("|", "\\|"), _cell(row, decimal), str(row.avg_tokens)]
        cells += [fmt.format(board[row.model].score) if row.model in board else "" for board in lookup]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------- paired comparison (--compare)

def _signed(value: float) -> str:
    return f"{value:+.1f}"


def stated_p(name: str, p_value: float, rounds: int) -> str:
    """'p = 0.03', or 'p < 0.001' when no bootstrap round crossed 0."""
    text = format_p(p_value, rounds)
    return f"{name} {text}" if text.startswith("<") else f"{name} = {text}"


def pair_verdict(r: PairResult) -> str:
    """The call, from the unadjusted 95% CI (the same as p < 0.05)."""
    better = r.model_b if r.diff > 0 else r.model_a
    return f"{better} is better" if r.significant else "no significant difference"


def holm_note(r: PairResult) -> str:
    """The Holm-adjusted p when several pairs were compared together, and whether the call survives it."""
    if r.pairs < 2:
        return ""
    survives = "" if r.significant_after_holm or not r.significant else ", not significant after the adjustment"
    return f" ({stated_p('Holm-adjusted p', r.p_holm, r.rounds)} over {r.pairs} pairs{survives})"


def pair_line(r: PairResult) -> str:
    return (f"{r.model_b} - {r.model_a}: {_signed(r.diff)} points, 95% CI ({_signed(r.lower)}, {_signed(r.upper)}), "
            f"{stated_p('p', r.p_value, r.rounds)}: {pair_verdict(r)}{holm_note(r)}")


def matrix_lines(results: list[PairResult], models: list[str]) -> list[str]:
    """Row minus column, '*' where the 95% CI excludes 0 (unadjusted p < 0.05)."""
    cell = {}
    for r in results:
        mark = "*" if r.significant else " "
        cell[(r.model_b, r.model_a)] = f"{_signed(r.diff)}{mark}"
        cell[(r.model_a, r.model_b)] = f"{_signed(-r.diff)}{mark}"
    width = max(12, *(len(m) for m in models)) + 1
    lines = [" " * width + "".join(f"{m[:width - 1]:>{width}}" for m in models)]
    for row in models:
        lines.append(f"{row:<{width}}" + "".join(f"{cell.get((row, col), '-'):>{width}}" for col in models))
    lines.append("(row minus column, points of win rate; * = significant: 95% CI excludes 0, unadjusted p < 0.05; "
                 "the Holm-adjusted p is on each pair's line)")
    return lines


def pair_markdown(results: list[PairResult]) -> str:
    lines = ["| comparison | difference | 95% CI | p | Holm-adjusted p | significant |", "|---|---:|---|---:|---:|:---:|"]
    for r in results:
        lines.append(f"| {r.model_b} vs {r.model_a} | {_signed(r.diff)} | ({_signed(r.lower)}, {_signed(r.upper)}) | "
                     f"{format_p(r.p_value, r.rounds)} | {format_p(r.p_holm, r.rounds)} | "
                     f"{'yes' if r.significant else 'no'} |")
    return "\n".join(lines)


def deep_link(base_url: str, *, bench: str, judge: str, model: str, question: str, vs: str | None = None,
              category: str | None = None, verdict_filter: str | None = None, search: str | None = None) -> str:
    """A URL that opens the browser on this bench, judge, model and question (and a second model with `vs`),
    with the question list filtered by category, verdict filter and search text when given."""
    params = {"bench": bench, "judge": judge, "model": model, "question": question}
    if vs:
        params["vs"] = vs
    if category:
        params["category"] = category
    if verdict_filter and verdict_filter != "all":
        params["filter"] = verdict_filter
    if search:
        params["search"] = search
    return f"{base_url.split('?')[0]}?{urlencode(params)}"


def question_map(paths: BenchPaths) -> dict[str, dict[str, Any]]:
    """question_id (as str) -> question, empty without a question file."""
    return {str(q["question_id"]): q for q in load_questions(paths.question_file)} if paths.question_file.exists() else {}


def comparison_lines(spec: CompareSpec, battles: pd.DataFrame, questions: dict[str, dict[str, Any]],
                     anytime: dict[tuple[str, str], list[str]]) -> tuple[list[str], list[dict[str, Any]], list[PairResult]]:
    """show_result.py --compare: lines to print, output records and the overall pair results. `anytime` holds
    the lines shown under each pair ((a, b)) and after all pairs (("", ""))."""
    models = list(dict.fromkeys(spec.models))
    lines = [f"## paired comparison: bootstrap over questions, {spec.rounds} rounds, seed {spec.seed}; "
             f"differences in points of win rate against {spec.baseline}"]
    results, _ = compare_models(battles, models, spec.baseline, rounds=spec.rounds, seed=spec.seed)
    for r in results:
        lines.append(pair_line(r))
        lines += anytime.get((r.model_a, r.model_b), [])
    lines += anytime.get(("", ""), [])
    if len(models) > 2:
        lines += matrix_lines(results, models)
    records = [r.as_dict() for r in results]

    categories = {qid: str(q.get("category")) for qid, q in questions.items() if q.get("category") is not None}
    for name, n_questions, outcome in compare_per_category(battles, models, spec.baseline, categories,
                                                            rounds=spec.rounds, seed=spec.seed):
        if isinstance(outcome, UserError):
            lines.append(f"note: category {name}: {outcome}")
            continue
        lines.append(f"## paired comparison, category {name} ({n_questions} questions)")
        lines += [pair_line(r) for r in outcome]
        records += [r.as_dict() for r in outcome]

    for r in results:
        top = biggest_differences(battles, r.model_a, r.model_b, n=spec.top)
        lines.append(f"## questions where {r.model_b} and {r.model_a} differ most "
                     f"(mean battle outcome of {r.model_b} minus {r.model_a}; 1 = always wins vs always loses)")
        for qid, row in top.iterrows():
            text = " ".join(turn_text(questions[qid]["turns"][0]).split()) if qid in questions else ""
            text = text[:70] + ("..." if len(text) > 70 else "")
            link = deep_link(spec.browser_url, bench=spec.bench, judge=spec.judge, model=r.model_b, question=qid,
                             vs=r.model_a)
            lines.append(f"{_signed(row['diff']):>5}  {qid}  {text}  {link}")
    return lines, records, results


# ---------------------------------------------------------------- combined score and projection

def combined_lines(frame: pd.DataFrame, field_name: str, weights: dict[str, float] | None) -> list[str]:
    """--category-weights: the combined score over categories, one line per model (compare.combined_score)."""
    shown = ", ".join(f"{k}={v:g}" for k, v in weights.items()) if weights else "question counts"
    lines = [f"## combined score over {field_name} (weights: {shown}; 95% CI: bootstrap over questions "
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


RUN_COLUMNS = ["start", "command", "models", "judge", "status", "done", "skipped", "failed", "left", "requests", "retried",
               "prompt_tokens", "completion_tokens", "completion_tokens_per_second", "wall_seconds", "servers",
               "cache_hit_rate"]


def _servers(started: Any) -> str:
    """The servers a run started, as `model@gpus (held seconds)`; a Ray replica as `model#N@node:gpus (...)`, and
    `lost` for one the run lost."""
    if not isinstance(started, list):
        return ""
    shown = []
    for s in started:
        name = f"{s.get('model')}#{s['replica']}" if "replica" in s else str(s.get("model"))
        where = f"{s['ray_node'][:8]}:{s.get('gpus')}" if s.get("ray_node") else str(s.get("gpus"))
        shown.append(f"{name}@{where} ({s.get('held_seconds')} s{', lost' if s.get('lost') else ''})")
    return "; ".join(shown)


def runs_table(paths: BenchPaths) -> str:
    """show_result.py --runs: what each gen_answer/gen_judgment run did and cost, one row a run."""
    if not paths.runs_file.exists():
        raise UserError(f"{paths.runs_file}: no runs recorded yet (gen_answer.py and gen_judgment.py write it)")
    records = read_jsonl(paths.runs_file, allow_torn_tail=True)
    frame = pd.DataFrame.from_records(records)
    for column in RUN_COLUMNS:
        if column not in frame:
            frame[column] = None
    frame["models"] = frame["models"].map(lambda m: ",".join(m) if isinstance(m, list) else m)
    frame["servers"] = frame["servers"].map(_servers)
    # how a run ended and what it left, said only where it did not simply finish (the column goes when none did)
    frame["status"] = frame["status"].map(lambda v: "" if v in (None, "ok") or v != v else v)
    frame["left"] = frame["left"].map(lambda v: "" if v in (None, 0) or v != v else v)
    if "prefix_cache" in frame:
        frame["cache_hit_rate"] = frame["prefix_cache"].map(lambda c: c.get("hit_rate") if isinstance(c, dict) else "")
    frame = frame[RUN_COLUMNS]
    for column in ("done", "skipped", "failed", "requests", "retried", "prompt_tokens", "completion_tokens"):
        # a count absent from some runs makes the column float: print it as the whole number it is
        frame[column] = pd.Series([int(v) if isinstance(v, float) and v == v and v.is_integer() else v
                                   for v in frame[column]], index=frame.index, dtype=object)
    frame = frame.fillna("")
    # compact: minutes are enough for a start time, and columns no run filled say nothing
    frame["start"] = frame["start"].map(lambda t: str(t)[:16].replace("T", " "))
    frame["models"] = frame["models"].map(lambda m: m if len(str(m)) <= 30 else str(m)[:27] + "...")
    empty = [c for c in frame if frame[c].map(lambda v: v is None or v == "").all()]
    frame = frame.drop(columns=empty)
    frame = frame.rename(columns={"completion_tokens_per_second": "tokens/s"})
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.max_colwidth", 40):
        return frame.to_string(index=False)
