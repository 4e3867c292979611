"""Ratings -> the leaderboard users read: lines, JSON, CSV."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .rating import FeatureRatingResult, MeanResult, RatingResult, win_rate
from .storage import replace_atomically


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
    result: RatingResult | MeanResult,
    baseline: str,
    answers: dict[str, dict[Any, dict[str, Any]]],
    *,
    show_elo: bool = False,
    battle_counts: dict[str, int] | None = None,
    games: dict[str, int] | None = None,
    missing: dict[str, int] | None = None,
) -> list[BoardRow]:
    """One row per rated model, best first, numbers rounded as the seed rounds them."""
    if isinstance(result, MeanResult):
        result = result.as_ratings()  # rounded on the Elo path boards have always taken (see as_ratings)
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


def format_line(row: BoardRow, decimal: int, ci_level: float = 95.0) -> str:
    """The seed's exact line, so scripts that grep it keep working (the label follows --ci-level)."""
    score = round(row.score, decimal)
    interval = str((round(row.lower - row.score, decimal), round(row.upper - row.score, decimal)))
    if decimal == 0:
        score, interval = int(score), str((int(row.lower - row.score), int(row.upper - row.score)))
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
