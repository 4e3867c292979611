"""Extensions written outside the package: a rating method is one class and one registration line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from arenajudge.cli import show_result
from arenajudge.core.errors import run_cli
from arenajudge.present.leaderboard import BoardSpec, build_board
from arenajudge.rating.bradley_terry import BootstrapUnit, RatingResult, elo_of_win_rate
from arenajudge.rating.methods import METHODS, register_method
from arenajudge_testkit.synth import make_bench


class WinShare:
    """A toy method: the share of battles against the baseline a model wins outright (ties count 0)."""

    name = "toy-win-share"
    summary = "share of outright wins against the baseline"
    label: str | None = "toy: share of outright wins against the baseline"
    whole_judgments = False

    def rate(self, battles: pd.DataFrame, baseline: str, *, rounds: int, seed: int,
             unit: BootstrapUnit) -> RatingResult:
        against = battles[(battles["model_a"] == baseline) ^ (battles["model_b"] == baseline)]
        model = np.where(against["model_a"] == baseline, against["model_b"], against["model_a"])
        won = np.where(against["model_a"] == baseline, against["winner"] == "model_b", against["winner"] == "model_a")
        share = pd.Series(won.astype(float)).groupby(model).mean()
        share[baseline] = 0.5
        rng = np.random.default_rng(seed)
        samples = pd.DataFrame({m: np.clip(s + rng.normal(0, 0.01, rounds), 0.01, 0.99) for m, s in share.items()})
        point = pd.Series({m: float(elo_of_win_rate(s)) for m, s in share.items()}).sort_values(ascending=False)
        return RatingResult(point=point, samples=pd.DataFrame(elo_of_win_rate(samples.to_numpy()), columns=samples.columns),
                            unit=unit)


@pytest.fixture
def win_share():
    method = register_method(WinShare())
    yield method
    METHODS.pop(method.name, None)


def outright_share(sb, judge: str, model: str) -> float:
    """The same number from the records, game by game: game 1 puts the baseline in A, game 2 the model;
    a strong verdict is 3 battles, as the board counts it."""
    import json

    won = total = 0
    path = sb.root / sb.bench / "model_judgment" / judge / f"{model}.jsonl"
    for line in path.read_text().splitlines():
        for index, game in enumerate(json.loads(line)["games"]):
            label = game["score"]
            battles = 3 if ">>" in label or "<<" in label else 1
            total += battles
            winner = label[0] if label != "A=B" else "="
            model_side = "B" if index == 0 else "A"
            won += battles * (winner == model_side)
    return won / total


def test_a_rating_method_from_outside_scores_the_board(tmp_path, win_share):
    sb = make_bench(tmp_path, n_questions=40, n_models=3, include_baseline_self=False)
    spec = BoardSpec(bench=sb.bench, data_dir=tmp_path, judges=("judge-a",), baseline=sb.baseline,
                     method=win_share.name, rounds=20)
    board = build_board(spec)
    assert board.header.endswith("score: toy: share of outright wins against the baseline")
    scores = {row.model: row.score for row in board.rows}
    for model in sb.models:
        assert scores[model] == pytest.approx(100 * outright_share(sb, "judge-a", model), abs=0.01)
    assert scores[sb.baseline] == 50.0


def test_show_result_offers_a_registered_method_and_refuses_it_with_load_bootstrap(tmp_path, monkeypatch, capsys,
                                                                                     win_share):
    sb = make_bench(tmp_path, n_questions=30, n_models=2, include_baseline_self=False)
    args = ["--bench-name", sb.bench, "--data-dir", str(tmp_path), "--judge-name", "judge-a",
            "--baseline", sb.baseline, "--num-rounds", "10"]
    monkeypatch.chdir(tmp_path)
    assert run_cli(show_result.main, [*args, "--method", win_share.name]) == 0
    out = capsys.readouterr().out
    assert "score: toy: share of outright wins" in out
    assert run_cli(show_result.main, [*args, "--method", win_share.name, "--load-battles", "--load-bootstrap"]) == 2
    assert "--load-bootstrap holds plain Bradley-Terry samples" in capsys.readouterr().err
