"""show_result.py: judgments -> battles -> Bradley-Terry ratings -> leaderboard."""

from __future__ import annotations

import argparse
import datetime
import shlex
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import diagnostics
from ..battles import BattleSet, battles_from_judgments, load_battles, save_battles
from ..config import load_judge_config
from ..errors import UserError, run_cli
from ..plots import write_plot
from ..provenance import board_basis, select_judgments, unverified_words
from ..rating import FeatureRatingResult, MeanResult, RatingResult, mean_scores, rate, rate_with_features
from ..report import (
    BoardRow,
    bad_token_lens,
    coefficient_lines,
    format_line,
    leaderboard,
    markdown_table,
    unjudged_note,
    write_outputs,
    write_records,
)
from ..storage import BenchPaths, load_answers, load_judgments, load_questions, read_jsonl, replace_atomically
from ..style import (
    LC_FEATURE_PREFIX,
    STYLE_GROUPS,
    StyleCache,
    add_length_control_features,
    add_style_features,
    answer_styles,
    parse_style_groups,
)
from . import show_decisions

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
  --markdown, --plot FILE           a model-card table; a chart (.png or self-contained .html)
"""


_STYLE_HELP = ", ".join(f"{group} = {'+'.join(names)}" for group, names in STYLE_GROUPS.items())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="show_result.py", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench-name", default="arena-hard-v0.1", help="bench under the data dir (default: %(default)s)")
    p.add_argument("--judge-name", help="judge whose judgments to score (default: judge_model of --setting-file)")
    p.add_argument("--baseline", help="baseline model, anchored at 1000 Elo / 50%% (default: baseline_model of --setting-file)")
    p.add_argument("--setting-file", type=Path, default=Path("config/judge_config.yaml"),
                   help="judge config that supplies the defaults of --judge-name and --baseline")
    p.add_argument("--data-dir", type=Path, default=Path("data"), help="root of the data layout (default: %(default)s)")
    p.add_argument("--load-battles", action="store_true", help="read battles from the battles cache instead of judgments")
    p.add_argument("--load-bootstrap", action="store_true", help="read bootstrap samples from the cache (needs --load-battles)")
    p.add_argument("--battles-file", type=Path, help="battles cache (default: <data-dir>/arena_hard_battles.jsonl)")
    p.add_argument("--bootstrap-file", type=Path, help="bootstrap cache (default: <data-dir>/bootstrapping_results.jsonl)")
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
    p.add_argument("--method", choices=("bt", "mean"), default="bt",
                   help="'bt': Bradley-Terry (default); 'mean': mean battle score vs the baseline with a "
                        "bootstrap per model, a judgment counted only when both games have a verdict "
                        "(arena-hard-auto v2; add --ci-level 90 for its interval)")
    p.add_argument("--category", nargs="?", const="category", metavar="FIELD",
                   help="also print one board per value of this question field (default field: category; "
                        "e.g. --category cluster)")
    p.add_argument("--diagnostics", action="store_true",
                   help="judge diagnostics: position consistency, tie and no-verdict shares per model; with several "
                        "judges their verdict agreement, Cohen's kappa and rank correlation; separability of the board")
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
    show_decisions.add_flags(p)
    return p


def _defaults_from_config(args: argparse.Namespace) -> None:
    if args.judge_name and args.baseline:
        return
    if not args.setting_file.exists():
        args.judge_name = args.judge_name or "gpt-4-1106-preview"
        args.baseline = args.baseline or "gpt-4-0314"
        return
    config = load_judge_config(args.setting_file)
    args.judge_name = args.judge_name or config.judge_model
    args.baseline = args.baseline or config.baseline_model or "gpt-4-0314"


def _load_bootstrap(path: Path, models: list[str]) -> pd.DataFrame:
    samples = pd.DataFrame.from_records(read_jsonl(path))
    absent = [m for m in models if m not in samples.columns]
    if samples.empty or absent:
        raise UserError(f"{path}: bootstrap cache does not match the battles (no samples for {', '.join(absent) or 'any model'})")
    return samples


def _check_baseline(baseline: str, judgments: dict[str, list[dict]], answers: dict, paths: BenchPaths) -> None:
    """Judgment records of the seed do not name their baseline; ours do. Catch a wrong --baseline."""
    named = {r["baseline"] for records in judgments.values() for r in records if r.get("baseline")}
    if named and baseline not in named:
        raise UserError(f"baseline {baseline!r} has no battles: the judgments were made against {', '.join(sorted(named))}")
    if not named and baseline not in answers and baseline not in judgments:
        raise UserError(f"baseline {baseline!r} has no battles: it has no answers in {paths.answer_dir} "
                        "and no judgments, so nothing was judged against it")


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
                                          ("--method mean", args.method == "mean")) if on]
    if len(alternatives) > 1:
        raise UserError(f"{' and '.join(alternatives)}: choose one way of scoring")
    if alternatives and args.load_bootstrap:
        raise UserError(f"--load-bootstrap holds plain Bradley-Terry samples; it cannot be used with {alternatives[0]}")
    if args.load_battles and (args.judge_names or args.diagnostics):
        raise UserError(f"{'--judge-names' if args.judge_names else '--diagnostics'} reads judgments; "
                        "it cannot be used with --load-battles")
    if args.category_weights and not args.category:
        raise UserError("--category-weights needs --category (the weights are per category)")
    show_decisions.parse_weights(args.category_weights)
    if args.compare and args.load_battles:
        raise UserError("--compare reads judgments; it cannot be used with --load-battles")
    if args.report is not None and args.report.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"--report {args.report}: the report is one HTML page, use a .html file name")
    if args.plot is not None and args.plot.suffix.lower() not in (".png", ".html", ".htm"):
        raise UserError(f"--plot {args.plot}: unknown format {args.plot.suffix or '(none)'!r}, "
                        "use a .png or .html file name")


def _categories(paths: BenchPaths, field: str) -> dict[str, str]:
    """question_id (as str) -> value of `field`; a field no question has is a UserError."""
    questions = load_questions(paths.question_file)
    if not any(field in q for q in questions):
        raise UserError(f"{paths.question_file}: no question has a {field!r} field (--category {field})")
    return {str(q["question_id"]): str(q.get(field, "(none)")) for q in questions}


def _scoring_label(args: argparse.Namespace, features: list[str]) -> str | None:
    if args.style_control:
        return f"style-controlled Bradley-Terry ({', '.join(features)} at equal style)"
    if args.length_controlled:
        return "length-controlled win rate (per-model length term, scored at equal length)"
    if args.method == "mean":
        return ("mean battle score vs the baseline, bootstrap per model, judgments with a game "
                "without a verdict dropped whole (arena-hard-auto v2)")
    return None


def main(argv: list[str] | None = None) -> int:
    command = "show_result.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.runs:
        print(show_decisions.runs_table(BenchPaths(args.bench_name, args.data_dir)))
        return 0
    _check_flags(args)
    _defaults_from_config(args)
    if args.mode is not None or args.bench_name == "mt_bench":
        from . import show_mtbench  # imported here: it brings the openai client, which boards never need

        if args.report is not None:
            raise UserError("--report is written for Arena-Hard boards; MT-Bench judgments print their tables only")
        return show_mtbench.show(args)
    judges = list(args.judge_names or [args.judge_name])
    judge_label = ", ".join(judges)
    paths = BenchPaths(args.bench_name, args.data_dir)
    battles_file = args.battles_file or args.data_dir / "arena_hard_battles.jsonl"
    bootstrap_file = args.bootstrap_file or args.data_dir / "bootstrapping_results.jsonl"

    # Read and validate everything before writing anything.
    answers = load_answers(paths.answer_dir)
    category_of = _categories(paths, args.category) if args.category else {}
    games: dict[str, int] = {}
    missing: dict[str, int] = {}
    notes: list[str] = []
    judgments_by_judge: dict[str, dict[str, list[dict]]] = {}
    judged_before: set[str] = set()  # models with judgments before the provenance check
    unverified = 0
    if args.load_battles:
        battles = load_battles(battles_file)
        source = f"{len(battles)} battles from {battles_file}"
    else:
        basis = board_basis(args.baseline, load_questions(paths.question_file) if paths.question_file.exists() else None,
                            answers)
        for judge in judges:
            judgments = load_judgments(paths, judge)
            if not judgments:
                raise UserError(f"{paths.judgment_dir(judge)}: holds no judgment files")
            _check_baseline(args.baseline, judgments, answers, paths)
            judged_before |= {r.get("model") or m for m, records in judgments.items() for r in records}
            selection = select_judgments(judgments, basis)
            if note := selection.note(judge):
                notes.append(note)
            unverified += selection.unverified
            judgments_by_judge[judge] = selection.kept
        battle_sets = [battles_from_judgments(judgments, args.baseline, judge,
                                              weight=args.weight, first_game_only=args.first_game_only,
                                              whole_judgments=args.method == "mean")
                       for judge, judgments in judgments_by_judge.items()]
        battle_set = battle_sets[0] if len(battle_sets) == 1 else BattleSet(
            battles=pd.concat([b.battles for b in battle_sets], ignore_index=True),
            games=sum((b.games for b in battle_sets), Counter()),
            missing=sum((b.missing for b in battle_sets), Counter()),
            dropped_judgments=sum((b.dropped_judgments for b in battle_sets), Counter()))
        battles = battle_set.battles
        games, missing = dict(battle_set.games), dict(battle_set.missing)
        n_judgments = sum(len(r) for judgments in judgments_by_judge.values() for r in judgments.values())
        source = f"{len(battles)} battles from {n_judgments} judgments by {judge_label}"
        if note := battle_set.missing_note():
            notes.append(note)
        if note := battle_set.invalid_note():
            notes.append(note)
    if unverified:
        source += f"; {unverified_words(unverified)}"
    if battles.empty:
        # Not bad input: the files are fine, nothing in them can be scored. Say why, exit 1.
        print(f"# {args.bench_name}: {source}; baseline {args.baseline}")
        notes += _model_notes(answers, [args.baseline], games, missing, judged_before, judge_label, paths)
        for note in notes:
            print(note)
        print(f"show_result: nothing to score: no game by {judge_label} against {args.baseline} has a verdict "
              "that counts (see the notes above)", file=sys.stderr)
        return 1
    if args.baseline not in set(battles["model_a"].unique()) | set(battles["model_b"].unique()):
        raise UserError(f"baseline {args.baseline!r} has no battles in {source.split(' from ')[1]}")
    if args.compare:
        show_decisions.check_compare(args, battles)

    # Style features per battle (standardised over all battles, then reused by every board).
    features: list[str] = []
    scored_battles = battles
    if args.style_control or args.length_controlled:
        if "question_id" not in battles:
            raise UserError(f"{battles_file}: battles have no question_id, which style/length control needs")
        cache = StyleCache(paths.bench_dir / "style_features_cache.json")
        styles = answer_styles(answers, set(battles["model_a"].unique()) | set(battles["model_b"].unique()), cache)
        if args.style_control:
            features = parse_style_groups(args.style_control)
            scored_battles = add_style_features(battles, styles, features, paths.answer_dir)
        else:
            scored_battles, features = add_length_control_features(battles, styles, args.baseline, paths.answer_dir)
        cache.save()

    def score(subset: pd.DataFrame) -> RatingResult | MeanResult:
        options: dict[str, Any] = {"rounds": args.num_rounds, "seed": args.seed, "unit": args.bootstrap}
        rated: RatingResult | MeanResult
        if features:
            rated = rate_with_features(subset, args.baseline, features, **options)
        elif args.method == "mean":
            rated = mean_scores(subset, args.baseline, **options)
        else:
            rated = rate(subset, args.baseline, **options)
        rated.level = args.ci_level
        return rated

    plain = _scoring_label(args, features) is None
    result = score(scored_battles)
    if args.load_bootstrap:
        samples = _load_bootstrap(bootstrap_file, list(result.point.index))
        result = RatingResult(point=result.point, samples=samples, unit="battles", level=args.ci_level)
    else:
        if not args.load_battles:
            save_battles(battles, battles_file)
        if plain:  # the cache holds plain Bradley-Terry samples only, as --load-bootstrap expects
            bootstrap_file.parent.mkdir(parents=True, exist_ok=True)
            replace_atomically(bootstrap_file, result.samples.to_json(orient="records", lines=True))

    def board(subset: pd.DataFrame, rated: RatingResult | MeanResult) -> list[BoardRow]:
        counts = pd.concat([subset["model_a"], subset["model_b"]]).value_counts().to_dict()
        return leaderboard(rated, args.baseline, answers, show_elo=args.show_elo,
                           battle_counts=counts, games=games, missing=missing)

    rows = board(battles, result)
    rounds = len(result.samples)
    decimal = 0 if args.show_elo else 1
    unit = "loaded from cache" if args.load_bootstrap else (
        f"bootstrap over {args.bootstrap}, {rounds} rounds, seed {args.seed}")
    label = _scoring_label(args, features)
    print(f"# {args.bench_name}: {source}; baseline {args.baseline}; {args.ci_level:g}% CI: {unit}"
          + (f"; score: {label}" if label else ""))
    for row in rows:
        print(format_line(row, decimal, args.ci_level))
    notes += _model_notes(answers, result.models, games, missing, judged_before, judge_label, paths)
    for note in notes:
        print(note)

    extra_lines, boards, records_extra = _extras(args, judges, judgments_by_judge, scored_battles, result, rows,
                                                 category_of, score, board)
    if args.diagnostics:
        extra_lines += show_decisions.projection_lines(battles, paths, args.baseline)
    if category_of and len(boards) > 2:
        extra_lines += show_decisions.combined_lines(args, battles, category_of)
    pair_results: list = []
    compare_lines: list[str] = []
    if args.compare:
        compare_lines, compare_records, pair_results = show_decisions.compare_section(args, battles, paths, judges[0])
        extra_lines += compare_lines
    for model, tokens in show_decisions.judge_tokens(judgments_by_judge).items():
        records_extra.setdefault(model, {}).update(tokens)
    for line in extra_lines:
        print(line)
    if args.markdown:
        print()
        print(markdown_table(boards, decimal, args.ci_level))
        if pair_results:
            print()
            print(show_decisions.pair_markdown(pair_results))
    if args.plot is not None:
        axis = "Elo" if args.show_elo else f"win rate vs {args.baseline} (%)"
        print(f"wrote {write_plot(args.plot, boards, axis)}", file=sys.stderr)
    if args.report is not None:
        from .. import html_report  # here: only --report needs it

        data = html_report.ReportData(
            bench=args.bench_name, judge=judge_label, baseline=args.baseline,
            interval=f"{args.ci_level:g}% CI: {unit}", scoring=label or "Bradley-Terry win rate against the baseline",
            rows=rows, axis_label="Elo" if args.show_elo else f"win rate vs {args.baseline} (%)", decimal=decimal,
            ci_level=args.ci_level, reference=next((r.score for r in rows if r.model == args.baseline), None),
            notes=notes, categories=boards[1:], category_field=args.category or "category",
            pairs=pair_results, compared=list(dict.fromkeys(args.compare or [])),
            compare_interval=compare_lines[0].removeprefix("## ") if compare_lines else "",
            differences=show_decisions.question_differences(args, battles, paths, judges[0], pair_results,
                                                            judgments_by_judge.get(judges[0], {})),
            consistency={judge: diagnostics.position_consistency(j) for judge, j in judgments_by_judge.items()},
            runs=read_jsonl(paths.runs_file, allow_torn_tail=True) if paths.runs_file.exists() else [],
            provenance={"command": command, "bench": args.bench_name, "judge": judge_label, "baseline": args.baseline,
                        "scoring": label or "Bradley-Terry (arena-hard-auto)", "interval": f"{args.ci_level:g}% CI: {unit}",
                        "weight of a strong verdict": str(args.weight), "bootstrap rounds": str(rounds),
                        "seed": str(args.seed), "battles": source,
                        "made": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")},
            fingerprints=_fingerprints(paths, judges, [r.model for r in rows], battles_file if args.load_battles else None))
        print(f"wrote {html_report.write_report(args.report, data)}", file=sys.stderr)

    if args.output:
        stem = f"arena_hard_leaderboard_{datetime.datetime.now():%Y%m%d}"
        meta = {"bench": args.bench_name, "judge": judge_label, "baseline": args.baseline,
                "ci": "elo" if args.show_elo else "win_rate", "bootstrap": args.bootstrap, "rounds": rounds}
        if plain and not records_extra:
            written = write_outputs(rows, args.output_dir, stem, meta)
        else:
            meta["method"] = "bt" if features or args.method == "bt" else args.method
            meta["style_control"] = ",".join(features) if args.style_control else ""
            meta["length_controlled"] = args.length_controlled
            written = write_records(_records(boards, meta, records_extra, args.category), args.output_dir, stem)
        if args.compare:
            written += write_records(compare_records, args.output_dir, f"arena_hard_comparison_{datetime.datetime.now():%Y%m%d}")
        for path in written:
            print(f"wrote {path}", file=sys.stderr)
    return 0


def _model_notes(answers: dict[str, dict], rated: list[str], games: dict[str, int], missing: dict[str, int],
                 judged: set[str], judge_label: str, paths: BenchPaths) -> list[str]:
    """Why a model is not on the board, or what its row rests on, one `note:` line each."""
    notes = []
    on_board = set(rated)
    unjudged = []  # one line for all of them: an answer folder often holds many unjudged models
    for model in sorted((set(answers) | judged) - on_board):
        if games.get(model) and games.get(model) == missing.get(model):
            notes.append(f"note: {model}: all {games[model]} games by {judge_label} lack a verdict, so it is not on "
                         "the board (gen_judgment.py --rejudge-missing asks again)")
        elif model in judged:
            notes.append(f"note: {model}: none of its judgments by {judge_label} counts (see the note on left-out "
                         "judgments), so it is not on the board")
        else:
            unjudged.append(model)
    if unjudged:
        notes.append(unjudged_note(unjudged, judge_label))
    for model in sorted(on_board - set(answers)):
        notes.append(f"note: {model} is judged but has no answers in {paths.answer_dir} "
                     "(average #tokens shows 0)")
    for model in sorted(on_board & set(answers)):
        bad, first = bad_token_lens(answers[model])
        if bad:
            notes.append(f"note: {model}: {bad} answers in {paths.answer_file(model)} have a token_len that is not a "
                         f"count (NaN, infinite or negative; first: question {first}); average #tokens leaves them out")
    return notes


def _extras(
    args: argparse.Namespace,
    judges: list[str],
    judgments_by_judge: dict[str, dict[str, list[dict]]],
    scored_battles: pd.DataFrame,
    result: RatingResult | MeanResult,
    rows: list[BoardRow],
    category_of: dict[str, str],
    score: Callable[[pd.DataFrame], RatingResult | MeanResult],
    board: Callable[[pd.DataFrame, RatingResult | MeanResult], list[BoardRow]],
) -> tuple[list[str], list[tuple[str, list[BoardRow]]], dict[str, dict[str, Any]]]:
    """The sections after the seed's board: (lines, boards for tables and charts, extra columns per model)."""
    lines: list[str] = []
    boards: list[tuple[str, list[BoardRow]]] = [("overall", rows)]
    columns: dict[str, dict[str, Any]] = {}  # model -> extra output columns
    decimal = 0 if args.show_elo else 1

    if isinstance(result, FeatureRatingResult) and result.coefficients is not None and args.style_control:
        lines += coefficient_lines("## style coefficients (logits per standard deviation of the difference; "
                                    "> 0: the judge favours the answer with more of it)", result)
        for name, value in result.coefficients.items():
            for row in rows:
                columns.setdefault(row.model, {})[f"coef_{name}"] = float(value)
    elif isinstance(result, FeatureRatingResult) and result.coefficients is not None and args.length_controlled:
        lines += coefficient_lines("## length slopes per model (logits per unit of tanh(standardised length "
                                    "difference); > 0: the judge favours the longer answer)", result, LC_FEATURE_PREFIX)
        for name, value in result.coefficients.items():
            columns.setdefault(str(name).removeprefix(LC_FEATURE_PREFIX), {})["length_slope"] = float(value)

    if category_of:
        qids = scored_battles["question_id"].astype(str)
        category = qids.map(category_of).fillna("(none)")
        values = sorted(category.unique())
        if len(values) == 1:  # one board per category would repeat the board above
            lines.append(f"note: every judged question has {args.category} {values[0]!r}: "
                         "its board is the board above")
            values = []
        for value in values:
            subset = scored_battles[(category == value).to_numpy()]
            if args.baseline not in set(subset["model_a"].unique()) | set(subset["model_b"].unique()):
                lines.append(f"note: category {value!r} has no battles against the baseline")
                continue
            category_rows = board(subset, score(subset))
            boards.append((value, category_rows))
            lines.append(f"## {args.category}: {value} ({subset['question_id'].nunique()} questions, "
                         f"{len(subset)} battles)")
            lines += [format_line(row, decimal, args.ci_level) for row in category_rows]

    if args.diagnostics:
        pooled: dict[str, diagnostics.ConsistencyRow] = {}
        for judge, judgments in judgments_by_judge.items():
            consistency = diagnostics.position_consistency(judgments)
            lines += diagnostics.consistency_lines(judge, consistency)
            for row in consistency:
                pooled.setdefault(row.model, diagnostics.ConsistencyRow(row.model)).add(row)
        for model, row in pooled.items():
            columns.setdefault(model, {}).update(position_consistency=row.position_consistency,
                                                 tie_share=row.tie_share, missing_share=row.missing_share)
        if len(judges) > 1:
            per_judge_scores = {}
            for judge in judges:
                subset = scored_battles[(scored_battles["judge"] == judge).to_numpy()]
                if args.baseline in set(subset["model_a"].unique()) | set(subset["model_b"].unique()):
                    per_judge_scores[judge] = {r.model: r.score for r in board(subset, score(subset))}
            lines += diagnostics.agreement_lines(diagnostics.judge_agreement(judgments_by_judge),
                                                 diagnostics.board_correlation(per_judge_scores))
        intervals = {r.model: (r.lower, r.upper) for r in rows if r.model != args.baseline}
        share, pairs = diagnostics.separability(intervals)
        shown = "n/a" if np.isnan(share) else f"{100 * share:.1f}%"
        lines.append(f"## separability: {shown} of {pairs} model pairs have non-overlapping {args.ci_level:g}% CIs "
                     "(baseline excluded)")
        for row in rows:
            columns.setdefault(row.model, {})["separability"] = share
    return lines, boards, columns


def _fingerprints(paths: BenchPaths, judges: list[str], models: list[str], battles_file: Path | None
                  ) -> list[tuple[str, str]]:
    """SHA-256 prefixes of the files the board rests on: questions, answers and judgments (or the battles cache)."""
    from ..html_report import fingerprint

    files = [paths.question_file] if paths.question_file.exists() else []
    files += [paths.answer_dir / f"{m}.jsonl" for m in models]
    if battles_file is not None:
        files.append(battles_file)
    else:
        files += [paths.judgment_dir(j) / f"{m}.jsonl" for j in judges for m in models]
    return [(str(f), fingerprint(f)) for f in files if f.is_file()]


def _records(boards: list[tuple[str, list[BoardRow]]], meta: dict[str, Any],
             columns: dict[str, dict[str, Any]], category_field: str | None) -> list[dict[str, Any]]:
    """Output records: the overall board, then each category's, with the extra columns."""
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


def run() -> None:
    sys.exit(run_cli(main))
