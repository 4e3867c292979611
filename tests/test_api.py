"""The library API from Python, as a notebook uses it, and run_eval.py's steps as calls into it (no argv, no YAML)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from arenajudge import api
from arenajudge.cli import gen_answer, gen_judgment, run_eval, show_result
from arenajudge.config import models as config_models
from arenajudge.core.errors import run_cli
from arenajudge_testkit.fake_openai import FakeServer, Script
from arenajudge_testkit.gen_project import Project, entry

STRONG, PLAIN = "a strong answer", "a plain answer"


def prefers_strong(prompt: str) -> str:
    """The stand-in judge: the strong answer wins clearly, two plain answers tie."""
    first = prompt.split("<|The Start of Assistant B's Answer|>")[0]
    if STRONG in prompt:
        return "A>>B" if STRONG in first else "B>>A"
    return "A=B"


def no_command(*args, **kwargs):
    raise AssertionError("a command's main() or a subprocess was used")


@pytest.fixture
def no_commands(monkeypatch):
    """Every command's argv entry point, and starting a process, fail the test."""
    for module in (gen_answer, gen_judgment, show_result):
        monkeypatch.setattr(module, "main", no_command)
    monkeypatch.setattr(subprocess, "Popen", no_command)


def _servers():
    return (FakeServer(Script(answer=lambda messages: STRONG)), FakeServer(Script(answer=lambda messages: PLAIN)),
            FakeServer(Script(verdict=prefers_strong)))


def _write_project(project: Project, good: FakeServer, plain: FakeServer, judge: FakeServer, n: int) -> None:
    project.simple_questions(n)
    project.write_api({"good": entry(good.base_url, "good-7b"), "meh": entry(plain.base_url, "meh-7b"),
                       "base": entry(plain.base_url, "base-7b"), "judge": entry(judge.base_url, "judge-70b", parallel=8)})
    project.write_answer_config(["good", "meh", "base"])
    project.write_judge_config(["good", "meh"])


def test_a_notebook_answers_judges_rates_and_reports_from_python(project, no_commands):
    quiet = api.RunOptions(quiet=True)
    good, plain, judge = _servers()
    with good, plain, judge:
        _write_project(project, good, plain, judge, n=8)
        configs = api.load_configs()
        assert isinstance(configs.answer, api.AnswerConfig) and configs.answer.model_list == ["good", "meh", "base"]
        answered = api.answer(configs.answer, api_config=configs.entries, options=quiet)
        assert isinstance(answered, api.RunReport)
        assert (answered.done, answered.skipped, answered.exit_code) == (24, 0, 0)
        judged = api.judge("config/judge_config.yaml", options=quiet)  # a path works as well as a config
        assert (judged.done, judged.skipped, judged.missing_verdicts, judged.exit_code) == (16, 0, 0, 0)
        again = api.answer(configs.answer, api_config=configs.entries, options=quiet)  # resumes: nothing left
        assert (again.done, again.skipped) == (0, 24)
        assert len(judge.chat_requests()) == 16 * 2
    assert [r["command"] for r in project.records("runs.jsonl")] == ["gen_answer", "gen_judgment", "gen_answer"]

    board = api.rate(config=configs.judge, rounds=20)
    assert isinstance(board, api.BoardResult) and not board.empty
    assert all(isinstance(row, api.BoardRow) for row in board.rows)
    assert board.rows[0].model == "good"
    scores = {row.model: row.score for row in board.rows}
    assert scores["good"] > 90 and scores["base"] == pytest.approx(50) and scores["meh"] == pytest.approx(50, abs=1)
    assert board.rows[0].games == 16 and board.header.startswith("# tbench:")
    assert board.spec == api.rate(bench="tbench", judge="judge", baseline="base", rounds=20).spec

    page = api.report(board, project.root / "board.html")
    assert isinstance(page, Path) and page.exists()
    html = page.read_text(encoding="utf-8")
    assert all(f">{model}<" in html for model in ("good", "meh", "base"))
    assert not (project.root / "data" / "arena_hard_battles.jsonl").exists()  # rating writes no cache


def test_the_api_says_bad_input_in_the_commands_words(project):
    project.simple_questions(2)
    project.write_api({"judge": entry("http://127.0.0.1:9/v1", "j")})
    project.write_judge_config(["m1"])
    with pytest.raises(api.UserError, match=r"judge_config\.yaml: key 'baseline_model': 'base' has no answers"):
        api.judge(options=api.RunOptions(quiet=True))
    with pytest.raises(api.UserError, match="--max-retries must be 0 or more"):
        api.judge(options=api.RunOptions(max_retries=-1))
    with pytest.raises(api.UserError, match="name the bench, judge, baseline"):
        api.rate()
    assert not (project.bench_dir / "model_judgment").exists()


@pytest.mark.parametrize("overlap", [True, False])
def test_run_eval_steps_are_library_calls_not_argv_or_yaml(project, no_commands, monkeypatch, capsys, overlap):
    read: list[Path] = []
    load_yaml = config_models.load_yaml

    def reading(path: Path):
        read.append(Path(path).resolve())
        return load_yaml(path)

    monkeypatch.setattr(config_models, "load_yaml", reading)
    monkeypatch.setattr(run_eval, "load_yaml", reading)
    good, plain, judge = _servers()
    with good, plain, judge:
        _write_project(project, good, plain, judge, n=5)
        flags = ["--quiet", "--models", "good", "meh"] + ([] if overlap else ["--no-overlap"])
        assert run_cli(run_eval.main, flags) == 0
    out, err = capsys.readouterr()
    assert ("as the answers come" in err) == overlap
    assert sorted(line.split()[0] for line in out.splitlines() if "| score:" in line) == ["base", "good", "meh"]
    assert len(project.records("model_judgment/judge/good.jsonl")) == 5
    # the derived configs stay on disk as records of what ran; no step reads them
    records = project.bench_dir / "pipeline"
    assert {p.name for p in records.iterdir()} == {"gen_answer_config.yaml", "judge_config.yaml"}
    assert "a record of what its step ran" in (records / "judge_config.yaml").read_text()
    assert read and not [p for p in read if records.resolve() in p.parents]


def test_until_decided_from_python_returns_the_decisions(project, no_commands):
    questions = project.simple_questions(40)
    project.write_answers("good", questions, text=STRONG)
    for model in ("meh", "base"):
        project.write_answers(model, questions, text=PLAIN)
    with FakeServer(Script(verdict=prefers_strong)) as judge:
        project.write_api({"judge": entry(judge.base_url, "judge-70b", parallel=8)})
        project.write_judge_config(["good", "meh"])
        until = api.UntilDecided(models=("meh", "good"), batch=10, min_questions=10)
        result = api.until_decided(until, options=api.RunOptions(quiet=True))
    assert isinstance(result, api.UntilDecidedResult) and result.exit_code == 0
    decision = result.decisions[("meh", "good")]
    assert decision.decision == "better" and decision.diff > 0 and result.covered < 40
    assert result.needed == len(project.records("model_judgment/judge/good.jsonl")) * 2  # both models, same questions
    assert result.lines()[0].startswith(f"# until decided: {result.covered} of 40 questions looked at, judge judge")
    [run] = project.records("runs.jsonl")
    assert run["until_decided"]["pairs"][0]["decision"] == "better"
