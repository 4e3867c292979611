"""The mean-score rating method (`--method mean`): each model's mean battle score against the baseline.

arena-hard-auto v2's number: win 1, tie 1/2, loss 0 over a model's battles against the baseline,
a bootstrap per model (its own battles or its own questions resampled), a judgment counted only
when both its games have a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from arenajudge.core.errors import UserError
from arenajudge.rating.bradley_terry import (
    WINNER_CODE,
    BootstrapUnit,
    RatingResult,
    by_median,
    elo_of_win_rate,
    resample,
    win_rate,
)


@dataclass
class MeanResult:
    """Each model's mean battle score against the baseline (win 1, tie 1/2, loss 0) and its bootstrap."""

    mean: pd.Series  # model -> mean score in [0, 1], best first; the baseline scores 1/2
    samples: pd.DataFrame  # rounds x models: the bootstrap's mean scores
    unit: BootstrapUnit
    level: float = 95.0  # the CI's coverage in percent

    @property
    def models(self) -> list[str]:
        """The scored models, best first."""
        return list(self.mean.index)

    def lower(self, model: str) -> float:
        return float(win_rate(np.percentile(self._elo_samples(model), (100.0 - self.level) / 2)))

    def upper(self, model: str) -> float:
        return float(win_rate(np.percentile(self._elo_samples(model), (100.0 + self.level) / 2)))

    def _elo_samples(self, model: str) -> np.ndarray:
        return elo_of_win_rate(self.samples[model].to_numpy())

    def as_ratings(self) -> RatingResult:
        """The same scores on the Elo scale, baseline at 1000: each mean becomes the rating whose
        predicted win rate against the baseline is that mean. The board prints every method from
        Elo numbers (`--show-elo` and the `results` column print them as they are), so a mean's
        percentiles are taken and its digits rounded where they always were."""
        # one model at a time, as the board always converted them: same arrays, same last bits
        point = pd.Series({model: float(elo_of_win_rate(value)) for model, value in self.mean.items()})
        samples = pd.DataFrame({model: self._elo_samples(model) for model in self.samples.columns})
        return RatingResult(point=point, samples=samples, unit=self.unit, level=self.level)


def mean_scores(battles: pd.DataFrame, baseline: str, *, rounds: int = 100, seed: int = 42,
                unit: BootstrapUnit = "battles") -> MeanResult:
    """Each model's mean battle score against the baseline (win 1, tie 1/2, loss 0) and a
    bootstrap per model (its own battles, or its own questions, resampled); the baseline's
    score is 1/2 by definition."""
    if battles.empty:
        raise UserError("no battles to rate (no judgment has a verdict)")
    winner = battles["winner"].map(WINNER_CODE).fillna(1).astype(int).to_numpy()
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
    mean = {baseline: 0.5}
    samples = {baseline: np.full(rounds, 0.5)}
    for name in models:
        if name == baseline:
            continue
        mine = model == name
        if not mine.any():
            mean[name], samples[name] = 0.5, np.full(rounds, 0.5)
            continue
        # per unit (battle outcome or question): summed score and battle count
        keys = qids[mine] if unit == "questions" else score[mine].astype(str)
        _, unit_of = np.unique(keys, return_inverse=True)
        score_sum = np.bincount(unit_of, weights=score[mine])
        n_battles = np.bincount(unit_of).astype(float)
        if unit == "questions":
            draws = resample(np.ones(len(n_battles), dtype=np.int64), rounds, rng)
        else:  # resampling battles = a multinomial over the three outcomes
            draws = resample(n_battles, rounds, rng)
            score_sum, n_battles = score_sum / n_battles, np.ones_like(n_battles)
        mean[name] = float(score[mine].mean())
        samples[name] = (draws @ score_sum) / np.maximum(draws @ n_battles, 1.0)
    return MeanResult(mean=pd.Series(mean).sort_values(ascending=False), samples=by_median(pd.DataFrame(samples)),
                      unit=unit)


class MeanScore:
    """`--method mean`, as a rating method: the mean scores, on the Elo scale every board prints from."""

    name = "mean"
    summary = "mean battle score vs the baseline with a bootstrap per model"
    label: str | None = ("mean battle score vs the baseline, bootstrap per model, judgments with a game "
                         "without a verdict dropped whole (arena-hard-auto v2)")
    whole_judgments = True

    def rate(self, battles: pd.DataFrame, baseline: str, *, rounds: int, seed: int,
             unit: BootstrapUnit) -> RatingResult:
        return mean_scores(battles, baseline, rounds=rounds, seed=seed, unit=unit).as_ratings()
