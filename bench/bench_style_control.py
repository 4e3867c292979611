"""Time the style-controlled bootstrap against a plain scikit-learn refit per round.

Generates 9 judged models (the baseline included) x 500 questions = 4,500 judgments,
adds the four style features (length, header, list, bold) to every battle, and runs the
same number of bootstrap rounds both ways: ours (rating.rate_with_features: one batched
Newton over unique battle rows, all rounds at once) and scikit-learn's LogisticRegression
refitted on a resampled per-battle table each round (ties duplicated, as the seed does).

    python bench/bench_style_control.py [--rounds 100] [--questions 500] [--models 8]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from arenajudge.rating.battles import battles_from_judgments
from arenajudge.rating.bradley_terry import rate_with_features
from arenajudge.rating.style import STYLE_GROUPS, StyleCache, add_style_features, answer_styles
from arenajudge.records.storage import BenchPaths, load_answers, load_judgments
from arenajudge_testkit.synth import make_bench

ROOT = Path(__file__).resolve().parent.parent

FEATURES = [f for names in STYLE_GROUPS.values() for f in names]


def sklearn_round(battles: pd.DataFrame, models: list[str], baseline: str) -> np.ndarray:
    doubled = pd.concat([battles, battles], ignore_index=True)
    n = len(doubled)
    col = {m: i for i, m in enumerate(models)}
    x = np.zeros((n, len(models) + len(FEATURES)))
    x[np.arange(n), doubled["model_a"].map(col)] += math.log(10)
    x[np.arange(n), doubled["model_b"].map(col)] -= math.log(10)
    x[:, len(models):] = doubled[FEATURES].to_numpy()
    y = (doubled["winner"] == "model_a").to_numpy().astype(float)
    ties = (doubled["winner"] == "tie").to_numpy().copy()
    ties[n // 2:] = False
    y[ties] = 1.0
    fit = LogisticRegression(fit_intercept=False, C=np.inf, tol=1e-6).fit(x, y)
    elo = 400 * fit.coef_[0][: len(models)]
    return elo - elo[col[baseline]] + 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--models", type=int, default=8)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        sb = make_bench(root, n_questions=args.questions, n_models=args.models, missing_rate=0.01)
        paths = BenchPaths(sb.bench, root)
        answers = load_answers(paths.answer_dir)
        judgments = load_judgments(paths, "judge-a")
        battles = battles_from_judgments(judgments, sb.baseline, "judge-a").battles
        t0 = time.perf_counter()
        styles = answer_styles(answers, answers, StyleCache(None))
        featured = add_style_features(battles, styles, FEATURES, paths.answer_dir)
        feature_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    ours = rate_with_features(featured, sb.baseline, FEATURES, rounds=args.rounds)
    ours_seconds = time.perf_counter() - t0

    models = sorted(set(featured["model_a"]) | set(featured["model_b"]))
    rng = np.random.default_rng(42)
    t0 = time.perf_counter()
    theirs = [sklearn_round(featured.sample(frac=1.0, replace=True, random_state=rng), models, sb.baseline)
              for _ in range(args.rounds)]
    sklearn_seconds = time.perf_counter() - t0
    point_theirs = sklearn_round(featured, models, sb.baseline)
    gap = max(abs(ours.point[m] - point_theirs[i]) for i, m in enumerate(models))
    width_ours = np.mean([ours.upper(m) - ours.lower(m) for m in sb.models])
    width_theirs = np.mean([np.subtract(*np.percentile(np.array(theirs)[:, models.index(m)], [97.5, 2.5]))
                            for m in sb.models])

    n_judgments = sum(len(r) for r in judgments.values())
    print(f"{n_judgments} judgments, {len(featured)} battles, {len(FEATURES)} style features, {args.rounds} rounds")
    print(f"answer features (markdown counted from text, no cache): {feature_seconds:.2f} s")
    print(f"ours, point fit + bootstrap:        {ours_seconds:.2f} s")
    print(f"scikit-learn refit per round:       {sklearn_seconds:.2f} s")
    print(f"speed-up: {sklearn_seconds / ours_seconds:.1f}x")
    print(f"largest point difference: {gap:.4f} Elo; mean CI width ours {width_ours:.1f} vs scikit-learn {width_theirs:.1f} Elo")


if __name__ == "__main__":
    main()
