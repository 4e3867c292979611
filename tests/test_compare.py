"""Paired comparison, Holm correction, combined score and CI projection against brute force."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from arenajudge.rating.bradley_terry import group_battles, resample
from arenajudge.rating.compare import (
    biggest_differences,
    bootstrap_p,
    combined_score,
    compare_models,
    holm,
    projected_half_width,
)
from arenajudge_testkit import seed_way

COLUMNS = ["question_id", "model_a", "model_b", "winner"]


def _battles(outcomes: dict[str, list[str]], strong: dict[str, set[int]] | None = None) -> pd.DataFrame:
    """outcomes[model][q] is the winner of both games of question q ('model_a' = baseline)."""
    rows = []
    for model, winners in outcomes.items():
        for q, winner in enumerate(winners):
            copies = 3 if strong and q in strong.get(model, set()) else 1
            rows += [(f"q{q:02d}", "base", model, winner)] * (2 * copies)
    return pd.DataFrame(rows, columns=COLUMNS)


def _random_outcomes(rng: np.random.Generator, n: int, p_win: float) -> list[str]:
    return list(rng.choice(["model_b", "model_a", "tie"], size=n, p=[p_win, 0.9 - p_win, 0.1]))


def test_paired_bootstrap_equals_brute_force():
    rng = np.random.default_rng(0)
    battles = _battles({"A": _random_outcomes(rng, 15, 0.4), "B": _random_outcomes(rng, 15, 0.6),
                        "C": _random_outcomes(rng, 15, 0.5)}, strong={"B": {1, 4}})
    results, _point = compare_models(battles, ["A", "B", "C"], "base", rounds=40, seed=5)

    kinds = group_battles(battles)
    draws = resample(np.ones(len(kinds.question_ids), dtype=np.int64), 40, np.random.default_rng(5))
    by_question = {q: battles[battles["question_id"] == q] for q in kinds.question_ids}
    rounds = []
    for r in range(40):
        sample = pd.concat([by_question[q] for i, q in enumerate(kinds.question_ids) for _ in range(int(draws[r, i]))])
        elo = seed_way.mle_elo(sample, "base")
        rounds.append({m: 100 / (1 + 10 ** ((elo["base"] - elo[m]) / 400)) for m in ("A", "B", "C")})
    frame = pd.DataFrame(rounds)
    full = seed_way.mle_elo(battles, "base")
    for result in results:
        diffs = frame[result.model_b] - frame[result.model_a]
        expected_diff = 100 / (1 + 10 ** ((full["base"] - full[result.model_b]) / 400)) - \
            100 / (1 + 10 ** ((full["base"] - full[result.model_a]) / 400))
        assert result.diff == pytest.approx(expected_diff, abs=0.05)
        assert result.lower == pytest.approx(np.percentile(diffs, 2.5), abs=0.05)
        assert result.upper == pytest.approx(np.percentile(diffs, 97.5), abs=0.05)
        assert result.p_value == pytest.approx(bootstrap_p(diffs.round(3).to_numpy()))  # sklearn's tolerance


def test_identical_judgments_differ_by_nothing():
    rng = np.random.default_rng(1)
    same = _random_outcomes(rng, 40, 0.5)
    [result], _ = compare_models(_battles({"A": same, "B": same}), ["A", "B"], "base", rounds=500)
    assert result.diff == pytest.approx(0, abs=1e-9)
    assert result.lower == pytest.approx(0, abs=1e-9) and result.upper == pytest.approx(0, abs=1e-9)
    assert result.p_value == 1.0 and not result.significant


def test_a_model_that_wins_where_the_other_loses_is_significant():
    a = ["model_a"] * 20 + ["model_b"] * 20
    b = ["model_b"] * 20 + ["model_b"] * 20
    [result], point = compare_models(_battles({"A": a, "B": b}), ["A", "B"], "base", rounds=1000)
    assert result.diff > 40 and result.lower > 20
    assert result.p_value < 0.002 and result.significant
    assert point["B"] > point["A"]


def test_holm_matches_a_hand_worked_case():
    # sorted: 0.005 x4 = 0.02; 0.01 x3 = 0.03; 0.03 x2 = 0.06; 0.04 x1 = 0.04 -> raised to 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_holm_marks_only_the_strong_pair():
    rng = np.random.default_rng(3)
    base_line = _random_outcomes(rng, 60, 0.45)
    near = [w if i % 15 else "model_b" for i, w in enumerate(base_line)]  # a hair better
    far = ["model_b"] * 60
    results, _ = compare_models(_battles({"A": base_line, "B": near, "C": far}), ["A", "B", "C"], "base", rounds=1000)
    marks = {(r.model_a, r.model_b): r.significant for r in results}
    assert marks[("A", "C")] and marks[("B", "C")] and not marks[("A", "B")]
    assert all(r.p_holm >= r.p_value for r in results)


def test_biggest_differences_rank_questions():
    a = ["model_b", "model_a", "tie", "model_b"]
    b = ["model_b", "model_b", "model_a", "model_b"]
    top = biggest_differences(_battles({"A": a, "B": b}), "A", "B", n=2)
    assert list(top.index) == ["q01", "q02"]
    assert list(top["diff"]) == [1.0, -0.5]


def test_combined_score_weights_categories():
    rng = np.random.default_rng(4)
    outcomes = _random_outcomes(rng, 30, 0.6)
    battles = _battles({"A": outcomes})
    categories = {f"q{q:02d}": ("hard" if q < 20 else "creative") for q in range(30)}

    def rate_of(qs: range) -> float:
        w = [outcomes[q] for q in qs]
        return 100 * (w.count("model_b") + 0.5 * w.count("tie")) / len(w)

    by_count = combined_score(battles, categories, "base", None, rounds=200)
    assert by_count.loc["A", "score"] == pytest.approx((20 * rate_of(range(20)) + 10 * rate_of(range(20, 30))) / 30, abs=1e-6)
    equal = combined_score(battles, categories, "base", {"hard": 1, "creative": 1}, rounds=200)
    assert equal.loc["A", "score"] == pytest.approx((rate_of(range(20)) + rate_of(range(20, 30))) / 2, abs=1e-6)
    assert equal.loc["A", "lower"] < equal.loc["A", "score"] < equal.loc["A", "upper"]


def test_projected_half_width_shrinks_with_the_square_root():
    rng = np.random.default_rng(5)
    outcomes = _random_outcomes(rng, 50, 0.5)
    now, full = projected_half_width(_battles({"A": outcomes}), "A", 200)
    values = pd.Series([{"model_b": 1.0, "tie": 0.5, "model_a": 0.0}[w] for w in outcomes])
    assert now == pytest.approx(1.96 * values.std() * 100 / np.sqrt(50))
    assert full == pytest.approx(now / 2)
