"""run_eval.py: answers, judgments and leaderboard in one command, with stand-in vLLM servers."""

from __future__ import annotations

import pytest
import yaml
from gen_project import Project
from test_servers import alive, free_port, managed, pids

from arenajudge import pipeline
from arenajudge.errors import run_cli


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for knob in ("FAKE_VLLM_START_DELAY", "FAKE_VLLM_EXIT", "FAKE_VLLM_LEAK_KEY", "FAKE_VLLM_IGNORE_TERM"):
        monkeypatch.delenv(knob, raising=False)
    monkeypatch.setenv("FAKE_VLLM_PIDFILE", str(tmp_path / "pids"))
    return Project(tmp_path)


def run_eval(*args: str) -> int:
    return run_cli(pipeline.main, ["--quiet", *args])


def _setup(project: Project, n: int = 6) -> None:
    project.simple_questions(n)
    project.write_api({
        "ckpt-a": managed(free_port(), "/ckpt/a", gpus="0"),
        "ckpt-b": managed(free_port(), "/ckpt/b", gpus="1"),
        "base": managed(free_port(), "/ckpt/base", gpus="0"),
        "judge": managed(free_port(), "/models/judge-awq", gpus="0,1", tensor_parallel_size=2, quantization="awq"),
    })
    project.write_judge_config(["unused"], judge="judge", baseline="base")


def test_one_command_from_checkpoints_to_leaderboard_then_a_rerun_skips_everything(project, capsys):
    _setup(project)
    assert run_eval("--models", "ckpt-a", "ckpt-b", "--judge", "judge") == 0
    out, err = capsys.readouterr()
    board = [line for line in out.splitlines() if "| score:" in line]
    assert sorted(line.split()[0] for line in board) == ["base", "ckpt-a", "ckpt-b"]
    for model in ("ckpt-a", "ckpt-b", "base"):
        assert len(project.records(f"model_answer/{model}.jsonl")) == 6
    for model in ("ckpt-a", "ckpt-b"):
        records = project.records(f"model_judgment/judge/{model}.jsonl")
        assert len(records) == 6 and all(g["score"] for r in records for g in r["games"])
    # the judge (GPUs 0,1) starts only after every answer server (GPU 0 or 1) has stopped
    events = [(line.split()[0], line.split("'")[1]) for line in err.splitlines() if line.startswith(("starting", "stopped"))]
    judge_start = events.index(("starting", "judge"))
    assert {m for kind, m in events[:judge_start] if kind == "stopped"} == {"ckpt-a", "ckpt-b", "base"}
    # ckpt-a and ckpt-b (disjoint GPUs) answered at once; base (GPU 0, like ckpt-a) after ckpt-a stopped
    assert events.index(("starting", "ckpt-b")) < events.index(("stopped", "ckpt-a")) < events.index(("starting", "base"))
    runs = project.records("runs.jsonl")
    assert [r["command"] for r in runs] == ["gen_answer", "gen_judgment"]
    assert runs[1]["servers"][0]["gpus"] == "0,1" and "prefix_cache" in runs[1]
    started = pids(project)
    assert not any(alive(p) for p in started)

    assert run_eval("--models", "ckpt-a", "ckpt-b", "--judge", "judge") == 0
    out2, err2 = capsys.readouterr()
    assert "answers: all 3 models have answered the 6 questions; skipped" in err2
    assert "has judged every candidate; skipped" in err2
    assert [line for line in out2.splitlines() if "| score:" in line] == board
    assert pids(project) == started  # no server started
    assert len(project.records("runs.jsonl")) == 2


def test_a_new_candidate_runs_only_its_own_steps(project, capsys):
    _setup(project, n=3)
    assert run_eval("--models", "ckpt-a", "--judge", "judge") == 0
    capsys.readouterr()
    assert run_eval("--models", "ckpt-a", "ckpt-b", "--judge", "judge") == 0
    err = capsys.readouterr().err
    assert "== 1/3 answers: ckpt-b\n" in err and "== 2/3 judgments by judge: ckpt-b against base" in err


def test_pipeline_section_in_yaml_and_its_errors(project, capsys):
    _setup(project, n=2)
    cfg = yaml.safe_load((project.root / "config" / "judge_config.yaml").read_text())
    cfg["pipeline"] = {"models": ["ckpt-b"], "judge": "judge", "baseline": "base"}
    (project.root / "config" / "judge_config.yaml").write_text(yaml.safe_dump(cfg))
    assert run_eval() == 0
    assert len(project.records("model_judgment/judge/ckpt-b.jsonl")) == 2
    assert not (project.bench_dir / "model_answer" / "ckpt-a.jsonl").exists()
    capsys.readouterr()

    cfg["pipeline"] = {"models": ["ckpt-b"], "judges": "judge"}
    (project.root / "config" / "judge_config.yaml").write_text(yaml.safe_dump(cfg))
    assert run_eval() == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "judge_config.yaml: key 'pipeline.judges': unknown key" in err[0]

    del cfg["pipeline"]
    (project.root / "config" / "judge_config.yaml").write_text(yaml.safe_dump(cfg))
    assert run_eval("--models", "ghost", "--judge", "judge") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "candidate 'ghost' has no entry in config/api_config.yaml" in err[0]


def test_a_failing_step_stops_the_pipeline_with_its_exit_code(project, capsys, monkeypatch):
    _setup(project, n=2)
    monkeypatch.setenv("FAKE_VLLM_EXIT", "1")
    assert run_eval("--models", "ckpt-a", "--judge", "judge") == 2
    err = capsys.readouterr().err
    assert "exited with code 1 during start-up" in err and "leaderboard" not in err
