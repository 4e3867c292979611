"""Bradley-Terry ratings on the Elo scale, fitted on battle counts, with a bootstrap.

The seed (arena-hard-auto / arena-hard-local) fits a logistic regression on one row
per battle, each battle duplicated so that a tie becomes one win for each side, and
refits it on a resampled copy of the battle table for every bootstrap round. The
likelihood only depends on how many battles of each kind there are, so here battles
are grouped into kinds (model_a, model_b, winner) with counts, every round is a
vector of counts (a multinomial draw is exactly a resample of the battle rows), and
all rounds are fitted together by a batched Newton method on the pairwise counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from .errors import UserError

SCALE = 400.0
BASE = 10.0
INIT_RATING = 1000.0
_LN_BASE = math.log(BASE)
# A vanishing ridge keeps the fit finite when a model wins (or loses) every battle;
# it moves ordinary ratings by far less than the printed precision.
_RIDGE = 1e-9

BootstrapUnit = Literal["battles", "questions"]


@dataclass(frozen=True)
class BattleKinds:
    """Battles grouped by kind. `per_question` is (questions x kinds) counts."""

    models: list[str]
    kind_a: np.ndarray  # model index of model_a per kind
    kind_b: np.ndarray  # model index of model_b per kind
    kind_winner: np.ndarray  # 0 = model_a, 1 = model_b, 2 = tie
    per_question: np.ndarray  # int counts, shape (n_questions, n_kinds)
    question_ids: list

    @property
    def counts(self) -> np.ndarray:
        return self.per_question.sum(axis=0)


_WINNER_CODE = {"model_a": 0, "model_b": 1, "tie": 2, "tie (bothbad)": 2}


def group_battles(battles: pd.DataFrame) -> BattleKinds:
    if battles.empty:
        raise UserError("no battles to rate (no judgment has a verdict)")
    # Categorical codes: much faster than mapping strings row by row (pandas' arrow strings).
    winner = pd.Categorical(battles["winner"])
    code_of = np.array([_WINNER_CODE.get(w, 1) for w in winner.categories], dtype=np.int64)
    # The seed's regression counts any other winner value as a win of model_b (code 1).
    winners = code_of[winner.codes] if len(code_of) else np.ones(len(battles), dtype=np.int64)
    models = sorted(set(battles["model_a"].unique()) | set(battles["model_b"].unique()))
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
    return BattleKinds(
        models=models,
        kind_a=pair // len(models),
        kind_b=pair % len(models),
        kind_winner=kinds % 3,
        per_question=per_question,
        question_ids=list(question_ids),
    )


def fit_ratings(kinds: BattleKinds, counts: np.ndarray, anchor: str | None) -> np.ndarray:
    """Elo-scale ratings for each row of `counts` (rounds x kinds) -> (rounds x models).

    With `anchor` among the models its rating is fixed at 1000; otherwise the ratings
    are centred on 1000 (where the seed's solver, started at zero, ends up).
    """
    counts = np.atleast_2d(np.asarray(counts, dtype=float))
    n_models = len(kinds.models)
    real = kinds.kind_a != kinds.kind_b  # a model against itself tells nothing
    ka, kb, kw = kinds.kind_a[real], kinds.kind_b[real], kinds.kind_winner[real]
    c = counts[:, real]
    # A win of a counts 1 for a, a tie 1/2 for each side (the seed's duplication, halved).
    pos = c * np.where(kw == 0, 1.0, np.where(kw == 2, 0.5, 0.0))
    neg = c * np.where(kw == 1, 1.0, np.where(kw == 2, 0.5, 0.0))
    anchor_index = kinds.models.index(anchor) if anchor in kinds.models else 0
    free = np.array([i for i in range(n_models) if i != anchor_index], dtype=int)
    # design: +1 for model_a, -1 for model_b, restricted to the free models
    design = np.zeros((len(ka), n_models))
    design[np.arange(len(ka)), ka] += 1.0
    design[np.arange(len(kb)), kb] -= 1.0
    design = design[:, free]
    total = np.maximum((pos + neg).sum(axis=1, keepdims=True), 1.0)
    pos, neg = pos / total, neg / total
    theta = np.zeros((counts.shape[0], len(free)))
    eye = np.eye(len(free))
    for _ in range(200):
        d = _LN_BASE * theta @ design.T
        p = 1.0 / (1.0 + np.exp(-d))
        grad = _LN_BASE * (pos - (pos + neg) * p) @ design - _RIDGE * theta
        w = _LN_BASE**2 * (pos + neg) * p * (1.0 - p)
        hess = np.einsum("rk,ki,kj->rij", w, design, design) + _RIDGE * eye
        step = np.linalg.solve(hess, grad[..., None])[..., 0]
        step = np.clip(step, -1.0, 1.0)  # at most 400 Elo per step keeps Newton stable
        theta += step
        if np.max(np.abs(step)) < 1e-10:
            break
    ratings = np.zeros((counts.shape[0], n_models))
    ratings[:, free] = theta
    if anchor not in kinds.models:
        ratings -= ratings.mean(axis=1, keepdims=True)
    return SCALE * ratings + INIT_RATING


def bootstrap_counts(
    kinds: BattleKinds, rounds: int, rng: np.random.Generator, unit: BootstrapUnit = "battles"
) -> np.ndarray:
    """Counts per kind for each bootstrap round (rounds x kinds).

    "battles": resample battle rows with replacement (the seed's bootstrap).
    "questions": resample question ids; all battles of a question go together.
    """
    if unit == "battles":
        counts = kinds.counts
        n = int(counts.sum())
        return rng.multinomial(n, counts / n, size=rounds)
    n_q = kinds.per_question.shape[0]
    draws = rng.multinomial(n_q, np.full(n_q, 1.0 / n_q), size=rounds)
    return draws @ kinds.per_question


@dataclass
class RatingResult:
    """Point ratings and bootstrap samples, Elo scale, baseline at 1000."""

    point: pd.Series  # model -> Elo
    samples: pd.DataFrame  # rounds x models, columns ordered by median (as the seed)
    unit: BootstrapUnit
    level: float = 95.0  # the CI's coverage in percent: the (100 - level) / 2 and (100 + level) / 2 percentiles

    def lower(self, model: str) -> float:
        return float(np.percentile(self.samples[model], (100.0 - self.level) / 2))

    def upper(self, model: str) -> float:
        return float(np.percentile(self.samples[model], (100.0 + self.level) / 2))


def rate(
    battles: pd.DataFrame,
    baseline: str,
    *,
    rounds: int = 100,
    seed: int = 42,
    unit: BootstrapUnit = "battles",
) -> RatingResult:
    kinds = group_battles(battles)
    if baseline not in kinds.models:
        raise UserError(f"baseline {baseline!r} has no battles (models in battles: {', '.join(kinds.models)})")
    point = pd.Series(fit_ratings(kinds, kinds.counts, baseline)[0], index=kinds.models)
    samples = bootstrap_ratings(kinds, baseline, rounds=rounds, seed=seed, unit=unit)
    return RatingResult(point=point.sort_values(ascending=False), samples=samples, unit=unit)


def bootstrap_ratings(
    kinds: BattleKinds, baseline: str, *, rounds: int, seed: int, unit: BootstrapUnit = "battles"
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    counts = bootstrap_counts(kinds, rounds, rng, unit)
    samples = pd.DataFrame(fit_ratings(kinds, counts, baseline), columns=kinds.models)
    return samples[samples.median().sort_values(ascending=False).index]


def win_rate(elo: float | np.ndarray, against: float = INIT_RATING) -> float | np.ndarray:
    """Predicted probability that a model rated `elo` beats one rated `against`."""
    return 1.0 / (1.0 + BASE ** ((against - np.asarray(elo)) / SCALE))


# --- Bradley-Terry with per-battle feature columns (style control, length control) ---
#
# Continuous features make every battle its own kind, so the grouping above does not
# apply; the same batched Newton runs on unique battle rows instead. A bootstrap round is
# still a vector of counts over those rows (a multinomial draw is a resample of battles),
# and the Hessian of every round comes from one matrix product with the rows' outer
# products, precomputed once. scikit-learn would need one fit per round.


@dataclass(frozen=True)
class BattleRows:
    """Unique battle rows with their counts and feature values."""

    models: list[str]
    row_a: np.ndarray  # model index of model_a per row
    row_b: np.ndarray  # model index of model_b per row
    row_winner: np.ndarray  # 0 = model_a, 1 = model_b, 2 = tie
    features: np.ndarray  # (rows x features), float
    feature_names: list[str]
    copies: np.ndarray  # battle copies per row (a strong verdict counts --weight times)
    row_question: np.ndarray  # question index per row
    question_ids: list


def group_battle_rows(battles: pd.DataFrame, feature_names: list[str]) -> BattleRows:
    """Battles (one row per copy) with numeric columns `feature_names` -> unique rows with counts."""
    if battles.empty:
        raise UserError("no battles to rate (no judgment has a verdict)")
    missing = [f for f in feature_names if f not in battles]
    if missing:
        raise UserError(f"battles lack feature column(s) {', '.join(missing)}")
    frame = battles[["model_a", "model_b", "winner", *feature_names]].copy()
    frame["winner"] = frame["winner"].map(_WINNER_CODE).fillna(1).astype(int)
    frame["question_id"] = (battles["question_id"].astype(str) if "question_id" in battles
                            else pd.Series(np.arange(len(battles)).astype(str), index=battles.index))
    keys = ["question_id", "model_a", "model_b", "winner", *feature_names]
    grouped = frame.groupby(keys, sort=True, dropna=False).size().reset_index(name="copies")
    models = sorted(set(battles["model_a"]) | set(battles["model_b"]))
    index = {m: i for i, m in enumerate(models)}
    question_ids, row_question = np.unique(grouped["question_id"].to_numpy(), return_inverse=True)
    return BattleRows(
        models=models,
        row_a=grouped["model_a"].map(index).to_numpy(),
        row_b=grouped["model_b"].map(index).to_numpy(),
        row_winner=grouped["winner"].to_numpy(),
        features=grouped[feature_names].to_numpy(dtype=float).reshape(len(grouped), len(feature_names)),
        feature_names=list(feature_names),
        copies=grouped["copies"].to_numpy(dtype=np.int64),
        row_question=row_question,
        question_ids=list(question_ids),
    )


def bootstrap_row_counts(rows: BattleRows, rounds: int, rng: np.random.Generator,
                         unit: BootstrapUnit = "battles") -> np.ndarray:
    """Counts per battle row for each round (rounds x rows); the twin of bootstrap_counts."""
    if unit == "battles":
        n = int(rows.copies.sum())
        return rng.multinomial(n, rows.copies / n, size=rounds)
    n_q = len(rows.question_ids)
    draws = rng.multinomial(n_q, np.full(n_q, 1.0 / n_q), size=rounds)
    return draws[:, rows.row_question] * rows.copies


def fit_ratings_with_features(rows: BattleRows, counts: np.ndarray, anchor: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(Elo ratings rounds x models, feature coefficients rounds x features) for each row of `counts`.

    The model: P(model_a wins) = 1 / (1 + exp(-(ln10 (r_a - r_b) / 400 + beta . x))), ties half
    to each side, as fit_ratings; beta is in logits per unit of the feature (per standard
    deviation when the features are standardised). Ratings are those at x = 0.
    """
    counts = np.atleast_2d(np.asarray(counts, dtype=float))
    n_models = len(rows.models)
    real = rows.row_a != rows.row_b  # a model against itself tells nothing
    ra, rb, rw, x = rows.row_a[real], rows.row_b[real], rows.row_winner[real], rows.features[real]
    c = counts[:, real]
    pos = c * np.where(rw == 0, 1.0, np.where(rw == 2, 0.5, 0.0))
    neg = c * np.where(rw == 1, 1.0, np.where(rw == 2, 0.5, 0.0))
    anchor_index = rows.models.index(anchor) if anchor in rows.models else 0
    free = np.array([i for i in range(n_models) if i != anchor_index], dtype=int)
    indicators = np.zeros((len(ra), n_models))
    indicators[np.arange(len(ra)), ra] += _LN_BASE
    indicators[np.arange(len(rb)), rb] -= _LN_BASE
    design = np.hstack([indicators[:, free], x])  # logit = design @ theta
    n_params = design.shape[1]
    # the Hessian of all rounds is weights @ these outer products (one BLAS call per step)
    outer = (design[:, :, None] * design[:, None, :]).reshape(len(design), n_params * n_params)
    total = np.maximum((pos + neg).sum(axis=1, keepdims=True), 1.0)
    pos, neg = pos / total, neg / total
    theta = np.zeros((counts.shape[0], n_params))
    eye = np.eye(n_params)
    for _ in range(200):
        p = 1.0 / (1.0 + np.exp(-(theta @ design.T)))
        grad = (pos - (pos + neg) * p) @ design - _RIDGE * theta
        w = (pos + neg) * p * (1.0 - p)
        hess = (w @ outer).reshape(-1, n_params, n_params) + _RIDGE * eye
        step = np.linalg.solve(hess, grad[..., None])[..., 0]
        step = np.clip(step, -2.5, 2.5)  # bounded steps keep Newton stable from the zero start
        theta += step
        if np.max(np.abs(step)) < 1e-10:
            break
    ratings = np.zeros((counts.shape[0], n_models))
    ratings[:, free] = theta[:, : len(free)]
    if anchor not in rows.models:
        ratings -= ratings.mean(axis=1, keepdims=True)
    return SCALE * ratings + INIT_RATING, theta[:, len(free):]


@dataclass
class FeatureRatingResult(RatingResult):
    """A RatingResult whose scores come from the model coefficients alone, plus the feature coefficients."""

    coefficients: pd.Series | None = None  # feature -> point coefficient (logits per unit)
    coefficient_samples: pd.DataFrame | None = None  # rounds x features
    coefficient_unit: BootstrapUnit = "questions"  # what the coefficients' bootstrap resampled


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
    if baseline not in rows.models:
        raise UserError(f"baseline {baseline!r} has no battles (models in battles: {', '.join(rows.models)})")
    point_ratings, point_coefs = fit_ratings_with_features(rows, rows.copies, baseline)
    rng = np.random.default_rng(seed)
    counts = bootstrap_row_counts(rows, rounds, rng, unit)
    sample_ratings, sample_coefs = fit_ratings_with_features(rows, counts, baseline)
    coefficient_unit = coefficient_unit or unit
    if coefficient_unit != unit:
        coef_counts = bootstrap_row_counts(rows, rounds, np.random.default_rng(seed), coefficient_unit)
        _, sample_coefs = fit_ratings_with_features(rows, coef_counts, baseline)
    samples = pd.DataFrame(sample_ratings, columns=rows.models)
    samples = samples[samples.median().sort_values(ascending=False).index]
    point = pd.Series(point_ratings[0], index=rows.models).sort_values(ascending=False)
    return FeatureRatingResult(point=point, samples=samples, unit=unit,
                               coefficients=pd.Series(point_coefs[0], index=feature_names),
                               coefficient_samples=pd.DataFrame(sample_coefs, columns=feature_names),
                               coefficient_unit=coefficient_unit)


# --- mean score against the baseline (arena-hard-auto v2's printed number) ---


def _elo_of_win_rate(p: np.ndarray) -> np.ndarray:
    """The Elo gap whose predicted win rate is p, so the report turns it back into p."""
    p = np.clip(np.asarray(p, dtype=float), 1e-9, 1 - 1e-9)
    return INIT_RATING + SCALE * np.log10(p / (1 - p))


def mean_scores(
    battles: pd.DataFrame,
    baseline: str,
    *,
    rounds: int = 100,
    seed: int = 42,
    unit: BootstrapUnit = "battles",
) -> RatingResult:
    """Each model's mean battle score against the baseline (win 1, tie 1/2, loss 0) and a
    bootstrap per model (its own battles, or its own questions, resampled).

    Returned on the Elo scale (the rating whose predicted win rate is that mean) so that the
    report prints it as it prints Bradley-Terry scores; the baseline is 50% by definition.
    """
    if battles.empty:
        raise UserError("no battles to rate (no judgment has a verdict)")
    winner = battles["winner"].map(_WINNER_CODE).fillna(1).astype(int).to_numpy()
    a, b = battles["model_a"].to_numpy(), battles["model_b"].to_numpy()
    # score of the non-baseline side of each battle against the baseline
    score_b = np.where(winner == 1, 1.0, np.where(winner == 2, 0.5, 0.0))
    involved = (a == baseline) ^ (b == baseline)
    if not ((a == baseline) | (b == baseline)).any():
        raise UserError(f"baseline {baseline!r} has no battles")
    model = np.where(a == baseline, b, a)[involved]
    score = np.where(a == baseline, score_b, 1.0 - score_b)[involved]
    qids = (battles["question_id"].astype(str).to_numpy() if "question_id" in battles
            else np.arange(len(battles)).astype(str))[involved]
    rng = np.random.default_rng(seed)
    models = sorted(set(battles["model_a"]) | set(battles["model_b"]))
    point = {baseline: INIT_RATING}
    samples = {baseline: np.full(rounds, INIT_RATING)}
    for name in models:
        if name == baseline:
            continue
        mine = model == name
        if not mine.any():
            point[name], samples[name] = INIT_RATING, np.full(rounds, INIT_RATING)
            continue
        # per unit (battle outcome or question): summed score and battle count
        keys = qids[mine] if unit == "questions" else score[mine].astype(str)
        _, unit_of = np.unique(keys, return_inverse=True)
        score_sum = np.bincount(unit_of, weights=score[mine])
        n_battles = np.bincount(unit_of).astype(float)
        if unit == "questions":
            n_units = len(n_battles)
            draws = rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=rounds)
        else:  # resampling battles = a multinomial over the three outcomes
            n = int(n_battles.sum())
            draws = rng.multinomial(n, n_battles / n, size=rounds)
            score_sum, n_battles = score_sum / n_battles, np.ones_like(n_battles)
        point[name] = float(_elo_of_win_rate(score[mine].mean()))
        samples[name] = _elo_of_win_rate((draws @ score_sum) / np.maximum(draws @ n_battles, 1.0))
    frame = pd.DataFrame(samples)
    frame = frame[frame.median().sort_values(ascending=False).index]
    return RatingResult(point=pd.Series(point).sort_values(ascending=False), samples=frame, unit=unit)
