"""show_result.py sections for decisions: --compare, combined score, projection, --runs, MT-Bench dispatch."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlparse

import pytest
from conftest import run_script, table_rows

from arenajudge.cli import gen_judgment
from arenajudge.core.errors import run_cli
from arenajudge_testkit.fake_openai import FakeServer, Script
from arenajudge_testkit.gen_project import Project, entry
from arenajudge_testkit.synth import make_bench


@pytest.fixture
def bench(tmp_path):
    sb = make_bench(tmp_path / "data", n_questions=90, n_models=3, seed=2)
    return tmp_path, sb


def _show(cwd, sb, *extra):
    return run_script("show_result.py", "--judge-name", "judge-a", "--baseline", sb.baseline, *extra, cwd=cwd)


def test_compare_prints_pairs_matrix_categories_and_links(bench):
    cwd, sb = bench
    proc = _show(cwd, sb, "--compare", "model-0", "model-1", "model-2", "--compare-rounds", "300", "--markdown",
                 "--output", "--output-dir", "out")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "## paired comparison: bootstrap over questions, 300 rounds" in out
    pair_lines = [line for line in out.splitlines() if re.match(r"model-\d - model-\d: [+-]\d", line)]
    assert len(pair_lines) == 3 * (1 + 3)  # overall and each of the 3 categories
    assert "row minus column" in out
    for category in ("coding", "math", "writing"):
        assert f"## paired comparison, category {category} (30 questions)" in out
    links = re.findall(r"http://127\.0\.0\.1:7860/\?\S+", out)
    assert len(links) == 3 * 5
    query = parse_qs(urlparse(links[0]).query)
    assert query["bench"] == [sb.bench] and query["judge"] == ["judge-a"] and "vs" in query and "question" in query
    assert "| comparison | difference | 95% CI | p | Holm-adjusted p | significant |" in out
    [comparison] = (cwd / "out").glob("arena_hard_comparison_*.json")
    records = json.loads(comparison.read_text())
    assert len(records) == 12 and {"diff", "lower", "upper", "p_value", "p_holm", "significant", "category"} <= set(records[0])
    # model-2 is the strongest synthetic model by a wide margin: significant against model-0
    overall = {(r["model_a"], r["model_b"]): r for r in records if r["category"] == "all"}
    assert overall[("model-0", "model-2")]["significant"] and overall[("model-0", "model-2")]["diff"] > 0


def test_compare_needs_known_models(bench):
    cwd, sb = bench
    proc = _show(cwd, sb, "--compare", "model-0", "ghost")
    assert proc.returncode == 2 and "'ghost' has no battles" in proc.stderr


def test_combined_score_with_weights(bench):
    cwd, sb = bench
    proc = _show(cwd, sb, "--category", "--category-weights", "coding=2", "math=1", "writing=1")
    assert proc.returncode == 0, proc.stderr
    assert "## combined score over category (weights: coding=2, math=1, writing=1" in proc.stdout
    bad = _show(cwd, sb, "--category-weights", "coding=2")
    assert bad.returncode == 2 and "needs --category" in bad.stderr
    bad = _show(cwd, sb, "--category", "--category-weights", "coding")
    assert bad.returncode == 2 and "CATEGORY=WEIGHT" in bad.stderr
    bad = _show(cwd, sb, "--category", "--category-weights", "poetry=1")
    assert bad.returncode == 2 and "unknown category 'poetry'" in bad.stderr


def test_diagnostics_on_a_sample_projects_the_full_width(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    project = Project(tmp_path)
    qs = project.simple_questions(40)
    for m in ("m1", "m2", "base"):
        project.write_answers(m, qs)
    with FakeServer() as server:
        project.write_api({"judge": entry(server.base_url, "j", parallel=8)})
        project.write_judge_config(["m1", "m2"])
        assert run_cli(gen_judgment.main, ["--quiet", "--sample", "10"]) == 0
    proc = run_script("show_result.py", "--bench-name", project.bench, "--diagnostics", "--output", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "## projected 95% CI half-width with all 40 questions (now 10 judged" in proc.stdout
    widths = re.findall(r"now: ±([\d.]+) \| with 40 questions: ±([\d.]+)", proc.stdout)
    assert len(widths) == 2 and all(float(full) == pytest.approx(float(now) / 2, abs=0.06) for now, full in widths)
    [board] = tmp_path.glob("arena_hard_leaderboard_*.json")
    records = {r["model"]: r for r in json.loads(board.read_text())}
    assert records["m1"]["judge_prompt_tokens"] > 0 and records["m1"]["judge_completion_tokens"] > 0
    runs = run_script("show_result.py", "--bench-name", project.bench, "--runs", cwd=tmp_path)
    assert runs.returncode == 0, runs.stderr
    judging = [row for row in table_rows(runs.stdout) if row["command"] == "gen_judgment"]
    assert [row["requests"] for row in judging] == ["40"]  # 10 questions x 2 models x 2 games
    assert int(judging[0]["prompt_tokens"]) > 0


def test_runs_without_a_log_is_a_clear_error(tmp_path):
    proc = run_script("show_result.py", "--bench-name", "nothing", "--runs", cwd=tmp_path)
    assert proc.returncode == 2 and "data/nothing: no such bench" in proc.stderr
    (tmp_path / "data" / "nothing").mkdir(parents=True)
    (tmp_path / "data" / "nothing" / "question.jsonl").write_text("")
    proc = run_script("show_result.py", "--bench-name", "nothing", "--runs", cwd=tmp_path)
    assert proc.returncode == 2 and "no runs recorded yet" in proc.stderr


def test_mt_bench_dispatch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    project = Project(tmp_path, bench="mt_bench")
    questions = [{"question_id": i, "category": "writing", "turns": ["one", "two"]} for i in range(3)]
    project.write_questions(questions)
    project.write_answers("m1", questions)
    with FakeServer(Script(answer=lambda messages: "Rating: [[7]]")) as server:
        project.write_api({"judge": entry(server.base_url, "j")})
        project.write_judge_config(["m1"], mode="single")
        assert run_cli(gen_judgment.main, ["--quiet"]) == 2  # one answer turn for two-turn questions
    path = project.bench_dir / "model_answer" / "m1.jsonl"
    path.write_text("".join(json.dumps({"question_id": q["question_id"], "model_id": "m1", "choices": [
        {"index": 0, "turns": ["first", "second"]}]}) + "\n" for q in questions))
    with FakeServer(Script(answer=lambda messages: "Rating: [[7]]")) as server:
        project.write_api({"judge": entry(server.base_url, "j")})
        project.write_judge_config(["m1"], mode="single")
        assert run_cli(gen_judgment.main, ["--quiet"]) == 0
    proc = run_script("show_result.py", "--bench-name", "mt_bench", "--judge-name", "judge", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Mode: single" in proc.stdout and "########## Average ##########" in proc.stdout
    assert re.search(r"m1\s+7\.0", proc.stdout)


def test_runs_table_shows_servers_and_cache_hit_rate(tmp_path):
    runs = tmp_path / "data" / "b" / "runs.jsonl"
    runs.parent.mkdir(parents=True)
    runs.write_text(json.dumps({"command": "gen_judgment", "start": "2026-11-24T08:00:00+00:00", "judge": "j",
                                "models": ["m1", "m2"], "done": 4, "requests": 8,
                                "servers": [{"model": "j", "gpus": "0,1", "held_seconds": 61.5}],
                                "prefix_cache": {"queries": 100, "hits": 40, "hit_rate": 0.4}}) + "\n")
    proc = run_script("show_result.py", "--bench-name", "b", "--runs", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    [row] = table_rows(proc.stdout)
    assert (row["servers"], row["cache_hit_rate"], row["models"]) == ("j@0,1 (61.5 s)", "0.4", "m1,m2")
    assert (row["command"], row["judge"], row["done"], row["requests"]) == ("gen_judgment", "j", "4", "8")


def test_runs_table_names_ray_replicas_by_node_and_says_which_was_lost(tmp_path):
    runs = tmp_path / "data" / "b" / "runs.jsonl"
    runs.parent.mkdir(parents=True)
    replicas = [{"model": "j", "replica": 1, "ray_node": "fbfc20284550", "gpus": "none", "held_seconds": 169.2},
                {"model": "j", "replica": 2, "ray_node": "6ac9df62d25a", "gpus": "0", "held_seconds": 93.8,
                 "lost": "was lost with its node"}]
    runs.write_text(json.dumps({"command": "gen_judgment", "start": "2026-12-07T20:32:00+00:00", "judge": "j",
                                "models": ["m1"], "done": 24, "requests": 96, "servers": replicas}) + "\n")
    proc = run_script("show_result.py", "--bench-name", "b", "--runs", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "j#1@fbfc2028:none (169.2 s); j#2@6ac9df62:0 (93.8 s, lost)" in proc.stdout
