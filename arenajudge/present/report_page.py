"""A board's shared HTML report: its category boards, comparison and judge card gathered and written.

show_result.py --report and arenajudge.api.report both write the page through `write_html_report`;
show_result.py prints the category boards and the comparison it gathers here too.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arenajudge.core.errors import UserError
from arenajudge.present.leaderboard import BoardResult
from arenajudge.present.report import BoardRow, comparison_lines, format_line, question_map
from arenajudge.rating import diagnostics
from arenajudge.rating.compare import CompareSpec, PairResult, anytime_check
from arenajudge.rating.judge_card import JudgeCard
from arenajudge.records.storage import read_jsonl


@dataclass
class Comparison:
    """--compare: its lines, output records and overall pair results."""

    spec: CompareSpec
    lines: list[str]
    records: list[dict[str, Any]]
    pairs: list[PairResult]


def axis_label(board: BoardResult) -> str:
    return "Elo" if board.spec.show_elo else f"win rate vs {board.spec.baseline} (%)"


def category_boards(board: BoardResult) -> tuple[list[str], list[tuple[str, list[BoardRow]]]]:
    """--category: one board per value of the field; (lines, the boards with the overall one first)."""
    lines: list[str] = []
    boards: list[tuple[str, list[BoardRow]]] = [("overall", board.rows)]
    if not board.category_of:
        return lines, boards
    spec, battles = board.spec, board.scored_battles
    assert battles is not None
    category = battles["question_id"].astype(str).map(board.category_of).fillna("(none)")
    values = sorted(category.unique())
    if len(values) == 1:  # one board per category would repeat the board above
        lines.append(f"note: every judged question has {spec.category} {values[0]!r}: its board is the board above")
        values = []
    for value in values:
        subset = battles[(category == value).to_numpy()]
        if not board.has_baseline(subset):
            lines.append(f"note: category {value!r} has no battles against the baseline")
            continue
        rows = board.board_rows(subset, board.rate_battles(subset))
        boards.append((value, rows))
        lines.append(f"## {spec.category}: {value} ({subset['question_id'].nunique()} questions, {len(subset)} battles)")
        lines += [format_line(row, board.decimal, spec.ci_level) for row in rows]
    return lines, boards


def compare_section(spec: CompareSpec, board: BoardResult) -> Comparison:
    """--compare: paired differences, per category, the questions that differ most, and the anytime-valid
    interval of an until-decided run that judged the pair."""
    lines, records, pairs = comparison_lines(spec, board.battles, question_map(board.paths), anytime_lines(spec, board))
    return Comparison(spec, lines, records, pairs)


def anytime_lines(spec: CompareSpec, board: BoardResult) -> dict[tuple[str, str], list[str]]:
    """The lines under each compared pair ((a, b)) and after them (("", "")) from an until-decided run."""
    from arenajudge.rating.until_decided import pair_line as decision_line  # here: it brings the judging engine

    check = anytime_check(board.battles, board.paths, spec.judge, spec.baseline, list(spec.models),
                          weight=board.spec.weight, first_game_only=board.spec.first_game_only)
    if check is None:
        return {}
    if check.note is not None:
        return {("", ""): [check.note]}
    lines: dict[tuple[str, str], list[str]] = {}
    design = check.design
    kind = "group-sequential" if design is not None and design.rule == "gs" else "anytime-valid"
    how = ("" if check.recorded else "no design recorded (an older run): recomputed with its confidence sequence, ")
    if design is not None and design.rule == "gs":
        how = f"{design.spending} spending over {len(design.looks)} planned looks, "
    for pair, decisions in check.decisions.items():
        lines[pair] = []
        for decision, n, stopped in decisions:
            when = "where the run stopped" if stopped else f"first {n} questions of its order"
            lines[pair].append(f"  {kind} (until-decided run of {check.start}, seed {check.seed}, {how}"
                               f"{when}): {decision_line(decision, check.total)}")
    return lines


def write_html_report(path: Path, board: BoardResult, boards: list[tuple[str, list[BoardRow]]],
                      comparison: Comparison | None, notes: list[str], command: str, card: JudgeCard | None = None) -> Path:
    """--report: the self-contained HTML page."""
    from arenajudge.present import html_report  # here: only --report needs it

    spec, rows = board.spec, board.rows
    label = board.scoring_label
    pairs = comparison.pairs if comparison is not None else []
    differences = html_report.question_differences(comparison.spec, board.battles, question_map(board.paths), pairs,
                                                    board.judgments.get(spec.judges[0], {})) if comparison else []
    data = html_report.ReportData(
        bench=spec.bench, judge=spec.judge_label, baseline=spec.baseline,
        interval=board.interval, scoring=label or "Bradley-Terry win rate against the baseline",
        rows=rows, axis_label=axis_label(board), decimal=board.decimal,
        ci_level=spec.ci_level, reference=next((r.score for r in rows if r.model == spec.baseline), None),
        notes=notes, categories=boards[1:], category_field=spec.category or "category",
        pairs=pairs, compared=list(comparison.spec.models) if comparison is not None else [],
        compare_interval=comparison.lines[0].removeprefix("## ") if comparison is not None else "",
        differences=differences,
        consistency={judge: diagnostics.position_consistency(j) for judge, j in board.judgments.items()},
        runs=read_jsonl(board.paths.runs_file, allow_torn_tail=True) if board.paths.runs_file.exists() else [],
        card=card,
        provenance={"command": command, "bench": spec.bench, "judge": spec.judge_label, "baseline": spec.baseline,
                    "scoring": label or "Bradley-Terry (arena-hard-auto)", "interval": board.interval,
                    "weight of a strong verdict": str(spec.weight), "bootstrap rounds": str(rounds_of(board)),
                    "seed": str(spec.seed), "battles": board.source,
                    "made": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")},
        fingerprints=html_report.source_fingerprints(board.paths, list(spec.judges), [r.model for r in rows],
                                                     spec.battles_path if spec.load_battles else None))
    return html_report.write_report(path, data)


def rounds_of(board: BoardResult) -> int:
    """Bootstrap rounds behind the intervals (from the cache with --load-bootstrap)."""
    assert board.rating is not None
    return len(board.rating.samples)


def write_board_report(path: Path, board: BoardResult, *, command: str = "", top: int = 5,
                       browser_url: str = "http://127.0.0.1:7860/", card: JudgeCard | None = None) -> Path:
    """The page show_result.py --report writes for `board`: its category boards (spec.category), the comparison
    of spec.compare (`top` questions per pair, linked to `browser_url`) and the judge card, if one is given."""
    if path.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"--report {path}: the report is one HTML page, use a .html file name")
    if board.empty:
        raise UserError(f"nothing to report: no game by {board.spec.judge_label} against {board.spec.baseline} has a "
                        "verdict that counts")
    spec = board.spec
    _, boards = category_boards(board)
    comparison = compare_section(CompareSpec(models=tuple(dict.fromkeys(spec.compare)), baseline=spec.baseline,
                                             bench=spec.bench, judge=spec.judges[0], rounds=spec.compare_rounds,
                                             seed=spec.seed, top=top, browser_url=browser_url),
                                 board) if spec.compare else None
    return write_html_report(path, board, boards, comparison, board.notes, command, card)
