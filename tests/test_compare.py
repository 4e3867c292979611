"""Paired comparison, Holm correction, combined score and CI projection against brute force."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from conftest import run_script

from arenajudge.rating.bradley_terry import group_battles, resample
from arenajudge.rating.compare import (
    biggest_differences,
    bootstrap_p,
    combined_score,
    compare_models,
    format_p,
    holm,
    percentile_interval,
    projected_half_width,
)
from arenajudge_testkit import seed_way
from arenajudge_testkit.synth import make_bench

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
        # p is the level whose percentile interval of these differences ends at 0 (sklearn's tolerance)
        if 0 < result.p_value < 1:
            ends = [np.percentile(diffs, 50 * result.p_value), np.percentile(diffs, 100 - 50 * result.p_value)]
            assert min(abs(end) for end in ends) == pytest.approx(0, abs=0.05)


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
    assert result.p_value == 0 and result.significant  # every round has B ahead
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
    marks = {(r.model_a, r.model_b): r.significant_after_holm for r in results}
    assert marks[("A", "C")] and marks[("B", "C")] and not marks[("A", "B")]
    assert all(r.p_holm >= r.p_value for r in results)


def test_bootstrap_p_is_below_005_exactly_when_the_95_interval_excludes_0():
    # the readout: 25 of 1,000 rounds at or above 0, the interval ending at -0.1. A share count with
    # the +1 correction gave p = 2 * 26 / 1001 = 0.0519 beside it.
    diffs = np.concatenate([np.linspace(-20, -0.2, 975), np.linspace(3.8, 9, 25)])
    lower, upper = percentile_interval(diffs)
    assert round(upper, 1) == -0.1 and bootstrap_p(diffs) < 0.05
    for p in (bootstrap_p(diffs), 0.049951, 0.0499999999):  # rounding never carries p across the edge
        assert float(format_p(p)) < 0.05
    assert format_p(0.049951) == "0.04995" and format_p(0.05) == "0.05" and format_p(0.0, 1000) == "< 0.001"
    rng = np.random.default_rng(7)
    checked = 0
    for _ in range(3000):
        n = int(rng.integers(20, 400))
        shift = rng.normal(0, 1.5)
        draws = rng.normal(shift, 1, n) if rng.random() < 0.8 else rng.integers(-3, 4, n).astype(float) + shift // 1
        lower, upper = percentile_interval(draws)
        p = bootstrap_p(draws)
        assert (p < 0.05) == (lower > 0 or upper < 0), (lower, upper, p)
        if 0 < p < 1:  # the (100 - 100p)% interval has 0 at one end
            low_end, high_end = percentile_interval(draws, 100 * (1 - p))
            assert min(abs(low_end), abs(high_end)) < 1e-9
            checked += 1
    assert checked > 1000


def _pair_lines(out: str) -> list[tuple[str, float, str, str, str, str]]:
    """(pair, difference, lower, upper, p, call) of each printed pair line, as printed."""
    found = re.findall(r"^(\S+ - \S+): ([+-]\d+\.\d) points, 95% CI \(([+-]\d+\.\d), ([+-]\d+\.\d)\), "
                       r"p ((?:= |< )[^:]+): (.+)$", out, flags=re.MULTILINE)
    return [(pair, float(diff), low, high, p.removeprefix("= "), call) for pair, diff, low, high, p, call in found]


@pytest.mark.parametrize(("seed", "upper", "call"), [(67, "-0.1", "model-1 is better"),
                                                     (168, "+0.1", "no significant difference")])
def test_compare_readout_at_the_edge_of_significance(tmp_path, seed, upper, call):
    """A bench where model-1 leads model-0 by 17 points at p about 0.05: bootstrap seed 67 ends the interval
    just below 0, seed 168 just above. The printed call, interval and p agree."""
    sb = make_bench(tmp_path / "data", n_questions=60, n_models=2, seed=10)
    proc = run_script("show_result.py", "--judge-name", "judge-a", "--baseline", sb.baseline,
                      "--compare", "model-1", "model-0", "--seed", str(seed), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (pair, diff, low, high, p, printed_call), *_per_category = _pair_lines(proc.stdout)
    assert pair == "model-0 - model-1" and diff < 0
    assert high == upper and printed_call == call
    excludes = high.startswith("-") or (low.startswith("+") and float(low) > 0)
    assert excludes == (float(p) < 0.05) == (call != "no significant difference")
    assert "Holm" not in proc.stdout.split("## questions")[0]  # one pair: nothing to adjust


def test_holm_adjusted_p_is_labelled_and_never_changes_the_call(tmp_path):
    sb = make_bench(tmp_path / "data", n_questions=60, n_models=3, seed=10)
    proc = run_script("show_result.py", "--judge-name", "judge-a", "--baseline", sb.baseline, "--compare",
                      *sb.models, "--markdown", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = _pair_lines(proc.stdout)
    assert len(lines) >= 3
    assert any(call.endswith(", not significant after the adjustment)") for *_, call in lines)  # category writing
    for _pair, _diff, low, high, p, call in lines:
        excludes = high.startswith("-") or (low.startswith("+") and float(low) > 0)
        p_value = float(p.removeprefix("< "))  # "< 0.001": below 1/rounds
        assert excludes == (p_value < 0.05) == (not call.startswith("no significant difference"))
        holm_p = re.search(r"\(Holm-adjusted p (?:= |< )([^ ]+) over 3 pairs", call)
        assert holm_p is not None, call
        if excludes and float(holm_p.group(1)) >= 0.05:
            assert call.endswith(", not significant after the adjustment)")
    assert "| comparison | difference | 95% CI | p | Holm-adjusted p | significant |" in proc.stdout


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
