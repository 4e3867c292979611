"""show_result.py for MT-Bench judgments (`--mode single | pairwise-baseline | pairwise-all`): read, count, print.

What the records add up to (tables, battles) is the MT-Bench protocol's (mtbench_protocol.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from arenajudge.core.errors import UserError
from arenajudge.judge.mtbench_protocol import MTBenchJudging, MTBenchPairwise, MTBenchSingle
from arenajudge.present.report import format_line, leaderboard
from arenajudge.rating.bradley_terry import rate
from arenajudge.records.storage import BenchPaths, load_answers, load_questions


def show(args: argparse.Namespace) -> int:
    paths = BenchPaths(args.bench_name, args.data_dir)
    mode = args.mode or "single"
    path, records = MTBenchJudging.stored_records(paths, args.judge_name, mode)
    answers = load_answers(paths.answer_dir)
    records, left_out_note = MTBenchJudging.current_records(records, paths, answers)
    print(f"Mode: {mode}")
    print(f"Input file: {path}")
    if left_out_note:
        print(left_out_note)
    if mode == "single":
        return _show_tables(args, paths, records)
    return _show_board(args, path, records, answers)


def _show_tables(args: argparse.Namespace, paths: BenchPaths, records: list[dict]) -> int:
    records, invalid_note = MTBenchSingle.valid_ratings(records)
    if invalid_note:
        print(invalid_note)
    tables = MTBenchSingle.tables(records, load_questions(paths.question_file))
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        for title, key in (("First turn", "turn1"), ("Second turn", "turn2"), ("Average", "average"),
                           ("Per category", "category")):
            print(f"\n########## {title} ##########")
            print(tables[key].round(4) if key == "category" else tables[key])
    missing = tables["missing"]
    if not missing.empty:
        per_model = ", ".join(f"{m}: {n}" for m, n in missing["missing"].items())
        print(f"note: {int(missing['missing'].sum())} of {len(records)} ratings had no verdict and were "
              f"dropped ({per_model})")
    if getattr(args, "plot", None):
        title = f"{args.bench_name}: mean rating per category, judge {args.judge_name}"
        print(f"wrote {radar_chart(tables['category'], Path(args.plot), title)}", file=sys.stderr)
    return 0


def _show_board(args: argparse.Namespace, path: Path, records: list[dict], answers: dict[str, dict]) -> int:
    battles, missing_games = MTBenchPairwise.battles(records)
    if battles.empty:
        # not bad input: the file is valid, nothing in it can be rated (exit 1, as show_result.py)
        print(f"note: none of the {2 * len(records)} games that count has a verdict", file=sys.stderr)
        print(f"show_mtbench: nothing to score in {path}", file=sys.stderr)
        return 1
    models = sorted(set(battles["model_a"]) | set(battles["model_b"]))
    baseline = args.baseline if args.baseline in models else models[0]
    result = rate(battles, baseline, rounds=args.num_rounds, seed=args.seed, unit=args.bootstrap)
    rows = leaderboard(result, baseline, answers)
    print(f"# {len(battles)} battles; scores are win rates against {baseline}; "
          f"95% CI: bootstrap over {args.bootstrap}, {args.num_rounds} rounds, seed {args.seed}")
    for row in rows:
        print(format_line(row, 1))
    if missing_games:
        print(f"note: {missing_games} of {2 * len(records)} games had no verdict and were dropped")
    _show_fastchat_table(records, baseline if args.mode == "pairwise-baseline" else None)
    return 0


def _show_fastchat_table(records: list[dict], baseline: str | None) -> None:
    """FastChat's own pairwise table (win, loss, tie and their rates), beside the Bradley-Terry lines."""
    table, left_out = MTBenchPairwise.fastchat_table(records, baseline)
    against = f"against {baseline}" if baseline is not None else "every pair"
    print(f"\n########## Pairwise, {against} (FastChat's table: a record is a win when both games name the same "
          "winner, else a tie) ##########")
    if table.empty:
        print(f"note: no record with a verdict in both games has {baseline}" if baseline is not None else
              "note: no record has a verdict in both games")
    else:
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(table)
    if left_out:
        print(f"note: {left_out} of {len(records)} records have a game without a verdict and are left out of this "
              "table (FastChat leaves out its \"error\" records)")


def radar_chart(per_category: pd.DataFrame, out: Path, title: str = "mean rating per category") -> Path:
    """One polygon per model over the categories (MT-Bench's usual picture), saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    if out.suffix.lower() != ".png":
        raise UserError(f"--plot {out}: the MT-Bench radar chart is written as .png")
    categories = list(per_category.columns)
    angles = np.linspace(0, 2 * np.pi, len(categories), endpoint=False).tolist()
    fig, ax = plt.subplots(figsize=(7, 7), subplot_kw={"polar": True})
    for model, row in per_category.iterrows():
        values = [float(row[c]) for c in categories]
        ax.plot([*angles, angles[0]], [*values, values[0]], label=str(model))
        ax.fill([*angles, angles[0]], [*values, values[0]], alpha=0.08)
    ax.set_xticks(angles)
    ax.set_xticklabels(categories)
    ax.set_ylim(0, 10)
    ax.legend(loc="upper right", bbox_to_anchor=(1.3, 1.1), fontsize="small")
    ax.set_title(title, pad=24)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return out
