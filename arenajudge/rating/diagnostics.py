"""How far to trust the judges: position consistency, ties, missing verdicts, agreement
between judges, correlation of their leaderboards, and how well a board separates models.

Verdicts are compared by who wins (baseline, tie, model), read through battles.outcome so
that game 2's swapped positions are undone first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from arenajudge.rating.battles import clean_label, outcome

OVERALL = "overall"


@dataclass
class ConsistencyRow:
    """One model's (or all models') judgments by one judge."""

    model: str
    judgments: int = 0
    games: int = 0
    missing: int = 0  # games with no verdict
    ties: int = 0  # games whose verdict is a tie
    paired: int = 0  # judgments with a verdict in both games
    consistent: int = 0  # of those, judgments whose two games name the same winner

    @property
    def position_consistency(self) -> float:
        return self.consistent / self.paired if self.paired else float("nan")

    @property
    def tie_share(self) -> float:
        verdicts = self.games - self.missing
        return self.ties / verdicts if verdicts else float("nan")

    @property
    def missing_share(self) -> float:
        return self.missing / self.games if self.games else float("nan")

    def add(self, other: ConsistencyRow) -> None:
        for name in ("judgments", "games", "missing", "ties", "paired", "consistent"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def _winners(record: dict[str, Any]) -> list[str | None]:
    """Winner (model_a = baseline, model_b = judged model, tie) of each of the first two games."""
    result: list[str | None] = []
    for index, game in enumerate(record.get("games", [])[:2]):
        label = clean_label(game.get("score") if isinstance(game, dict) else None)
        result.append(None if label is None else outcome(label, index)[0])
    return result


def position_consistency(judgments: dict[str, list[dict[str, Any]]]) -> list[ConsistencyRow]:
    """Per model (sorted), then the overall row, for one judge's records {model: [records]}."""
    per_model: dict[str, ConsistencyRow] = {}
    for file_model, records in judgments.items():
        for record in records:
            model = record.get("model") or file_model
            row = per_model.setdefault(model, ConsistencyRow(model))
            winners = _winners(record)
            row.judgments += 1
            row.games += len(winners)
            row.missing += sum(w is None for w in winners)
            row.ties += sum(w == "tie" for w in winners)
            if len(winners) == 2 and None not in winners:
                row.paired += 1
                row.consistent += winners[0] == winners[1]
    rows = [per_model[m] for m in sorted(per_model)]
    overall = ConsistencyRow(OVERALL)
    for row in rows:
        overall.add(row)
    return [*rows, overall]


def _verdict_table(judgments: dict[str, list[dict[str, Any]]]) -> dict[tuple[str, str, int], str]:
    """(model, question_id, game) -> winner, for games with a verdict."""
    table = {}
    for file_model, records in judgments.items():
        for record in records:
            model = record.get("model") or file_model
            for index, winner in enumerate(_winners(record)):
                if winner is not None:
                    table[(model, str(record["question_id"]), index)] = winner
    return table


@dataclass(frozen=True)
class Agreement:
    judge_1: str
    judge_2: str
    games: int  # games both judges gave a verdict on
    agreement: float  # share of those with the same winner
    kappa: float  # Cohen's kappa over the three outcomes


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> float:
    """(observed - chance agreement) / (1 - chance), chance from each rater's own outcome shares."""
    n = len(first)
    if n == 0:
        return float("nan")
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    categories = set(first) | set(second)
    chance = sum((sum(a == k for a in first) / n) * (sum(b == k for b in second) / n) for k in categories)
    return (observed - chance) / (1 - chance) if chance < 1 else float("nan")


def judge_agreement(judgments_by_judge: dict[str, dict[str, list[dict[str, Any]]]]) -> list[Agreement]:
    """Every pair of judges, on the games both judged."""
    tables = {judge: _verdict_table(records) for judge, records in judgments_by_judge.items()}
    result = []
    for j1, j2 in combinations(tables, 2):
        common = sorted(set(tables[j1]) & set(tables[j2]))
        first = [tables[j1][k] for k in common]
        second = [tables[j2][k] for k in common]
        same = sum(a == b for a, b in zip(first, second, strict=True))
        result.append(Agreement(j1, j2, len(common), same / len(common) if common else float("nan"),
                                cohen_kappa(first, second)))
    return result


@dataclass(frozen=True)
class BoardCorrelation:
    judge_1: str
    judge_2: str
    models: int
    spearman: float
    kendall: float  # tau-b (handles tied scores)


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n along the last axis, tied values sharing their mean rank (as scipy's rankdata)."""
    x = np.asarray(x, dtype=float)
    if x.shape[-1] <= 64:  # a few models: compare every pair at once
        below = (x[..., None, :] < x[..., :, None]).sum(axis=-1)
        equal = (x[..., None, :] == x[..., :, None]).sum(axis=-1)
        return below + (equal + 1) / 2
    rows = x.reshape(-1, x.shape[-1])
    ranks = np.empty_like(rows)
    for i, row in enumerate(rows):  # many values (games): sort once per row
        _, where, counts = np.unique(row, return_inverse=True, return_counts=True)
        ranks[i] = (np.cumsum(counts) - (counts - 1) / 2)[where]
    return ranks.reshape(x.shape)


def _prepare(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.atleast_2d(np.asarray(x, dtype=float))
    y = np.asarray(y, dtype=float)
    constant = (np.ptp(x, axis=1) == 0) | (np.ptp(y) == 0) if x.shape[1] else np.ones(len(x), dtype=bool)
    return x, y, constant | (x.shape[1] < 2)


def spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row of x (rounds x n) with y (n): Pearson's correlation of average ranks, as
    scipy's spearmanr; NaN where a side is constant or n < 2."""
    x, y, undefined = _prepare(x, y)
    if undefined.all():
        return np.full(len(x), np.nan)
    rank_x = average_ranks(x)
    rank_x -= rank_x.mean(axis=1, keepdims=True)
    rank_y = average_ranks(y)
    rank_y -= rank_y.mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (rank_x @ rank_y) / np.sqrt((rank_x**2).sum(axis=1) * (rank_y**2).sum())
    rho[undefined] = np.nan
    return rho


def kendall_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each row of x (rounds x n) with y (n), as scipy's kendalltau: concordant minus
    discordant pairs over sqrt((pairs - pairs tied in x) (pairs - pairs tied in y)); NaN where a side is
    constant or n < 2. Compares every pair: meant for boards, not for thousands of values."""
    x, y, undefined = _prepare(x, y)
    if undefined.all():
        return np.full(len(x), np.nan)
    first, second = np.triu_indices(x.shape[1], k=1)
    sign_x = np.sign(x[:, first] - x[:, second])
    sign_y = np.sign(y[first] - y[second])
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = (sign_x @ sign_y) / np.sqrt((len(first) - (sign_x == 0).sum(axis=1)) * (len(first) - (sign_y == 0).sum()))
    tau[undefined] = np.nan
    return tau


def rank_correlations(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Spearman, Kendall tau-b) of each row of x with y: one definition for --diagnostics and the judge card."""
    return spearman_rows(x, y), kendall_rows(x, y)


def board_correlation(scores_by_judge: dict[str, dict[str, float]]) -> list[BoardCorrelation]:
    """Rank correlation of each pair of judges' scores over the models both rated."""
    result = []
    for j1, j2 in combinations(scores_by_judge, 2):
        models = sorted(set(scores_by_judge[j1]) & set(scores_by_judge[j2]))
        x = np.array([scores_by_judge[j1][m] for m in models])
        y = np.array([scores_by_judge[j2][m] for m in models])
        rho, tau = rank_correlations(x, y)
        result.append(BoardCorrelation(j1, j2, len(models), float(rho[0]), float(tau[0])))
    return result


def separability(intervals: dict[str, tuple[float, float]]) -> tuple[float, int]:
    """(share of model pairs whose intervals do not overlap, number of pairs)."""
    pairs = list(combinations(sorted(intervals), 2))
    if not pairs:
        return float("nan"), 0
    apart = sum(intervals[a][1] < intervals[b][0] or intervals[b][1] < intervals[a][0] for a, b in pairs)
    return apart / len(pairs), len(pairs)


def _pct(x: float) -> str:
    return "  n/a " if np.isnan(x) else f"{100 * x:5.1f}%"


def consistency_lines(judge: str, rows: list[ConsistencyRow]) -> list[str]:
    lines = [f"## judge diagnostics: {judge} (position consistency = both games name the same winner "
             "once positions are swapped)"]
    for row in rows:
        lines.append(f"{row.model : <50} | position consistency: {_pct(row.position_consistency)} | "
                     f"ties: {_pct(row.tie_share)} | no verdict: {_pct(row.missing_share)} | judgments: {row.judgments}")
    return lines


def agreement_lines(agreements: list[Agreement], correlations: list[BoardCorrelation]) -> list[str]:
    by_pair = {(c.judge_1, c.judge_2): c for c in correlations}
    lines = []
    for a in agreements:
        c = by_pair.get((a.judge_1, a.judge_2))
        line = (f"## judges {a.judge_1} vs {a.judge_2}: verdict agreement {_pct(a.agreement).strip()} "
                f"on {a.games} games, Cohen's kappa {a.kappa:.3f}")
        if c is not None:
            line += f"; leaderboards over {c.models} models: Spearman {c.spearman:.3f}, Kendall {c.kendall:.3f}"
        lines.append(line)
    return lines
