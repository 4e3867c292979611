"""Style features, the Bradley-Terry fit with feature columns, and style/length control on
benches where the right answer is known."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from arenajudge.core.errors import UserError
from arenajudge.rating.battles import battles_from_judgments
from arenajudge.rating.bradley_terry import (
    bootstrap_counts,
    fit_ratings,
    group_battle_rows,
    rate,
    rate_with_features,
    win_rate,
)
from arenajudge.rating.style import (
    StyleCache,
    add_length_control_features,
    add_style_features,
    answer_styles,
    markdown_counts,
    parse_style_groups,
)
from arenajudge.records.storage import BenchPaths, load_answers, load_judgments
from arenajudge_testkit.synth import make_style_bench

MARKDOWN = """# Title
Some **bold** and __also bold__ text, a * star and 2 * 3.
## Second header
#not a header (no space)
- dash item
* star item
  + nested plus item
1. first
2) second
```
# inside code: not a header
- not an item **nor bold**
```
**closing** bold; ** unclosed
"""


def test_markdown_counts_by_hand():
    # headers: "# Title", "## Second header"; items: 5; bold: **bold**, __also bold__, **closing**
    assert markdown_counts(MARKDOWN) == (2, 5, 3)
    assert markdown_counts("plain text, no markdown at all") == (0, 0, 0)


def _answer(text: str, token_len: int | None = None, **extra) -> dict:
    turn = {"content": text} if token_len is None else {"content": text, "token_len": token_len}
    return {"question_id": "q", "choices": [{"index": 0, "turns": [turn]}], **extra}


def test_metadata_wins_then_token_len_then_computed_and_cached(tmp_path):
    cache = StyleCache(tmp_path / "cache.json")
    meta = {"token_len": 77, "header_count": {"h1": 1, "h2": 2}, "list_count": {"ordered": 3, "unordered": 4},
            "bold_count": {"**": 5, "__": 0}}
    from_meta = cache.style(_answer(MARKDOWN, 10, conv_metadata=meta))
    assert (from_meta.tokens, from_meta.headers, from_meta.list_items, from_meta.bold) == (77, 3, 7, 5)
    stored = cache.style(_answer(MARKDOWN, 123))
    assert (stored.tokens, stored.headers, stored.list_items, stored.bold) == (123, 2, 5, 3)
    counted = cache.style(_answer("hello world"))
    assert counted.tokens == 2  # cl100k_base: "hello", " world"
    cache.save()
    saved = json.loads((tmp_path / "cache.json").read_text())
    assert sorted(v[1:] for v in saved.values()) == [[0, 0, 0], [2, 5, 3]]
    # a fresh cache reads the counts back instead of recounting
    again = StyleCache(tmp_path / "cache.json")
    assert again.style(_answer("hello world")) == counted and not again.dirty


def test_unknown_style_feature_is_a_user_error():
    assert parse_style_groups(["markdown", "length"]) == ["length", "header", "list", "bold"]
    with pytest.raises(UserError, match="--style-control: unknown feature 'colour'"):
        parse_style_groups(["length", "colour"])


def _styled_battles(tmp_path, n_questions: int = 120, length_effect: float = 3.0):
    sb = make_style_bench(tmp_path, n_questions=n_questions, length_effect=length_effect)
    paths = BenchPaths(sb.bench, tmp_path)
    answers = load_answers(paths.answer_dir)
    battles = battles_from_judgments(load_judgments(paths, "judge-a"), sb.baseline, "judge-a").battles
    styles = answer_styles(answers, answers, StyleCache(None))
    return sb, paths, answers, battles, styles


def test_battle_features_are_the_normalised_differences_standardised(tmp_path):
    _sb, paths, answers, battles, styles = _styled_battles(tmp_path, n_questions=30)
    featured = add_style_features(battles, styles, ["length", "header", "list", "bold"], paths.answer_dir)

    def raw(row: pd.Series) -> list[float]:
        a = answers[row["model_a"]][row["question_id"]]["choices"][0]["turns"][0]
        b = answers[row["model_b"]][row["question_id"]]["choices"][0]["turns"][0]
        ta, tb = a["token_len"], b["token_len"]
        ca, cb = markdown_counts(a["content"]), markdown_counts(b["content"])
        return [(ta - tb) / (ta + tb), *(ca[k] / ta - cb[k] / tb for k in range(3))]

    expected = np.array([raw(row) for _, row in battles.iterrows()])
    expected = expected / expected.std(axis=0)  # scaled, not centred: 0 stays 'equal style'
    assert np.allclose(featured[["length", "header", "list", "bold"]].to_numpy(), expected)
    assert featured["length"].std(ddof=0) == pytest.approx(1.0)
    assert featured["length"].mean() < 0  # the baseline's answers are shorter than most


def _sklearn_fit(battles: pd.DataFrame, features: list[str], baseline: str, weights: np.ndarray | None = None):
    """The textbook fit: one row per battle copy, duplicated so a tie is half a win each way."""
    doubled = pd.concat([battles, battles], ignore_index=True)
    n = len(doubled)
    models = sorted(set(battles["model_a"]) | set(battles["model_b"]))
    col = {m: i for i, m in enumerate(models)}
    x = np.zeros((n, len(models) + len(features)))
    x[np.arange(n), doubled["model_a"].map(col)] += math.log(10)
    x[np.arange(n), doubled["model_b"].map(col)] -= math.log(10)
    x[:, len(models):] = doubled[features].to_numpy()
    y = (doubled["winner"] == "model_a").to_numpy().astype(float)
    ties = (doubled["winner"] == "tie").to_numpy().copy()
    ties[n // 2:] = False
    y[ties] = 1.0
    sample_weight = None if weights is None else np.concatenate([weights, weights])
    fit = LogisticRegression(fit_intercept=False, C=np.inf, tol=1e-10, max_iter=5000)
    fit.fit(x, y, sample_weight=sample_weight)
    elo = 400 * fit.coef_[0][: len(models)]
    elo += 1000 - elo[col[baseline]]
    return pd.Series(elo, index=models), pd.Series(fit.coef_[0][len(models):], index=features)


def test_fit_with_features_equals_scikit_learn(tmp_path):
    sb, paths, _answers, battles, styles = _styled_battles(tmp_path, n_questions=80)
    features = ["length", "header", "list", "bold"]
    featured = add_style_features(battles, styles, features, paths.answer_dir)
    ours = rate_with_features(featured, sb.baseline, features, rounds=5)
    ref_elo, ref_coef = _sklearn_fit(featured, features, sb.baseline)
    for model in ref_elo.index:
        assert ours.point[model] == pytest.approx(ref_elo[model], abs=0.01)
    assert np.allclose(ours.coefficients[features].to_numpy(), ref_coef.to_numpy(), atol=1e-4)


def test_each_bootstrap_round_is_the_weighted_fit_of_its_counts(tmp_path):
    sb, paths, _answers, battles, styles = _styled_battles(tmp_path, n_questions=40)
    featured = add_style_features(battles, styles, ["length"], paths.answer_dir)
    rows = group_battle_rows(featured, ["length"])
    assert rows.copies.sum() == len(featured)
    counts = bootstrap_counts(rows, 3, np.random.default_rng(1), "questions")
    ratings, coefs = fit_ratings(rows, counts, sb.baseline)
    # the same round the slow way: one row per unique battle, weighted by its count
    frame = pd.DataFrame({"model_a": np.array(rows.models)[rows.model_a], "model_b": np.array(rows.models)[rows.model_b],
                          "winner": np.array(["model_a", "model_b", "tie"])[rows.winner],
                          "length": rows.features[:, 0]})
    used = counts[2] > 0
    ref_elo, ref_coef = _sklearn_fit(frame[used], ["length"], sb.baseline, counts[2][used].astype(float))
    models = list(rows.models)
    for model in ref_elo.index:
        assert ratings[2, models.index(model)] == pytest.approx(ref_elo[model], abs=0.01)
    assert coefs[2, 0] == pytest.approx(ref_coef["length"], abs=1e-4)


def test_a_model_that_wins_only_by_length_loses_its_edge(tmp_path):
    # The judge's verdict logit is strength + 3 * (len_model - len_base) / (len_model + len_base):
    # long-model and short-model have strength 0 (truth: 50% at equal length), strong-model 1 (73%).
    sb, paths, _answers, battles, styles = _styled_battles(tmp_path, n_questions=300)
    plain = rate(battles, sb.baseline, rounds=50)
    controlled = rate_with_features(add_style_features(battles, styles, ["length"], paths.answer_dir),
                                    sb.baseline, ["length"], rounds=200, unit="questions")
    lc_battles, lc_features = add_length_control_features(battles, styles, sb.baseline, paths.answer_dir)
    length_controlled = rate_with_features(lc_battles, sb.baseline, lc_features, rounds=200, unit="questions")
    assert win_rate(plain.point["long-model"]) > 0.7  # the judge loves length...
    assert win_rate(plain.point["short-model"]) < 0.35  # ...and hates brevity
    for model in ("long-model", "short-model"):  # style control takes both away
        assert win_rate(controlled.lower(model)) < 0.5 < win_rate(controlled.upper(model)), model
        assert abs(win_rate(controlled.point[model]) - 0.5) < 0.06, model
        # The per-model slope extrapolates to equal length from this model's battles alone; a model
        # that is always 3x longer leaves that extrapolation noisy (about +-0.08 over seeds), so
        # the check is looser: most of the edge is gone.
        plain_gap = abs(win_rate(plain.point[model]) - 0.5)
        assert abs(win_rate(length_controlled.point[model]) - 0.5) < min(0.15, plain_gap / 2), model
    for result in (controlled, length_controlled):  # the model that is really better keeps its edge
        assert abs(win_rate(result.point["strong-model"]) - 1 / (1 + math.exp(-1))) < 0.04
    # the judge's taste shows in the coefficients: model_a longer -> model_a favoured
    assert controlled.coefficient_samples["length"].quantile(0.025) > 0
    assert (length_controlled.coefficient_samples.quantile(0.025) > 0).all()


def test_style_control_needs_every_answer(tmp_path):
    sb, paths, _answers, battles, styles = _styled_battles(tmp_path, n_questions=10)
    del styles[("long-model", sb.question_ids[3])]
    with pytest.raises(UserError, match=r"long-model\.jsonl: no answer to question 'q0003'"):
        add_style_features(battles, styles, ["length"], paths.answer_dir)
