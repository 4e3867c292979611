"""show_result.py for MT-Bench judgments (`--mode single | pairwise-baseline | pairwise-all`)."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import UserError
from ..mtbench import judgment_file
from ..provenance import REASONS, Basis, answer_fingerprints, mtbench_mismatch, question_fingerprints, rerun_hint
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


def _current(records: list[dict], paths: BenchPaths, answers: dict[str, dict]) -> tuple[list[dict], str | None]:
    """The records that match question.jsonl and the answers on disk now, and a note on the rest (the rule of
    show_result.py; judge settings are not checked here, gen_judgment.py redoes records made with others)."""
    questions = load_questions(paths.question_file) if paths.question_file.exists() else None
    basis = Basis(baseline="", questions=question_fingerprints(questions) if questions is not None else None,
                  answers=answer_fingerprints(answers))
    left_out: Counter[str] = Counter()
    kept = []
    for record in records:
        reason = mtbench_mismatch(record, basis)
        if reason is None:
            kept.append(record)
        else:
            left_out[reason] += 1
    if not left_out:
        return kept, None
    parts = ", ".join(f"{n} {REASONS[key]}" for key, n in left_out.items())
    return kept, (f"note: left out {sum(left_out.values())} judgments that do not match what is on disk now: {parts}"
                  + rerun_hint(left_out))


def _valid_ratings(records: list[dict]) -> tuple[list[dict], str | None]:
    """Ratings that are not a number from 1 to 10 (a hand-edited or foreign file) read as unreadable, with a note."""
    out, bad, first = [], 0, ""
    for r in records:
        score = r.get("score")
        if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float)) or not 1 <= score <= 10):
            bad += 1
            first = first or f"{score!r} for {r.get('model')}, question {r.get('question_id')}, turn {r.get('turn')}"
            out.append({**r, "score": None})
        else:
            out.append(r)
    if not bad:
        return out, None
    return out, f"note: {bad} ratings are not a number from 1 to 10 (first: {first}); they count as no verdict"


def show(args: argparse.Namespace) -> int:
    paths = BenchPaths(args.bench_name, args.data_dir)
    mode = args.mode or "single"
    path, records = _records(paths, args.judge_name, mode)
    answers = load_answers(paths.answer_dir)
    records, left_out_note = _current(records, paths, answers)
    print(f"Mode: {mode}")
    print(f"Input file: {path}")
    if left_out_note:
        print(left_out_note)
    if mode == "single":
        records, invalid_note = _valid_ratings(records)
        if invalid_note:
            print(invalid_note)
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
