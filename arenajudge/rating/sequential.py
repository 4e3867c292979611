"""Judge until decided: an anytime-valid interval for the paired difference of two models.

The statistic is question-paired, as in `--compare`: on each question a model's outcome is its
mean battle outcome against the baseline (win 1, tie 1/2, loss 0; a strong verdict counts as
`weight` battles), and the pair's difference d = outcome(B) - outcome(A) lies in [-1, 1]. Its
target is the mean of d over the population of questions the bench stands for, the bench's
questions being a random sample of it. Questions are looked at in one fixed seeded random order,
so the sequence of d is a sequence of independent draws from that population.

The interval is a betting confidence sequence for a bounded mean (Waudby-Smith & Ramdas,
"Estimating means of bounded random variables by betting", 2023): d is mapped to x = (d + 1) / 2
in [0, 1]; for every candidate mean m on a grid, two gamblers bet that the mean is above / below m
with predictable stakes (the "predictable plug-in" stakes, truncated so that the wealth stays
positive); m leaves the interval for good once the hedged wealth reaches 1 / alpha. By Ville's
inequality the true mean leaves with probability at most alpha, however many times the interval
is looked at. It is computed vectorised over the grid and over many sequences at once (the
simulation in bench/ uses the same function as the product).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

GRID_STEP = 0.0025  # candidate means of d every 0.25 points of win rate
TRUNCATION = 0.5  # a stake never risks more than half the wealth
HEDGE = 0.5  # wealth split between the gambler betting "above m" and the one betting "below m"


def question_order(question_ids: Iterable[Any], seed: int) -> list[str]:
    """The order in which questions are judged: a permutation that depends only on the ids and the seed."""
    ids = sorted({str(q) for q in question_ids})
    random.Random(seed).shuffle(ids)
    return ids


def outcome_table(battles: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """Mean battle outcome against the baseline per question (rows, as str) and model (columns).

    A question where a model has no battle (no judgment, or no game with a verdict) is NaN.
    """
    columns = {}
    for model in models:
        mine = battles[battles["model_b"] == model]
        value = np.where(mine["winner"] == "tie", 0.5, np.where(mine["winner"] == "model_b", 1.0, 0.0))
        columns[model] = pd.Series(value, index=mine.index).groupby(mine["question_id"].astype(str)).mean()
    return pd.DataFrame(columns, columns=list(models))


def paired_differences(outcomes: pd.DataFrame, model_a: str, model_b: str, questions: Sequence[str]) -> np.ndarray:
    """d = outcome(B) - outcome(A) on `questions` in their order, skipping questions where either has none."""
    table = outcomes.reindex([str(q) for q in questions])
    d = (table[model_b] - table[model_a]).to_numpy(dtype=float)
    return d[~np.isnan(d)]


def grid(step: float = GRID_STEP) -> np.ndarray:
    """Candidate means of x = (d + 1) / 2: d from -1 to 1 every `step`."""
    n = round(2 / step)
    return (np.linspace(-1.0, 1.0, n + 1) + 1.0) / 2.0


def stakes(x: np.ndarray, alpha: float, horizon: int | None = None) -> np.ndarray:
    """Predictable plug-in stakes lambda_t (before truncation), shape of x (sequences x time).

    lambda_t = sqrt(2 log(2/alpha) / (sigma2_{t-1} min(t log(1 + t), horizon))), sigma2 a running
    variance estimate that starts at 1/4 and uses only x_1 .. x_{t-1}. A bench has a known number
    of questions (`horizon`); once t log(1 + t) passes it the stakes stop shrinking, which narrows
    the interval over the last questions. The cap is fixed before any data, so validity holds.
    """
    t = np.arange(1, x.shape[-1] + 1, dtype=float)
    mean = (0.5 + np.cumsum(x, axis=-1)) / (t + 1)  # mu_hat_t, uses x_1 .. x_t
    sq = (0.25 + np.cumsum((x - mean) ** 2, axis=-1)) / (t + 1)  # sigma2_t
    prev = np.concatenate([np.full((*x.shape[:-1], 1), 0.25), sq[..., :-1]], axis=-1)  # sigma2_{t-1}
    scale = t * np.log1p(t) if horizon is None else np.minimum(t * np.log1p(t), horizon)
    return np.sqrt(2 * math.log(2 / alpha) / (prev * scale))


def confidence_sequence(x: np.ndarray, alpha: float, step: float = GRID_STEP, at: Sequence[int] | None = None,
                        horizon: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of the (1 - alpha) confidence sequence for the mean of x in [0, 1].

    x: sequences x time (a 1-D x is one sequence). Returns (lower, upper) on the scale of x,
    shaped (sequences, times): after each observation, or only after the counts of observations
    in `at` (bounds are the same either way; fewer are kept); `horizon`: see `stakes`. A
    candidate mean that was ever rejected stays out (the running intersection); the bounds are
    widened by one grid step so that a mean between two grid points is not lost. An emptied
    interval is NaN.
    """
    x = np.atleast_2d(np.asarray(x, dtype=float))
    if x.size and (x.min() < 0 or x.max() > 1):
        raise ValueError("confidence_sequence: observations must lie in [0, 1]")
    m = grid(step)
    n_seq, length = x.shape
    report = list(range(1, length + 1)) if at is None else sorted(set(at))
    if report and not 1 <= report[0] <= report[-1] <= length:
        raise ValueError(f"confidence_sequence: report times must lie in 1..{length}")
    lower = np.full((n_seq, len(report)), np.nan)
    upper = np.full((n_seq, len(report)), np.nan)
    lam = stakes(x, alpha, horizon)
    cap_up = TRUNCATION / np.maximum(m, 1e-12)  # keeps 1 + lambda (x - m) >= 1 - TRUNCATION
    cap_down = TRUNCATION / np.maximum(1 - m, 1e-12)
    wealth_up = np.ones((n_seq, len(m)))
    wealth_down = np.ones((n_seq, len(m)))
    alive = np.ones((n_seq, len(m)), dtype=bool)
    gap = np.empty_like(wealth_up)
    bet = np.empty_like(wealth_up)
    threshold = 1 / alpha
    width = m[1] - m[0]
    next_report = 0
    for t in range(length):
        np.subtract(x[:, t:t + 1], m, out=gap)
        np.minimum(lam[:, t:t + 1], cap_up, out=bet)
        bet *= gap
        bet += 1
        wealth_up *= bet
        np.minimum(lam[:, t:t + 1], cap_down, out=bet)
        bet *= gap
        np.subtract(1, bet, out=bet)
        wealth_down *= bet
        # hedged wealth max(h W+, (1-h) W-) < 1/alpha keeps m in the interval
        alive &= wealth_up < threshold / HEDGE
        alive &= wealth_down < threshold / (1 - HEDGE)
        if next_report < len(report) and report[next_report] == t + 1:
            first = alive.argmax(axis=1)
            last = len(m) - 1 - alive[:, ::-1].argmax(axis=1)
            empty = ~alive.any(axis=1)
            lower[:, next_report] = np.where(empty, np.nan, np.maximum(m[first] - width, 0.0))
            upper[:, next_report] = np.where(empty, np.nan, np.minimum(m[last] + width, 1.0))
            next_report += 1
    return lower, upper


@dataclass
class PairDecision:
    """Where the sequence of one pair stands: B minus A, in points of win rate against the baseline."""

    model_a: str
    model_b: str
    judged: int  # questions looked at, in judging order
    questions: int  # of those, questions where both models have a verdict (the difference is observed)
    diff: float
    lower: float
    upper: float
    alpha: float  # this pair's share of the run's alpha
    decision: str  # "better", "equivalent" or "open"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def settled(self) -> bool:
        return self.decision != "open"

    def describe(self) -> str:
        """What was decided, in words."""
        if self.decision == "better":
            better, worse = (self.model_b, self.model_a) if self.diff > 0 else (self.model_a, self.model_b)
            return f"{better} is better than {worse}"
        if self.decision == "equivalent":
            return "equivalent within the margin"
        return "not settled"


def decide(lower: float, upper: float, margin: float | None) -> str:
    """'better' when the interval excludes 0, 'equivalent' when it lies inside (-margin, margin)."""
    if math.isnan(lower):
        return "open"
    if lower > 0 or upper < 0:
        return "better"
    if margin is not None and -margin < lower and upper < margin:
        return "equivalent"
    return "open"


def pair_decision(outcomes: pd.DataFrame, model_a: str, model_b: str, questions: Sequence[str], alpha: float,
                  margin: float | None, min_questions: int, horizon: int) -> PairDecision:
    """The pair's interval over `questions` (in judging order; `horizon` questions in all) and what it decides.

    Before `min_questions` questions are observed nothing is decided (the interval is still shown).
    """
    d = paired_differences(outcomes, model_a, model_b, questions)
    if len(d) == 0:
        return PairDecision(model_a, model_b, len(questions), 0, math.nan, -100.0, 100.0, alpha, "open")
    lower, upper = confidence_sequence((d + 1) / 2, alpha, horizon=horizon)
    lo, hi = 100 * (2 * lower[0, -1] - 1), 100 * (2 * upper[0, -1] - 1)
    decision = decide(lo, hi, margin) if len(d) >= min_questions else "open"
    return PairDecision(model_a, model_b, len(questions), len(d), 100 * float(d.mean()), float(lo), float(hi), alpha,
                        decision)
