"""show_result.py: flags -> board specification -> the leaderboard service -> the board and its sections, printed."""

from __future__ import annotations

import argparse
import datetime
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from arenajudge.cli.common import add_data_dir_flag
from arenajudge.config.models import load_judge_config, shown_mt_bench_mode
from arenajudge.core.errors import UserError, run_cli
from arenajudge.core.names import check_name, from_file_name
from arenajudge.present.judge_card import build_card, card_lines, read_reference_board, write_card_json
from arenajudge.present.leaderboard import BoardResult, BoardSpec, build_board
from arenajudge.present.plots import write_plot
from arenajudge.present.report import (
    BoardRow,
    board_records,
    coefficient_lines,
    combined_lines,
    format_line,
    judge_tokens,
    markdown_table,
    pair_markdown,
    projection_lines,
    runs_table,
    write_outputs,
    write_records,
)
from arenajudge.present.report_page import (
    Comparison,
    axis_label,
    category_boards,
    compare_section,
    rounds_of,
    write_html_report,
)
from arenajudge.rating import diagnostics
from arenajudge.rating.bradley_terry import FeatureRatingResult
from arenajudge.rating.compare import CompareSpec, combined_score
from arenajudge.rating.judge_card import CardBoard, JudgeCard
from arenajudge.rating.methods import METHODS
from arenajudge.rating.style import LC_FEATURE_PREFIX, STYLE_GROUPS, parse_style_groups
from arenajudge.records.storage import BenchPaths

DESCRIPTION = """\
Score every judged model against the baseline, as arena-hard-auto does: each game is a
battle baseline vs model, strong verdicts count --weight times, ties count half for each,
a Bradley-Terry model gives Elo ratings (baseline = 1000) and the score is the predicted
win rate against the baseline in percent. The 95%% CI comes from a bootstrap.

Output lines keep arena-hard-local's shape:
  <model> | score: <win rate> | 95%% CI: (<lower>, <upper>) | average #tokens: <n>

Beyond the seed (all off by default; extra sections start with '## '):
  --style-control length markdown   Bradley-Terry with style features, scores at equal style
  --length-controlled               per-model length term, win rate at equal length (AlpacaEval 2 way)
  --method mean                     mean battle score vs the baseline (arena-hard-auto v2's number)
  --judge-names J1 J2 ...           pool several judges' battles
  --category [FIELD]                one more board per question category (or cluster, ...)
  --diagnostics                     position consistency, ties, agreement between judges, separability
  --judge-card [--against JUDGE | --against-board FILE]
                                    how far to trust the judge: separability, position use, length; agreement
                                    with a reference judge or board; JudgeBench accuracy on a JudgeBench bench
  --markdown, --plot FILE           a model-card table; a chart (.png or self-contained .html)
"""


DEFAULT_BENCH = "arena-hard-v0.1"  # arena-hard-local's, when neither the flag nor the judge config names one
_STYLE_HELP = ", ".join(f"{group} = {'+'.join(names)}" for group, names in STYLE_GROUPS.items())


def _add_cache_flags(p: argparse.ArgumentParser) -> None:
    """The battles and bootstrap caches, which a board can be read back from."""
    p.add_argument("--load-battles", action="store_true", help="read battles from the battles cache instead of judgments")
    p.add_argument("--load-bootstrap", action="store_true", help="read bootstrap samples from the cache (needs --load-battles)")
    p.add_argument("--battles-file", type=Path, help="battles cache (default: <data-dir>/arena_hard_battles.jsonl)")
    p.add_argument("--bootstrap-file", type=Path, help="bootstrap cache (default: <data-dir>/bootstrapping_results.jsonl)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="show_result.py", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench-name", help=f"bench under the data dir (default: bench_name of --setting-file, else "
                                        f"{DEFAULT_BENCH})")
    p.add_argument("--judge-name", help="judge whose judgments to score (default: judge_model of --setting-file)")
    p.add_argument("--baseline", help="baseline model, anchored at 1000 Elo / 50%% (default: baseline_model of --setting-file)")
    p.add_argument("--setting-file", type=Path, default=Path("config/judge_config.yaml"),
                   help="judge config that supplies the defaults of --bench-name, --judge-name and --baseline "
                        "(default: %(default)s)")
    add_data_dir_flag(p)
    _add_cache_flags(p)
    p.add_argument("--show-elo", action="store_true", help="print Elo ratings instead of win rates")
    p.add_argument("--weight", type=int, default=3, help="battles counted for a strong verdict such as A>>B (default: 3)")
    p.add_argument("--num-rounds", type=int, default=100, help="bootstrap rounds (default: 100)")
    p.add_argument("--seed", type=int, default=42, help="random seed of the bootstrap (default: 42)")
    p.add_argument("--bootstrap", choices=("battles", "questions"), default="battles",
                   help="what the bootstrap resamples: 'battles' (the seed's way, narrower) or 'questions' "
                        "(all battles of a question together; the honest interval for decisions)")
    p.add_argument("--first-game-only", action="store_true", help="use only game 1 of each judgment")
    p.add_argument("--ci-level", type=float, default=95.0, metavar="PERCENT",
                   help="coverage of the printed intervals in percent (default: 95); arena-hard-auto v2 prints 90 "
                        "(its 5th to 95th percentile)")
    p.add_argument("--output", action="store_true", help="write the leaderboard as JSON and CSV")
    p.add_argument("--output-dir", type=Path, default=Path("."), help="where --output writes (default: current dir)")
    p.add_argument("--judge-names", nargs="+", metavar="JUDGE",
                   help="pool the battles of several judges (an ensemble); replaces --judge-name")
    p.add_argument("--style-control", nargs="+", metavar="FEATURE",
                   help=f"control for answer style: {' and/or '.join(STYLE_GROUPS)} ({_STYLE_HELP}); "
                        "Bradley-Terry with standardised style differences as extra terms, scores from the model terms "
                        "alone; prints the style coefficients")
    p.add_argument("--length-controlled", action="store_true",
                   help="length-controlled win rate: each model gets its own term in tanh(standardised length "
                        "difference) and is scored at length difference 0 (AlpacaEval 2's idea)")
    p.add_argument("--method", choices=tuple(METHODS), default="bt",
                   help="; ".join(f"'{m.name}': {m.summary}" for m in METHODS.values())
                   + " (mean: a judgment counted only when both games have a verdict, as arena-hard-auto v2; "
                     "add --ci-level 90 for its interval)")
    p.add_argument("--category", nargs="?", const="category", metavar="FIELD",
                   help="also print one board per value of this question field (default field: category; "
                        "e.g. --category cluster)")
    p.add_argument("--diagnostics", action="store_true",
                   help="judge diagnostics: position consistency, tie and no-verdict shares per model; with several "
                        "judges their verdict agreement, Cohen's kappa and rank correlation; separability of the board")
    p.add_argument("--judge-card", action="store_true",
                   help="the judge card: separability at 95%% and 80%%, position consistency, first-slot wins per game, "
                        "ties, unreadable and constrained labels, length correlation, on a bootstrap over questions; "
                        "JudgeBench accuracy on a JudgeBench bench; with --output also judge_card_<date>.json")
    p.add_argument("--card-rounds", type=int, default=1000, help="bootstrap rounds of the judge card (default: %(default)s)")
    p.add_argument("--card-seed", type=int, help="seed of the judge card's bootstrap (default: --seed)")
    p.add_argument("--against", metavar="JUDGE",
                   help="judge card against another judge's judgments of the same answers and baseline: agreement "
                        "with confidence, strict agreement, Spearman/Kendall, Brier, per-game agreement and kappa "
                        "(implies --judge-card)")
    p.add_argument("--against-board", type=Path, metavar="FILE",
                   help="judge card against a reference board: a CSV with columns model, score, lower, upper (as "
                        "--output writes it) or board lines as show_result.py prints them (implies --judge-card)")
    p.add_argument("--markdown", action="store_true", help="also print the board as a markdown table (for a model card)")
    p.add_argument("--plot", type=Path, metavar="FILE",
                   help="draw scores with 95%% CIs (one panel per category): FILE.png or a self-contained FILE.html")
    p.add_argument("--report", type=Path, metavar="FILE.html",
                   help="also write one self-contained HTML page to share: the board and its interval, a CI chart, "
                        "the boards per --category, the --compare results, judge diagnostics, the runs' cost and "
                        "how it was made (no scripts, nothing loaded from the network)")
    p.add_argument("--mode", choices=("single", "pairwise-baseline", "pairwise-all"),
                   help="MT-Bench judgments (gen_judgment.py with `mode:`): 'single' prints the first-turn, "
                        "second-turn, average and per-category tables (radar chart with --plot FILE.png); the "
                        "pairwise modes print win rates; default 'single' when --bench-name is mt_bench")
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
    return p


def _defaults_from_config(args: argparse.Namespace) -> None:
    """Bench, judge and baseline not given as flags, from the judge config (as gen_judgment.py and
    qa_browser.py take them), else arena-hard-local's defaults."""
    if args.bench_name and args.judge_name and args.baseline:
        return
    if not args.setting_file.exists():
        args.bench_name = args.bench_name or DEFAULT_BENCH
        args.judge_name = args.judge_name or "gpt-4-1106-preview"
        args.baseline = args.baseline or "gpt-4-0314"
        return
    config = load_judge_config(args.setting_file)
    args.bench_name = args.bench_name or config.bench_name
    args.judge_name = args.judge_name or config.judge_model
    args.baseline = args.baseline or config.baseline_model or "gpt-4-0314"


def require_bench(paths: BenchPaths) -> None:
    """A UserError naming a bench folder that does not exist, and the benches that do."""
    if paths.bench_dir.is_dir():
        return
    root = paths.root
    benches = sorted(from_file_name(d.name) for d in root.iterdir()
                     if d.is_dir() and any((d / part).exists() for part in ("question.jsonl", "model_answer",
                                                                            "model_judgment"))) if root.is_dir() else []
    where = f"benches here: {', '.join(benches)}" if benches else f"no bench in {root}"
    raise UserError(f"{paths.bench_dir}: no such bench ({where})")


def parse_weights(items: list[str] | None) -> dict[str, float] | None:
    """--category-weights CATEGORY=WEIGHT ... as a dict (None without the flag)."""
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


def _check_flags(args: argparse.Namespace) -> None:
    if args.load_bootstrap and not args.load_battles:
        raise UserError("--load-bootstrap needs --load-battles (the samples must match the battles)")
    if not 0 < args.ci_level < 100:
        raise UserError(f"--ci-level must be between 0 and 100 (a percentage), got {args.ci_level:g}")
    if args.num_rounds < 1:
        raise UserError(f"--num-rounds must be at least 1, got {args.num_rounds}")
    if args.weight < 1:
        raise UserError(f"--weight must be at least 1, got {args.weight}")
    if args.judge_names and args.judge_name:
        raise UserError("--judge-name and --judge-names: give one of them")
    if args.judge_names and len(set(args.judge_names)) < len(args.judge_names):
        raise UserError(f"--judge-names: a judge is named twice ({' '.join(args.judge_names)})")
    if args.style_control:
        parse_style_groups(args.style_control)
    alternatives = [flag for flag, on in (("--style-control", bool(args.style_control)),
                                          ("--length-controlled", args.length_controlled),
                                          (f"--method {args.method}", METHODS[args.method].label is not None)) if on]
    if len(alternatives) > 1:
        raise UserError(f"{' and '.join(alternatives)}: choose one way of scoring")
    if alternatives and args.load_bootstrap:
        raise UserError(f"--load-bootstrap holds plain Bradley-Terry samples; it cannot be used with {alternatives[0]}")
    if args.load_battles and (args.judge_names or args.diagnostics):
        raise UserError(f"{'--judge-names' if args.judge_names else '--diagnostics'} reads judgments; "
                        "it cannot be used with --load-battles")
    if args.category_weights and not args.category:
        raise UserError("--category-weights needs --category (the weights are per category)")
    parse_weights(args.category_weights)
    if args.compare and args.load_battles:
        raise UserError("--compare reads judgments; it cannot be used with --load-battles")
    _check_card_flags(args)
    if args.report is not None and args.report.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"--report {args.report}: the report is one HTML page, use a .html file name")
    if args.plot is not None and args.plot.suffix.lower() not in (".png", ".html", ".htm"):
        raise UserError(f"--plot {args.plot}: unknown format {args.plot.suffix or '(none)'!r}, "
                        "use a .png or .html file name")


def _check_card_flags(args: argparse.Namespace) -> None:
    """--judge-card and its reference flags (--against and --against-board imply the card)."""
    if args.against is not None and args.against_board is not None:
        raise UserError("--against and --against-board: give one reference")
    args.judge_card = args.judge_card or args.against is not None or args.against_board is not None
    if not args.judge_card:
        return
    flag = "--judge-card" if args.against is None and args.against_board is None else (
        "--against" if args.against is not None else "--against-board")
    if args.load_battles:
        raise UserError(f"{flag} reads judgments; it cannot be used with --load-battles")
    if args.judge_names and len(args.judge_names) > 1:
        raise UserError(f"{flag} describes one judge; name it with --judge-name (--judge-names pools several)")
    if args.card_rounds < 100:
        raise UserError(f"--card-rounds must be at least 100, got {args.card_rounds}")
    if args.mode is not None:
        raise UserError(f"{flag} is made from Arena-Hard judgments; it cannot be used with --mode")


def board_spec(args: argparse.Namespace) -> BoardSpec:
    """The board the flags ask for (after _check_flags and _defaults_from_config)."""
    return BoardSpec(
        bench=args.bench_name, data_dir=args.data_dir, judges=tuple(args.judge_names or [args.judge_name]),
        baseline=args.baseline, method=args.method, unit=args.bootstrap, rounds=args.num_rounds, seed=args.seed,
        weight=args.weight, first_game_only=args.first_game_only, ci_level=args.ci_level, category=args.category,
        style=tuple(args.style_control or ()), length_controlled=args.length_controlled, show_elo=args.show_elo,
        compare=tuple(args.compare or ()), compare_rounds=args.compare_rounds, load_battles=args.load_battles,
        load_bootstrap=args.load_bootstrap, save_caches=True, battles_file=args.battles_file,
        bootstrap_file=args.bootstrap_file)


def compare_spec(args: argparse.Namespace, board: BoardResult) -> CompareSpec:
    return CompareSpec(models=tuple(dict.fromkeys(args.compare)), baseline=args.baseline, bench=args.bench_name,
                       judge=board.spec.judges[0], rounds=args.compare_rounds, seed=args.seed, top=args.top_questions,
                       browser_url=args.browser_url)


@dataclass
class Section:
    """Lines printed after the seed's board, and the extra output columns they add per model."""

    lines: list[str] = field(default_factory=list)
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)  # model -> column -> value

    def add(self, other: Section) -> None:
        self.lines += other.lines
        for model, values in other.columns.items():
            self.columns.setdefault(model, {}).update(values)


def main(argv: list[str] | None = None) -> int:
    command = "show_result.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    return show(build_parser().parse_args(argv), command)


def show(args: argparse.Namespace, command: str) -> int:
    """Everything after the flags are parsed (run_eval.py calls it too): `command` is the report's provenance."""
    if not args.runs:
        _check_flags(args)
    _defaults_from_config(args)
    for judge in [args.judge_name, *(args.judge_names or [])]:
        if judge:
            check_name(judge, "judge name")  # a name that would climb out is refused before anything else is said
    if not args.load_battles:  # the battles cache is read from the data dir, whatever the bench
        require_bench(BenchPaths(args.bench_name, args.data_dir))
    if args.runs:
        print(runs_table(BenchPaths(args.bench_name, args.data_dir)))
        return 0
    if shown_mt_bench_mode(args.bench_name, args.mode) is not None:
        from arenajudge.cli import show_mtbench  # imported here: it brings the HTTP client (httpx2), which boards never need

        if args.judge_card:
            raise UserError("--judge-card is made from Arena-Hard judgments; MT-Bench judgments print their tables only")
        if args.report is not None:
            raise UserError("--report is written for Arena-Hard boards; MT-Bench judgments print their tables only")
        return show_mtbench.show(args)
    # a reference board file is read before anything is printed: bad input stops with one line
    reference = read_reference_board(args.against_board, args.ci_level) if args.against_board is not None else None
    board = build_board(board_spec(args))
    if board.empty:
        return nothing_to_score(board)
    card = judge_card(args, board, reference) if args.judge_card else None
    print(board.header)
    for row in board.rows:
        print(format_line(row, board.decimal, args.ci_level))
    notes = board.notes
    for note in notes:
        print(note)

    extras = Section()
    extras.add(coefficient_section(board))
    category_lines, boards = category_boards(board)
    extras.lines += category_lines
    if args.diagnostics:
        extras.add(diagnostics_section(board))
        extras.lines += projection_lines(board.battles, board.paths, args.baseline)
    if board.category_of and len(boards) > 2:
        extras.lines += combined_section(board, parse_weights(args.category_weights))
    comparison = compare_section(compare_spec(args, board), board) if args.compare else None
    if comparison is not None:
        extras.lines += comparison.lines
    extras.add(Section(columns=judge_tokens(board.judgments)))
    for line in extras.lines:
        print(line)
    if card is not None:
        for line in card_lines(card):
            print(line)
    if args.markdown:
        print()
        print(markdown_table(boards, board.decimal, args.ci_level))
        if comparison is not None and comparison.pairs:
            print()
            print(pair_markdown(comparison.pairs))
    if args.plot is not None:
        print(f"wrote {write_plot(args.plot, boards, axis_label(board))}", file=sys.stderr)
    if args.report is not None:
        print(f"wrote {write_html_report(args.report, board, boards, comparison, notes, command, card)}", file=sys.stderr)
    if args.output:
        for path in write_board_outputs(args.output_dir, board, boards, extras.columns, comparison):
            print(f"wrote {path}", file=sys.stderr)
        if card is not None:
            print(f"wrote {write_card_json(card, args.output_dir)}", file=sys.stderr)
    return 0


def judge_card(args: argparse.Namespace, board: BoardResult, reference: CardBoard | None) -> JudgeCard:
    """--judge-card: the card of the board's judge, on its own bootstrap over questions."""
    if args.against is not None and args.against in board.spec.judges:
        raise UserError(f"--against {args.against}: that is the judge of the card; name another judge")
    seed = args.seed if args.card_seed is None else args.card_seed
    return build_card(board, rounds=args.card_rounds, seed=seed, against=args.against,
                      reference=(str(args.against_board), reference) if reference is not None else None)


def nothing_to_score(board: BoardResult) -> int:
    """Not bad input: the files are fine, nothing in them can be scored. Say why, exit 1."""
    print(board.header)
    for note in board.notes:
        print(note)
    print(f"show_result: nothing to score: no game by {board.spec.judge_label} against {board.spec.baseline} has a "
          "verdict that counts (see the notes above)", file=sys.stderr)
    return 1


def coefficient_section(board: BoardResult) -> Section:
    """--style-control's coefficients or --length-controlled's slopes per model."""
    section = Section()
    result = board.rating
    if not isinstance(result, FeatureRatingResult) or result.coefficients is None:
        return section
    if board.spec.style:
        section.lines = coefficient_lines("## style coefficients (logits per standard deviation of the difference; "
                                          "> 0: the judge favours the answer with more of it)", result)
        for name, value in result.coefficients.items():
            for row in board.rows:
                section.columns.setdefault(row.model, {})[f"coef_{name}"] = float(value)
    elif board.spec.length_controlled:
        section.lines = coefficient_lines("## length slopes per model (logits per unit of tanh(standardised length "
                                          "difference); > 0: the judge favours the longer answer)", result,
                                          LC_FEATURE_PREFIX)
        for name, value in result.coefficients.items():
            section.columns.setdefault(str(name).removeprefix(LC_FEATURE_PREFIX), {})["length_slope"] = float(value)
    return section


def diagnostics_section(board: BoardResult) -> Section:
    """--diagnostics: position consistency per judge, agreement between judges, separability of the board."""
    section = Section()
    pooled: dict[str, diagnostics.ConsistencyRow] = {}
    for judge, judgments in board.judgments.items():
        consistency = diagnostics.position_consistency(judgments)
        section.lines += diagnostics.consistency_lines(judge, consistency)
        for row in consistency:
            pooled.setdefault(row.model, diagnostics.ConsistencyRow(row.model)).add(row)
    for model, row in pooled.items():
        section.columns.setdefault(model, {}).update(position_consistency=row.position_consistency,
                                                     tie_share=row.tie_share, missing_share=row.missing_share)
    battles = board.scored_battles
    assert battles is not None
    if len(board.spec.judges) > 1:
        per_judge_scores = {}
        for judge in board.spec.judges:
            subset = battles[(battles["judge"] == judge).to_numpy()]
            if board.has_baseline(subset):
                per_judge_scores[judge] = {r.model: r.score for r in board.board_rows(subset, board.rate_battles(subset))}
        section.lines += diagnostics.agreement_lines(diagnostics.judge_agreement(board.judgments),
                                                     diagnostics.board_correlation(per_judge_scores))
    intervals = {r.model: (r.lower, r.upper) for r in board.rows if r.model != board.spec.baseline}
    share, pairs = diagnostics.separability(intervals)
    shown = "n/a" if np.isnan(share) else f"{100 * share:.1f}%"
    section.lines.append(f"## separability: {shown} of {pairs} model pairs have non-overlapping "
                         f"{board.spec.ci_level:g}% CIs (baseline excluded)")
    for row in board.rows:
        section.columns.setdefault(row.model, {})["separability"] = share
    return section


def combined_section(board: BoardResult, weights: dict[str, float] | None) -> list[str]:
    """--category-weights: one score over the categories."""
    spec = board.spec
    frame = combined_score(board.battles, board.category_of, spec.baseline, weights, rounds=max(spec.rounds, 200),
                           seed=spec.seed)
    return combined_lines(frame, spec.category or "category", weights)


def write_board_outputs(directory: Path, board: BoardResult, boards: list[tuple[str, list[BoardRow]]],
                        columns: dict[str, dict[str, Any]], comparison: Comparison | None) -> list[Path]:
    """--output: the board as JSON and CSV (with the extra columns when there are any), and the comparison."""
    spec = board.spec
    stem = f"arena_hard_leaderboard_{datetime.datetime.now():%Y%m%d}"
    meta: dict[str, Any] = {"bench": spec.bench, "judge": spec.judge_label, "baseline": spec.baseline,
                            "ci": "elo" if spec.show_elo else "win_rate", "bootstrap": spec.unit,
                            "rounds": rounds_of(board)}
    if board.plain and not columns:
        written = write_outputs(board.rows, directory, stem, meta)
    else:
        meta["method"] = "bt" if board.features or spec.method == "bt" else spec.method
        meta["style_control"] = ",".join(board.features) if spec.style else ""
        meta["length_controlled"] = spec.length_controlled
        written = write_records(board_records(boards, meta, columns, spec.category), directory, stem)
    if comparison is not None:
        written += write_records(comparison.records, directory, f"arena_hard_comparison_{datetime.datetime.now():%Y%m%d}")
    return written


def run() -> None:
    sys.exit(run_cli(main))
