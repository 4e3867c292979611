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

The default rule looks only at the planned batch boundaries (a group-sequential design, `Design`,
boundaries from arenajudge.rating.group_sequential): at look k the pair's repeated confidence
interval is mean +- c_k sd / sqrt(n_k), c_k the Lan-DeMets boundary turned into a Student t
quantile for the estimated variance. The intervals of all planned looks cover the true mean
together with chance 1 - alpha, so a decision taken at any planned look (better, or equivalent
within the margin) is wrong with chance at most alpha; at other times nothing is guaranteed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from arenajudge.rating.group_sequential import SPENDING_FUNCTIONS, boundaries, expected_questions, student_bounds

GRID_STEP = 0.0025  # candidate means of d every 0.25 points of win rate
TRUNCATION = 0.5  # a stake never risks more than half the wealth
HEDGE = 0.5  # wealth split between the gambler betting "above m" and the one betting "below m"
RULES = ("gs", "cs")  # group-sequential looks at planned batches; the confidence sequence, valid at any time


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


# ---------------------------------------------------------------- the design of a run and its looks

@dataclass(frozen=True)
class Design:
    """How a run decides, fixed before its first question: kept in runs.jsonl so a decision can be recomputed."""

    rule: str  # "gs" (group-sequential, planned looks) or "cs" (confidence sequence, any time)
    spending: str | None  # gs: the alpha-spending function; cs: None
    looks: tuple[int, ...]  # questions judged at each planned look (the batch boundaries from min_questions on)
    batch: int
    alpha: float  # for the whole run, all pairs together
    pairs: int  # pairs compared; each gets alpha / pairs (Bonferroni)
    margin: float | None  # points; equivalence when the interval lies inside (-margin, margin)
    min_questions: int
    total: int  # questions in the order

    @property
    def alpha_pair(self) -> float:
        return self.alpha / self.pairs

    def as_record(self) -> dict[str, Any]:
        return {"rule": self.rule, "spending": self.spending, "looks": list(self.looks), "batch": self.batch,
                "alpha": self.alpha, "pairs": self.pairs, "margin": self.margin,
                "min_questions": self.min_questions, "total": self.total}

    @classmethod
    def from_record(cls, record: Any) -> Design:
        """The design runs.jsonl keeps; ValueError naming what is wrong."""
        if not isinstance(record, dict):
            raise ValueError("'design' is not an object")
        try:
            design = cls(rule=str(record["rule"]), spending=None if record["spending"] is None else str(record["spending"]),
                         looks=tuple(int(n) for n in record["looks"]), batch=int(record["batch"]),
                         alpha=float(record["alpha"]), pairs=int(record["pairs"]),
                         margin=None if record["margin"] is None else float(record["margin"]),
                         min_questions=int(record["min_questions"]), total=int(record["total"]))
        except KeyError as exc:
            raise ValueError(f"'design' has no key {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"'design' has a value of the wrong kind ({exc})") from None
        if design.rule not in RULES or (design.rule == "gs" and design.spending not in SPENDING_FUNCTIONS):
            raise ValueError(f"'design' names an unknown rule {design.rule!r} or spending {design.spending!r}")
        return design

    def fractions(self) -> tuple[float, ...]:
        """Information fractions of the looks: questions over the plan's last look."""
        return tuple(n / self.looks[-1] for n in self.looks)

    def bounds(self) -> np.ndarray:
        """Two-sided Z boundaries of the planned looks (gs)."""
        if self.rule != "gs" or not self.looks:
            return np.zeros(0)
        assert self.spending is not None
        return boundaries(self.fractions(), self.alpha_pair, self.spending)

    def look_at(self, judged: int) -> int | None:
        """Index of the last planned look at or before `judged` questions; None before the first."""
        passed = [k for k, n in enumerate(self.looks) if n <= judged]
        return passed[-1] if passed else None


def plan(rule: str, spending: str | None, total: int, batch: int, min_questions: int, alpha: float, pairs: int,
         margin: float | None) -> Design:
    """The looks: after every batch of the order from `min_questions` questions on (at least 2, for a
    variance), the last one at the order's end."""
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r} (known: {', '.join(RULES)})")
    ends = sorted({min(total, n) for n in range(batch, total + batch, batch)})
    looks = tuple(n for n in ends if n >= max(min_questions, 2))
    return Design(rule, spending if rule == "gs" else None, looks, batch, alpha, pairs, margin, min_questions, total)


def group_sequential_intervals(d: np.ndarray, looks: Sequence[int], bounds: np.ndarray
                               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, lower, upper) of the repeated confidence intervals at `looks`, in units of d; sequences x looks.

    d: sequences x questions (a 1-D d is one sequence). At a look after n questions the interval is
    mean +- t_k sd / sqrt(n), sd the sample standard deviation of those n differences and t_k the
    boundary `bounds[k]` as a Student t quantile at n - 1 degrees of freedom.
    """
    d = np.atleast_2d(np.asarray(d, dtype=float))
    n = np.asarray(looks, dtype=int)
    if len(n) and (n[0] < 2 or n[-1] > d.shape[1] or np.any(np.diff(n) <= 0)):
        raise ValueError(f"group_sequential_intervals: looks must rise from 2 to at most {d.shape[1]}")
    sums = np.cumsum(d, axis=1)[:, n - 1]
    squares = np.cumsum(d * d, axis=1)[:, n - 1]
    mean = sums / n
    variance = np.maximum(squares - n * mean * mean, 0.0) / (n - 1)
    half = student_bounds(bounds, n) * np.sqrt(variance / n)
    return mean, mean - half, mean + half


def decision_codes(lower: np.ndarray, upper: np.ndarray, margin: float | None) -> np.ndarray:
    """+1 / -1: the interval lies above / below 0 (B / A better); 2: inside (-margin, margin); 0: open."""
    lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    codes = np.where(lower > 0, 1, np.where(upper < 0, -1, 0))
    if margin is not None:
        codes = np.where((codes == 0) & (-margin < lower) & (upper < margin), 2, codes)
    return codes


def first_decisions(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(look index of the first decision, its code) per sequence of codes (sequences x looks); an
    undecided sequence stops at the last look with code 0."""
    decided = codes != 0
    first = np.where(decided.any(axis=1), decided.argmax(axis=1), codes.shape[1] - 1)
    return first, codes[np.arange(len(codes)), first]


# ---------------------------------------------------------------- one pair's decision


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
    rule: str = "cs"
    look: int = 0  # gs: the planned look (1-based) the interval belongs to; 0 before the first
    looks: int = 0  # gs: planned looks in all

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


DECISION_NAMES = {1: "better", -1: "better", 2: "equivalent", 0: "open"}


def decide(lower: float, upper: float, margin: float | None) -> str:
    """'better' when the interval excludes 0, 'equivalent' when it lies inside (-margin, margin)."""
    if math.isnan(lower):
        return "open"
    return DECISION_NAMES[int(decision_codes(np.array(lower), np.array(upper), margin))]


def pair_decision(outcomes: pd.DataFrame, model_a: str, model_b: str, questions: Sequence[str], design: Design
                  ) -> PairDecision:
    """The pair's interval over `questions` (the first ones of the order) and what it decides under `design`.

    cs: nothing is decided before `min_questions` questions are observed (the interval is still
    shown). gs: the interval and decision of the planned look `len(questions)`; at another count
    nothing is decided (the caller looks only at planned looks).
    """
    d = paired_differences(outcomes, model_a, model_b, questions)
    judged, alpha = len(questions), design.alpha_pair
    if len(d) == 0:
        return PairDecision(model_a, model_b, judged, 0, math.nan, -100.0, 100.0, alpha, "open", design.rule,
                            looks=len(design.looks))
    if design.rule == "cs":
        lower, upper = confidence_sequence((d + 1) / 2, alpha, horizon=design.total)
        lo, hi = 100 * (2 * lower[0, -1] - 1), 100 * (2 * upper[0, -1] - 1)
        decision = decide(lo, hi, design.margin) if len(d) >= design.min_questions else "open"
        return PairDecision(model_a, model_b, judged, len(d), 100 * float(d.mean()), float(lo), float(hi), alpha,
                            decision)
    k = design.looks.index(judged) if judged in design.looks else None
    if k is None or len(d) < 2:
        return PairDecision(model_a, model_b, judged, len(d), 100 * float(d.mean()), -100.0, 100.0, alpha, "open",
                            "gs", 0, len(design.looks))
    _, lower_gs, upper_gs = group_sequential_intervals(d, [len(d)], design.bounds()[[k]])
    lo, hi = max(-100.0, 100 * float(lower_gs[0, 0])), min(100.0, 100 * float(upper_gs[0, 0]))
    return PairDecision(model_a, model_b, judged, len(d), 100 * float(d.mean()), lo, hi, alpha,
                        decide(lo, hi, design.margin), "gs", k + 1, len(design.looks))


# ---------------------------------------------------------------- what a decision will cost


@dataclass
class Forecast:
    """Questions a decision is expected to need for a true gap (points), from the start of the order."""

    gap: float
    questions: float | None  # None: the differences so far cannot stand for a population with that gap
    decided: float  # chance of a decision by the last planned look


def tilted_weights(d: np.ndarray, target: float) -> np.ndarray | None:
    """Probabilities on the observed differences with mean `target`, closest to uniform (exponential
    tilting); None when the target lies outside what they span."""
    if not d.min() < target < d.max():
        return None
    centred = d - d.mean()

    def mean_at(eta: float) -> float:
        w = np.exp(eta * (centred - centred.max()))
        return float(w @ d / w.sum()) - target

    from scipy import optimize  # here: the confidence sequence alone never needs it

    eta = optimize.brentq(mean_at, -200.0, 200.0, xtol=1e-10)
    w = np.exp(eta * (centred - centred.max()))
    return w / w.sum()


def forecast(d: np.ndarray, design: Design, gaps: Sequence[float], sims: int = 100, seed: int = 0) -> list[Forecast]:
    """Expected questions to a decision that one model is better, for true gaps `gaps` (points), at the
    variance of the differences d so far (a run that decides nothing counts all the plan's questions).

    gs: the group-sequential recursion with drift gap sqrt(N) / sd (normal approximation, N the last
    look). cs: `sims` simulated runs per gap, drawing from the observed differences tilted to mean
    `gap` (a seeded Monte Carlo; the confidence sequence has no closed form).
    """
    sd = float(np.std(d, ddof=1)) if len(d) > 1 else 0.0
    if not design.looks or sd == 0:
        return [Forecast(g, None, 0.0) for g in gaps]
    out = []
    if design.rule == "gs":
        bounds = design.bounds()
        for g in gaps:
            theta = g / 100 * math.sqrt(design.looks[-1]) / sd
            questions, decided = expected_questions(design.fractions(), bounds, design.looks, theta)
            out.append(Forecast(g, questions, decided))
        return out
    for g in gaps:
        weights = tilted_weights(d, g / 100)
        if weights is None:
            out.append(Forecast(g, None, 0.0))
            continue
        rng = np.random.default_rng([seed, round(abs(g) * 1000), int(g < 0)])  # one gap's draws: the same alone or not
        draws = rng.choice(d, size=(sims, design.total), p=weights)
        lower, upper = confidence_sequence((draws + 1) / 2, design.alpha_pair, at=design.looks, horizon=design.total)
        codes = decision_codes(2 * lower - 1, 2 * upper - 1, None)
        first, code = first_decisions(codes)
        used = np.asarray(design.looks)[first]
        out.append(Forecast(g, float(used.mean()), float(np.mean(code != 0))))
    return out
