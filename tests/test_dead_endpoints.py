"""An endpoint that stops answering mid-run (issue 23): dropped after --dead-after seconds, its requests
sent to the model's other endpoints; a model with none left stops the run in one line, stores what
finished, and a rerun does exactly the rest. Real stand-in servers on 127.0.0.1, killed with SIGKILL."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import run_script, start_script, wait_for_lines

from arenajudge.cli import run_eval
from arenajudge.config.models import load_api_config
from arenajudge.core.errors import EXIT_ENDPOINT_GONE, run_cli
from arenajudge.endpoints.client import ModelClient, RequestPolicy
from arenajudge.endpoints.endpoint_health import EndpointsGone
from arenajudge_testkit.fake_openai import FakeServer, Script
from arenajudge_testkit.gen_project import Project, entry


@pytest.fixture
def project(tmp_path):
    return Project(tmp_path)


class KillableServer:
    """The stand-in server in a process of its own, so it can die as a real one does (SIGKILL)."""

    def __init__(self, delay: float, port: int = 0) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "arenajudge_testkit.fake_openai", "--port", str(port),
                                         "--delay", str(delay)], stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline().split()[1])
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
def killable():
    started: list[KillableServer] = []

    def start(delay: float = 0.1) -> KillableServer:
        started.append(KillableServer(delay))
        return started[-1]

    yield start
    for server in started:
        server.kill()


def judge_with(project: Project, urls: list[str], n_questions: int, parallel: int = 4) -> list[dict]:
    questions = project.simple_questions(n_questions)
    for model in ("m1", "base"):
        project.write_answers(model, questions)
    config = entry(urls[0], "j", parallel=parallel)
    config["endpoints"] = [{"api_base": url} for url in urls]
    project.write_api({"judge": config})
    project.write_judge_config(["m1"])
    return questions


def judgment_file(project: Project) -> Path:
    return project.bench_dir / "model_judgment" / "judge" / "m1.jsonl"


def stored_ids(project: Project) -> list[str]:
    """The question ids of the stored judgments; every line must be a whole record."""
    path = judgment_file(project)
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for record in records:
        assert len(record["games"]) == 2 and all(g["judgment"] for g in record["games"])
    return [r["question_id"] for r in records]


def start(project: Project, script: str, *flags: str) -> subprocess.Popen[str]:
    return start_script(script, *flags, cwd=project.root, stdout=subprocess.PIPE)


def no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr and "ExceptionGroup" not in stderr, stderr


# ---------------------------------------------------------------- one of two endpoints dies

@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_dead_endpoint_of_two_is_dropped_once_and_the_run_completes(project, killable, processes):
    dying = killable()
    with FakeServer(Script(delay=0.1)) as living:
        questions = judge_with(project, [dying.base_url, living.base_url], 60)
        proc = start(project, "gen_judgment.py", "--quiet", "--dead-after", "2", "--client-processes", processes)
        wait_for_lines(judgment_file(project), 5, proc)
        dying.kill()
        _, stderr = proc.communicate(timeout=120)
    no_traceback(stderr)
    assert proc.returncode == 0, stderr
    assert stderr.count(dying.base_url) == 1, stderr  # said once, as it was dropped
    [warning] = [line for line in stderr.splitlines() if dying.base_url in line]
    assert warning.startswith("warning: ") and re.search(r"stopped answering \(no success for [23] s: connection", warning)
    assert "failed:" not in stderr
    assert sorted(stored_ids(project)) == [q["question_id"] for q in questions]  # each once
    [run] = project.records("runs.jsonl")
    assert run["status"] == "ok" and run["done"] == 60 and run["failed"] == 0
    assert [d["endpoint"] for d in run["dead_endpoints"]] == [dying.base_url]


def test_an_endpoint_whose_requests_all_time_out_is_dropped_too(project):
    with FakeServer(Script(hang_on=("",), hang_seconds=60)) as hanging, FakeServer(Script(delay=0.1)) as living:
        questions = judge_with(project, [hanging.base_url, living.base_url], 40, parallel=2)  # about 4 s
        proc = run_script("gen_judgment.py", "--quiet", "--timeout", "1", "--dead-after", "2", cwd=project.root)
    no_traceback(proc.stderr)
    assert proc.returncode == 0, proc.stderr
    [warning] = [line for line in proc.stderr.splitlines() if hanging.base_url in line]
    assert re.search(r"stopped answering \(no success for [23] s: timed out\)", warning), warning
    assert sorted(stored_ids(project)) == [q["question_id"] for q in questions] and "failed:" not in proc.stderr


# ---------------------------------------------------------------- the only endpoint dies

def test_the_only_endpoint_dies_the_run_stops_in_one_line_and_the_rerun_does_the_rest(project, killable):
    dying = killable()
    questions = judge_with(project, [dying.base_url], 80)
    proc = start(project, "gen_judgment.py", "--quiet", "--dead-after", "2")
    wait_for_lines(judgment_file(project), 5, proc)
    killed = time.time()
    dying.kill()
    _, stderr = proc.communicate(timeout=120)
    took = time.time() - killed
    no_traceback(stderr)
    assert proc.returncode == EXIT_ENDPOINT_GONE, stderr
    assert took < 15  # --dead-after 2, not minutes of retries
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    assert "failed:" not in stderr and stderr.count(dying.base_url) == 1
    first = stored_ids(project)
    assert len(set(first)) == len(first) and 5 <= len(first) < 80
    assert re.fullmatch(rf"error: judge 'judge': endpoint {re.escape(dying.base_url)} stopped answering \(no success "
                        rf"for [23] s: connection refused\); {len(first)} of 80 judgments done, {80 - len(first)} left; "
                        r"rerun to resume", errors[0]), errors[0]
    assert f"judgments: {len(first)} done, 0 skipped (already on disk), 0 failed, {80 - len(first)} left" in stderr
    [run] = project.records("runs.jsonl")
    assert run["status"] == "endpoint_dead" and run["failed"] == 0 and run["done"] == len(first)
    assert run["left"] == 80 - len(first)
    [dead] = run["dead_endpoints"]
    assert dead["model"] == "judge" and dead["endpoint"] == dying.base_url and dead["reason"] in errors[0]

    with FakeServer(port=dying.port) as back:  # the same address again
        rerun = run_script("gen_judgment.py", "--quiet", cwd=project.root)
        sent = [r.body["messages"][1]["content"] for r in back.chat_requests()]
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(first)} already judged" in rerun.stderr
    assert stored_ids(project) == [q["question_id"] for q in questions]  # each once, in question order
    # requests for the missing ones only: two games each
    assert len(sent) == 2 * (80 - len(first))
    asked = {qid for qid in (q["question_id"] for q in questions) for text in sent
             if f"Question number {int(qid[1:])}?\n" in text}
    assert asked == {q["question_id"] for q in questions} - set(first)


def test_answers_and_until_decided_stop_the_same_way(project, killable):
    dying = killable(0.05)
    project.simple_questions(200)
    project.write_api({"cand": entry(dying.base_url, "c", parallel=2)})
    project.write_answer_config(["cand"])
    proc = start(project, "gen_answer.py", "--quiet", "--dead-after", "1")
    wait_for_lines(project.bench_dir / "model_answer" / "cand.jsonl", 5, proc)
    dying.kill()
    _, stderr = proc.communicate(timeout=120)
    no_traceback(stderr)
    assert proc.returncode == EXIT_ENDPOINT_GONE, stderr
    stored = len(project.records("model_answer/cand.jsonl"))
    [error] = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert error.startswith(f"error: model 'cand': endpoint {dying.base_url} stopped answering")
    assert error.endswith(f"{stored} of 200 answers done, {200 - stored} left; rerun to resume")

    # --until-decided: the batch in flight stops the same way, nothing is decided on a gap
    decided = Project(project.root / "decided")
    dying = killable(0.05)
    judge_with(decided, [dying.base_url], 200)
    decided.write_answers("m2", decided.simple_questions(200), text="other answer of {model} to {qid}")
    proc = start(decided, "gen_judgment.py", "--quiet", "--dead-after", "1", "--until-decided", "m1", "m2",
                 "--batch", "100")
    wait_for_lines(decided.bench_dir / "model_judgment" / "judge" / "m1.jsonl", 5, proc)
    dying.kill()
    out, stderr = proc.communicate(timeout=120)
    no_traceback(stderr)
    assert proc.returncode == EXIT_ENDPOINT_GONE, stderr
    assert "# until decided" not in out and "failed:" not in stderr
    [error] = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert "stopped answering" in error and error.endswith("left; rerun to resume")
    [run] = decided.records("runs.jsonl")
    assert run["status"] == "endpoint_dead" and run["until_decided"]["pairs"] == []


def test_run_eval_judging_as_the_answers_come_stops_its_judge_and_finishes_the_answers(project, killable, monkeypatch,
                                                                                     capsys):
    monkeypatch.chdir(project.root)
    project.simple_questions(60)
    dying = killable(0.05)
    with FakeServer(Script(delay=0.05)) as answering:  # no `server` blocks: the judge follows the answers
        project.write_api({"ckpt-a": entry(answering.base_url, "a", parallel=2),
                           "base": entry(answering.base_url, "b", parallel=2),
                           "judge": entry(dying.base_url, "j", parallel=4)})
        project.write_judge_config(["unused"], judge="judge", baseline="base")
        judged = project.bench_dir / "model_judgment" / "judge" / "ckpt-a.jsonl"

        def kill_after_three() -> None:
            try:
                wait_for_lines(judged, 3)
            finally:
                dying.kill()

        killer = threading.Thread(target=kill_after_three, daemon=True)
        killer.start()
        code = run_cli(run_eval.main, ["--quiet", "--dead-after", "1", "--models", "ckpt-a", "--judge", "judge"])
        killer.join()
    err = capsys.readouterr().err
    no_traceback(err)
    assert code == EXIT_ENDPOINT_GONE and "as the answers come" in err
    [error] = [line for line in err.splitlines() if line.startswith("error: ")]
    stored = len(project.records("model_judgment/judge/ckpt-a.jsonl"))
    assert re.search(rf"stopped answering \(no success for [12] s: connection refused\); {stored} judgments done, "
                     r"the rest left; rerun to resume$", error), error
    assert "the judgment step failed (exit 3); rerun the same command to resume" in err
    assert len(project.records("model_answer/ckpt-a.jsonl")) == 60  # the answers went on without the judge
    judging = next(r for r in project.records("runs.jsonl") if r["command"] == "gen_judgment")
    assert judging["status"] == "endpoint_dead" and judging["done"] == stored


# ---------------------------------------------------------------- HTTP errors keep their rules

def test_a_server_that_answers_500_is_alive_and_keeps_the_retry_rules(project):
    project.simple_questions(3)
    with FakeServer(Script(fail_first=1000)) as server:
        project.write_api({"cand": entry(server.base_url, "c")})
        project.write_answer_config(["cand"])
        proc = run_script("gen_answer.py", "--quiet", "--dead-after", "0.2", "--max-retries", "4", cwd=project.root)
    assert proc.returncode == 1, proc.stderr  # failed items, not a dead endpoint
    assert "stopped answering" not in proc.stderr and proc.stderr.count("failed: cand / question") == 3
    assert len(server.chat_requests()) == 3 * 5  # every retry, well past --dead-after


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_dead_after_must_be_positive(project, value):
    project.simple_questions(1)
    project.write_api({"cand": entry("http://127.0.0.1:9/v1", "c")})
    project.write_answer_config(["cand"])
    proc = run_script("gen_answer.py", "--dead-after", value, cwd=project.root)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"error: --dead-after must be a positive number of seconds, got {float(value):g}"]


# ---------------------------------------------------------------- the progress bar counts what is stored

def test_the_progress_bar_after_ctrl_c_counts_what_is_stored(project):
    with FakeServer(Script(delay=0.2)) as server:
        judge_with(project, [server.base_url], 200, parallel=8)
        proc = start(project, "gen_judgment.py")  # progress bar on
        wait_for_lines(judgment_file(project), 10, proc)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    counts = re.findall(r"\| *(\d+)/200 \[", stderr)
    assert counts, stderr
    stored = len(stored_ids(project))
    assert 10 <= stored < 200 and int(counts[-1]) == stored  # the bar's last word
    [run] = project.records("runs.jsonl")
    assert run["status"] == "interrupted" and run["done"] == stored


# ---------------------------------------------------------------- dropping from outside

def test_mark_dead_from_outside_sends_waiting_requests_elsewhere(tmp_path):
    """The engine's one mechanism, told from outside (e.g. a lost node): requests hanging on the dropped
    endpoint are sent to the other at once; with none left, the model's requests raise EndpointsGone."""
    with FakeServer(Script(hang_on=("",), hang_seconds=60)) as hanging, FakeServer() as living:
        project = Project(tmp_path)
        config = entry(hanging.base_url, "j", parallel=2)
        config["endpoints"] = [{"api_base": hanging.base_url}, {"api_base": living.base_url}]
        project.write_api({"judge": config})
        judge = load_api_config(tmp_path / "config" / "api_config.yaml")["judge"].with_secrets()

        async def run() -> tuple[float, list[str], str]:
            client = ModelClient(judge, RequestPolicy())
            ask = [asyncio.create_task(client.chat([{"role": "user", "content": f"q{i}"}], temperature=0,
                                                   max_tokens=8)) for i in range(4)]
            while len(hanging.chat_requests()) + hanging.in_flight < 1:  # one is waiting on the hanging one
                await asyncio.sleep(0.01)
            begin = time.monotonic()
            assert client.mark_dead(hanging.base_url, "its node is gone")
            assert not client.mark_dead(0, "again")
            replies = await asyncio.gather(*ask)
            took = time.monotonic() - begin
            client.mark_dead(1, "the other one too")
            try:
                await client.chat([{"role": "user", "content": "late"}], temperature=0, max_tokens=8)
                gone = ""
            except EndpointsGone as exc:
                gone = str(exc)
            await client.close()
            return took, [r.content for r in replies], gone

        took, replies, gone = asyncio.run(run())
        assert took < 5 and len(replies) == 4 and living.ok_count() == 4
    assert gone == (f"model 'judge': endpoints {hanging.base_url} (its node is gone), {living.base_url} "
                    "(the other one too) stopped answering")
