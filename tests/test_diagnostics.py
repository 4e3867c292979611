"""Judge diagnostics and the mean score, each against a brute-force or textbook computation."""

from __future__ import annotations

import random
from itertools import combinations

import numpy as np
import pytest
from conftest import battles_in_copies
from sklearn.metrics import cohen_kappa_score

from arenajudge.rating import diagnostics
from arenajudge.rating.battles import battles_from_judgments
from arenajudge.rating.mean_score import mean_scores
from arenajudge.records.storage import BenchPaths, load_judgments
from arenajudge_testkit.synth import make_bench, write_constant_judge

MIRROR = {"A>>B": "B>>A", "A>B": "B>A", "A=B": "A=B", "B>A": "A>B", "B>>A": "A>>B"}
SIDE = {"A>>B": "A", "A>B": "A", "A=B": "=", "B>A": "B", "B>>A": "B"}


def test_a_judge_that_always_prefers_position_a_is_never_consistent(tmp_path):
    sb = make_bench(tmp_path, n_questions=40, n_models=3)
    write_constant_judge(sb, "judge-first", "A>B", flip_share=0.03)
    rows = diagnostics.position_consistency(load_judgments(BenchPaths(sb.bench, tmp_path), "judge-first"))
    overall = rows[-1]
    assert overall.model == diagnostics.OVERALL and overall.judgments == 4 * 40
    assert overall.position_consistency < 0.1  # only the rare flipped games agree
    # a judge that reads the swapped game mirrored is fully consistent
    write_constant_judge(sb, "judge-fair", "A>B", consistent=True)
    fair = diagnostics.position_consistency(load_judgments(BenchPaths(sb.bench, tmp_path), "judge-fair"))
    assert fair[-1].position_consistency == 1.0


def test_shares_equal_a_brute_force_count(tmp_path):
    sb = make_bench(tmp_path, n_questions=60, n_models=3, missing_rate=0.1, bracketed=True, seed=4)
    judgments = load_judgments(BenchPaths(sb.bench, tmp_path), "judge-a")
    rows = {r.model: r for r in diagnostics.position_consistency(judgments)}
    for model, records in judgments.items():
        scores = [[(g["score"] or "").strip("[]") or None for g in r["games"]] for r in records]
        games = [s for pair in scores for s in pair]
        verdicts = [s for s in games if s is not None]
        both = [pair for pair in scores if None not in pair]
        # game 2 swaps positions: consistent when game 2 is game 1's verdict mirrored (same side wins)
        agree = [pair for pair in both if SIDE[pair[1]] == SIDE[MIRROR[pair[0]]]]
        row = rows[model]
        assert row.missing_share == pytest.approx(games.count(None) / len(games))
        assert row.tie_share == pytest.approx(verdicts.count("A=B") / len(verdicts))
        assert row.position_consistency == pytest.approx(len(agree) / len(both))
    assert rows["overall"].games == sum(rows[m].games for m in judgments)


def test_agreement_and_kappa_equal_the_textbook(tmp_path):
    sb = make_bench(tmp_path, n_questions=80, n_models=3, judges=("judge-a", "judge-b"), missing_rate=0.05, seed=2)
    paths = BenchPaths(sb.bench, tmp_path)
    by_judge = {j: load_judgments(paths, j) for j in ("judge-a", "judge-b")}
    [agreement] = diagnostics.judge_agreement(by_judge)

    def winners(judge: str) -> dict:
        out = {}
        for model, records in by_judge[judge].items():
            for r in records:
                for i, g in enumerate(r["games"]):
                    if g["score"] is not None:
                        side = SIDE[g["score"]] if i == 0 else SIDE[MIRROR[g["score"]]]
                        out[(model, r["question_id"], i)] = side
        return out

    first, second = winners("judge-a"), winners("judge-b")
    common = sorted(set(first) & set(second))
    x, y = [first[k] for k in common], [second[k] for k in common]
    assert agreement.games == len(common)
    assert agreement.agreement == pytest.approx(np.mean([a == b for a, b in zip(x, y, strict=True)]))
    assert agreement.kappa == pytest.approx(cohen_kappa_score(x, y))
    # identical raters: kappa 1; independent raters: kappa near 0
    assert diagnostics.cohen_kappa(x, x) == pytest.approx(1.0)
    rng = random.Random(0)
    noise = [rng.choice("AB=") for _ in range(4000)]
    other = [rng.choice("AB=") for _ in range(4000)]
    assert abs(diagnostics.cohen_kappa(noise, other)) < 0.05


def test_rank_correlations_equal_the_textbook_formulas():
    rng = np.random.default_rng(3)
    models = [f"m{i}" for i in range(9)]
    x = rng.normal(size=9)
    y = x + rng.normal(scale=0.8, size=9)
    [corr] = diagnostics.board_correlation({"j1": dict(zip(models, x, strict=True)),
                                            "j2": dict(zip(models, y, strict=True)), })
    n = len(models)
    rank_x, rank_y = x.argsort().argsort(), y.argsort().argsort()
    spearman = 1 - 6 * ((rank_x - rank_y) ** 2).sum() / (n * (n * n - 1))  # no ties
    signs = [np.sign(x[i] - x[j]) * np.sign(y[i] - y[j]) for i, j in combinations(range(n), 2)]
    kendall = sum(signs) / len(signs)
    assert corr.models == 9
    assert corr.spearman == pytest.approx(spearman)
    assert corr.kendall == pytest.approx(kendall)
    assert -1 < corr.kendall < 1  # the data are neither identical nor reversed orders


def test_separability_counts_disjoint_interval_pairs():
    intervals = {"a": (10.0, 20.0), "b": (15.0, 25.0), "c": (26.0, 30.0), "d": (0.0, 9.0)}
    # disjoint: a-c, a-d, b-c, b-d, c-d; overlapping: a-b
    assert diagnostics.separability(intervals) == (pytest.approx(5 / 6), 6)
    brute = np.mean([max(intervals[p][0], intervals[q][0]) > min(intervals[p][1], intervals[q][1])
                     for p, q in combinations(intervals, 2)])
    assert diagnostics.separability(intervals)[0] == pytest.approx(brute)


def test_mean_score_and_its_per_model_bootstrap(tmp_path):
    sb = make_bench(tmp_path, n_questions=150, n_models=3, seed=6)
    judgments = load_judgments(BenchPaths(sb.bench, tmp_path), "judge-a")
    battles = battles_from_judgments(judgments, sb.baseline, "judge-a").battles
    result = mean_scores(battles, sb.baseline, rounds=4000, seed=1)
    value = {"model_b": 1.0, "tie": 0.5, "model_a": 0.0}
    rng = np.random.default_rng(9)
    for model in sb.models:
        scores = battles.loc[battles["model_b"] == model, "winner"].map(value).to_numpy()
        assert result.mean[model] == pytest.approx(scores.mean(), abs=1e-9)
        # brute force: resample this model's battle copies 1,000 times
        means = [rng.choice(scores, size=len(scores)).mean() for _ in range(1000)]
        lo, hi = np.percentile(means, [2.5, 97.5])
        width = hi - lo
        assert width > 0.05
        assert result.lower(model) == pytest.approx(lo, abs=0.15 * width)
        assert result.upper(model) == pytest.approx(hi, abs=0.15 * width)
    assert result.mean[sb.baseline] == 0.5 and result.lower(sb.baseline) == result.upper(sb.baseline)


def test_mean_score_question_bootstrap_moves_whole_questions():
    # each question carries 4 identical battles, so resampling questions doubles the width
    battles = battles_in_copies()
    by_battle = mean_scores(battles, "base", rounds=2000, unit="battles")
    by_question = mean_scores(battles, "base", rounds=2000, unit="questions")
    ratio = ((by_question.upper("m") - by_question.lower("m"))
             / (by_battle.upper("m") - by_battle.lower("m")))
    assert 1.7 < ratio < 2.3
