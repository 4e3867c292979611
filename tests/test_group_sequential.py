"""Group-sequential boundaries: against published constants, against Monte Carlo, and the design a run records."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats

from arenajudge.rating.group_sequential import (
    SPENDING_FUNCTIONS,
    boundaries,
    crossing_probabilities,
    expected_questions,
    spent_alpha,
    student_bounds,
)
from arenajudge.rating.sequential import (
    Design,
    decide,
    decision_codes,
    first_decisions,
    forecast,
    group_sequential_intervals,
    plan,
    tilted_weights,
)

FIVE = np.arange(1, 6) / 5


def brownian_z(fractions: np.ndarray, paths: int, theta: float, seed: int) -> np.ndarray:
    """Z_k = S(t_k) / sqrt(t_k) of a Brownian motion with drift theta, paths x looks: the statistic the
    boundaries are for, drawn directly rather than integrated."""
    rng = np.random.default_rng(seed)
    steps = np.diff(np.concatenate([[0.0], fractions]))
    s = np.cumsum(rng.standard_normal((paths, len(fractions))) * np.sqrt(steps) + theta * steps, axis=1)
    return s / np.sqrt(fractions)


def test_classic_pocock_and_obrien_fleming_constants():
    """Pocock's constant boundary and O'Brien-Fleming's c sqrt(K/k) for K = 5 equal looks, two-sided 0.05:
    2.413 and 2.040 in Pocock (1977), O'Brien & Fleming (1979) and Jennison & Turnbull's Tables 2.1 and 2.3."""
    def total(bounds: np.ndarray) -> float:
        up, down = crossing_probabilities(FIVE, bounds)
        return float(up.sum() + down.sum())

    pocock = optimize.brentq(lambda c: total(np.full(5, c)) - 0.05, 1.5, 4.0)
    obf = optimize.brentq(lambda c: total(c / np.sqrt(FIVE)) - 0.05, 1.5, 4.0)
    assert pocock == pytest.approx(2.413, abs=5e-4)
    assert obf == pytest.approx(2.040, abs=5e-4)
    # one look: the fixed-sample test
    assert boundaries([1.0], 0.05, "pocock")[0] == pytest.approx(stats.norm.isf(0.025), abs=1e-8)


def test_first_boundary_spends_exactly_the_first_share():
    for spending in SPENDING_FUNCTIONS:
        bounds = boundaries(FIVE, 0.05, spending)
        first = float(spent_alpha(spending, 0.2, 0.05))
        assert 2 * stats.norm.sf(bounds[0]) == pytest.approx(first, rel=1e-8)
        assert spent_alpha(spending, 1.0, 0.05) == pytest.approx(0.05)
    # Lan & DeMets' O'Brien-Fleming-like function in closed form at the first look
    assert boundaries(FIVE, 0.05, "obf")[0] == pytest.approx(stats.norm.isf(0.025) / math.sqrt(0.2), abs=1e-6)
    # Pocock-like boundaries are nearly flat, O'Brien-Fleming-like ones fall steeply, hsd lies between
    pocock, obf, hsd = (boundaries(FIVE, 0.05, s) for s in ("pocock", "obf", "hsd"))
    assert np.ptp(pocock) < 0.1 and obf[0] > 4 and obf[-1] < pocock[-1]
    assert pocock[0] < hsd[0] < obf[0] and obf[-1] < hsd[-1] < pocock[-1]


@pytest.mark.parametrize("spending", SPENDING_FUNCTIONS)
@pytest.mark.parametrize("fractions", [FIVE, np.array([50, 100, 150, 200, 250, 300, 350, 400, 450, 480]) / 480],
                         ids=["5 equal looks", "the looks of 480 questions in batches of 50"])
def test_monte_carlo_spends_the_allotted_alpha_at_every_look(spending, fractions):
    bounds = boundaries(fractions, 0.05, spending)
    z = brownian_z(fractions, 1_000_000, 0.0, seed=11)
    crossed = np.abs(z) >= bounds
    first, _ = first_decisions(crossed.astype(int))
    observed = np.bincount(first[crossed.any(axis=1)], minlength=len(fractions)) / len(z)
    allotted = np.diff(np.concatenate([[0.0], spent_alpha(spending, fractions, 0.05)]))
    se = np.sqrt(allotted * (1 - allotted) / len(z))
    assert np.all(np.abs(observed - allotted) <= 4 * se + 2e-5), (observed, allotted)
    assert crossed.any(axis=1).mean() == pytest.approx(0.05, abs=4 * math.sqrt(0.05 * 0.95 / len(z)))


@pytest.mark.parametrize("theta", [1.5, 3.0])
def test_expected_questions_with_a_drift_match_monte_carlo(theta):
    looks = np.arange(50, 501, 50)
    fractions = looks / 500
    bounds = boundaries(fractions, 0.05, "hsd")
    questions, decided = expected_questions(fractions, bounds, looks, theta)
    z = brownian_z(fractions, 400_000, theta, seed=5)
    crossed = np.abs(z) >= bounds
    first, code = first_decisions(crossed.astype(int))
    used = np.where(code != 0, looks[first], 500)
    assert decided == pytest.approx(crossed.any(axis=1).mean(), abs=0.003)
    assert questions == pytest.approx(used.mean(), abs=4 * used.std() / math.sqrt(len(used)) + 0.2)
    up, down = crossing_probabilities(fractions, bounds, theta)
    assert down.sum() < 1e-3 < up.sum()  # a positive drift crosses above


def test_student_bounds_widen_for_few_questions_and_meet_the_normal_ones():
    bounds = np.array([2.5, 2.2])
    wide = student_bounds(bounds, [10, 20])
    assert np.all(wide > bounds)
    assert wide[0] == pytest.approx(stats.t.isf(stats.norm.sf(2.5), 9))
    assert student_bounds(bounds, [100_000, 200_000]) == pytest.approx(bounds, abs=1e-3)


def test_intervals_are_the_mean_plus_minus_the_student_boundary():
    rng = np.random.default_rng(3)
    d = rng.choice([-1, -0.5, 0, 0.5, 1], size=(4, 60))
    looks = [20, 40, 60]
    bounds = boundaries([1 / 3, 2 / 3, 1], 0.05, "obf")
    mean, lower, upper = group_sequential_intervals(d, looks, bounds)
    for row in range(4):
        for k, n in enumerate(looks):
            x = d[row, :n]
            half = stats.t.isf(stats.norm.sf(bounds[k]), n - 1) * x.std(ddof=1) / math.sqrt(n)
            assert (mean[row, k], lower[row, k], upper[row, k]) == pytest.approx((x.mean(), x.mean() - half, x.mean() + half))
    with pytest.raises(ValueError):
        group_sequential_intervals(d, [1, 60], bounds[:2])


def test_decisions_and_the_first_one():
    codes = decision_codes(np.array([[-0.1, 0.1], [-0.3, -0.2], [-0.02, -0.01]]),
                           np.array([[0.2, 0.3], [-0.1, -0.05], [0.01, 0.02]]), 0.05)
    assert codes.tolist() == [[0, 1], [-1, -1], [2, 2]]
    first, code = first_decisions(np.array([[0, 1], [0, 0], [2, 1]]))
    assert first.tolist() == [1, 1, 0] and code.tolist() == [1, 0, 2]
    assert decide(0.5, 3.0, None) == "better" and decide(-1.0, 1.0, 2.0) == "equivalent" and decide(-1, 2.5, 2) == "open"


def test_a_plan_and_its_record():
    design = plan("gs", "hsd", 480, 50, 60, 0.05, 3, 2.0)
    assert design.looks == (100, 150, 200, 250, 300, 350, 400, 450, 480)  # nothing before --min-questions
    assert design.alpha_pair == pytest.approx(0.05 / 3)
    assert design.look_at(99) is None and design.look_at(120) == 0 and design.look_at(480) == 8
    assert Design.from_record(design.as_record()) == design
    assert plan("cs", "hsd", 480, 50, 60, 0.05, 3, None).spending is None
    assert plan("gs", "obf", 30, 50, 0, 0.05, 1, None).looks == (30,)  # one look: the fixed-sample test
    np.testing.assert_allclose(plan("gs", "obf", 30, 50, 0, 0.05, 1, None).bounds(), [stats.norm.isf(0.025)])
    for broken, message in [({**design.as_record(), "rule": "xx"}, "unknown rule 'xx'"),
                            ({k: v for k, v in design.as_record().items() if k != "looks"}, "no key 'looks'"),
                            ({**design.as_record(), "batch": "many"}, "wrong kind"), ([], "not an object")]:
        with pytest.raises(ValueError, match=message):
            Design.from_record(broken)


def test_many_looks_spend_what_the_function_says_by_each_look():
    """Batches of 5 on 500 questions: 91 looks, thin increments (the integration grid is finest here)."""
    design = plan("gs", "hsd", 500, 5, 50, 0.05, 1, None)
    fractions = np.asarray(design.fractions())
    z = brownian_z(fractions, 100_000, 0.0, seed=2)
    crossed_by = np.maximum.accumulate(np.abs(z) >= design.bounds(), axis=1).mean(axis=0)
    spent = spent_alpha("hsd", fractions, 0.05)
    se = np.sqrt(spent * (1 - spent) / len(z))
    assert np.all(np.abs(crossed_by - spent) <= 4 * se + 1e-4), np.abs(crossed_by - spent).max()


def test_forecasts_of_both_rules():
    rng = np.random.default_rng(0)
    d = rng.choice([-1, -0.5, 0, 0.5, 1], size=50, p=[0.1, 0.2, 0.4, 0.2, 0.1])
    weights = tilted_weights(d, 0.1)
    assert weights @ d == pytest.approx(0.1) and tilted_weights(d, 1.0) is None
    gs = plan("gs", "hsd", 500, 50, 50, 0.05, 1, None)
    small, large = forecast(d, gs, [2, 10])
    theta = 0.1 * math.sqrt(500) / d.std(ddof=1)
    assert (large.questions, large.decided) == pytest.approx(expected_questions(gs.fractions(), gs.bounds(), gs.looks, theta))
    assert small.questions > large.questions and small.decided < large.decided
    # the confidence sequence: a seeded Monte Carlo on the differences tilted to each gap
    cs = plan("cs", None, 200, 50, 50, 0.05, 1, None)
    two, thirty, impossible = forecast(d, cs, [2, 30, 120])
    assert two.questions > thirty.questions and thirty.decided > 0.9 and impossible.questions is None
    assert forecast(d, cs, [30]) == [thirty]
    assert [f.questions for f in forecast(np.zeros(10), gs, [5])] == [None]  # no variance: no forecast
