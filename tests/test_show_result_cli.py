"""show_result.py as users run it: output shape, caches, outputs, and every bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, run_script

from arenajudge_testkit.synth import make_bench

LINE = re.compile(r"^(?P<model>.{50}) \| score: (?P<score>.{5}) \| 95% CI: (?P<ci>.{15}) \| average #tokens: (?P<tokens>\d+)$")


def _board(stdout: str) -> dict[str, dict[str, str]]:
    rows = {}
    for line in stdout.splitlines():
        m = LINE.match(line)
        if m:
            rows[m["model"].strip()] = {"score": m["score"].strip(), "ci": m["ci"].strip(), "tokens": m["tokens"]}
    return rows


@pytest.fixture
def bench(tmp_path):
    sb = make_bench(tmp_path / "data", n_questions=60, n_models=4, missing_rate=0.02, bracketed=True)
    return tmp_path, sb


def _show(cwd, sb, *extra):
    return run_script("show_result.py", "--judge-name", "judge-a", "--baseline", sb.baseline, *extra, cwd=cwd)


def test_prints_the_seed_line_for_every_model(bench):
    cwd, sb = bench
    proc = _show(cwd, sb)
    assert proc.returncode == 0, proc.stderr
    board = _board(proc.stdout)
    assert set(board) == {*sb.models, sb.baseline}
    assert board[sb.baseline]["score"] == "50.0" and board[sb.baseline]["ci"] == "(0.0, 0.0)"
    # best first
    scores = [float(r["score"]) for r in board.values()]
    assert scores == sorted(scores, reverse=True)
    # average tokens: mean token_len of turn 1
    answers = [json.loads(x) for x in (cwd / "data" / sb.bench / "model_answer" / "model-0.jsonl").read_text().splitlines()]
    assert int(board["model-0"]["tokens"]) == int(sum(a["choices"][0]["turns"][0]["token_len"] for a in answers) / len(answers))
    assert "games had no verdict and were dropped" in proc.stdout
    assert (cwd / "data" / "arena_hard_battles.jsonl").exists()
    assert (cwd / "data" / "bootstrapping_results.jsonl").exists()


def test_same_seed_same_board_and_caches_reproduce_it(bench):
    cwd, sb = bench
    samples_file = cwd / "data" / "bootstrapping_results.jsonl"
    first = _show(cwd, sb, "--seed", "11")
    first_samples = samples_file.read_bytes()
    again = _show(cwd, sb, "--seed", "11")
    assert samples_file.read_bytes() == first_samples  # the same seed draws the same bootstrap, to the last digit
    cached = _show(cwd, sb, "--load-battles", "--load-bootstrap")
    assert _board(first.stdout) == _board(again.stdout) == _board(cached.stdout)
    other = _show(cwd, sb, "--seed", "12")
    assert {m: r["score"] for m, r in _board(other.stdout).items()} == {m: r["score"] for m, r in _board(first.stdout).items()}
    # another seed: the point scores stay, the bootstrap (saved samples and printed intervals) changes
    assert samples_file.read_bytes() != first_samples
    assert {m: r["ci"] for m, r in _board(other.stdout).items()} != {m: r["ci"] for m, r in _board(first.stdout).items()}
    assert "100 rounds, seed 11" in first.stdout.splitlines()[0] and "100 rounds, seed 12" in other.stdout.splitlines()[0]


def test_show_elo_prints_integers(bench):
    cwd, sb = bench
    board = _board(_show(cwd, sb, "--show-elo").stdout)
    assert board[sb.baseline]["score"] == "1000"
    assert all(re.fullmatch(r"-?\d+", r["score"]) for r in board.values())


def test_output_writes_json_and_csv(bench):
    cwd, sb = bench
    proc = _show(cwd, sb, "--output", "--output-dir", "out", "--num-rounds", "30")
    assert proc.returncode == 0, proc.stderr
    [json_file] = (cwd / "out").glob("arena_hard_leaderboard_*.json")
    records = json.loads(json_file.read_text())
    assert {r["model"] for r in records} == {*sb.models, sb.baseline}
    assert all(len(r["results"]) == 30 and r["lower"] <= r["score"] <= r["upper"] for r in records)
    csv_text = json_file.with_suffix(".csv").read_text()
    assert csv_text.splitlines()[0].startswith("model,score,lower,upper,avg_tokens")


def test_question_bootstrap_is_labelled_and_wider(bench):
    cwd, sb = bench
    narrow = _board(_show(cwd, sb, "--num-rounds", "400").stdout)
    proc = _show(cwd, sb, "--num-rounds", "400", "--bootstrap", "questions")
    assert "bootstrap over questions" in proc.stdout
    wide = _board(proc.stdout)

    def width(ci: str) -> float:
        lo, hi = (float(x) for x in ci.strip("()").split(","))
        return hi - lo

    models = sb.models
    assert sum(width(wide[m]["ci"]) for m in models) > sum(width(narrow[m]["ci"]) for m in models)


def _expect_error(proc, *fragments):
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_unknown_judge_names_the_directory(bench):
    cwd, sb = bench
    _expect_error(run_script("show_result.py", "--judge-name", "nobody", "--baseline", sb.baseline, cwd=cwd),
                  "model_judgment/nobody", "judge-a")
    assert not (cwd / "data" / "arena_hard_battles.jsonl").exists()


def test_baseline_without_battles(bench):
    cwd, _sb = bench
    _expect_error(run_script("show_result.py", "--judge-name", "judge-a", "--baseline", "ghost", cwd=cwd),
                  "ghost", "no battles")
    assert not (cwd / "data" / "arena_hard_battles.jsonl").exists()


def test_malformed_jsonl_line_names_file_and_line(bench):
    cwd, sb = bench
    path = cwd / "data" / sb.bench / "model_judgment" / "judge-a" / "model-1.jsonl"
    lines = path.read_text().splitlines()
    lines[6] = lines[6][:40]
    path.write_text("\n".join(lines) + "\n")
    _expect_error(_show(cwd, sb), "model-1.jsonl:7", "not valid JSON")


def test_non_utf8_file(bench):
    cwd, sb = bench
    path = cwd / "data" / sb.bench / "model_answer" / "model-2.jsonl"
    path.write_bytes(path.read_bytes() + "{\"question_id\": \"x\"}\n".encode("cp1251") + "Привет".encode("cp1251") + b"\n")
    _expect_error(_show(cwd, sb), "model-2.jsonl:62", "not valid UTF-8")


def test_yaml_errors_in_the_setting_file(bench):
    cwd, _sb = bench
    cfg = cwd / "config"
    cfg.mkdir()
    (cfg / "judge_config.yaml").write_text("bench_name: x\njudge_model: [oops\n")
    _expect_error(run_script("show_result.py", cwd=cwd), "config/judge_config.yaml", "YAML syntax error")
    (cfg / "judge_config.yaml").write_text("bench_name: x\nsystem_prompt: hi\nprompt_template: ['{question_1}']\nmodel_list: []\n")
    _expect_error(run_script("show_result.py", cwd=cwd), "judge_config.yaml", "'judge_model'", "missing")
    (cfg / "judge_config.yaml").write_text("bench_name: x\njudge_model: j\nbaseline_model: b\nmax_tokens: lots\n"
                                           "system_prompt: hi\nprompt_template: ['{question_1}']\nmodel_list: []\n")
    _expect_error(run_script("show_result.py", cwd=cwd), "judge_config.yaml", "'max_tokens'", "integer")


def test_defaults_come_from_the_judge_config(bench):
    cwd, sb = bench
    (cwd / "config").mkdir()
    (cwd / "config" / "judge_config.yaml").write_text(
        f"bench_name: {sb.bench}\njudge_model: judge-a\nbaseline_model: {sb.baseline}\n"
        "system_prompt: hi\nprompt_template: ['{question_1}']\nmodel_list: [model-0]\n")
    proc = run_script("show_result.py", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    assert sb.baseline in _board(proc.stdout)


def test_load_bootstrap_requires_load_battles(bench):
    cwd, sb = bench
    _expect_error(_show(cwd, sb, "--load-bootstrap"), "--load-battles")


def test_seed_data_with_brackets_loads(bench, shared):
    """Real answer files from arena-hard-local load as they are, next to generated judgments."""
    cwd, sb = bench
    real = shared / "data" / "arena-hard-v0.1-ru" / "model_answer" / "aya-23-8B.jsonl"
    shutil.copy(real, cwd / "data" / sb.bench / "model_answer" / "aya-23-8B.jsonl")
    proc = _show(cwd, sb)
    assert proc.returncode == 0, proc.stderr
    assert "aya-23-8B has answers but no battles" in proc.stdout


def test_a_board_imports_no_http_client_and_no_gradio(bench):
    """A board reads files and computes: the openai client (about 0.7 s to import), its HTTP library and
    Gradio would be most of show_result.py's time. A fresh interpreter builds two boards, then lists them."""
    cwd, sb = bench
    boards = [["--judge-name", "judge-a", "--baseline", sb.baseline],
              ["--judge-name", "judge-a", "--baseline", sb.baseline, "--style-control", "length", "markdown",
               "--diagnostics", "--markdown", "--output"]]
    code = ("import sys\nfrom arenajudge.cli.show_result import main\n"
            f"codes = [main(argv) for argv in {boards!r}]\n"
            "print(codes, sorted(m for m in ('openai', 'httpx2', 'httpx', 'gradio') if m in sys.modules), file=sys.stderr)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "score:" in proc.stdout and "## " in proc.stdout  # both boards were built, the second with its sections
    assert proc.stderr.strip().splitlines()[-1] == "[0, 0] []"
