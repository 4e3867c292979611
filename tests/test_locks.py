"""One writer per output file: a second run on the same file refuses naming the file and the holder, or waits
(issue 12); runs for other models under the same judge go on side by side (issue 23)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, run_script, wait_until

from arenajudge.records import locks
from arenajudge.records.storage import BenchPaths
from arenajudge_testkit.fake_openai import FakeServer, Script
from arenajudge_testkit.gen_project import Project, entry


@pytest.fixture
def project(tmp_path):
    return Project(tmp_path)


def _refusal(proc: subprocess.CompletedProcess, pid: int) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert f"held by process {pid} " in lines[0] and lines[0].endswith("wait for it to finish or pass --wait")
    return lines[0]


def test_a_second_judging_run_refuses_then_waits_and_does_only_what_is_left(project):
    qs = project.simple_questions(20)
    for m in ("m1", "m2", "base"):
        project.write_answers(m, qs)
    # 2 s per request until the waiting run is seen waiting: the first run cannot end before that
    with FakeServer(Script(delay=2.0)) as server:
        project.write_api({"judge": entry(server.base_url, "j", parallel=2)})
        project.write_judge_config(["m1", "m2"])
        first = subprocess.Popen([sys.executable, str(ROOT / "gen_judgment.py"), "--quiet", "--sample", "6"],
                                 cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            lock_file = locks.judgment_lock(BenchPaths(project.bench, project.root / "data"), "judge", "m1").file
            assert lock_file.is_relative_to(project.bench_dir / "locks")  # not among the records
            _wait_for_holder(lock_file, first.pid)

            second = run_script("gen_judgment.py", "--quiet", cwd=project.root)
            line = _refusal(second, first.pid)
            assert "gen_judgment.py --quiet --sample 6" in line and str(lock_file.relative_to(project.root)) in line
            assert first.poll() is None  # the refusal came at once, while the first run was still judging

            third = subprocess.Popen([sys.executable, str(ROOT / "gen_judgment.py"), "--quiet", "--wait"],
                                     cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            waiting = third.stderr.readline()
            assert waiting.startswith(f"waiting for process {first.pid} ("), waiting
            assert first.poll() is None
            server.script.delay = 0.02
            _, first_err = first.communicate(timeout=120)
            _, third_err = third.communicate(timeout=120)
        finally:
            for proc in (first, locals().get("third")):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait()
        assert first.returncode == 0, first_err
        assert third.returncode == 0, third_err
        assert "judging 28 answers" in third_err and "(12 already judged)" in third_err  # only what was left
        bodies = [json.dumps(r.body["messages"]) for r in server.chat_requests()]
    assert len(bodies) == 20 * 2 * 2 and len(set(bodies)) == len(bodies)  # the server saw each request once
    for model in ("m1", "m2"):
        ids = [r["question_id"] for r in project.records(f"model_judgment/judge/{model}.jsonl")]
        assert ids == [q["question_id"] for q in qs]  # no record lost, none twice


def test_readers_take_no_lock(project):
    qs = project.simple_questions(4)
    for m in ("m1", "base"):
        project.write_answers(m, qs)
    paths = BenchPaths(project.bench, project.root / "data")
    with FakeServer() as server:
        project.write_api({"judge": entry(server.base_url, "j")})
        project.write_judge_config(["m1"])
        assert run_script("gen_judgment.py", "--quiet", cwd=project.root).returncode == 0
    with locks.hold([locks.judgment_lock(paths, "judge", "m1")]):  # as a judging run holds it
        board = run_script("show_result.py", "--bench-name", project.bench, "--judge-name", "judge",
                           "--baseline", "base", "--num-rounds", "5", cwd=project.root)
    assert board.returncode == 0, board.stderr
    assert any(line.startswith("m1 ") and "| score:" in line for line in board.stdout.splitlines())


def test_answering_and_mt_bench_judging_refuse_while_another_process_holds_their_lock(project):
    qs = project.simple_questions(2)
    paths = BenchPaths(project.bench, project.root / "data")
    with FakeServer() as server:
        project.write_api({"cand": entry(server.base_url, "c"), "judge": entry(server.base_url, "j")})
        project.write_answer_config(["cand"])
        with locks.hold([locks.answer_lock(paths, "cand")]):
            proc = run_script("gen_answer.py", "--quiet", cwd=project.root)
        _refusal(proc, os.getpid())
        assert server.chat_requests() == []
        proc = run_script("gen_answer.py", "--quiet", cwd=project.root)  # released: it runs
        assert proc.returncode == 0, proc.stderr

        project.write_answers("m1", qs)
        project.write_judge_config(["m1"], mode="single", prompt_template=[])
        with locks.hold([locks.record_lock(paths, paths.judgment_root / "judge_single.jsonl")]):
            proc = run_script("gen_judgment.py", "--quiet", cwd=project.root)
        _refusal(proc, os.getpid())
        proc = run_script("gen_judgment.py", "--quiet", cwd=project.root)
        assert proc.returncode == 0, proc.stderr
        assert len(project.records("model_judgment/judge_single.jsonl")) == 2


def test_run_eval_refuses_or_waits_for_the_judges_lock(project):
    project.simple_questions(3)
    paths = BenchPaths(project.bench, project.root / "data")
    with FakeServer() as server:
        project.write_api({m: entry(server.base_url, m) for m in ("cand", "base", "judge")})
        project.write_judge_config(["cand"])
        with locks.hold([locks.judgment_lock(paths, "judge", "cand")]):
            refused = run_script("run_eval.py", "--quiet", "--models", "cand", cwd=project.root)
            assert refused.returncode == 2 and f"held by process {os.getpid()} " in refused.stderr
            waiting = subprocess.Popen([sys.executable, str(ROOT / "run_eval.py"), "--quiet", "--wait", "--models", "cand"],
                                       cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            deadline = time.time() + 60
            line = ""
            while time.time() < deadline and not line.startswith("waiting for"):
                line = waiting.stderr.readline()
                assert line or waiting.poll() is None, "run_eval ended without waiting"
            assert line.startswith(f"waiting for process {os.getpid()} (")
        out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err
    assert len(project.records("model_judgment/judge/cand.jsonl")) == 3
    assert any(line.startswith("cand ") and "| score:" in line for line in out.splitlines())


def _judge_config(project: Project, name: str, models: list[str]) -> str:
    """A judge config for these models beside the default one; its path relative to the project."""
    project.write_judge_config(models)
    target = project.root / "config" / name
    (project.root / "config" / "judge_config.yaml").rename(target)
    return str(target.relative_to(project.root))


def _start_judging(project: Project, setting_file: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "gen_judgment.py"), "--quiet", "--setting-file", setting_file],
                            cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_holder(lock_file: Path, pid: int) -> None:
    """Until the lock file names `pid` as its holder."""
    wait_until(lambda: lock_file.exists() and f'"pid": {pid},' in lock_file.read_text(), 30, f"{lock_file} held by {pid}")
    assert json.loads(lock_file.read_text())["pid"] == pid


def test_runs_for_other_models_under_the_same_judge_go_on_side_by_side_and_one_for_the_same_model_is_refused(project):
    qs = project.simple_questions(12)
    for m in ("m1", "m2", "base"):
        project.write_answers(m, qs)
    paths = BenchPaths(project.bench, project.root / "data")
    one, two, both = (_judge_config(project, name, models) for name, models in
                      (("m1.yaml", ["m1"]), ("m2.yaml", ["m2"]), ("both.yaml", ["m2", "m1"])))
    # 2 s per request until both runs are seen judging: neither can end before the other has started
    with FakeServer(Script(delay=2.0)) as server:
        project.write_api({"judge": entry(server.base_url, "j", parallel=2)})
        runs = []
        try:
            runs.append(_start_judging(project, one))
            _wait_for_holder(locks.judgment_lock(paths, "judge", "m1").file, runs[0].pid)
            runs.append(_start_judging(project, two))
            _wait_for_holder(locks.judgment_lock(paths, "judge", "m2").file, runs[1].pid)
            assert runs[0].poll() is None and runs[1].poll() is None  # both judging at once

            # a run that needs m1's file as well is refused at once, told which file, who holds it and what else
            refused = run_script("gen_judgment.py", "--quiet", "--setting-file", both, cwd=project.root)
            m1_file = project.bench_dir / "model_judgment" / "judge" / "m1.jsonl"
            lock = locks.judgment_lock(BenchPaths(project.bench, project.root / "data"), "judge", "m1").file
            rel = project.root
            assert refused.returncode == 2 and refused.stdout == "", refused.stdout
            assert refused.stderr.strip() == (
                f"error: {m1_file.relative_to(rel)}: held by process {runs[0].pid} (gen_judgment.py --quiet "
                f"--setting-file {one}, since {json.loads(lock.read_text())['since']}), which is writing "
                f"{m1_file.relative_to(rel)} (lock {lock.relative_to(rel)}); wait for it to finish or pass --wait")
            server.script.delay = 0.02
            results = [run.communicate(timeout=120) for run in runs]
        finally:
            for run in runs:
                if run.poll() is None:
                    run.kill()
                    run.wait()
        for run, (_, err) in zip(runs, results, strict=True):
            assert run.returncode == 0, err
            assert "judging 12 answers" in err
        bodies = [json.dumps(r.body["messages"]) for r in server.chat_requests()]
    assert len(bodies) == 12 * 2 * 2 and len(set(bodies)) == len(bodies)  # each game asked once, by one of them
    for model in ("m1", "m2"):
        records = project.records(f"model_judgment/judge/{model}.jsonl")
        assert [r["question_id"] for r in records] == [q["question_id"] for q in qs]  # each once, in order
        assert {r["model"] for r in records} == {model} and all(len(r["games"]) == 2 for r in records)
        for record in records:  # each game judged this model's answer, not the other run's
            assert f"answer of {model} to {record['question_id']}" in record["games"][0]["user_prompt"]
    logged = [json.loads(line) for line in (project.bench_dir / "runs.jsonl").read_text().splitlines()]
    assert sorted(tuple(r["models"]) for r in logged if r["command"] == "gen_judgment") == [("m1",), ("m2",)]


def test_mt_bench_judging_of_another_model_is_told_which_shared_file_forbids_it(project):
    qs = project.simple_questions(2)
    project.write_answers("m2", qs)
    paths = BenchPaths(project.bench, project.root / "data")
    shared = paths.judgment_root / "judge_single.jsonl"
    with FakeServer() as server:
        project.write_api({"judge": entry(server.base_url, "j")})
        project.write_judge_config(["m2"], mode="single", prompt_template=[])
        with locks.hold([locks.mtbench_lock(paths, shared)]):  # as an MT-Bench run judging m1 holds it
            proc = run_script("gen_judgment.py", "--quiet", cwd=project.root)
    line = _refusal(proc, os.getpid())
    assert line.startswith(f"error: {shared.relative_to(project.root)}: held by process {os.getpid()} (")
    assert line.endswith("; MT-Bench keeps every model's judgments of one judge and mode in this one file; "
                         "wait for it to finish or pass --wait")


def test_a_judges_managed_server_is_held_like_a_file(project, tmp_path):
    """Two runs under a judge with a `server` block would share the server the first one stops when it ends:
    the second is told so, before anything is started or sent."""
    qs = project.simple_questions(2)
    project.write_answers("m2", qs)
    project.write_answers("base", qs)
    paths = BenchPaths(project.bench, project.root / "data")
    with FakeServer() as server:
        judge_entry = entry(server.base_url, "j", server={"model": "/ckpt/j", "command": ["true"]})
        project.write_api({"judge": judge_entry})
        project.write_judge_config(["m2"])
        from arenajudge.config.models import load_api_config

        [lock] = locks.server_locks(paths, [load_api_config(project.root / "config" / "api_config.yaml")["judge"]])
        with locks.hold([lock]):
            proc = run_script("gen_judgment.py", "--quiet", cwd=project.root)
        assert server.chat_requests() == []
    line = _refusal(proc, os.getpid())
    assert line.startswith(f"error: the managed server of 'judge' (its `server` block): held by process {os.getpid()} (")
    assert "the run that started it stops it when it ends" in line
