"""The arena-hard-local way of scoring, written plainly: one row per battle copy,
a logistic regression on the duplicated table, refitted on every bootstrap resample.

Slow and obviously correct; tests compare the fast rating module against it and
bench/bench_show_result.py times both in one run.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

LABEL_GAME1 = {"A=B": ("tie", 1), "A>B": ("model_a", 1), "A>>B": ("model_a", 3),
               "B>A": ("model_b", 1), "B>>A": ("model_b", 3)}
SWAP = {"model_a": "model_b", "model_b": "model_a", "tie": "tie"}


def battles_row_by_row(judgments: dict[str, list[dict[str, Any]]], baseline: str,
                       weight: int = 3, first_game_only: bool = False) -> pd.DataFrame:
    table = pd.DataFrame()
    for records in judgments.values():
        for record in records:
            for index, game in enumerate(record["games"][: 1 if first_game_only else 2]):
                score = game["score"]
                if score is None:
                    continue
                score = score.replace("[", "").replace("]", "")
                if score not in LABEL_GAME1:
                    continue
                winner, copies = LABEL_GAME1[score]
                if index == 1:
                    winner = SWAP[winner]
                copies = weight if copies == 3 else 1
                row = {"question_id": record["question_id"], "model_a": baseline,
                       "model_b": record["model"], "winner": winner}
                table = pd.concat([table, pd.DataFrame([row] * copies)])
    return table


def mle_elo(battles: pd.DataFrame, baseline: str) -> pd.Series:
    models = pd.concat([battles["model_a"], battles["model_b"]]).unique()
    index = pd.Series(np.arange(len(models)), index=models)
    doubled = pd.concat([battles, battles], ignore_index=True)
    n = len(doubled)
    x = np.zeros((n, len(models)))
    x[np.arange(n), index[doubled["model_a"]]] = +math.log(10)
    x[np.arange(n), index[doubled["model_b"]]] = -math.log(10)
    y = np.zeros(n)
    y[doubled["winner"] == "model_a"] = 1.0
    ties = (doubled["winner"] == "tie").to_numpy().copy()
    ties[n // 2:] = False  # the first copy of a tie is a win for A, the second a win for B
    y[ties] = 1.0
    model = LogisticRegression(fit_intercept=False, C=np.inf, tol=1e-8)
    model.fit(x, y)
    elo = 400 * model.coef_[0] + 1000
    if baseline in index.index:
        elo += 1000 - elo[index[baseline]]
    return pd.Series(elo, index=index.index).sort_values(ascending=False)


def bootstrap(battles: pd.DataFrame, baseline: str, rounds: int, seed: int = 42) -> pd.DataFrame:
    np.random.seed(seed)
    rows = [mle_elo(battles.sample(frac=1.0, replace=True), baseline) for _ in range(rounds)]
    frame = pd.DataFrame(rows)
    return frame[frame.median().sort_values(ascending=False).index]


def win_rates(point: pd.Series, samples: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """score, lower, upper in percent against the baseline, rounded to 2 decimals."""
    def pct(elo: float) -> float:
        return round(100 / (1 + 10 ** ((point[baseline] - elo) / 400)), 2)

    rows = []
    for model in point.index:
        rows.append({"model": model, "score": pct(point[model]),
                     "lower": pct(np.percentile(samples[model], 2.5)),
                     "upper": pct(np.percentile(samples[model], 97.5))})
    return pd.DataFrame(rows).set_index("model")
