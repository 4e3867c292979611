"""The judge card (show_result.py --judge-card): each number against a plain re-implementation from its
definition (loops, no numpy) on data the test makes and on the Russian bench's real answers judged by
stand-in judges; reference boards from a judge and from files; JudgeBench end to end; the HTML section."""

from __future__ import annotations

import json
import math
import random
import re
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED

from arenajudge.cli import download_data
from arenajudge.cli.show_result import main
from arenajudge.core.errors import run_cli
from arenajudge.core.tokens import token_len
from arenajudge.present.report import leaderboard
from arenajudge.rating import judge_card as jc
from arenajudge.rating.bradley_terry import rate
from arenajudge.records.storage import BenchPaths, load_answers, load_judgments, load_questions, read_jsonl
from arenajudge_testkit.fake_openai import FakeServer, Script
from arenajudge_testkit.gen_project import Project, entry, judge
from arenajudge_testkit.plain_stats import plain_kendall, plain_percentile, plain_spearman
from arenajudge_testkit.standin_judge import StandinJudge, judgebench_judge
from arenajudge_testkit.synth import copy_real_bench, make_bench, write_jsonl

CHROMIUM = Path("/usr/bin/chromium")
SIDE_OF_GAME1 = {"A>>B": "base", "A>B": "base", "A=B": "tie", "B>A": "model", "B>>A": "model"}
SWAPPED = {"base": "model", "model": "base", "tie": "tie"}


# ---------------------------------------------------------------- plain re-implementations (loops only)


def plain_win_rate(elo: float) -> float:
    return round(100 / (1 + 10 ** ((1000 - elo) / 400)), 2)


def side(interval_1: tuple[float, float], interval_2: tuple[float, float]) -> int:
    if interval_1[0] > interval_2[1]:
        return 1
    if interval_1[1] < interval_2[0]:
        return -1
    return 0


def sign(value: float) -> int:
    return 1 if value > 0 else -1 if value < 0 else 0


def plain_agreement_numbers(ours: dict, reference: dict, samples: dict[str, list[float]] | None) -> dict:
    """From scores and intervals ({model: (score, lower, upper)}) and our bootstrap rounds per model."""
    models = sorted(set(ours) & set(reference))
    agreements, stricts, briers = [], [], []
    for first, second in combinations(models, 2):
        mine = side(ours[first][1:], ours[second][1:])
        theirs = side(reference[first][1:], reference[second][1:])
        if theirs != 0:
            agreements.append(1.0 if mine == theirs else 0.5 if mine == 0 else 0.0)
        stricts.append(1.0 if sign(ours[first][0] - ours[second][0]) == sign(reference[first][0] - reference[second][0])
                       else 0.0)
        if samples is not None:
            rounds = len(samples[first])
            below = sum(1.0 if samples[first][r] < samples[second][r] else 0.5 if samples[first][r] == samples[second][r]
                        else 0.0 for r in range(rounds)) / rounds
            order = sign(reference[first][0] - reference[second][0])
            target = 1.0 if order < 0 else 0.0 if order > 0 else 0.5
            briers.append((below - target) ** 2)
    agreement = sum(agreements) / len(agreements) if agreements else math.nan
    return {"agreement": agreement, "agreement_blog": 2 * agreement - 1, "separated": len(agreements),
            "strict": sum(stricts) / len(stricts), "brier": sum(briers) / len(briers) if briers else None,
            "spearman": plain_spearman([ours[m][0] for m in models], [reference[m][0] for m in models]),
            "kendall": plain_kendall([ours[m][0] for m in models], [reference[m][0] for m in models])}


def plain_separability(intervals: dict[str, tuple[float, float]]) -> float:
    pairs = list(combinations(sorted(intervals), 2))
    return sum(side(intervals[a], intervals[b]) != 0 for a, b in pairs) / len(pairs)


def plain_games(judgments: dict[str, list[dict]], answers: dict, baseline: str) -> dict:
    """Position use, ties, unreadable and constrained labels, length correlation, counted one game at a time."""
    verdicts, first_slot, ties, games, missing, constrained = [0, 0], [0, 0], 0, 0, 0, 0
    paired = consistent = 0
    outcomes, differences = [], []
    value = {"model": 1, "tie": 0, "base": -1}
    for records in judgments.values():
        for record in records:
            winners = []
            for index, game in enumerate(record["games"][:2]):
                games += 1
                label = (game["score"] or "").strip().strip("[]") or None
                if label is None:
                    missing += 1
                    winners.append(None)
                    continue
                verdicts[index] += 1
                first_slot[index] += label in ("A>B", "A>>B")
                ties += label == "A=B"
                constrained += game.get("constrained") is True
                winner = SIDE_OF_GAME1[label] if index == 0 else SWAPPED[SIDE_OF_GAME1[label]]
                winners.append(winner)
                strong = ">>" in label
                mine = answers[record["model"]][record["question_id"]]["choices"][0]["turns"][0]["token_len"]
                base = answers[baseline][record["question_id"]]["choices"][0]["turns"][0]["token_len"]
                outcomes.append(value[winner] * (2 if strong else 1))
                differences.append(mine - base)
            if len(winners) == 2 and None not in winners:
                paired += 1
                consistent += winners[0] == winners[1]
    return {"first_slot": (first_slot[0] / verdicts[0], first_slot[1] / verdicts[1]),
            "ties": ties / (verdicts[0] + verdicts[1]), "unreadable": missing / games,
            "constrained": constrained / (verdicts[0] + verdicts[1]), "consistency": consistent / paired,
            "length": plain_spearman(outcomes, differences), "length_games": len(outcomes)}


def plain_judgebench(records: list[dict], questions: dict[str, dict], baseline: str) -> dict:
    """JudgeBench's metric as its paper and utils/metrics.py state it, one pair at a time."""
    judged = "response_A" if baseline == "response_B" else "response_B"
    right: dict[str, list[int]] = {}
    all_right, inconsistent, games, unreadable = [], 0, 0, 0
    for record in records:
        if record["model"] != judged:
            continue
        question = questions[record["question_id"]]
        better = "response_A" if question["label"] == "A>B" else "response_B"
        decisions = []
        for index, game in enumerate(record["games"][:2]):
            games += 1
            label = (game["score"] or "").strip().strip("[]")
            if label not in SIDE_OF_GAME1:  # no verdict, or a score outside the five labels
                unreadable += 1
                decisions.append(None)
                continue
            # game 1 shows the baseline as A, game 2 shows the judged answer as A
            shown_a = baseline if index == 0 else judged
            shown_b = judged if index == 0 else baseline
            decisions.append(shown_a if label.startswith("A>") else shown_b if label.startswith("B>") else "tie")
        votes = sum(1 if d == better else -1 if d in ("response_A", "response_B") else 0 for d in decisions)
        inconsistent += decisions[0] != decisions[1]
        source = question["category"]
        group = next((g for g in ("mmlu-pro", "livebench-reasoning", "livebench-math", "livecodebench")
                      if source.startswith(g)), source)
        right.setdefault(group, []).append(votes > 0)
        all_right.append(votes > 0)
    return {"accuracy": 100 * sum(all_right) / len(all_right), "pairs": len(all_right),
            "by_source": {g: {"accuracy": 100 * sum(v) / len(v), "pairs": len(v)} for g, v in right.items()},
            "inconsistent": inconsistent / len(all_right), "unreadable": unreadable / games}


# ---------------------------------------------------------------- helpers


def assert_same_sources(got: dict, want: dict) -> None:
    assert list(got) == sorted(want, key=lambda g: (g not in ("mmlu-pro", "livebench-reasoning", "livebench-math",
                                                            "livecodebench"), g)) or set(got) == set(want)
    for group, value in want.items():
        assert got[group]["pairs"] == value["pairs"] and got[group]["accuracy"] == pytest.approx(value["accuracy"]), group


def card_json(directory: Path) -> dict:
    [path] = directory.glob("judge_card_*.json")
    return json.loads(path.read_text(encoding="utf-8"))


def board_samples(directory: Path) -> tuple[dict[str, tuple[float, float, float]], dict[str, list[float]]]:
    """(model -> (score, lower, upper), model -> bootstrap Elo samples) from --output's leaderboard JSON."""
    [path] = directory.glob("arena_hard_leaderboard_*.json")
    rows = json.loads(path.read_text(encoding="utf-8"))
    return ({r["model"]: (r["score"], r["lower"], r["upper"]) for r in rows},
            {r["model"]: r["results"] for r in rows})


def plain_intervals(samples: dict[str, list[float]], level: float, baseline: str) -> dict[str, tuple[float, float]]:
    return {m: (plain_win_rate(plain_percentile(s, (100 - level) / 2)), plain_win_rate(plain_percentile(s, (100 + level) / 2)))
            for m, s in samples.items() if m != baseline}


@pytest.fixture
def bench(tmp_path, monkeypatch):
    sb = make_bench(tmp_path / "data", n_questions=120, n_models=6, judges=("judge-a", "judge-b"), missing_rate=0.03,
                    bracketed=True, seed=5)
    monkeypatch.chdir(tmp_path)
    return tmp_path, sb


def one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing printed before the error
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in captured.err
    return lines[0]


# ---------------------------------------------------------------- numbers on data the test makes


def test_pair_numbers_equal_their_definitions():
    rng = random.Random(7)
    models = [f"m{i}" for i in range(8)]
    strength = {m: 40 + 3 * i + rng.gauss(0, 2) for i, m in enumerate(models)}
    samples = {m: [strength[m] + rng.gauss(0, 2.5) for _ in range(300)] for m in models}
    samples["m3"] = list(samples["m4"])  # two models tied in every round: p(below) is 1/2
    intervals = {level: {m: (plain_percentile(s, (100 - level) / 2), plain_percentile(s, (100 + level) / 2))
                         for m, s in samples.items()} for level in (95.0, 80.0)}
    score = {m: sum(s) / len(s) for m, s in samples.items()}
    ours = jc.CardBoard(models=models, score=score, intervals=intervals,
                        samples=np.array([samples[m] for m in models]).T)
    # the reference: the same order except m6/m7 swapped and separated, m1 and m2 tied, m0 far below
    ref_score = {m: 10.0 * i for i, m in enumerate(models)}
    ref_score.update(m6=75.0, m7=60.0, m2=10.0, base=50.0)
    ref_intervals = {m: (s - 4.0, s + 4.0) for m, s in ref_score.items()}
    reference = jc.CardBoard(models=sorted(ref_score), score=ref_score, intervals={95.0: ref_intervals})
    result = jc.compare_boards(ours, reference, 95.0, exclude=["base"])

    plain = plain_agreement_numbers({m: (score[m], *intervals[95.0][m]) for m in models},
                                    {m: (ref_score[m], *ref_intervals[m]) for m in models}, samples)
    assert result.agreement == pytest.approx(plain["agreement"])
    assert result.agreement_blog == pytest.approx(plain["agreement_blog"])
    assert result.separated_by_reference == plain["separated"] < len(result.pairs) == 28
    assert result.strict_agreement == pytest.approx(plain["strict"]) and result.strict_agreement < 1
    assert result.brier == pytest.approx(plain["brier"])
    assert result.spearman == pytest.approx(plain["spearman"]) and result.kendall == pytest.approx(plain["kendall"])
    # the intervals: every round's rank correlation with the reference's scores, then its percentiles
    per_round_rho = [plain_spearman([samples[m][r] for m in models], [ref_score[m] for m in models]) for r in range(300)]
    per_round_tau = [plain_kendall([samples[m][r] for m in models], [ref_score[m] for m in models]) for r in range(300)]
    assert result.spearman_ci == pytest.approx((plain_percentile(per_round_rho, 2.5), plain_percentile(per_round_rho, 97.5)))
    assert result.kendall_ci == pytest.approx((plain_percentile(per_round_tau, 2.5), plain_percentile(per_round_tau, 97.5)))
    # the disagreements: pairs ordered differently, the one our rounds are surest of first
    worst = result.disagreements()
    assert {(p.model_1, p.model_2) for p in worst} == {(p.model_1, p.model_2) for p in result.pairs if p.strict == 0}
    assert worst[0].model_1 == "m6" and worst[0].model_2 == "m7"
    shares = [p.wrong_order_share for p in worst]
    assert shares == sorted(shares, reverse=True)
    for level in (95.0, 80.0):
        assert jc.separability(ours, level)[0] == pytest.approx(plain_separability(intervals[level]))


def test_card_intervals_are_the_boards_and_its_separability_is_diagnostics(bench, capsys):
    cwd, sb = bench
    paths = BenchPaths(sb.bench, cwd / "data")
    judgments = load_judgments(paths, "judge-a")
    from arenajudge.rating.battles import battles_from_judgments

    battles = battles_from_judgments(judgments, sb.baseline, "judge-a").battles
    rating = rate(battles, sb.baseline, rounds=300, seed=3, unit="questions")
    board = jc.board_from_rating(rating, sb.baseline, [95.0, 80.0])
    rows = {r.model: r for r in leaderboard(rating, sb.baseline, load_answers(paths.answer_dir))}
    for model in board.models:
        assert board.score[model] == rows[model].score
        assert board.interval(95.0)[model] == (rows[model].lower, rows[model].upper)
        samples = [float(v) for v in rating.samples[model]]
        assert board.interval(80.0)[model] == pytest.approx(
            (plain_win_rate(plain_percentile(samples, 10)), plain_win_rate(plain_percentile(samples, 90))))

    # one run with --diagnostics on the same bootstrap: both print the same separability and consistency
    assert main(["--judge-name", "judge-a", "--baseline", sb.baseline, "--bootstrap", "questions", "--num-rounds", "300",
                 "--card-rounds", "300", "--diagnostics", "--judge-card"]) == 0
    out = capsys.readouterr().out
    separability = re.search(r"## separability: ([\d.]+)% of (\d+) model pairs", out)
    card_row = re.search(r"separability at 95% \(share of model pairs apart\)\s+\|\s+([\d.]+)% of (\d+)", out)
    assert separability.groups() == card_row.groups()
    overall = re.search(r"overall\s+\| position consistency: +([\d.]+)%", out).group(1)
    assert re.search(rf"position consistency \(judgments\)\s+\|\s+{re.escape(overall)}% of", out)


def test_game_numbers_equal_counts_one_game_at_a_time(bench):
    cwd, sb = bench
    paths = BenchPaths(sb.bench, cwd / "data")
    judgments = load_judgments(paths, "judge-a")
    for records in judgments.values():  # every third game with a verdict had its label constrained
        for i, record in enumerate(records):
            for g, game in enumerate(record["games"]):
                if game["score"] is not None and (i + g) % 3 == 0:
                    game["constrained"] = True
    answers = load_answers(paths.answer_dir)
    stats = jc.game_stats(judgments, answers, sb.baseline)
    plain = plain_games(judgments, answers, sb.baseline)
    assert stats.first_slot_share == pytest.approx(plain["first_slot"])
    assert stats.consistency.tie_share == pytest.approx(plain["ties"])
    assert stats.consistency.missing_share == pytest.approx(plain["unreadable"]) and plain["unreadable"] > 0
    assert stats.constrained_share == pytest.approx(plain["constrained"]) and 0.2 < plain["constrained"] < 0.45
    assert stats.consistency.position_consistency == pytest.approx(plain["consistency"])
    assert stats.length_spearman == pytest.approx(plain["length"]) and stats.length_games == plain["length_games"]


def test_a_judge_that_rewards_length_shows_it_and_a_position_bias_shows_in_the_first_slot(tmp_path):
    questions = [f"q{i}" for i in range(300)]
    rng = random.Random(1)
    lengths = {(m, q): rng.randint(50, 900) for m in ("base", "m") for q in questions}
    answers = {m: {q: {"choices": [{"turns": [{"content": "x", "token_len": lengths[m, q]}]}]} for q in questions}
               for m in ("base", "m")}

    def records(by_length: bool, bias: float) -> dict:
        out = []
        for q in questions:
            games = []
            for g in range(2):
                edge = (lengths["m", q] - lengths["base", q]) / 300 if by_length else rng.gauss(0, 1)
                edge_of_a = (-edge if g == 0 else edge) + bias
                games.append({"score": "A>B" if edge_of_a > 0 else "B>A"})
            out.append({"question_id": q, "model": "m", "games": games})
        return {"m": out}

    longer = jc.game_stats(records(True, 0.0), answers, "base")
    fair = jc.game_stats(records(False, 0.0), answers, "base")
    biased = jc.game_stats(records(False, 1.5), answers, "base")
    assert longer.length_spearman > 0.8 and abs(fair.length_spearman) < 0.15
    assert min(biased.first_slot_share) > 0.8 and max(abs(s - 0.5) for s in fair.first_slot_share) < 0.1
    assert biased.consistency.position_consistency < 0.3 < fair.consistency.position_consistency


def test_judgebench_metric_on_pairs_the_test_makes():
    rng = random.Random(2)
    sources = ["mmlu-pro-law", "mmlu-pro-math", "livebench-reasoning", "livebench-math", "livecodebench", "other-set"]
    questions = {f"p{i}": {"question_id": f"p{i}", "category": rng.choice(sources), "label": rng.choice(["A>B", "B>A"])}
                 for i in range(400)}
    labels = ["A>>B", "A>B", "A=B", "B>A", "B>>A", "[[A>B]]", None, "nonsense"]
    for baseline, judged in (("response_B", "response_A"), ("response_A", "response_B")):
        records = [{"question_id": q, "model": judged, "games": [{"score": rng.choice(labels)} for _ in range(2)]}
                   for q in questions]
        # a record of the baseline against itself is not a JudgeBench pair
        records.append({"question_id": "p0", "model": baseline, "games": [{"score": "A>B"}, {"score": "A>B"}]})
        score = jc.judgebench({"f": records}, questions, baseline)
        plain = plain_judgebench(records, questions, baseline)
        assert score.to_json()["accuracy"] == pytest.approx(plain["accuracy"])
        assert score.pairs == plain["pairs"] == 400
        assert score.inconsistent == pytest.approx(plain["inconsistent"])
        assert score.unreadable == pytest.approx(plain["unreadable"])
        assert_same_sources({k: {"accuracy": v.accuracy, "pairs": v.pairs} for k, v in score.by_source.items()},
                            plain["by_source"])
    # a judge always right in both orders: 100%; not a JudgeBench bench: no score
    right = [{"question_id": q, "model": "response_A", "games": [
        {"score": "B>>A" if v["label"] == "A>B" else "A>B"}, {"score": "A>B" if v["label"] == "A>B" else "B>A"}]}
        for q, v in questions.items()]
    perfect = jc.judgebench({"response_A": right}, questions, "response_B")
    assert perfect.accuracy == 100.0 and perfect.inconsistent == 0.0
    assert jc.judgebench({"response_A": right}, questions, "gpt-4-0314") is None
    assert jc.judgebench({"response_A": right}, {}, "response_B") is None


# ---------------------------------------------------------------- the command: references, files, errors


def test_against_a_judge_and_against_its_board_file(bench, capsys):
    cwd, sb = bench
    base = ["--baseline", sb.baseline, "--bootstrap", "questions", "--num-rounds", "400", "--card-rounds", "400"]
    assert main(["--judge-name", "judge-b", *base, "--output", "--output-dir", "ref"]) == 0
    board_b = capsys.readouterr().out
    (cwd / "ref.txt").write_text(board_b, encoding="utf-8")
    assert main(["--judge-name", "judge-a", *base, "--against", "judge-b", "--output", "--output-dir", "ours"]) == 0
    out = capsys.readouterr().out
    card = card_json(cwd / "ours")
    ours, samples = board_samples(cwd / "ours")
    reference, _ = board_samples(cwd / "ref")
    plain = plain_agreement_numbers({m: v for m, v in ours.items() if m != sb.baseline},
                                    {m: v for m, v in reference.items() if m != sb.baseline}, samples)
    assert card["agreement"] == pytest.approx(plain["agreement"])
    assert card["agreement_blog"] == pytest.approx(plain["agreement_blog"])
    assert card["strict_agreement"] == pytest.approx(plain["strict"])
    assert card["brier"] == pytest.approx(plain["brier"])
    assert card["spearman"] == pytest.approx(plain["spearman"]) and card["kendall"] == pytest.approx(plain["kendall"])
    for level in (95, 80):
        assert card[f"separability_{level}"] == pytest.approx(plain_separability(plain_intervals(samples, level, sb.baseline)))
    for key in ("separability_95", "separability_80", "agreement", "strict_agreement", "brier", "position_consistency",
                "tie_share", "unreadable_share", "constrained_share"):
        assert 0 <= card[key] <= 1, key
    assert -1 <= card["agreement_blog"] <= 1 and -1 <= card["spearman"] <= 1 and -1 <= card["kendall"] <= 1
    assert len(card["pairs"]) == 15 and {"model_1", "model_2", "ours", "reference"} <= set(card["pairs"][0])
    # per game: the same agreement and kappa as --diagnostics over both judges
    assert main(["--judge-names", "judge-a", "judge-b", "--baseline", sb.baseline, "--diagnostics"]) == 0
    diagnostics_line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("## judges judge-a vs judge-b"))
    share, games, kappa = re.search(r"agreement ([\d.]+)% on (\d+) games, Cohen's kappa ([-\d.]+)", diagnostics_line).groups()
    assert f"per-game agreement: {share}% of {games} games both judged (same winner); Cohen's kappa {kappa}" in out
    assert card["kappa"] == pytest.approx(float(kappa), abs=5e-4) and card["games_both_judged"] == int(games)
    assert "judge-a" in out.split("## judge card: judge-a on")[1].splitlines()[1]  # the two judges side by side
    assert card["reference_card"]["separability_95"] is not None

    # the reference as a file: the CSV --output wrote (also with per-category rows after the overall board's)
    # and the printed board lines give the same card
    assert main(["--judge-name", "judge-b", *base, "--category", "--diagnostics", "--output", "--output-dir",
                 "ref-categories"]) == 0
    categories = next((cwd / "ref-categories").glob("*.csv"))
    assert len(categories.read_text(encoding="utf-8").splitlines()) > 2 * len(ours)
    (cwd / "categories.csv").write_text(categories.read_text(encoding="utf-8"), encoding="utf-8")
    for path in (next((cwd / "ref").glob("*.csv")), cwd / "categories.csv", cwd / "ref.txt"):
        assert main(["--judge-name", "judge-a", *base, "--against-board", str(path), "--output", "--output-dir",
                     f"vs-{path.stem}"]) == 0
        from_file = card_json(cwd / f"vs-{path.stem}")
        for key in ("agreement", "agreement_blog", "strict_agreement", "spearman", "kendall", "brier"):
            assert from_file[key] == pytest.approx(card[key], abs=1e-9 if path.suffix == ".csv" else 0.05), (path, key)
        assert from_file["game_agreement"] is None and "per-game agreement" not in capsys.readouterr().out


def test_the_card_bootstraps_questions_with_its_own_rounds_and_seed(bench, capsys):
    cwd, sb = bench
    common = ["--judge-name", "judge-a", "--baseline", sb.baseline]
    # the board as the seed does it (battles, 100 rounds); the card: questions, 300 rounds, seed 7
    assert main([*common, "--judge-card", "--card-rounds", "300", "--card-seed", "7", "--output", "--output-dir",
                 "card"]) == 0
    assert main([*common, "--bootstrap", "questions", "--num-rounds", "300", "--seed", "7", "--output", "--output-dir",
                 "board"]) == 0
    capsys.readouterr()
    card = card_json(cwd / "card")
    board, _ = board_samples(cwd / "board")
    assert card["rounds"] == 300 and card["seed"] == 7 and card["bootstrap"] == "questions"
    assert card["scores"] == {m: {"score": v[0], "lower": v[1], "upper": v[2]} for m, v in board.items() if m != sb.baseline}
    seed_board, _ = board_samples(cwd / "card")  # the printed board kept its own bootstrap
    assert any(seed_board[m][1:] != board[m][1:] for m in board if m != sb.baseline)


@pytest.mark.parametrize("content, fragment", [
    (None, "no such file"),
    ("model,score,low,high\nm,1,0,2\n", "no columns lower, upper"),
    ("<html><body>a board?</body></html>\n", "no columns model, score, lower, upper"),
    ("model,score,lower,upper\nx,1,0,2\ny,2,1,3\n", "no model in common with the board of judge-a (reference: x, y;"),
    ("model,score,lower,upper\nmodel-1,40,38,42\n", "only model-1 is rated on both boards"),
    ("model,score,lower,upper\nmodel-1,40,38,42\nmodel-2,abc,1,3\n", ":3: score 'abc' is not a number"),
    ("", "no columns model, score, lower, upper"),
])
def test_bad_reference_files_stop_with_one_line_naming_the_file(bench, capsys, content, fragment):
    cwd, sb = bench
    path = cwd / "reference.csv"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    code = run_cli(main, ["--judge-name", "judge-a", "--baseline", sb.baseline, "--against-board", str(path),
                          "--output", "--output-dir", "out"])
    assert code == 2
    line = one_line_error(capsys)
    assert f"--against-board {path}" in line and fragment in line, line
    assert not (cwd / "out").exists()  # nothing written


@pytest.mark.parametrize("args, fragment", [
    (["--against", "judge-zz"], "--against judge-zz: "),
    (["--against", "judge-a"], "that is the judge of the card"),
    (["--against", "judge-b", "--against-board", "x.csv"], "give one reference"),
    (["--judge-card", "--load-battles"], "--judge-card reads judgments"),
    (["--judge-card", "--card-rounds", "10"], "--card-rounds must be at least 100"),
])
def test_bad_card_flags_stop_with_one_line(bench, capsys, args, fragment):
    _cwd, sb = bench
    assert run_cli(main, ["--judge-name", "judge-a", "--baseline", sb.baseline, *args]) == 2
    assert fragment in one_line_error(capsys)


def test_the_card_section_of_the_html_report_reads_as_printed(bench, capsys):
    """Opened in headless Chromium with the network cut off: the card's tables say what the command printed."""
    cwd, sb = bench
    report = cwd / "share" / "board.html"
    assert main(["--judge-name", "judge-a", "--baseline", sb.baseline, "--against", "judge-b", "--card-rounds", "200",
                 "--report", str(report)]) == 0
    out = capsys.readouterr().out
    page_html = report.read_text(encoding="utf-8")
    assert '<section id="judge-card">' in page_html and "<script" not in page_html.lower()
    printed_own = [[c.strip() for c in line.split(" | ")]
                   for line in out.split("## judge card: judge-a on")[1].splitlines()[2:11]]
    printed_agreement = [line.split(": ", 1) for line in out.split("## judge card: judge-a against judge-b")[1].splitlines()[1:7]]
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_context(offline=True).new_page()
        page.goto(report.as_uri())
        assert page.locator("#judge-card h2").inner_text() == "Judge card: judge-a"
        assert page.locator("#card-own thead th").all_inner_texts()[1:] == ["judge-a", "judge-b"]
        rows = page.locator("#card-own tbody tr")
        shown = [rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count())]
        agreement = page.locator("#card-agreement tbody tr")
        shown_agreement = [agreement.nth(i).locator("td").all_inner_texts() for i in range(agreement.count())]
        browser.close()
    assert shown == printed_own  # the same rows: label, then both judges' values
    assert shown_agreement == [[name, value] for name, value in printed_agreement]


# ---------------------------------------------------------------- real answers: the Russian bench


RU_BASELINE = "Phi-3-medium-128k-instruct"
LENGTH_LOVER = StandinJudge("standin-length", cyrillic=0.3, length=1.5, structure=0.2, position_bias=0.6)
RUSSIAN_READER = StandinJudge("standin-russian", cyrillic=3.0, length=-0.3, structure=0.5, position_bias=0.1,
                              noise_scale=0.8)


@pytest.fixture
def ru_project(shared, tmp_path, monkeypatch):
    """The Russian bench's real questions and answers (10 models), judged by two stand-in judges."""
    data = shared / "data" / "arena-hard-v0.1-ru"
    bench = tmp_path / "data" / "ru"
    copy_real_bench(data, bench)
    answers = load_answers(bench / "model_answer")
    models = sorted(m for m in answers if m != RU_BASELINE)
    ids = [q["question_id"] for q in load_questions(bench / "question.jsonl")]
    for standin in (LENGTH_LOVER, RUSSIAN_READER):
        for model, records in standin.records(answers, models, RU_BASELINE, ids).items():
            write_jsonl(bench / "model_judgment" / standin.name / f"{model}.jsonl", records)
    monkeypatch.chdir(tmp_path)
    return tmp_path, models, answers


def test_the_card_on_real_answers_equals_its_definitions(ru_project, capsys):
    cwd, models, answers = ru_project
    base = ["--bench-name", "ru", "--baseline", RU_BASELINE, "--bootstrap", "questions", "--num-rounds", "1000"]
    assert main(["--judge-name", RUSSIAN_READER.name, *base, "--output", "--output-dir", "ref"]) == 0
    assert main(["--judge-name", LENGTH_LOVER.name, *base, "--against", RUSSIAN_READER.name, "--output", "--output-dir",
                 "ours"]) == 0
    out = capsys.readouterr().out
    card = card_json(cwd / "ours")
    paths = BenchPaths("ru", cwd / "data")
    for name, numbers in ((LENGTH_LOVER.name, card), (RUSSIAN_READER.name, card["reference_card"])):
        plain = plain_games(load_judgments(paths, name), answers, RU_BASELINE)
        assert numbers["position_consistency"] == pytest.approx(plain["consistency"])
        assert [numbers["first_slot_win_share"][g] for g in ("game_1", "game_2")] == pytest.approx(plain["first_slot"])
        assert numbers["tie_share"] == pytest.approx(plain["ties"])
        assert numbers["unreadable_share"] == plain["unreadable"] == 0
        assert numbers["length_correlation"]["value"] == pytest.approx(plain["length"])
        assert numbers["judgments"] == 9 * 500
    # the stand-ins behave as built: one rewards length and favours slot A, the other reads Russian
    assert card["length_correlation"]["value"] > card["reference_card"]["length_correlation"]["value"] + 0.1
    assert card["first_slot_win_share"]["game_1"] > card["reference_card"]["first_slot_win_share"]["game_1"]
    assert card["position_consistency"] < card["reference_card"]["position_consistency"]

    ours, samples = board_samples(cwd / "ours")
    reference, _ = board_samples(cwd / "ref")
    plain = plain_agreement_numbers({m: v for m, v in ours.items() if m != RU_BASELINE},
                                    {m: v for m, v in reference.items() if m != RU_BASELINE}, samples)
    for key, plain_key in (("agreement", "agreement"), ("agreement_blog", "agreement_blog"), ("brier", "brier"),
                           ("strict_agreement", "strict"), ("spearman", "spearman"), ("kendall", "kendall")):
        assert card[key] == pytest.approx(plain[plain_key]), key
    assert card["pairs_separated_by_reference"] == plain["separated"] and len(card["pairs"]) == 36
    for level in (95, 80):
        assert card[f"separability_{level}"] == pytest.approx(plain_separability(plain_intervals(samples, level, RU_BASELINE)))
    rho = [plain_spearman([samples[m][r] for m in models], [reference[m][0] for m in models]) for r in range(1000)]
    assert card["spearman_ci"] == pytest.approx([plain_percentile(rho, 2.5), plain_percentile(rho, 97.5)])
    # the printed card says the same, each judge in its column
    rows = [line.split(" | ") for line in out.split(f"## judge card: {LENGTH_LOVER.name} on")[1].splitlines()[2:11]]
    printed = {row[0].strip(): [cell.strip() for cell in row[1:]] for row in rows}
    for column, numbers in enumerate((card, card["reference_card"])):
        for level in (95, 80):
            assert printed[f"separability at {level}% (share of model pairs apart)"][column] == (
                f"{100 * numbers[f'separability_{level}']:.1f}% of 36")
        assert printed["position consistency (judgments)"][column] == f"{100 * numbers['position_consistency']:.1f}% of 4500"
        for game, slot in (("game_1", "game 1 (A = the baseline)"), ("game_2", "game 2 (A = the judged model)")):
            assert printed[f"first slot wins, {slot}"][column] == f"{100 * numbers['first_slot_win_share'][game]:.1f}% of 4500"
        assert printed["ties (share of verdicts)"][column] == f"{100 * numbers['tie_share']:.1f}%"
        assert printed["unreadable verdicts (share of games)"][column] == "0.0% of 9000"
        assert printed["length: Spearman's rho, outcome vs token difference"][column] == (
            f"{numbers['length_correlation']['value']:+.3f} over 9000")
    assert f"strict agreement: {100 * card['strict_agreement']:.1f}% of 36 pairs" in out
    assert f"Brier score: {card['brier']:.4f} over 36 pairs" in out


def test_against_the_seeds_published_board_of_a_real_judge(ru_project, capsys):
    """arena-hard-local's README prints the board its Llama-3-70B judge gave these answers, in seed-format
    lines: the card reads them as the reference."""
    readme = next(iter((SHARED / "seeds").glob("002_*.txt")), None)
    if readme is None:
        pytest.skip("../shared/seeds is not present here")
    cwd, _models, _answers = ru_project
    block = readme.read_text(encoding="utf-8").split("### Llama-3-70B-Instruct-AH-AWQ as judge:")[1]
    board_lines = block.split("```console\n")[1].split("```")[0]
    (cwd / "llama3-70b.txt").write_text(board_lines, encoding="utf-8")
    seed_board = {}
    for line in board_lines.splitlines():
        model, score, ci, _tokens = (part.strip() for part in line.split("|"))
        low, high = (float(x) for x in ci.split("(")[1].rstrip(")").split(","))
        value = float(score.split(":")[1])
        seed_board[model] = (value, value + low, value + high)
    assert main(["--bench-name", "ru", "--judge-name", RUSSIAN_READER.name, "--baseline", RU_BASELINE, "--bootstrap",
                 "questions", "--num-rounds", "1000", "--against-board", "llama3-70b.txt", "--output", "--output-dir",
                 "out"]) == 0
    out = capsys.readouterr().out
    card = card_json(cwd / "out")
    ours, samples = board_samples(cwd / "out")
    plain = plain_agreement_numbers({m: v for m, v in ours.items() if m != RU_BASELINE},
                                    {m: v for m, v in seed_board.items() if m != RU_BASELINE}, samples)
    for key, plain_key in (("agreement", "agreement"), ("strict_agreement", "strict"), ("brier", "brier"),
                           ("spearman", "spearman"), ("kendall", "kendall")):
        assert card[key] == pytest.approx(plain[plain_key]), key
    # the seed's judge separates all pairs but two (aya-23-8B vs suzume-multilingual, suzume-orpo vs Meta-Llama-3-8B)
    assert card["pairs_separated_by_reference"] == plain["separated"] == 34
    assert f"## judge card: {RUSSIAN_READER.name} against llama3-70b.txt (9 models in both boards, 36 pairs)" in out


# ---------------------------------------------------------------- JudgeBench end to end


def test_judgebench_350_pairs_end_to_end_against_a_stand_in_judge(shared, tmp_path, monkeypatch, capsys):
    source = SHARED / "data" / "judgebench"
    if not (source / "data").is_dir():
        pytest.skip("../shared/data/judgebench is not present here")
    monkeypatch.chdir(tmp_path)
    assert run_cli(download_data.main, ["judgebench", "--source-dir", str(source)]) == 0
    err = capsys.readouterr().err
    assert "judgebench-gpt: 350 pairs" in err and "note: judgebench-claude:" in err  # the folder holds GPT-4o's only
    project = Project(tmp_path, bench="judgebench-gpt")
    questions = {q["question_id"]: q for q in load_questions(project.bench_dir / "question.jsonl")}
    answers = load_answers(project.bench_dir / "model_answer")
    verdict = judgebench_judge(answers, {q: v["label"] for q, v in questions.items()}, right_share=0.6,
                               position_bias=0.2, unreadable_share=0.05)
    with FakeServer(Script(verdict=verdict)) as server:
        project.write_api({"standin": entry(server.base_url, "j", parallel=32)})
        project.write_judge_config(["response_A"], judge="standin", baseline="response_B")
        assert judge() == 0
    records = read_jsonl(project.bench_dir / "model_judgment" / "standin" / "response_A.jsonl")
    assert len(records) == 350
    capsys.readouterr()
    assert main(["--bench-name", "judgebench-gpt", "--baseline", "response_B", "--judge-card", "--output",
                 "--output-dir", "out"]) == 0
    out = capsys.readouterr().out
    score = card_json(tmp_path / "out")["judgebench"]
    plain = plain_judgebench(records, questions, "response_B")
    assert score["accuracy"] == pytest.approx(plain["accuracy"]) and score["pairs"] == 350
    assert_same_sources(score["by_source"], plain["by_source"])
    assert set(score["by_source"]) == {"mmlu-pro", "livebench-reasoning", "livebench-math", "livecodebench"}
    assert score["inconsistent"] == pytest.approx(plain["inconsistent"]) and score["inconsistent"] > 0
    assert score["unreadable"] == pytest.approx(plain["unreadable"])
    # sees the right answer of 60% of the pairs (less its unreadable games), guesses the rest: right on about
    # 0.6 + 0.4 (1/2 + 0.2) (1/2 - 0.2) = 68% of the pairs; its guesses make pairs inconsistent
    assert 60 < score["accuracy"] < 76 and 0.15 < score["inconsistent"] < 0.4
    assert f"## JudgeBench accuracy of standin on judgebench-gpt: {plain['accuracy']:.1f}% of 350 pairs" in out
    for group, value in plain["by_source"].items():
        assert re.search(rf"^  {re.escape(group)} +{value['accuracy']:.1f}% of {value['pairs']} pairs$", out, re.M)
    assert f"inconsistent: {100 * plain['inconsistent']:.1f}% of pairs" in out


def test_download_judgebench_from_small_files(tmp_path, capsys):
    rows = [{"pair_id": f"p{i}", "original_id": i, "source": "livebench-math", "question": f"What is {i}+{i}?",
             "response_model": "gpt-4o-2024-05-13", "response_A": f"It is {2 * i}.", "response_B": f"It is {2 * i + 1}.",
             "label": "A>B"} for i in range(3)]
    github = tmp_path / "repo" / "data" / "dataset=judgebench,response_model=gpt-4o-2024-05-13.jsonl"
    write_jsonl(github, rows)
    hub = tmp_path / "hub" / "ScalerLab" / "JudgeBench" / "data" / "claude-00000-of-00001.jsonl"
    write_jsonl(hub, [{**r, "pair_id": f"c{i}", "label": "B>A"} for i, r in enumerate(rows[:2])])
    data = tmp_path / "data"
    assert run_cli(download_data.main, ["judgebench-gpt", "--source-dir", str(tmp_path / "repo"), "--data-dir", str(data)]) == 0
    assert run_cli(download_data.main, ["judgebench", "--source-dir", str(tmp_path / "hub"), "--data-dir", str(data)]) == 0
    err = capsys.readouterr().err
    assert "note: judgebench-gpt:" in err and "judgebench-claude: 2 pairs" in err
    [question] = load_questions(data / "judgebench-gpt" / "question.jsonl")[:1]
    assert question == {"question_id": "p0", "category": "livebench-math", "turns": [{"content": "What is 0+0?"}],
                        "label": "A>B", "original_id": 0, "response_model": "gpt-4o-2024-05-13"}
    answers = load_answers(data / "judgebench-claude" / "model_answer")
    assert set(answers) == {"response_A", "response_B"}
    assert answers["response_B"]["c1"]["choices"][0]["turns"][0] == {"content": "It is 3.", "token_len": token_len("It is 3.")}
    # bad input: one line naming the file and record, nothing written
    write_jsonl(github, [*rows, {**rows[0], "pair_id": "p9", "label": "A=B"}])
    assert run_cli(download_data.main, ["judgebench-gpt", "--source-dir", str(tmp_path / "repo"), "--data-dir",
                                        str(tmp_path / "fresh")]) == 2
    assert "response_model=gpt-4o-2024-05-13.jsonl:4: label 'A=B' is neither 'A>B' nor 'B>A'" in one_line_error(capsys)
    assert run_cli(download_data.main, ["judgebench-claude", "--source-dir", str(tmp_path / "repo"), "--data-dir",
                                        str(tmp_path / "fresh")]) == 2
    assert "no data/dataset=judgebench,response_model=claude-3-5-sonnet*.jsonl" in one_line_error(capsys)
    assert not (tmp_path / "fresh").exists()


def test_rank_correlations_of_many_rounds_equal_the_plain_ones():
    from arenajudge.rating.diagnostics import rank_correlations

    rng = random.Random(4)
    y = [float(rng.randint(0, 5)) for _ in range(9)]
    x = [[float(rng.randint(0, 5)) for _ in range(9)] for _ in range(200)] + [[1.0] * 9]
    rho, tau = rank_correlations(np.array(x), np.array(y))
    for r, row in enumerate(x):
        if len(set(row)) == 1:
            assert math.isnan(rho[r]) and math.isnan(tau[r])
            continue
        assert rho[r] == pytest.approx(plain_spearman(row, y)) and tau[r] == pytest.approx(plain_kendall(row, y))
    many = [float(rng.randint(-2, 2)) for _ in range(3000)]
    other = [float(rng.randint(0, 40)) for _ in range(3000)]
    assert rank_correlations(np.array(many), np.array(other))[0][0] == pytest.approx(plain_spearman(many, other))
    assert pd.isna(rank_correlations(np.array([[1.0]]), np.array([2.0]))[0][0])
