"""show_result.py for MT-Bench judgments (`--mode single | pairwise-baseline | pairwise-all`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import UserError
from ..mtbench import judgment_file
from ..rating import rate
from ..report import format_line, leaderboard
from ..storage import BenchPaths, load_answers, load_questions, read_jsonl


def single_tables(records: Iterable[dict[str, Any]], questions: list[dict[str, Any]]) -> dict[str, pd.DataFrame]:
    """The seed's three tables (first turn, second turn, average) plus a per-category table.

    Ratings that could not be read (null) are left out of the means and counted in `missing`.
    """
    frame = pd.DataFrame.from_records(list(records), columns=["question_id", "model", "score", "turn"])
    category = {str(q["question_id"]): q.get("category", "") for q in questions}
    frame["category"] = frame["question_id"].astype(str).map(category)
    missing = frame[frame["score"].isna()].groupby("model").size()
    rated = frame.dropna(subset=["score"]).astype({"score": float})
    tables = {}
    for turn in (1, 2):
        part = rated[rated["turn"] == turn][["model", "score", "turn"]]
        tables[f"turn{turn}"] = part.groupby(["model", "turn"]).mean().sort_values(by="score", ascending=False)
    tables["average"] = rated[["model", "score"]].groupby("model").mean().sort_values(by="score", ascending=False)
    per_category = rated.pivot_table(index="model", columns="category", values="score", aggfunc="mean")
    tables["category"] = per_category.loc[tables["average"].index]
    tables["missing"] = missing.rename("missing").to_frame()
    return tables


def pair_battles(records: Iterable[dict[str, Any]]) -> tuple[pd.DataFrame, int]:
    """Pairwise records as battles (model_a = model_1) for the Arena-Hard rating; and games without a verdict."""
    rows, missing = [], 0
    code = {"model_1": "model_a", "model_2": "model_b", "tie": "tie"}
    for r in records:
        for game in ("g1_winner", "g2_winner"):
            winner = code.get(r.get(game) or "")
            if winner is None:
                missing += 1
                continue
            rows.append((r["question_id"], r["model_1"], r["model_2"], winner))
    return pd.DataFrame(rows, columns=["question_id", "model_a", "model_b", "winner"]), missing


def _records(paths: BenchPaths, judge: str, mode: str) -> tuple[Path, list[dict]]:
    path = judgment_file(paths, judge, mode)
    if not path.exists():
        found = sorted(p.name for p in paths.judgment_root.glob("*.jsonl")) if paths.judgment_root.is_dir() else []
        raise UserError(f"{path}: no {mode} judgments by {judge!r} (files found: {', '.join(found) or 'none'})")
    return path, read_jsonl(path, allow_torn_tail=True)


def show(args: argparse.Namespace) -> int:
    paths = BenchPaths(args.bench_name, args.data_dir)
    mode = args.mode or "single"
    path, records = _records(paths, args.judge_name, mode)
    print(f"Mode: {mode}")
    print(f"Input file: {path}")
    if mode == "single":
        questions = load_questions(paths.question_file)
        tables = single_tables(records, questions)
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

    battles, missing_games = pair_battles(records)
    if battles.empty:
        raise UserError(f"{path}: no game has a verdict")
    models = sorted(set(battles["model_a"]) | set(battles["model_b"]))
    baseline = args.baseline if args.baseline in models else models[0]
    result = rate(battles, baseline, rounds=args.num_rounds, seed=args.seed, unit=args.bootstrap)
    answers = load_answers(paths.answer_dir)
    rows = leaderboard(result, baseline, answers)
    print(f"# {len(battles)} battles; scores are win rates against {baseline}; "
          f"95% CI: bootstrap over {args.bootstrap}, {args.num_rounds} rounds, seed {args.seed}")
    for row in rows:
        print(format_line(row, 1))
    if missing_games:
        print(f"note: {missing_games} of {2 * len(records)} games had no verdict and were dropped")
    return 0


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
