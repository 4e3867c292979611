"""Time the judge card against a plain re-implementation of it, in one run.

9 judged models + the baseline x 500 questions x 2 games by two judges: the Russian bench's real answers
(../shared/data/arena-hard-v0.1-ru) judged by two stand-in judges (arenajudge_testkit.standin_judge), or a
generated bench with `--synthetic` (or when ../shared is absent). Then:
- ours: `show_result.py --judge-card --against judge-b --card-rounds 1000` as users run it (a subprocess:
  interpreter start-up, file loading and the board included), and the card alone in-process;
- plain: the same question draws, each round's battles built row by row and fitted by the seed's
  logistic regression (arenajudge_testkit.seed_way), and every card number counted with loops.
The plain way takes long, so it runs `--plain-rounds` rounds (default 100; 1000 for the full run) and
its time is also given per 1,000 rounds; ours is computed on the same rounds to compare the numbers.

    python bench/bench_judge_card.py [--synthetic] [--rounds 1000] [--plain-rounds 100]
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
import warnings
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from arenajudge.present.judge_card import build_card
from arenajudge.present.leaderboard import BoardSpec, build_board
from arenajudge.rating.battles import battles_from_judgments
from arenajudge.records.storage import BenchPaths, load_answers, load_judgments, load_questions
from arenajudge_testkit import seed_way
from arenajudge_testkit.plain_stats import plain_kendall as kendall
from arenajudge_testkit.plain_stats import plain_percentile as percentile
from arenajudge_testkit.plain_stats import plain_spearman as spearman
from arenajudge_testkit.standin_judge import StandinJudge
from arenajudge_testkit.synth import copy_real_bench, make_bench, write_jsonl

ROOT = Path(__file__).resolve().parent.parent
RUSSIAN = ROOT.parent / "shared" / "data" / "arena-hard-v0.1-ru"
RU_BASELINE = "Phi-3-medium-128k-instruct"
JUDGES = (StandinJudge("judge-a", cyrillic=3.0, length=-0.3, structure=0.5, position_bias=0.1, noise_scale=0.8),
          StandinJudge("judge-b", cyrillic=0.3, length=1.5, structure=0.2, position_bias=0.6))
SIDE = {"A>>B": "base", "A>B": "base", "A=B": "tie", "B>A": "model", "B>>A": "model"}
SWAP = {"base": "model", "model": "base", "tie": "tie"}


# ---------------------------------------------------------------- the plain card


def percent(elo: float) -> float:
    return round(100 / (1 + 10 ** ((1000 - float(elo)) / 400)), 2)


def apart(a: tuple[float, float], b: tuple[float, float]) -> int:
    return 1 if a[0] > b[1] else -1 if a[1] < b[0] else 0


def plain_bootstrap(judgments: dict, baseline: str, draws: np.ndarray, question_ids: list[str]) -> dict[str, Any]:
    """Point Elo and per-round Elo, each round's battles built row by row from the drawn questions."""
    battles = seed_way.battles_row_by_row(judgments, baseline)
    battles["question_id"] = battles["question_id"].astype(str)
    by_question = {q: part for q, part in battles.groupby("question_id")}
    point = seed_way.mle_elo(battles, baseline)
    rounds = []
    for counts in draws:
        parts = [by_question[q] for q, n in zip(question_ids, counts, strict=True) for _ in range(n) if q in by_question]
        rounds.append(seed_way.mle_elo(pd.concat(parts, ignore_index=True), baseline))
    return {"point": point, "rounds": rounds}


def plain_card(ours: dict[str, Any], theirs: dict[str, Any], judgments: dict, baseline: str) -> dict[str, float]:
    models = sorted(m for m in ours["point"].index if m != baseline)
    out: dict[str, float] = {}
    samples = {m: [float(r[m]) for r in ours["rounds"]] for m in models}
    ref_samples = {m: [float(r[m]) for r in theirs["rounds"]] for m in models}
    score = {m: percent(ours["point"][m]) for m in models}
    ref_score = {m: percent(theirs["point"][m]) for m in models}
    for level in (95, 80):
        ci = {m: (percent(percentile(s, (100 - level) / 2)), percent(percentile(s, (100 + level) / 2))) for m, s in samples.items()}
        pairs = list(combinations(models, 2))
        out[f"separability_{level}"] = sum(apart(ci[a], ci[b]) != 0 for a, b in pairs) / len(pairs)
        if level == 95:
            mine = ci
    theirs_ci = {m: (percent(percentile(s, 2.5)), percent(percentile(s, 97.5))) for m, s in ref_samples.items()}
    counted, strict, brier = [], [], []
    for a, b in combinations(models, 2):
        reference = apart(theirs_ci[a], theirs_ci[b])
        if reference:
            ours_apart = apart(mine[a], mine[b])
            counted.append(1.0 if ours_apart == reference else 0.5 if ours_apart == 0 else 0.0)
        order = (ref_score[a] > ref_score[b]) - (ref_score[a] < ref_score[b])
        strict.append(float(((score[a] > score[b]) - (score[a] < score[b])) == order))
        below = sum(1.0 if x < y else 0.5 if x == y else 0.0 for x, y in zip(samples[a], samples[b], strict=True))
        target = 1.0 if order < 0 else 0.0 if order > 0 else 0.5
        brier.append((below / len(samples[a]) - target) ** 2)
    out["agreement"] = sum(counted) / len(counted) if counted else math.nan
    out["strict_agreement"] = sum(strict) / len(strict)
    out["brier"] = sum(brier) / len(brier)
    reference_scores = [ref_score[m] for m in models]
    out["spearman"] = spearman([score[m] for m in models], reference_scores)
    out["kendall"] = kendall([score[m] for m in models], reference_scores)
    per_round = [spearman([samples[m][r] for m in models], reference_scores) for r in range(len(ours["rounds"]))]
    out["spearman_low"] = percentile(per_round, 2.5)
    paired = consistent = 0
    for records in judgments.values():
        for record in records:
            winners = []
            for index, game in enumerate(record["games"][:2]):
                label = (game["score"] or "").strip("[]")
                winners.append(None if label not in SIDE else SIDE[label] if index == 0 else SWAP[SIDE[label]])
            if None not in winners:
                paired += 1
                consistent += winners[0] == winners[1]
    out["position_consistency"] = consistent / paired
    return out


def ours_numbers(card: Any) -> dict[str, float]:
    data = card.to_json()
    keys = ("separability_95", "separability_80", "agreement", "strict_agreement", "brier", "spearman", "kendall",
            "position_consistency")
    return {**{k: data[k] for k in keys}, "spearman_low": data["spearman_ci"][0]}


# ---------------------------------------------------------------- the run


def make_data(root: Path, synthetic: bool, questions: int, models: int) -> tuple[str, str, list[str], str]:
    """(bench, baseline, question ids, what it is) under root/data, judged by judge-a and judge-b."""
    if synthetic or not RUSSIAN.is_dir():
        sb = make_bench(root / "data", n_questions=questions, n_models=models, judges=("judge-a", "judge-b"),
                        missing_rate=0.01, include_baseline_self=False)
        return sb.bench, sb.baseline, [str(q) for q in sb.question_ids], "a generated bench (synthetic judges)"
    bench = root / "data" / "ru"
    copy_real_bench(RUSSIAN, bench)
    answers = load_answers(bench / "model_answer")
    ids = [q["question_id"] for q in load_questions(bench / "question.jsonl")]
    for standin in JUDGES:
        records = standin.records(answers, sorted(m for m in answers if m != RU_BASELINE), RU_BASELINE, ids)
        for model, rows in records.items():
            write_jsonl(bench / "model_judgment" / standin.name / f"{model}.jsonl", rows)
    return "ru", RU_BASELINE, [str(q) for q in ids], "the Russian bench's real answers, two stand-in judges"



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synthetic", action="store_true", help="a generated bench instead of the Russian answers")
    parser.add_argument("--questions", type=int, default=500, help="with --synthetic")
    parser.add_argument("--models", type=int, default=9, help="with --synthetic")
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--plain-rounds", type=int, default=100)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")

    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        bench, baseline, question_ids, what = make_data(cwd, args.synthetic, args.questions, args.models)
        command = [sys.executable, str(ROOT / "show_result.py"), "--bench-name", bench, "--judge-name", "judge-a",
                   "--baseline", baseline, "--card-rounds", str(args.rounds)]
        t0 = time.perf_counter()
        board_only = subprocess.run(command[:-2], cwd=cwd, capture_output=True, text=True)
        board_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        proc = subprocess.run([*command, "--against", "judge-b"], cwd=cwd, capture_output=True, text=True)
        command_seconds = time.perf_counter() - t0
        if proc.returncode != 0 or board_only.returncode != 0:
            sys.exit(proc.stderr or board_only.stderr)

        spec = BoardSpec(bench=bench, data_dir=cwd / "data", judges=("judge-a",), baseline=baseline)
        board = build_board(spec)
        t0 = time.perf_counter()
        build_card(board, rounds=args.rounds, seed=42, against="judge-b")
        card_seconds = time.perf_counter() - t0

        # the same question draws for both ways: our resampler's, at the plain way's rounds
        paths = BenchPaths(bench, cwd / "data")
        question_ids = sorted(question_ids)
        draws = np.random.default_rng(42).multinomial(len(question_ids), [1 / len(question_ids)] * len(question_ids),
                                                      size=args.plain_rounds)
        ours = ours_numbers(build_card(board, rounds=args.plain_rounds, seed=42, against="judge-b"))
        pd.set_option("future.infer_string", False)  # the seed's pandas (see bench_show_result.py)
        t0 = time.perf_counter()
        judgments = {j: load_judgments(paths, j) for j in ("judge-a", "judge-b")}
        plain_a = plain_bootstrap(judgments["judge-a"], baseline, draws, question_ids)
        plain_b = plain_bootstrap(judgments["judge-b"], baseline, draws, question_ids)
        plain = plain_card(plain_a, plain_b, judgments["judge-a"], baseline)
        plain_seconds = time.perf_counter() - t0

    n_battles = len(battles_from_judgments(judgments["judge-a"], baseline, "judge-a").battles)
    n_models = len(judgments["judge-a"])
    print(f"{what}: {n_models} models + baseline x {len(question_ids)} questions, {n_battles} battles by judge-a; "
          "the card on a bootstrap over questions")
    print(f"show_result.py, board only (whole command):                   {board_seconds:6.2f} s")
    print(f"show_result.py --judge-card --against, {args.rounds} rounds (whole command): {command_seconds:6.2f} s  (goal: < 5 s)")
    print(f"the card alone, in-process, {args.rounds} rounds:                   {card_seconds:6.2f} s")
    per_1000 = plain_seconds / args.plain_rounds * 1000
    print(f"plain way, {args.plain_rounds} rounds (sklearn refit per round, loops):  {plain_seconds:6.2f} s  "
          f"(~{per_1000:.0f} s per 1,000 rounds; {per_1000 / card_seconds:.0f}x the card alone)")
    print(f"numbers at {args.plain_rounds} rounds, ours vs plain:")
    worst = 0.0
    for key, value in ours.items():
        difference = abs(value - plain[key])
        worst = max(worst, difference)
        print(f"  {key:<22} {value:10.6f} {plain[key]:10.6f}")
    print(f"largest difference: {worst:.2e}")
    print("card as printed:")
    print("\n".join(line for line in proc.stdout.splitlines() if not line.startswith(("note:", "# ")) and " | score:" not in line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
