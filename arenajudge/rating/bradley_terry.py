"""Scores of models from battles: Bradley-Terry ratings (plain, or with per-battle feature terms for
style and length control), each with a bootstrap; the rating method `bt` (see methods.py).

The seed (arena-hard-auto / arena-hard-local) fits a logistic regression on one row per battle,
each battle duplicated so that a tie becomes one win for each side, and refits it on a resampled
copy of the battle table for every bootstrap round. The likelihood only depends on how many
battles of each kind there are, so here identical battles are grouped with counts, every round is
a vector of counts (a multinomial draw is exactly a resample of the battle rows; `resample`), and
all rounds are fitted together by one batched Newton method (`fit_logistic`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from arenajudge.core.errors import UserError

SCALE = 400.0
BASE = 10.0
INIT_RATING = 1000.0
_LN_BASE = math.log(BASE)
# A vanishing ridge keeps the fit finite when a model wins (or loses) every battle;
# it moves ordinary ratings by far less than the printed precision.
_RIDGE = 1e-9
# The largest Newton step in any parameter. Started at zero, an undamped step overshoots where the
# likelihood is flat (a model or a feature that wins almost every battle). Where the optimum exists
# the clip changes only the path; where the battles separate (a tiny bench, a per-model length term
# that always picks the winner) the fit runs its 200 steps and the clip sets where it stops, so each
# fit keeps the clip its boards were printed with: 1 (400 Elo) for plain ratings, 2.5 for the fits
# with feature terms (fit_ratings picks it).
PLAIN_MAX_STEP = 1.0
FEATURE_MAX_STEP = 2.5

BootstrapUnit = Literal["battles", "questions"]

WINNER_CODE = {"model_a": 0, "model_b": 1, "tie": 2, "tie (bothbad)": 2}


# --- the resampler: every bootstrap in the package draws its rounds here ---


def resample(counts: np.ndarray, rounds: int, rng: np.random.Generator) -> np.ndarray:
    """How often each item is drawn in each of `rounds` resamples (rounds x items), where item i
    stands for counts[i] identical rows: drawing sum(counts) rows with replacement is one
    multinomial draw with probabilities counts / sum(counts). Questions are resampled with
    counts of ones."""
    n = int(counts.sum())
    return rng.multinomial(n, counts / n, size=rounds)


# --- battles grouped into identical ones ---


@dataclass(frozen=True)
class Matchups(ABC):
    """Groups of identical battles: who met whom and who won, with feature values per group."""

    models: list[str]
    model_a: np.ndarray  # model index of model_a per group
    model_b: np.ndarray  # model index of model_b per group
    winner: np.ndarray  # 0 = model_a, 1 = model_b, 2 = tie
    features: np.ndarray  # (groups x features), float; no columns for plain ratings
    feature_names: list[str]
    question_ids: list

    @property
    @abstractmethod
    def counts(self) -> np.ndarray:
        """Battles per group."""

    @abstractmethod
    def counts_of_questions(self, draws: np.ndarray) -> np.ndarray:
        """Battles per group (rounds x groups) when question i is drawn draws[:, i] times."""


@dataclass(frozen=True)
class BattleKinds(Matchups):
    """Battles grouped by kind (model_a, model_b, winner) over all questions; no features."""

    per_question: np.ndarray  # int counts, shape (n_questions, n_kinds)

    @property
    def counts(self) -> np.ndarray:
        return self.per_question.sum(axis=0)

    def counts_of_questions(self, draws: np.ndarray) -> np.ndarray:
        return draws @ self.per_question


@dataclass(frozen=True)
class BattleRows(Matchups):
    """Battles grouped into unique rows (question, model_a, model_b, winner, feature values)."""

    copies: np.ndarray  # battle copies per row (a strong verdict counts --weight times)
    row_question: np.ndarray  # question index per row

    @property
    def counts(self) -> np.ndarray:
        return self.copies

    def counts_of_questions(self, draws: np.ndarray) -> np.ndarray:
        return draws[:, self.row_question] * self.copies


def _winner_codes(winner: pd.Series) -> np.ndarray:
    """0 = model_a, 1 = model_b, 2 = tie; the seed's regression counts any other value as a win of model_b."""
    # Categorical codes: much faster than mapping strings row by row (pandas' arrow strings).
    categories = pd.Categorical(winner)
    code_of = np.array([WINNER_CODE.get(w, 1) for w in categories.categories], dtype=np.int64)
    return code_of[categories.codes] if len(code_of) else np.ones(len(winner), dtype=np.int64)


def _models_of(battles: pd.DataFrame) -> list[str]:
    if battles.empty:
        raise UserError("no battles to rate (no judgment has a verdict)")
    return sorted(set(battles["model_a"].unique()) | set(battles["model_b"].unique()))


def group_battles(battles: pd.DataFrame) -> BattleKinds:
    """Battles (one row per copy) -> counts per kind (model_a, model_b, winner) and question."""
    models = _models_of(battles)
    winners = _winner_codes(battles["winner"])
    a = pd.Categorical(battles["model_a"], categories=models).codes.astype(np.int64)
    b = pd.Categorical(battles["model_b"], categories=models).codes.astype(np.int64)
    kind_key = (a * len(models) + b) * 3 + winners
    kinds, kind_of_row = np.unique(kind_key, return_inverse=True)
    if "question_id" in battles:
        q_of_row, question_ids = pd.factorize(battles["question_id"].astype(str), sort=True)
    else:
        q_of_row, question_ids = np.arange(len(battles)), np.arange(len(battles)).astype(str)
    per_question = np.zeros((len(question_ids), len(kinds)), dtype=np.int64)
    np.add.at(per_question, (q_of_row, kind_of_row), 1)
    pair = kinds // 3
    return BattleKinds(models=models, model_a=pair // len(models), model_b=pair % len(models), winner=kinds % 3,
                       features=np.zeros((len(kinds), 0)), feature_names=[], question_ids=list(question_ids),
                       per_question=per_question)


def group_battle_rows(battles: pd.DataFrame, feature_names: list[str]) -> BattleRows:
    """Battles (one row per copy) with numeric columns `feature_names` -> unique rows with counts."""
    models = _models_of(battles)
    missing = [f for f in feature_names if f not in battles]
    if missing:
        raise UserError(f"battles lack feature column(s) {', '.join(missing)}")
    frame = battles[["model_a", "model_b", "winner", *feature_names]].copy()
    frame["winner"] = frame["winner"].map(WINNER_CODE).fillna(1).astype(int)
    frame["question_id"] = (battles["question_id"].astype(str) if "question_id" in battles
                            else pd.Series(np.arange(len(battles)).astype(str), index=battles.index))
    keys = ["question_id", "model_a", "model_b", "winner", *feature_names]
    grouped = frame.groupby(keys, sort=True, dropna=False).size().reset_index(name="copies")
    index = {m: i for i, m in enumerate(models)}
    question_ids, row_question = np.unique(grouped["question_id"].to_numpy(), return_inverse=True)
    return BattleRows(
        models=models,
        model_a=grouped["model_a"].map(index).to_numpy(),
        model_b=grouped["model_b"].map(index).to_numpy(),
        winner=grouped["winner"].to_numpy(),
        features=grouped[feature_names].to_numpy(dtype=float).reshape(len(grouped), len(feature_names)),
        feature_names=list(feature_names),
        question_ids=list(question_ids),
        copies=grouped["copies"].to_numpy(dtype=np.int64),
        row_question=row_question,
    )


def bootstrap_counts(groups: Matchups, rounds: int, rng: np.random.Generator,
                     unit: BootstrapUnit = "battles") -> np.ndarray:
    """Battles per group for each bootstrap round (rounds x groups).

    "battles": resample battle rows with replacement (the seed's bootstrap).
    "questions": resample question ids; all battles of a question go together.
    """
    if unit == "battles":
        return resample(groups.counts, rounds, rng)
    return groups.counts_of_questions(resample(np.ones(len(groups.question_ids), dtype=np.int64), rounds, rng))


# --- the solver ---


def fit_logistic(design: np.ndarray, wins: np.ndarray, losses: np.ndarray, max_step: float) -> np.ndarray:
    """Coefficients (rounds x parameters) of a logistic regression P(win) = 1 / (1 + exp(-design @ theta))
    for every round at once: row r of `wins` and `losses` (rounds x groups) weighs each design row.

    Newton's method from zero with steps clipped to `max_step` and a vanishing ridge; the Hessian of
    all rounds is one matrix product of the weights with the design rows' outer products.
    """
    n_params = design.shape[1]
    outer = (design[:, :, None] * design[:, None, :]).reshape(len(design), n_params * n_params)
    total = np.maximum((wins + losses).sum(axis=1, keepdims=True), 1.0)
    wins, losses = wins / total, losses / total
    theta = np.zeros((wins.shape[0], n_params))
    eye = np.eye(n_params)
    for _ in range(200):
        p = 1.0 / (1.0 + np.exp(-(theta @ design.T)))
        grad = (wins - (wins + losses) * p) @ design - _RIDGE * theta
        w = (wins + losses) * p * (1.0 - p)
        hess = (w @ outer).reshape(-1, n_params, n_params) + _RIDGE * eye
        step = np.linalg.solve(hess, grad[..., None])[..., 0]
        step = np.clip(step, -max_step, max_step)
        theta += step
        if np.max(np.abs(step)) < 1e-10:
            break
    return theta


def fit_ratings(groups: Matchups, counts: np.ndarray, anchor: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(Elo ratings rounds x models, feature coefficients rounds x features) for each row of `counts`.

    The model: P(model_a wins) = 1 / (1 + exp(-(ln10 (r_a - r_b) / 400 + beta . x))), a tie half a
    win for each side (the seed's duplication, halved); beta is in logits per unit of the feature
    (per standard deviation when the features are standardised), and the ratings are those at x = 0.
    With `anchor` among the models its rating is fixed at 1000; otherwise the ratings are centred
    on 1000 (where the seed's solver, started at zero, ends up).
    """
    counts = np.atleast_2d(np.asarray(counts, dtype=float))
    n_models = len(groups.models)
    real = groups.model_a != groups.model_b  # a model against itself tells nothing
    a, b, winner = groups.model_a[real], groups.model_b[real], groups.winner[real]
    c = counts[:, real]
    wins = c * np.where(winner == 0, 1.0, np.where(winner == 2, 0.5, 0.0))
    losses = c * np.where(winner == 1, 1.0, np.where(winner == 2, 0.5, 0.0))
    anchor_index = groups.models.index(anchor) if anchor in groups.models else 0
    free = np.array([i for i in range(n_models) if i != anchor_index], dtype=int)
    indicators = np.zeros((len(a), n_models))
    indicators[np.arange(len(a)), a] += _LN_BASE
    indicators[np.arange(len(b)), b] -= _LN_BASE
    max_step = FEATURE_MAX_STEP if groups.features.shape[1] else PLAIN_MAX_STEP
    theta = fit_logistic(np.hstack([indicators[:, free], groups.features[real]]), wins, losses, max_step)
    ratings = np.zeros((counts.shape[0], n_models))
    ratings[:, free] = theta[:, : len(free)]
    if anchor not in groups.models:
        ratings -= ratings.mean(axis=1, keepdims=True)
    return SCALE * ratings + INIT_RATING, theta[:, len(free):]


def win_rate(elo: float | np.ndarray, against: float = INIT_RATING) -> float | np.ndarray:
    """Predicted probability that a model rated `elo` beats one rated `against`."""
    return 1.0 / (1.0 + BASE ** ((against - np.asarray(elo)) / SCALE))


# --- Bradley-Terry boards ---


@dataclass
class RatingResult:
    """Point ratings and bootstrap samples, Elo scale, baseline at 1000."""

    point: pd.Series  # model -> Elo
    samples: pd.DataFrame  # rounds x models, columns ordered by median (as the seed)
    unit: BootstrapUnit
    level: float = 95.0  # the CI's coverage in percent: the (100 - level) / 2 and (100 + level) / 2 percentiles

    @property
    def models(self) -> list[str]:
        """The rated models, best first."""
        return list(self.point.index)

    def lower(self, model: str) -> float:
        return float(np.percentile(self.samples[model], (100.0 - self.level) / 2))

    def upper(self, model: str) -> float:
        return float(np.percentile(self.samples[model], (100.0 + self.level) / 2))


@dataclass
class FeatureRatingResult(RatingResult):
    """A RatingResult whose scores come from the model coefficients alone, plus the feature coefficients."""

    coefficients: pd.Series | None = None  # feature -> point coefficient (logits per unit)
    coefficient_samples: pd.DataFrame | None = None  # rounds x features
    coefficient_unit: BootstrapUnit = "questions"  # what the coefficients' bootstrap resampled


def by_median(samples: pd.DataFrame) -> pd.DataFrame:
    return samples[samples.median().sort_values(ascending=False).index]


def _check_baseline(groups: Matchups, baseline: str) -> None:
    if baseline not in groups.models:
        raise UserError(f"baseline {baseline!r} has no battles (models in battles: {', '.join(groups.models)})")


def rate(battles: pd.DataFrame, baseline: str, *, rounds: int = 100, seed: int = 42,
         unit: BootstrapUnit = "battles") -> RatingResult:
    kinds = group_battles(battles)
    _check_baseline(kinds, baseline)
    point = pd.Series(fit_ratings(kinds, kinds.counts, baseline)[0][0], index=kinds.models)
    counts = bootstrap_counts(kinds, rounds, np.random.default_rng(seed), unit)
    samples = pd.DataFrame(fit_ratings(kinds, counts, baseline)[0], columns=kinds.models)
    return RatingResult(point=point.sort_values(ascending=False), samples=by_median(samples), unit=unit)


def rate_with_features(
    battles: pd.DataFrame,
    baseline: str,
    feature_names: list[str],
    *,
    rounds: int = 100,
    seed: int = 42,
    unit: BootstrapUnit = "battles",
    coefficient_unit: BootstrapUnit | None = "questions",
) -> FeatureRatingResult:
    """Bradley-Terry with extra per-battle columns, bootstrapped; scores read with the features at 0.

    The coefficients' intervals come from a bootstrap over `coefficient_unit` (default: questions,
    whatever `unit` the scores use; None: the same as `unit`). Resampling battles treats the two
    games and the weighted copies of one judgment as independent, which makes a judge without any
    style bias look biased.
    """
    rows = group_battle_rows(battles, feature_names)
    _check_baseline(rows, baseline)
    point_ratings, point_coefs = fit_ratings(rows, rows.copies, baseline)
    counts = bootstrap_counts(rows, rounds, np.random.default_rng(seed), unit)
    sample_ratings, sample_coefs = fit_ratings(rows, counts, baseline)
    coefficient_unit = coefficient_unit or unit
    if coefficient_unit != unit:
        coef_counts = bootstrap_counts(rows, rounds, np.random.default_rng(seed), coefficient_unit)
        _, sample_coefs = fit_ratings(rows, coef_counts, baseline)
    point = pd.Series(point_ratings[0], index=rows.models).sort_values(ascending=False)
    return FeatureRatingResult(point=point, samples=by_median(pd.DataFrame(sample_ratings, columns=rows.models)),
                               unit=unit, coefficients=pd.Series(point_coefs[0], index=feature_names),
                               coefficient_samples=pd.DataFrame(sample_coefs, columns=feature_names),
                               coefficient_unit=coefficient_unit)


# --- mean score against the baseline (arena-hard-auto v2's printed number) ---


def elo_of_win_rate(p: float | np.ndarray) -> np.ndarray:
    """The Elo rating whose predicted win rate against the baseline (1000) is p."""
    p = np.clip(np.asarray(p, dtype=float), 1e-9, 1 - 1e-9)
    return INIT_RATING + SCALE * np.log10(p / (1 - p))


class BradleyTerry:
    """The seed's score: a Bradley-Terry model of every battle, win rate against the baseline from the ratings."""

    name = "bt"
    summary = "Bradley-Terry (default)"
    label: str | None = None  # the seed's board says nothing about its method
    whole_judgments = False

    def rate(self, battles: pd.DataFrame, baseline: str, *, rounds: int, seed: int,
             unit: BootstrapUnit) -> RatingResult:
        return rate(battles, baseline, rounds=rounds, seed=seed, unit=unit)
