"""The judge card for show_result.py --judge-card: a board in, the card's numbers (rating/judge_card.py) out,
as lines, rows for the HTML report and a JSON file; reference boards read from a judge or a file."""

from __future__ import annotations

import csv
import datetime
import io
import json
import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from arenajudge.core.errors import UserError
from arenajudge.present.leaderboard import BoardResult, LoadedBench, build_board
from arenajudge.rating.judge_card import (
    SEPARABILITY_LEVELS,
    CardBoard,
    JudgeCard,
    add_reference,
    board_from_rating,
    make_card,
)
from arenajudge.records.storage import load_judgments, load_questions, replace_atomically

# a board line as show_result.py and the seed print it: `<model> | score: 55.3 | 95% CI: (-1.2, 2.0) | average #tokens: 512`
BOARD_LINE = re.compile(r"^(?P<model>.*?)\s*\|\s*score:\s*(?P<score>\S+)\s*\|\s*(?P<level>[\d.]+)% CI:\s*"
                        r"\(\s*(?P<lower>[^,()]+?)\s*,\s*(?P<upper>[^,()]+?)\s*\)\s*\|\s*average #tokens:")
CSV_COLUMNS = ("model", "score", "lower", "upper")
SHOWN_DISAGREEMENTS = 10
_EXPECTED = ("a CSV with columns model, score, lower, upper (as show_result.py --output writes it) or board lines "
             "as show_result.py prints them (`<model> | score: <s> | 95% CI: (<lo>, <hi>) | average #tokens: <n>`)")


# ---------------------------------------------------------------- building the card


def build_card(board: BoardResult, *, rounds: int, seed: int, against: str | None = None,
               reference: tuple[str, CardBoard] | None = None) -> JudgeCard:
    """The card of the board's judge on a question bootstrap of `rounds` rounds, with its reference if given:
    another judge (`against`) or a board read by read_reference_board (`reference`: its file name and board)."""
    spec = board.spec
    [judge] = spec.judges
    levels = sorted({*SEPARABILITY_LEVELS, spec.ci_level}, reverse=True)
    questions = ({str(q["question_id"]): q for q in load_questions(board.paths.question_file)}
                 if board.paths.question_file.exists() else {})
    ours = board_from_rating(_question_bootstrap(board, rounds, seed), spec.baseline, levels)
    card = make_card(judge=judge, bench=spec.bench, baseline=spec.baseline, rounds=rounds, seed=seed,
                     ci_level=spec.ci_level, board=ours, judgments=board.judgments.get(judge, {}), answers=board.answers,
                     questions=questions)
    if against is not None:
        other = _reference_board(board, against, rounds, seed)
        theirs = board_from_rating(other.rating, spec.baseline, levels)  # type: ignore[arg-type]
        _check_common(ours, theirs, spec.baseline, f"--against {against}", judge)
        reference_card = make_card(judge=against, bench=spec.bench, baseline=spec.baseline, rounds=rounds, seed=seed,
                                   ci_level=spec.ci_level, board=theirs, judgments=other.judgments.get(against, {}),
                                   answers=board.answers, questions=questions)
        add_reference(card, against, theirs, reference_card=reference_card, judgments=board.judgments.get(judge, {}),
                      reference_judgments=other.judgments.get(against, {}))
    elif reference is not None:
        name, theirs = reference
        _check_common(ours, theirs, spec.baseline, f"--against-board {name}", judge)
        add_reference(card, name, theirs)
    return card


def _question_bootstrap(board: BoardResult, rounds: int, seed: int) -> Any:
    """The board's rating with a bootstrap over questions of the card's rounds and seed (the board's own when it
    already is one)."""
    spec = board.spec
    if spec.unit == "questions" and spec.rounds == rounds and spec.seed == seed and not spec.load_bootstrap:
        return board.rating
    card_spec = replace(spec, unit="questions", rounds=rounds, seed=seed)
    assert board.scored_battles is not None
    return replace(board, spec=card_spec).rate_battles(board.scored_battles)


def _reference_board(board: BoardResult, judge: str, rounds: int, seed: int) -> BoardResult:
    """--against JUDGE: that judge's board of the same bench, baseline and scoring, on the card's bootstrap."""
    spec = replace(board.spec, judges=(judge,), unit="questions", rounds=rounds, seed=seed, save_caches=False,
                   compare=(), category=None, load_battles=False, load_bootstrap=False)
    paths = board.paths
    try:
        # the questions and answers are the board's own: read only the other judge's judgments
        loaded = LoadedBench(questions=load_questions(paths.question_file) if paths.question_file.exists() else None,
                             answers=board.answers, judgments={judge: load_judgments(paths, judge)})
        other = build_board(spec, loaded)
    except UserError as exc:
        raise UserError(f"--against {judge}: {exc}") from None
    if other.empty:
        raise UserError(f"--against {judge}: no game by {judge} against {spec.baseline} has a verdict")
    return other


def _check_common(ours: CardBoard, theirs: CardBoard, baseline: str, what: str, judge: str) -> None:
    common = sorted((set(ours.models) & set(theirs.models)) - {baseline})
    if len(common) >= 2:
        return
    if common:
        raise UserError(f"{what}: only {common[0]} is rated on both boards (besides the baseline); comparing orders "
                        "needs two models or more")
    raise UserError(f"{what}: no model in common with the board of {judge} (reference: {_names(theirs.models)}; "
                    f"{judge}: {_names(ours.models)})")


def _names(models: list[str], shown: int = 4) -> str:
    if not models:
        return "none"
    return ", ".join(models[:shown]) + (f" and {len(models) - shown} more" if len(models) > shown else "")


# ---------------------------------------------------------------- a reference board from a file


def read_reference_board(path: Path, level: float) -> CardBoard:
    """--against-board FILE: a CSV with model, score, lower, upper, or board lines; the first row of a model
    counts (the overall board comes first in --output's files and printouts). Its intervals are taken as they
    are, as the `level`% intervals."""
    where = f"--against-board {path}"
    if not path.is_file():
        raise UserError(f"{where}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{where}: cannot be read as UTF-8 text ({type(exc).__name__})") from None
    rows = _board_lines(text) or _csv_rows(text, where)
    if not rows:
        raise UserError(f"{where}: holds no board rows (expected {_EXPECTED})")
    scores: dict[str, float] = {}
    intervals: dict[str, tuple[float, float]] = {}
    for line, model, score, lower, upper in rows:
        values = []
        for name, value in (("score", score), ("lower", lower), ("upper", upper)):
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                raise UserError(f"{where}:{line}: {name} {value!r} is not a number")
            values.append(number)
        if model in scores:
            continue
        scores[model] = values[0]
        intervals[model] = (values[1], values[2])
    models = sorted(scores)
    return CardBoard(models=models, score=scores, intervals={level: intervals})


def _board_lines(text: str) -> list[tuple[int, str, str, str, str]]:
    """Board lines before the first `## ` section; a line's interval is printed as offsets from its score."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("## "):
            break
        if match := BOARD_LINE.match(line):
            score = match["score"]
            try:
                lower, upper = (str(float(score) + float(match[k])) for k in ("lower", "upper"))
            except ValueError:
                lower, upper = match["lower"], match["upper"]
            rows.append((number, match["model"].strip(), score, lower, upper))
    return rows


def _csv_rows(text: str, where: str) -> list[tuple[int, str, str, str, str]]:
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    if missing := [c for c in CSV_COLUMNS if c not in header]:
        found = ", ".join(header)
        found = (found[:60] + "...") if len(found) > 60 else found or "none"
        raise UserError(f"{where}: no column{'s' if len(missing) > 1 else ''} {', '.join(missing)} (columns found: "
                        f"{found}; expected {_EXPECTED})")
    return [(reader.line_num, str(row["model"]).strip(), row["score"] or "", row["lower"] or "", row["upper"] or "")
            for row in reader]


# ---------------------------------------------------------------- what people read


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.{digits}f}%"


def _num(value: float | None, fmt: str = "+.3f") -> str:
    return "n/a" if value is None or math.isnan(value) else format(value, fmt)


def own_rows(card: JudgeCard) -> tuple[list[str], list[list[str]]]:
    """(header, rows): the judge's own numbers, with the reference judge's beside them when there is one."""
    cards = [card] + ([card.reference_card] if card.reference_card is not None else [])
    header = ["", *(c.judge for c in cards)]
    rows: list[list[str]] = []
    for level in SEPARABILITY_LEVELS:
        rows.append([f"separability at {level:g}% (share of model pairs apart)",
                     *(f"{_pct(c.separability[level][0])} of {c.separability[level][1]}" for c in cards)])
    rows.append(["position consistency (judgments)",
                 *(f"{_pct(c.games.consistency.position_consistency)} of {c.games.consistency.paired}" for c in cards)])
    for game in (0, 1):
        slot = "the baseline" if game == 0 else "the judged model"
        rows.append([f"first slot wins, game {game + 1} (A = {slot})",
                     *(f"{_pct(c.games.first_slot_share[game])} of {c.games.verdicts[game]}" for c in cards)])
    rows.append(["ties (share of verdicts)", *(_pct(c.games.consistency.tie_share) for c in cards)])
    rows.append(["unreadable verdicts (share of games)",
                 *(f"{_pct(c.games.consistency.missing_share)} of {c.games.consistency.games}" for c in cards)])
    rows.append(["constrained labels (share of verdicts)", *(_pct(c.games.constrained_share) for c in cards)])
    rows.append(["length: Spearman's rho, outcome vs token difference",
                 *(f"{_num(c.games.length_spearman)} over {c.games.length_games}" for c in cards)])
    return header, rows


def agreement_rows(card: JudgeCard) -> list[tuple[str, str]]:
    a = card.agreement
    if a is None:
        return []
    level = f"{a.level:g}%"
    rows = [
        ("agreement with confidence",
         f"{_pct(a.agreement)} of the {a.separated_by_reference} pairs the reference separates at {level} (ours apart "
         f"in the same order 1, overlapping 0.5, opposite 0); the blog's +1/0/-1 form: {_num(a.agreement_blog)}"),
        ("strict agreement", f"{_pct(a.strict_agreement)} of {len(a.pairs)} pairs (same order of the point scores)"),
        ("Spearman", f"{_num(a.spearman, '.3f')} ({level} CI {_num(a.spearman_ci[0], '.3f')} to "
                     f"{_num(a.spearman_ci[1], '.3f')}, from the card's bootstrap)"),
        ("Kendall tau-b", f"{_num(a.kendall, '.3f')} ({level} CI {_num(a.kendall_ci[0], '.3f')} to "
                          f"{_num(a.kendall_ci[1], '.3f')})"),
        ("Brier score", f"{_num(a.brier, '.4f')} over {len(a.pairs)} pairs (for each pair, the share of rounds in which "
                        "the first scores below the second, against the reference's order; 0 is best)"),
    ]
    if card.game_agreement is not None:
        g = card.game_agreement
        rows.append(("per-game agreement", f"{_pct(g.agreement)} of {g.games} games both judged (same winner); "
                                           f"Cohen's kappa {_num(g.kappa, '.3f')}"))
    return rows


def _score(score: float, interval: tuple[float, float]) -> str:
    return f"{score:.1f} ({interval[0]:.1f} to {interval[1]:.1f})"


def disagreement_rows(card: JudgeCard) -> list[list[str]]:
    """[pair, ours, reference, share of our rounds in the reference's opposite order], worst first."""
    if card.agreement is None:
        return []
    return [[f"{p.model_1} vs {p.model_2}",
             f"{_score(p.ours[0], p.ours_intervals[0])} vs {_score(p.ours[1], p.ours_intervals[1])}",
             f"{_score(p.reference[0], p.reference_intervals[0])} vs {_score(p.reference[1], p.reference_intervals[1])}",
             _pct(p.wrong_order_share, 0)] for p in card.agreement.disagreements()]


def judgebench_rows(card: JudgeCard) -> list[list[str]]:
    score = card.judgebench
    if score is None:
        return []
    rows = [["overall", f"{score.accuracy:.1f}%", str(score.pairs)]]
    rows += [[name, f"{s.accuracy:.1f}%", str(s.pairs)] for name, s in score.by_source.items()]
    return rows


def card_lines(card: JudgeCard) -> list[str]:
    """The card as show_result.py prints it (sections start with `## `)."""
    pairs = card.separability[SEPARABILITY_LEVELS[0]][1]
    models = len(card.board.models)
    lines = [f"## judge card: {card.judge} on {card.bench}, baseline {card.baseline} ({models} model{'s' * (models != 1)}, "
             f"{pairs} model pair{'s' * (pairs != 1)}, the baseline left out; intervals from a bootstrap over questions, "
             f"{card.rounds} rounds, seed {card.seed})"]
    header, rows = own_rows(card)
    width = max(len(r[0]) for r in rows)
    columns = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(1, len(header))]
    lines.append(f"{'':<{width}} | " + " | ".join(f"{h:>{w}}" for h, w in zip(header[1:], columns, strict=True)))
    for row in rows:
        lines.append(f"{row[0]:<{width}} | " + " | ".join(f"{v:>{w}}" for v, w in zip(row[1:], columns, strict=True)))
    if card.agreement is not None:
        lines.append(f"## judge card: {card.judge} against {card.reference} ({card.agreement.models} models in both "
                     f"boards, {len(card.agreement.pairs)} pairs)")
        lines += [f"{name}: {value}" for name, value in agreement_rows(card)]
        disagreements = disagreement_rows(card)
        lines.append(f"pairs the two order differently, worst first ({len(disagreements)}): ours | reference | share of "
                     "our rounds in the reference's opposite order" if disagreements else
                     "pairs the two order differently: none")
        for pair, mine, theirs, share in disagreements[:SHOWN_DISAGREEMENTS]:
            lines.append(f"  {pair}: {mine} | {theirs} | {share}")
        if len(disagreements) > SHOWN_DISAGREEMENTS:
            lines.append(f"  ... and {len(disagreements) - SHOWN_DISAGREEMENTS} more (all in the card's JSON)")
    if card.judgebench is not None:
        score = card.judgebench
        lines.append(f"## JudgeBench accuracy of {card.judge} on {card.bench}: {score.accuracy:.1f}% of {score.pairs} pairs "
                     "(per pair +1 for each game preferring the labelled answer, -1 for each preferring the other; "
                     "right when the sum is positive)")
        for name, accuracy, pairs_in in judgebench_rows(card)[1:]:
            lines.append(f"  {name:<22} {accuracy:>6} of {pairs_in} pairs")
        lines.append(f"  inconsistent: {_pct(score.inconsistent)} of pairs (the two games' decisions differ); "
                     f"unreadable: {_pct(score.unreadable)} of games")
    return lines


def _plain(value: Any) -> Any:
    """JSON-ready: NaN and infinities as null, numpy numbers as Python numbers."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_card_json(card: JudgeCard, directory: Path) -> Path:
    """--output: judge_card_<date>.json beside the leaderboard files."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"judge_card_{datetime.datetime.now():%Y%m%d}.json"
    replace_atomically(path, json.dumps(_plain(card.to_json()), indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    return path
