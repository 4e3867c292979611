"""show_result.py's flags beyond the seed, run in-process (fast) and once as users run it."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from conftest import run_script

from arenajudge.cli.show_result import main
from arenajudge.core.errors import UserError
from arenajudge.present.leaderboard import BoardSpec, build_board
from arenajudge.present.report import format_line
from arenajudge.rating.battles import battles_from_judgments
from arenajudge.rating.bradley_terry import rate, win_rate
from arenajudge.records.storage import BenchPaths, load_judgments
from arenajudge_testkit.synth import make_bench, make_style_bench, write_constant_judge, write_jsonl

LINE = re.compile(r"^(?P<model>.{50}) \| score: (?P<score>.{5}) \| 95% CI: (?P<ci>.{15}) \| average #tokens: (?P<tokens>\d+)$")


def _sections(stdout: str) -> dict[str, dict[str, float]]:
    """Board lines grouped by the header line above them ('#' for the main board)."""
    sections: dict[str, dict[str, float]] = {}
    current = ""
    for line in stdout.splitlines():
        if line.startswith("#"):
            current = "#" if line.startswith("# ") else line
            sections.setdefault(current, {})
        elif m := LINE.match(line):
            sections[current][m["model"].strip()] = float(m["score"])
    return {k: v for k, v in sections.items() if v}


@pytest.fixture
def bench(tmp_path, monkeypatch):
    sb = make_bench(tmp_path / "data", n_questions=60, n_models=4, judges=("judge-a", "judge-b"), missing_rate=0.02)
    monkeypatch.chdir(tmp_path)
    return tmp_path, sb


def _run(capsys, sb, *args: str) -> str:
    assert main(["--baseline", sb.baseline, "--num-rounds", "40", *args]) == 0
    return capsys.readouterr().out


def test_one_judge_by_either_flag_prints_the_same(bench, capsys):
    _cwd, sb = bench
    assert _run(capsys, sb, "--judge-name", "judge-a") == _run(capsys, sb, "--judge-names", "judge-a")


def test_several_judges_pool_their_battles(bench, capsys):
    cwd, sb = bench
    out = _run(capsys, sb, "--judge-names", "judge-a", "judge-b")
    paths = BenchPaths(sb.bench, cwd / "data")
    n = sum(len(battles_from_judgments(load_judgments(paths, j), sb.baseline, j).battles) for j in ("judge-a", "judge-b"))
    assert out.startswith(f"# {sb.bench}: {n} battles from {2 * 5 * 60} judgments by judge-a, judge-b;")
    pooled = _sections(out)["#"]
    assert set(pooled) == {*sb.models, sb.baseline}


def test_the_service_builds_the_printed_board_prints_nothing_and_writes_caches_only_when_asked(bench, capsys):
    cwd, sb = bench
    out = _run(capsys, sb, "--judge-name", "judge-a")
    caches = [cwd / "data" / "arena_hard_battles.jsonl", cwd / "data" / "bootstrapping_results.jsonl"]
    for cache in caches:
        cache.unlink()
    spec = BoardSpec(bench=sb.bench, data_dir=cwd / "data", judges=("judge-a",), baseline=sb.baseline, rounds=40)
    board = build_board(spec)
    assert capsys.readouterr() == ("", "")
    assert not any(cache.exists() for cache in caches)
    assert out.splitlines() == [board.header, *(format_line(r, 1) for r in board.rows), *board.notes]
    build_board(dataclasses.replace(spec, save_caches=True))
    assert all(cache.exists() for cache in caches)


def test_categories_give_one_board_each_equal_to_rating_that_subset(bench, capsys):
    cwd, sb = bench
    out = _run(capsys, sb, "--judge-name", "judge-a", "--category")
    sections = _sections(out)
    titles = [t for t in sections if t.startswith("## category:")]
    assert [t.split(" (")[0] for t in titles] == ["## category: coding", "## category: math", "## category: writing"]
    assert all("(20 questions" in t for t in titles)
    # the coding board is the plain fit on the coding questions' battles
    paths = BenchPaths(sb.bench, cwd / "data")
    battles = battles_from_judgments(load_judgments(paths, "judge-a"), sb.baseline, "judge-a").battles
    coding = battles[battles["question_id"].isin(sb.question_ids[0::3])]
    expected = rate(coding, sb.baseline, rounds=5)
    for model, score in sections[titles[0]].items():
        assert score == pytest.approx(round(float(win_rate(expected.point[model])) * 100, 1), abs=0.051)
    clusters = _sections(_run(capsys, sb, "--judge-name", "judge-a", "--category", "cluster"))
    assert len([t for t in clusters if t.startswith("## cluster:")]) == 7


def test_category_field_that_no_question_has(bench, capsys):
    cwd, sb = bench
    qfile = cwd / "data" / sb.bench / "question.jsonl"
    write_jsonl(qfile, [{k: v for k, v in json.loads(line).items() if k != "cluster"} for line in qfile.read_text().splitlines()])
    with pytest.raises(UserError, match=r"question\.jsonl: no question has a 'cluster' field \(--category cluster\)"):
        main(["--baseline", sb.baseline, "--judge-name", "judge-a", "--category", "cluster"])


def test_style_control_prints_coefficients_and_removes_a_length_edge(tmp_path, monkeypatch, capsys):
    sb = make_style_bench(tmp_path / "data", n_questions=200)
    monkeypatch.chdir(tmp_path)
    args = ["--bench-name", sb.bench, "--judge-name", "judge-a", "--baseline", sb.baseline, "--num-rounds", "50"]
    assert main(args) == 0
    plain = _sections(capsys.readouterr().out)["#"]
    assert main([*args, "--style-control", "length", "markdown", "--output", "--output-dir", "out"]) == 0
    out = capsys.readouterr().out
    controlled = _sections(out)["#"]
    assert "score: style-controlled Bradley-Terry (length, header, list, bold at equal style)" in out.splitlines()[0]
    coefficient = re.search(r"^length +\| coefficient: ([+-][\d.]+) \| 95% CI: \(([+-][\d.]+), ([+-][\d.]+)\)$", out, re.M)
    assert coefficient and float(coefficient[2]) > 0  # this judge rewards length
    assert plain["long-model"] > 65 and abs(controlled["long-model"] - 50) < abs(plain["long-model"] - 50) / 2
    assert (tmp_path / "data" / sb.bench / "style_features_cache.json").exists()
    [record_file] = (tmp_path / "out").glob("*.json")
    records = {r["model"]: r for r in json.loads(record_file.read_text())}
    assert records["long-model"]["score"] == pytest.approx(controlled["long-model"], abs=0.051)
    assert records["long-model"]["coef_length"] == pytest.approx(float(coefficient[1]), abs=0.0006)
    assert records["long-model"]["style_control"] == "length,header,list,bold"


def test_length_controlled_and_mean_label_their_boards(bench, capsys):
    _cwd, sb = bench
    lc = _run(capsys, sb, "--judge-name", "judge-a", "--length-controlled")
    assert "score: length-controlled win rate" in lc.splitlines()[0] and "## length slopes per model" in lc
    mean = _run(capsys, sb, "--judge-name", "judge-a", "--method", "mean")
    assert "score: mean battle score vs the baseline" in mean.splitlines()[0]
    assert _sections(mean)["#"][sb.baseline] == 50.0


def test_diagnostics_with_two_judges_and_a_position_biased_one(bench, capsys):
    _cwd, sb = bench
    write_constant_judge(sb, "judge-first", "A>B")
    out = _run(capsys, sb, "--judge-names", "judge-a", "judge-first", "--diagnostics")
    first_overall = re.search(r"## judge diagnostics: judge-first.*?\noverall +\| position consistency: +([\d.]+)%", out, re.S)
    assert first_overall and float(first_overall[1]) == 0.0
    assert re.search(r"## judges judge-a vs judge-first: verdict agreement [\d.]+% on \d+ games, Cohen's kappa -?[\d.]+; "
                     r"leaderboards over 5 models: Spearman", out)
    assert re.search(r"## separability: [\d.]+% of 6 model pairs", out)


def test_markdown_and_plots(bench, capsys):
    cwd, sb = bench
    out = _run(capsys, sb, "--judge-name", "judge-a", "--category", "--markdown", "--plot", "board.html")
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert table[0] == "| Model | overall (95% CI) | Avg #tokens | coding | math | writing |"
    assert len(table) == 2 + len(sb.models) + 1
    page = (cwd / "board.html").read_text()
    assert page.count("<svg") == 4 and "<script" not in page and "http://www.w3.org/2000/svg" in page
    assert "src=" not in page and all(m in page for m in sb.models)
    _run(capsys, sb, "--judge-name", "judge-a", "--plot", "board.png")
    assert (cwd / "board.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("extra, fragments", [
    (["--judge-names", "judge-a", "nobody"], ["model_judgment/nobody", "judge-a, judge-b"]),
    (["--judge-name", "judge-a", "--style-control", "colour"], ["--style-control: unknown feature 'colour'"]),
    (["--judge-name", "judge-a", "--style-control", "length", "--method", "mean"], ["choose one way of scoring"]),
    (["--judge-name", "judge-a", "--plot", "board.svg"], ["--plot board.svg", ".png or .html"]),
    (["--judge-name", "judge-a", "--judge-names", "judge-b"], ["give one of them"]),
])
def test_bad_flags_stop_with_one_line(bench, extra, fragments):
    cwd, sb = bench
    proc = run_script("show_result.py", "--baseline", sb.baseline, *extra, cwd=cwd)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert not (cwd / "data" / "arena_hard_battles.jsonl").exists()
