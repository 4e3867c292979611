"""Every number says what it is: v2's mean rule and CI level, style coefficients' interval, the
projection's wording, --compare validated first, download offline, and the output clutter list."""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pandas as pd
import pytest
from conftest import run_script

from arenajudge.cli import gen_judgment
from arenajudge.core.errors import run_cli
from arenajudge.endpoints.engine import RunReport
from arenajudge.present.plots import nice_ticks, write_plot
from arenajudge.present.report import BoardRow, write_records
from arenajudge.records.storage import BenchPaths, load_judgments
from arenajudge_testkit.fake_openai import FakeServer, Script
from arenajudge_testkit.gen_project import entry
from arenajudge_testkit.synth import _markdown_answer, make_bench, make_style_bench, write_jsonl

LINE = re.compile(r"^(?P<model>.{50}) \| score: (?P<score>.{5}) \| (?P<level>\d+)% CI: +\((?P<lo>[-\d.]+), (?P<hi>[-\d.]+)\)")


def _board(stdout: str) -> dict[str, tuple[float, float, float]]:
    board = {}
    for line in stdout.splitlines():
        if line.startswith("## "):
            break
        if m := LINE.match(line):
            board[m["model"].strip()] = (float(m["score"]), float(m["lo"]), float(m["hi"]))
    return board


def _v2_mean(judgments: dict[str, list[dict]], weight: int = 3) -> dict[str, float]:
    """arena-hard-auto v2's show_result, written out plainly: drop a judgment when either game has no
    score, expand each game into `weight` copies for a strong verdict, mean score of the model."""
    label_to_score = {"A>B": [1], "A>>B": [1] * weight, "A=B": [0.5], "B>A": [0], "B>>A": [0] * weight}
    means = {}
    for model, records in judgments.items():
        scores: list[float] = []
        for r in records:
            g1, g2 = (g["score"] for g in r["games"][:2])
            if g1 is None or g2 is None:
                continue
            # game 1 shows the baseline as A, game 2 shows the model as A
            scores += [1 - s for s in label_to_score[g1]] + label_to_score[g2]
        means[model] = 100 * float(np.mean(scores))
    return means


def test_method_mean_follows_v2_and_ci_level_sets_the_interval(tmp_path):
    sb = make_bench(tmp_path / "data", n_questions=80, n_models=3, missing_rate=0.1, seed=4)
    common = ("--judge-name", "judge-a", "--baseline", sb.baseline, "--method", "mean", "--num-rounds", "200")
    proc95 = run_script("show_result.py", *common, cwd=tmp_path)
    proc90 = run_script("show_result.py", *common, "--ci-level", "90", "--markdown", cwd=tmp_path)
    assert proc95.returncode == 0 and proc90.returncode == 0, proc95.stderr + proc90.stderr
    header95, header90 = proc95.stdout.splitlines()[0], proc90.stdout.splitlines()[0]
    assert "; 95% CI: bootstrap over battles" in header95 and "; 90% CI: bootstrap over battles" in header90
    assert "judgments with a game without a verdict dropped whole (arena-hard-auto v2)" in header95
    judgments = load_judgments(BenchPaths(sb.bench, tmp_path / "data"), "judge-a")
    expected = _v2_mean({m: r for m, r in judgments.items() if m != sb.baseline})
    board95, board90 = _board(proc95.stdout), _board(proc90.stdout)
    for model in sb.models:
        assert board95[model][0] == pytest.approx(expected[model], abs=0.06), model  # rounded twice, as the seed
        # same bootstrap samples, inner percentiles: the 90% interval lies inside the 95% one
        assert board95[model][1] <= board90[model][1] < 0 < board90[model][2] <= board95[model][2]
        assert (board90[model][1], board90[model][2]) != (board95[model][1], board95[model][2])
    assert all(LINE.match(line)["level"] == "90" for line in proc90.stdout.splitlines() if LINE.match(line))
    assert "| Model | overall (90% CI) | Avg #tokens |" in proc90.stdout
    dropped = sum(1 for records in judgments.values() for r in records if None in [g["score"] for g in r["games"]])
    assert re.search(rf"as arena-hard-auto v2 does, the {dropped} judgments holding them were dropped whole", proc95.stdout)
    # the Bradley-Terry board keeps dropping single games, and its default output keeps the seed's label
    plain = run_script("show_result.py", "--judge-name", "judge-a", "--baseline", sb.baseline, cwd=tmp_path)
    assert "were dropped whole" not in plain.stdout and " | 95% CI: " in plain.stdout
    bad = run_script("show_result.py", *common, "--ci-level", "120", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "error: --ci-level must be between 0 and 100 (a percentage), got 120")


def test_style_coefficients_of_a_random_judge_include_zero(tmp_path, monkeypatch):
    """A stand-in judge that picks verdicts at random (a hash of the prompt) has no style bias: the
    printed coefficients' intervals (bootstrap over questions by default) must include zero; the
    battle bootstrap, which the board uses by default, would call some of them significant."""
    sb = make_style_bench(tmp_path / "data", n_questions=150, bench="tbench")
    for path in (tmp_path / "data" / "tbench" / "model_judgment").rglob("*.jsonl"):
        path.unlink()  # judged again below, by the random judge over HTTP
    rng = random.Random(7)  # every model formats about half of its answers, at lengths of its own
    for path in (tmp_path / "data" / "tbench" / "model_answer").glob("*.jsonl"):
        records = [json.loads(line) for line in path.read_text().splitlines()]
        for r in records:
            turn = r["choices"][0]["turns"][0]
            turn["content"] = _markdown_answer(rng, turn["token_len"], formatted=rng.random() < 0.5)
        write_jsonl(path, records)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    with FakeServer(Script()) as server:
        (tmp_path / "config" / "api_config.yaml").write_text(json.dumps({"rnd": entry(server.base_url, "rnd", parallel=16)}))
        (tmp_path / "config" / "judge_config.yaml").write_text(json.dumps({
            "bench_name": "tbench", "judge_model": "rnd", "baseline": True, "baseline_model": sb.baseline,
            "pairwise": True, "temperature": 0, "max_tokens": 64, "regex_pattern": r"\[\[([AB<>=]+)\]\]",
            "system_prompt": "Judge. End with [[A>B]] or similar.",
            "prompt_template": ["<|User Prompt|>\n{question_1}\n\n<|The Start of Assistant A's Answer|>\n{answer_1}\n"
                                "<|The End of Assistant A's Answer|>\n\n<|The Start of Assistant B's Answer|>\n"
                                "{answer_2}\n<|The End of Assistant B's Answer|>"],
            "model_list": sb.models}))
        assert run_cli(gen_judgment.main, ["--quiet"]) == 0
    proc = run_script("show_result.py", "--judge-name", "rnd", "--baseline", sb.baseline, "--bench-name", "tbench",
                      "--style-control", "length", "markdown", "--num-rounds", "200", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "; 95% CI: bootstrap over battles, 200 rounds" in proc.stdout.splitlines()[0]  # the board's interval
    [title] = [line for line in proc.stdout.splitlines() if line.startswith("## style coefficients")]
    assert title.endswith("; 95% CI: bootstrap over questions, 200 rounds")
    coefficients = {m[1]: (float(m[3]), float(m[4])) for m in re.finditer(
        r"^(\w+) +\| coefficient: ([+-][\d.]+) \| 95% CI: \(([+-][\d.]+), ([+-][\d.]+)\)$", proc.stdout, re.M)}
    assert set(coefficients) == {"length", "header", "list", "bold"}
    for name, (lo, hi) in coefficients.items():
        assert lo < 0 < hi, (name, lo, hi)


def test_compare_checks_its_models_before_any_work(tmp_path):
    sb = make_bench(tmp_path / "data", n_questions=30, n_models=2)
    args = ("--judge-name", "judge-a", "--baseline", sb.baseline)
    assert run_script("show_result.py", *args, cwd=tmp_path).returncode == 0
    caches = [tmp_path / "data" / "arena_hard_battles.jsonl", tmp_path / "data" / "bootstrapping_results.jsonl"]
    for cache in caches:
        cache.write_text("kept\n")
    proc = run_script("show_result.py", *args, "--num-rounds", "7", "--compare", "model-0", "no-such-model", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: --compare: 'no-such-model' has no battles against base-model")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert all(cache.read_text() == "kept\n" for cache in caches)


def test_download_without_network_is_one_line_pointing_to_source_dir(tmp_path):
    env = {**__import__("os").environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_ETAG_TIMEOUT": "2",
           "HF_HUB_DOWNLOAD_TIMEOUT": "2", "HF_HOME": str(tmp_path / "hf")}
    proc = run_script("download_data.py", "mt_bench", "--data-dir", str(tmp_path / "data"), cwd=tmp_path, env=env)
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("error: HuggingFaceH4/mt_bench_prompts: could not download from the Hugging Face Hub (")
    assert line.endswith("without network, pass --source-dir DIR with a local copy laid out like the hub repository")
    assert not (tmp_path / "data").exists()


def test_unjudged_models_are_one_line_and_one_category_is_one_board(tmp_path):
    sb = make_bench(tmp_path / "data", n_questions=30, n_models=2)
    answers = tmp_path / "data" / sb.bench / "model_answer"
    for i in range(5):
        (answers / f"extra-{i}.jsonl").write_text((answers / "model-0.jsonl").read_text())
    qfile = tmp_path / "data" / sb.bench / "question.jsonl"
    write_jsonl(qfile, [{**json.loads(line), "category": "hard"} for line in qfile.read_text().splitlines()])
    proc = run_script("show_result.py", "--judge-name", "judge-a", "--baseline", sb.baseline, "--category", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stdout.splitlines() if "answers but no battles" in line]
    assert notes == ["note: 5 models have answers but no battles (not judged by judge-a?): "
                     "extra-0, extra-1, extra-2 and 2 more"]
    assert "## category:" not in proc.stdout
    assert "note: every judged question has category 'hard': its board is the board above" in proc.stdout
    assert len(_board(proc.stdout)) == 3


def test_csv_counts_stay_integers_and_html_ticks_are_round(tmp_path):
    written = write_records([{"model": "a", "judge_prompt_tokens": 1234}, {"model": "b"}], tmp_path, "board")
    csv = written[1].read_text().splitlines()
    assert csv == ["model,judge_prompt_tokens", "a,1234", "b,"]
    assert pd.read_csv(written[1])["judge_prompt_tokens"].iloc[0] == 1234
    assert nice_ticks(43.6, 53.6) == [40, 45, 50, 55]
    rows = [BoardRow("m", 48.6, 43.6, 53.6, 1), BoardRow("b", 50.0, 50.0, 50.0, 1)]
    page = write_plot(tmp_path / "p.html", [("overall", rows)], "win rate").read_text()
    ticks = re.findall(r'fill="#555">([-\d.]+)</text>', page)
    assert ticks == ["40", "45", "50", "55"]


def test_run_summary_points_to_rejudge_missing():
    report = RunReport(done=4, missing_verdicts=3)
    assert "3 games without a verdict (--rejudge-missing asks for them again)" in report.summary("judgments")
    assert "rejudge" not in RunReport(done=4).summary("judgments")


def test_runs_table_is_compact(tmp_path):
    runs = tmp_path / "data" / "b" / "runs.jsonl"
    runs.parent.mkdir(parents=True)
    runs.write_text("".join(json.dumps({"command": "gen_answer", "start": f"2026-11-24T08:0{i}:00+00:00",
                                        "models": [f"a-rather-long-model-name-{k}" for k in range(4)], "done": 500,
                                        "requests": 500, "retried": 0, "prompt_tokens": 90000,
                                        "completion_tokens": 250000, "wall_seconds": 812.5,
                                        "completion_tokens_per_second": 307.7}) + "\n" for i in range(3)))
    proc = run_script("show_result.py", "--bench-name", "b", "--runs", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= 160
    assert "servers" not in lines[0] and "cache_hit_rate" not in lines[0] and "judge" not in lines[0]
    assert "2026-11-24 08:01" in lines[2] and "prompt_tokens" in lines[0]


def test_runs_table_says_which_run_stopped_early_and_what_it_left(tmp_path):
    runs = tmp_path / "data" / "b" / "runs.jsonl"
    runs.parent.mkdir(parents=True)
    rows = [{"command": "gen_judgment", "start": "2026-12-07T17:44:00+00:00", "status": "endpoint_dead", "done": 112,
             "left": 888, "requests": 224},
            {"command": "gen_judgment", "start": "2026-12-07T17:45:00+00:00", "status": "ok", "done": 888, "left": 0,
             "skipped": 112, "requests": 1776}]
    runs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = run_script("show_result.py", "--bench-name", "b", "--runs", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    header, *lines = proc.stdout.splitlines()
    # columns are right-aligned under their names: a cell is the text between two names' ends
    ends = [m.end() for m in re.finditer(r"\S+", header)]
    names = header.split()
    cells = [{name: line[start:end].strip() for name, start, end in zip(names, [0, *ends[:-1]], ends, strict=True)}
             for line in lines]
    assert cells[0]["status"] == "endpoint_dead" and cells[0]["left"] == "888" and cells[0]["done"] == "112"
    assert cells[1]["done"] == "888" and cells[1]["skipped"] == "112" and cells[1]["status"] == ""


def test_projection_says_what_its_half_width_measures(tmp_path):
    from arenajudge.present.report import projection_lines
    from arenajudge.rating.battles import battles_from_judgments

    sb = make_bench(tmp_path / "data", n_questions=40, n_models=2)
    paths = BenchPaths(sb.bench, tmp_path / "data")
    judgments = {m: [r for r in records if r["question_id"] in sb.question_ids[:10]]
                 for m, records in load_judgments(paths, "judge-a").items()}
    battles = battles_from_judgments(judgments, sb.baseline, "judge-a").battles
    header, *rows = projection_lines(battles, paths, sb.baseline)
    assert header.startswith("## projected 95% CI half-width with all 40 questions (now 10 judged): 1.96 x the "
                             "standard error of each model's mean battle outcome per question")
    assert "like --bootstrap questions, so it is wider than a board interval from the bootstrap over battles" in header
    assert len(rows) == 2 and all(" | now: ±" in row for row in rows)
