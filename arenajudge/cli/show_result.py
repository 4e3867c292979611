"""show_result.py: judgments -> battles -> Bradley-Terry ratings -> leaderboard."""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

import pandas as pd

from ..battles import battles_from_judgments, load_battles, save_battles
from ..config import load_judge_config
from ..errors import UserError, run_cli
from ..rating import RatingResult, rate
from ..report import format_line, leaderboard, write_outputs
from ..storage import BenchPaths, load_answers, load_judgments, read_jsonl

DESCRIPTION = """\
Score every judged model against the baseline, as arena-hard-auto does: each game is a
battle baseline vs model, strong verdicts count --weight times, ties count half for each,
a Bradley-Terry model gives Elo ratings (baseline = 1000) and the score is the predicted
win rate against the baseline in percent. The 95%% CI comes from a bootstrap.

Output lines keep arena-hard-local's shape:
  <model> | score: <win rate> | 95%% CI: (<lower>, <upper>) | average #tokens: <n>
"""


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
    p.add_argument("--output", action="store_true", help="write the leaderboard as JSON and CSV")
    p.add_argument("--output-dir", type=Path, default=Path("."), help="where --output writes (default: current dir)")
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.load_bootstrap and not args.load_battles:
        raise UserError("--load-bootstrap needs --load-battles (the samples must match the battles)")
    if args.num_rounds < 1:
        raise UserError(f"--num-rounds must be at least 1, got {args.num_rounds}")
    if args.weight < 1:
        raise UserError(f"--weight must be at least 1, got {args.weight}")
    _defaults_from_config(args)
    paths = BenchPaths(args.bench_name, args.data_dir)
    battles_file = args.battles_file or args.data_dir / "arena_hard_battles.jsonl"
    bootstrap_file = args.bootstrap_file or args.data_dir / "bootstrapping_results.jsonl"

    # Read and validate everything before writing anything.
    answers = load_answers(paths.answer_dir)
    games: dict[str, int] = {}
    missing: dict[str, int] = {}
    notes: list[str] = []
    if args.load_battles:
        battles = load_battles(battles_file)
        source = f"{len(battles)} battles from {battles_file}"
    else:
        judgments = load_judgments(paths, args.judge_name)
        if not judgments:
            raise UserError(f"{paths.judgment_dir(args.judge_name)}: holds no judgment files")
        _check_baseline(args.baseline, judgments, answers, paths)
        battle_set = battles_from_judgments(judgments, args.baseline, args.judge_name,
                                            weight=args.weight, first_game_only=args.first_game_only)
        battles = battle_set.battles
        games, missing = dict(battle_set.games), dict(battle_set.missing)
        n_judgments = sum(len(r) for r in judgments.values())
        source = f"{len(battles)} battles from {n_judgments} judgments by {args.judge_name}"
        if note := battle_set.missing_note():
            notes.append(note)
    if battles.empty:
        raise UserError(f"no battles: none of the judgments by {args.judge_name} has a verdict")
    if args.baseline not in set(battles["model_a"]) | set(battles["model_b"]):
        raise UserError(f"baseline {args.baseline!r} has no battles in {source.split(' from ')[1]}")

    result = rate(battles, args.baseline, rounds=args.num_rounds, seed=args.seed, unit=args.bootstrap)
    if args.load_bootstrap:
        samples = _load_bootstrap(bootstrap_file, list(result.point.index))
        result = RatingResult(point=result.point, samples=samples, unit="battles")
    else:
        if not args.load_battles:
            save_battles(battles, battles_file)
        bootstrap_file.parent.mkdir(parents=True, exist_ok=True)
        result.samples.to_json(bootstrap_file, orient="records", lines=True)

    battle_counts = pd.concat([battles["model_a"], battles["model_b"]]).value_counts().to_dict()
    rows = leaderboard(result, args.baseline, answers, show_elo=args.show_elo,
                       battle_counts=battle_counts, games=games, missing=missing)
    rounds = len(result.samples)
    unit = "loaded from cache" if args.load_bootstrap else (
        f"bootstrap over {args.bootstrap}, {rounds} rounds, seed {args.seed}")
    print(f"# {args.bench_name}: {source}; baseline {args.baseline}; 95% CI: {unit}")
    for row in rows:
        print(format_line(row, 0 if args.show_elo else 1))
    for model in sorted(set(answers) - set(result.point.index)):
        notes.append(f"note: {model} has answers but no battles (not judged by {args.judge_name}?)")
    for note in notes:
        print(note)

    if args.output:
        stem = f"arena_hard_leaderboard_{datetime.datetime.now():%Y%m%d}"
        meta = {"bench": args.bench_name, "judge": args.judge_name, "baseline": args.baseline,
                "ci": "elo" if args.show_elo else "win_rate", "bootstrap": args.bootstrap, "rounds": rounds}
        for path in write_outputs(rows, args.output_dir, stem, meta):
            print(f"wrote {path}", file=sys.stderr)
    return 0


def run() -> None:
    sys.exit(run_cli(main))
