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
    winners = battles["winner"].map(_WINNER_CODE)
    # The seed's regression counts any other winner value as a win of model_b.
    winners = winners.fillna(1).astype(int)
    models = sorted(set(battles["model_a"]) | set(battles["model_b"]))
    index = {m: i for i, m in enumerate(models)}
    a = battles["model_a"].map(index).to_numpy()
    b = battles["model_b"].map(index).to_numpy()
    kind_key = (a * len(models) + b) * 3 + winners.to_numpy()
    kinds, kind_of_row = np.unique(kind_key, return_inverse=True)
    if "question_id" in battles:
        qkeys = battles["question_id"].astype(str)
    else:
        qkeys = pd.Series(np.arange(len(battles)).astype(str))
    question_ids, q_of_row = np.unique(qkeys.to_numpy(), return_inverse=True)
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

    def lower(self, model: str) -> float:
        return float(np.percentile(self.samples[model], 2.5))

    def upper(self, model: str) -> float:
        return float(np.percentile(self.samples[model], 97.5))


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
