"""run_eval.py: answers, judgments and leaderboard in one command, with stand-in vLLM servers."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml
from conftest import alive, fake_vllm_entry, fake_vllm_pids, free_port, line_count, signal_after_lines, start_script, wait_until

from arenajudge.cli import run_eval as pipeline
from arenajudge.core.errors import run_cli
from arenajudge.records.storage import load_judgment_file
from arenajudge_testkit.fake_openai import FakeServer, Script
from arenajudge_testkit.gen_project import Project, entry


@pytest.fixture
def project(fake_vllm_project: Project) -> Project:
    return fake_vllm_project


def run_eval(*args: str) -> int:
    return run_cli(pipeline.main, ["--quiet", *args])


def _setup(project: Project, n: int = 6) -> None:
    project.simple_questions(n)
    project.write_api({
        "ckpt-a": fake_vllm_entry(free_port(), "/ckpt/a", gpus="0"),
        "ckpt-b": fake_vllm_entry(free_port(), "/ckpt/b", gpus="1"),
        "base": fake_vllm_entry(free_port(), "/ckpt/base", gpus="0"),
        "judge": fake_vllm_entry(free_port(), "/models/judge-awq", gpus="0,1", tensor_parallel_size=2, quantization="awq"),
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
    started = fake_vllm_pids(project)
    assert not any(alive(p) for p in started)

    assert run_eval("--models", "ckpt-a", "ckpt-b", "--judge", "judge") == 0
    out2, err2 = capsys.readouterr()
    assert "answers: all 3 models have answered the 6 questions; skipped" in err2
    assert "has judged every candidate; skipped" in err2
    assert [line for line in out2.splitlines() if "| score:" in line] == board
    assert fake_vllm_pids(project) == started  # no server started
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

    assert run_eval("--client-processes", "0") == 2
    assert capsys.readouterr().err.strip().splitlines() == ["error: --client-processes must be at least 1, got 0"]


def test_a_failing_step_stops_the_pipeline_with_its_exit_code(project, capsys, monkeypatch):
    _setup(project, n=2)
    monkeypatch.setenv("FAKE_VLLM_EXIT", "1")
    assert run_eval("--models", "ckpt-a", "--judge", "judge") == 2
    err = capsys.readouterr().err
    assert "exited with code 1 during start-up" in err and "leaderboard" not in err


# ---------------------------------------------------------------- answering and judging at once

def _overlap_setup(project: Project, n: int, judge_gpus: str, answer_delay: str = "0.05") -> None:
    """Two candidates on GPU 0 (one after the other), the baseline answered already, the judge on `judge_gpus`."""
    qs = project.simple_questions(n)
    project.write_answers("base", qs)
    slow = {"env": {"FAKE_VLLM_DELAY": answer_delay}}
    project.write_api({
        "ckpt-a": fake_vllm_entry(free_port(), "/ckpt/a", gpus="0", **slow),
        "ckpt-b": fake_vllm_entry(free_port(), "/ckpt/b", gpus="0", **slow),
        "base": fake_vllm_entry(free_port(), "/ckpt/base", gpus="0"),
        "judge": fake_vllm_entry(free_port(), "/models/judge-awq", gpus=judge_gpus, tensor_parallel_size=2),
    })
    project.write_judge_config(["unused"], judge="judge", baseline="base")


def _without_times(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("tstamp", "answer_id")} for r in records]


def test_a_judge_on_its_own_gpus_judges_while_the_next_candidate_answers(project, capsys):
    _overlap_setup(project, n=8, judge_gpus="1,2")
    assert run_eval("--models", "ckpt-a", "ckpt-b", "--judge", "judge") == 0
    out, err = capsys.readouterr()
    assert "as the answers come" in err
    events = [(line.split()[0], line.split("'")[1]) for line in err.splitlines() if line.startswith(("starting", "stopped"))]
    # the judge is up before the first candidate answers and stops last
    assert events.index(("starting", "judge")) < events.index(("stopped", "ckpt-a"))
    assert events[-1] == ("stopped", "judge")
    answers_b = project.records("model_answer/ckpt-b.jsonl")
    judged_a = project.records("model_judgment/judge/ckpt-a.jsonl")
    # ckpt-a's judgments began (and some ended) before ckpt-b's last answer was written
    assert min(r["tstamp"] for r in judged_a) < max(r["tstamp"] for r in answers_b)
    for model in ("ckpt-a", "ckpt-b"):
        records = project.records(f"model_judgment/judge/{model}.jsonl")
        assert [r["question_id"] for r in records] == [f"q{i:03d}" for i in range(8)]
    assert [r["command"] for r in project.records("runs.jsonl")] == ["gen_answer", "gen_judgment"]
    assert sorted(line.split()[0] for line in out.splitlines() if "| score:" in line) == ["base", "ckpt-a", "ckpt-b"]
    assert not any(alive(p) for p in fake_vllm_pids(project))

    # a rerun finds everything done
    assert run_eval("--models", "ckpt-a", "ckpt-b", "--judge", "judge") == 0
    err2 = capsys.readouterr().err
    assert "skipped" in err2 and "as the answers come" not in err2


def test_the_overlapped_schedule_writes_the_records_of_the_sequential_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_VLLM_PIDFILE", str(tmp_path / "pids"))
    results = {}
    for schedule, gpus, processes in (("sequential", "0,1", "1"), ("overlapped", "1,2", "1"),
                                      ("overlapped-2", "1,2", "2")):  # and every request from 2 client processes
        root = tmp_path / schedule
        root.mkdir()
        monkeypatch.chdir(root)
        project = Project(root)
        _overlap_setup(project, n=6, judge_gpus=gpus, answer_delay="0.01")
        assert run_eval("--models", "ckpt-a", "ckpt-b", "--judge", "judge", "--client-processes", processes) == 0
        assert ("as the answers come" in capsys.readouterr().err) == schedule.startswith("overlapped")
        results[schedule] = {m: (_without_times(project.records(f"model_answer/{m}.jsonl")),
                                 _without_times(project.records(f"model_judgment/judge/{m}.jsonl")))
                             for m in ("ckpt-a", "ckpt-b")}
        runs = project.records("runs.jsonl")
        assert all(("client_processes_cpu_seconds" in run) == (processes == "2") for run in runs if run["requests"])
    assert results["overlapped"] == results["sequential"] == results["overlapped-2"]
    assert all(len(judged) == 6 for _, judged in results["sequential"].values())


def test_an_overlapped_run_killed_midway_resumes_without_judging_anything_twice(project, capsys):
    _overlap_setup(project, n=12, judge_gpus="1,2", answer_delay="0.3")
    judged_a = project.bench_dir / "model_judgment" / "judge" / "ckpt-a.jsonl"
    answers_b = project.bench_dir / "model_answer" / "ckpt-b.jsonl"
    proc = start_script("run_eval.py", "--quiet", "--models", "ckpt-a", "ckpt-b", "--judge", "judge", cwd=project.root,
                        stderr=subprocess.DEVNULL)
    signal_after_lines(proc, judged_a, 2)
    assert line_count(answers_b) < 12  # killed while answering
    started = fake_vllm_pids(project)  # pairs: a server, its worker
    # its servers and their workers follow it out (the kernel signals each server, its reaper the whole group)
    wait_until(lambda: not any(alive(p) for p in started), 10, "the servers and their workers gone with run_eval.py")
    judged = [project.bench_dir / "model_judgment" / "judge" / f"{m}.jsonl" for m in ("ckpt-a", "ckpt-b")]
    kept = sum(len(load_judgment_file(path)) for path in judged if path.exists())  # a torn last line is not kept

    assert run_eval("--models", "ckpt-a", "ckpt-b", "--judge", "judge") == 0
    capsys.readouterr()
    runs = project.records("runs.jsonl")
    rerun = [r for r in runs if r["command"] == "gen_judgment"][-1]
    assert kept >= 2 and rerun["skipped"] == kept and rerun["done"] == 24 - kept
    for model in ("ckpt-a", "ckpt-b"):
        lines = (project.bench_dir / "model_judgment" / "judge" / f"{model}.jsonl").read_text().splitlines()
        assert [json.loads(line)["question_id"] for line in lines] == [f"q{i:03d}" for i in range(12)]
        assert len(project.records(f"model_answer/{model}.jsonl")) == 12


def test_a_judge_that_refuses_stops_judging_while_the_answers_still_complete(project, capsys):
    qs = project.simple_questions(4)
    project.write_answers("base", qs)
    with FakeServer(Script(models=("the-real-name",))) as judge_server:  # elsewhere, no `server` block
        project.write_api({
            "ckpt-a": fake_vllm_entry(free_port(), "/ckpt/a", gpus="0"),
            "base": fake_vllm_entry(free_port(), "/ckpt/base", gpus="0"),
            "judge": entry(judge_server.base_url, "wrong-name"),
        })
        project.write_judge_config(["unused"], judge="judge", baseline="base")
        assert run_eval("--models", "ckpt-a", "--judge", "judge") == 1
        err = capsys.readouterr().err
    assert "as the answers come" in err
    assert "refused model 'judge' (served as 'wrong-name')" in err
    assert "the judgment step failed (exit 1); rerun the same command to resume" in err
    assert len(project.records("model_answer/ckpt-a.jsonl")) == 4
    assert not (project.bench_dir / "model_judgment" / "judge" / "ckpt-a.jsonl").exists()
    assert "leaderboard" not in err


def test_entries_sharing_one_server_block_start_it_once_and_judging_overlaps_answering(project, capsys):
    """Three candidates (one model under different system prompts), the baseline and the judge: one server block,
    one server start for the whole run, and judging begins while answers still come."""
    project.simple_questions(12)
    port = free_port()
    block = {"env": {"FAKE_VLLM_DELAY": "0.1"}}

    def shared(system_prompt: str) -> dict:
        return {**fake_vllm_entry(port, "/models/small", parallel=2, **block), "system_prompt": system_prompt}

    project.write_api({"terse": shared("Answer in one sentence."), "plain": shared("Answer plainly."),
                       "detailed": shared("Answer in detail."), "base": shared("You are a helpful assistant."),
                       "judge": {**fake_vllm_entry(port, "/models/small", parallel=4, **block)}})
    project.write_judge_config(["unused"], judge="judge", baseline="base")
    assert run_eval("--models", "terse", "plain", "detailed", "--judge", "judge") == 0
    out, err = capsys.readouterr()
    assert "as the answers come (on the server the answers use)" in err
    events = [line.split()[0] for line in err.splitlines() if line.startswith(("starting", "stopped"))]
    assert events == ["starting", "stopped"]  # one start, one stop: not once per entry or per step
    assert len(fake_vllm_pids(project)) == 2  # the stand-in and its worker, started once
    answers = [r for m in ("terse", "plain", "detailed", "base") for r in project.records(f"model_answer/{m}.jsonl")]
    judged = [r for m in ("terse", "plain", "detailed") for r in project.records(f"model_judgment/judge/{m}.jsonl")]
    assert len(answers) == 48 and len(judged) == 36
    assert min(r["tstamp"] for r in judged) < max(r["tstamp"] for r in answers)  # judging overlapped answering
    assert sorted(line.split()[0] for line in out.splitlines() if "| score:" in line) == ["base", "detailed", "plain", "terse"]
    assert not any(alive(p) for p in fake_vllm_pids(project))
