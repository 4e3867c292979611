"""One writer at a time: a second run on the same outputs refuses naming the holder, or waits (issue 12)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from conftest import ROOT, run_script

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
    assert f"held by process {pid} " in lines[0] and "--wait" in lines[0]
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
            lock_file = locks.judgment_lock(BenchPaths(project.bench, project.root / "data"), "judge")
            assert lock_file.parent == project.bench_dir / "locks"  # not among the records
            deadline = time.time() + 30
            while time.time() < deadline and not (lock_file.exists() and str(first.pid) in lock_file.read_text()):
                time.sleep(0.05)
            assert json.loads(lock_file.read_text())["pid"] == first.pid

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
    with locks.hold([locks.judgment_lock(paths, "judge")]):  # as a judging run holds it
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
        with locks.hold([locks.judgment_lock(paths, "judge")]):
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
