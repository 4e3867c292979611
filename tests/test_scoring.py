"""Battles and ratings against the plain seed way and against textbook cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import battles_in_copies

from arenajudge.present.report import average_tokens
from arenajudge.rating.battles import battles_from_judgments, clean_label, label_from_judge
from arenajudge.rating.bradley_terry import group_battles, rate, win_rate
from arenajudge.records.storage import BenchPaths, load_answers, load_judgments
from arenajudge_testkit import seed_way
from arenajudge_testkit.synth import make_bench


@pytest.mark.parametrize("raw, label", [
    ("A>B", "A>B"), ("[A>B]", "A>B"), ("[[b>>a]]", "B>>A"), (" a=b ", "A=B"), ("[B>A]", "B>A"),
    (None, None), ("", None), ("A<B", None), ("C", None), (3, None),
])
def test_clean_label_accepts_the_seed_forms_only(raw, label):
    assert clean_label(raw) == label


@pytest.mark.parametrize("raw, label", [("A<B", "B>A"), ("b<<a", "A>>B"), ("B=A", "A=B"), ("[a>b]", "A>B"), ("AB", None)])
def test_label_from_judge_reads_mirrored_spellings(raw, label):
    assert label_from_judge(raw) == label


def _records(*games: tuple[str | None, str | None], model: str = "m") -> dict[str, list[dict]]:
    return {model: [{"question_id": f"q{i}", "model": model,
                     "games": [{"score": g1}, {"score": g2}]} for i, (g1, g2) in enumerate(games)]}


def test_game_two_is_read_mirrored_and_strong_verdicts_weighted():
    bs = battles_from_judgments(_records(("A>B", "A>B"), ("B>>A", "[A=B]")), "base", "j", weight=3)
    winners = bs.battles.groupby("question_id")["winner"].apply(list).to_dict()
    assert winners["q0"] == ["model_a", "model_b"]  # game 2: A is the model
    assert winners["q1"] == ["model_b"] * 3 + ["tie"]
    assert set(bs.battles["model_a"]) == {"base"} and set(bs.battles["model_b"]) == {"m"}


def test_missing_verdicts_are_dropped_and_counted():
    bs = battles_from_judgments(_records(("A>B", None), ("garbage", "B>A")), "base", "j")
    assert len(bs.battles) == 2
    assert bs.missing["m"] == 2 and bs.games["m"] == 4
    assert "2 of 4 games had no verdict" in bs.missing_note()


def test_first_game_only_keeps_game_one():
    bs = battles_from_judgments(_records(("A>B", "B>A"), ("B>A", "B>A")), "base", "j", first_game_only=True)
    assert list(bs.battles["game"]) == [1, 1]
    assert bs.games["m"] == 2


def test_battles_equal_the_row_by_row_way(tmp_path):
    sb = make_bench(tmp_path, n_questions=40, n_models=3, missing_rate=0.05, bracketed=True)
    judgments = load_judgments(BenchPaths(sb.bench, tmp_path), "judge-a")
    ours = battles_from_judgments(judgments, sb.baseline, "judge-a").battles
    theirs = seed_way.battles_row_by_row(judgments, sb.baseline)
    key = ["question_id", "model_b", "winner"]
    assert ours[key].value_counts().sort_index().equals(theirs[key].value_counts().sort_index())


def test_point_scores_equal_the_seed_regression(tmp_path):
    sb = make_bench(tmp_path, n_questions=120, n_models=6, seed=3)
    judgments = load_judgments(BenchPaths(sb.bench, tmp_path), "judge-a")
    battles = battles_from_judgments(judgments, sb.baseline, "judge-a").battles
    ours = rate(battles, sb.baseline, rounds=10)
    ref = seed_way.mle_elo(battles, sb.baseline)
    for model in ref.index:
        assert win_rate(ours.point[model]) * 100 == pytest.approx(win_rate(ref[model]) * 100, abs=0.05)
    assert ours.point[sb.baseline] == 1000.0


def test_ci_agrees_with_the_seed_bootstrap_to_monte_carlo_noise(tmp_path):
    sb = make_bench(tmp_path, n_questions=80, n_models=3, seed=5)
    judgments = load_judgments(BenchPaths(sb.bench, tmp_path), "judge-a")
    battles = battles_from_judgments(judgments, sb.baseline, "judge-a").battles
    ours = rate(battles, sb.baseline, rounds=2000, seed=1)
    ref_samples = seed_way.bootstrap(battles, sb.baseline, rounds=300)
    ref = seed_way.win_rates(seed_way.mle_elo(battles, sb.baseline), ref_samples, sb.baseline)
    mine = seed_way.win_rates(ours.point, ours.samples, sb.baseline)
    width = (ref["upper"] - ref["lower"]).max()
    assert width > 3  # the check below is meaningful only if the interval is wide
    # 300 resamples estimate a 2.5% quantile to about a tenth of the interval's width
    assert (mine["lower"] - ref["lower"]).abs().max() < 0.2 * width
    assert (mine["upper"] - ref["upper"]).abs().max() < 0.2 * width


def test_star_design_score_is_the_tie_split_win_rate():
    # Against one baseline only, the Bradley-Terry MLE is the plain win rate with ties halved.
    rows = ([("q", "base", "m", "model_b")] * 37 + [("q", "base", "m", "model_a")] * 20
            + [("q", "base", "m", "tie")] * 9)
    battles = pd.DataFrame(rows, columns=["question_id", "model_a", "model_b", "winner"])
    result = rate(battles, "base", rounds=5)
    assert win_rate(result.point["m"]) == pytest.approx((37 + 4.5) / 66, abs=1e-9)


def test_a_model_that_wins_everything_stays_finite():
    battles = pd.DataFrame([("q", "base", "m", "model_b")] * 10 + [("q", "base", "w", "model_a")] * 3
                           + [("q", "base", "w", "model_b")] * 3,
                           columns=["question_id", "model_a", "model_b", "winner"])
    result = rate(battles, "base", rounds=20)
    assert np.isfinite(result.samples.to_numpy()).all()
    assert win_rate(result.point["m"]) > 0.999
    assert win_rate(result.point["w"]) == pytest.approx(0.5, abs=1e-6)


def test_bootstrap_is_deterministic_for_a_seed(tmp_path):
    sb = make_bench(tmp_path, n_questions=30, n_models=3)
    battles = battles_from_judgments(load_judgments(BenchPaths(sb.bench, tmp_path), "judge-a"),
                                     sb.baseline, "judge-a").battles
    a = rate(battles, sb.baseline, rounds=50, seed=7).samples
    b = rate(battles, sb.baseline, rounds=50, seed=7).samples
    c = rate(battles, sb.baseline, rounds=50, seed=8).samples
    assert a.equals(b)
    assert not a.equals(c)


def test_question_bootstrap_keeps_questions_together():
    # Every question carries 4 identical battles: resampling questions moves them as a block,
    # so the interval is wider than the one that treats the 4 copies as independent.
    battles = battles_in_copies()
    kinds = group_battles(battles)
    assert kinds.per_question.shape[0] == 200 and kinds.per_question.sum() == 800
    by_battle = rate(battles, "base", rounds=1000, unit="battles")
    by_question = rate(battles, "base", rounds=1000, unit="questions")
    w_b = by_battle.upper("m") - by_battle.lower("m")
    w_q = by_question.upper("m") - by_question.lower("m")
    assert 1.6 < w_q / w_b < 2.4  # sqrt(4) = 2 in theory


def test_average_tokens_of_real_answers(shared):
    answers = load_answers(shared / "data" / "arena-hard-v0.1-ru" / "model_answer")
    assert len(answers) == 10
    for records in answers.values():
        lengths = [r["choices"][0]["turns"][0]["token_len"] for r in records.values()]
        assert len(lengths) == 500
        assert average_tokens(records) == int(sum(lengths) / len(lengths))
    assert any("Привет" in r["choices"][0]["turns"][0]["content"] or "на" in r["choices"][0]["turns"][0]["content"]
               for r in answers["Vikhr-7B-instruct_0.5"].values())
