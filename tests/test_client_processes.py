"""--client-processes N: requests go out from N child processes; the parent keeps the queue, the
retries and the one writer. Same judgments as one process, nothing lost when a child dies or on
Ctrl-C, no api key on a command line."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import alive, start_script, wait_for_lines, wait_until

from arenajudge.endpoints import chat_request
from arenajudge_testkit.fake_openai import FakeServer, Script
from arenajudge_testkit.gen_project import Project, answer, entry, judge

KEY = "sk-client-processes-secret"


def judge_entry(servers: list[FakeServer], parallel: int = 4, api_key: str | None = None) -> dict:
    config = entry(servers[0].base_url, "j", parallel=parallel, api_key=api_key)
    config["endpoints"] = [{"api_base": s.base_url, **({"api_key": api_key} if api_key else {})} for s in servers]
    return config


def judgment_project(project: Project, n_questions: int, models: tuple[str, ...] = ("m1", "m2")) -> None:
    questions = project.simple_questions(n_questions)
    for model in (*models, "base"):
        project.write_answers(model, questions)
    project.write_judge_config(list(models))


def verdicts(project: Project, model: str) -> dict:
    return {r["question_id"]: [(g["judgment"], g["score"]) for g in r["games"]]
            for r in project.records(f"model_judgment/judge/{model}.jsonl")}


def children_of(pid: int) -> list[int]:
    """The client processes started by process `pid`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and b"arenajudge.endpoints.client_processes" in cmdline:
            found.append(int(stat.parent.name))
    return found


def test_two_processes_judge_as_one_does_and_the_parent_sends_nothing(tmp_path, monkeypatch):
    one, two = Project(tmp_path / "one"), Project(tmp_path / "two")
    with FakeServer() as a, FakeServer() as b:
        for project in (one, two):
            judgment_project(project, 12)
            project.write_api({"judge": judge_entry([a, b])})
        monkeypatch.chdir(one.root)
        assert judge() == 0
        sent_by_one = len(a.chat_requests()) + len(b.chat_requests())

        async def refuse(self, body):  # the parent must not send: only its children may
            raise AssertionError("the parent sent a chat request")

        monkeypatch.setattr(chat_request.ChatEndpoint, "send", refuse)
        a.received.clear()
        b.received.clear()
        monkeypatch.chdir(two.root)
        assert judge("--client-processes", "2") == 0
        assert len(a.chat_requests()) > 0 and len(b.chat_requests()) > 0  # both endpoints served
        assert len(a.chat_requests()) + len(b.chat_requests()) == sent_by_one == 2 * 12 * 2
    for model in ("m1", "m2"):
        assert verdicts(two, model) == verdicts(one, model)
    [run_one], [run_two] = one.records("runs.jsonl"), two.records("runs.jsonl")
    assert "client_processes_cpu_seconds" not in run_one
    assert run_two["client_processes_cpu_seconds"] > 0
    assert run_two["requests"] == run_one["requests"] == 48


def start_judging(project: Project, *flags: str) -> subprocess.Popen[str]:
    return start_script("gen_judgment.py", "--quiet", *flags, cwd=project.root)


def test_a_child_that_dies_loses_nothing_and_no_key_is_on_its_command_line(project):
    judgment_project(project, 40)
    with FakeServer(Script(delay=0.05, api_key=KEY)) as server:
        project.write_api({"judge": judge_entry([server], parallel=4, api_key=KEY)})
        proc = start_judging(project, "--client-processes", "2")
        wait_for_lines(project.bench_dir / "model_judgment" / "judge" / "m1.jsonl", 3, proc)
        children = children_of(proc.pid)
        assert len(children) == 2
        for child in children:
            assert KEY.encode() not in Path(f"/proc/{child}/cmdline").read_bytes()
        os.kill(children[0], signal.SIGKILL)
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and KEY not in stderr
    for model in ("m1", "m2"):
        assert len(verdicts(project, model)) == 40  # what the dead child had in flight was sent again by the other
    [run] = project.records("runs.jsonl")
    assert run["done"] == 80 and run["failed"] == 0


def test_ctrl_c_stops_the_children_and_the_rerun_does_exactly_the_rest(project):
    judgment_project(project, 60)
    with FakeServer(Script(delay=0.05)) as server:
        project.write_api({"judge": judge_entry([server], parallel=4)})
        proc = start_judging(project, "--client-processes", "2")
        wait_for_lines(project.bench_dir / "model_judgment" / "judge" / "m1.jsonl", 3, proc)
        children = children_of(proc.pid)
        assert len(children) == 2
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode != 0 and "Traceback" not in stderr
        wait_until(lambda: not any(alive(child) for child in children), 10, "the children gone")  # none left behind
        [first] = project.records("runs.jsonl")
        assert first["interrupted"] is True and 0 < first["done"] < 120
        stored = len(verdicts(project, "m1")) + len(verdicts(project, "m2"))
        server.received.clear()
        assert judge("--client-processes", "2") == 0
        assert len(server.chat_requests()) == 2 * (120 - stored)  # the rest, two games each, nothing twice
    assert len(verdicts(project, "m1")) == len(verdicts(project, "m2")) == 60


@pytest.mark.parametrize("value", ["0", "-1"])
def test_client_processes_must_be_at_least_one(project, capsys, value):
    judgment_project(project, 2)
    project.write_api({"judge": entry("http://127.0.0.1:9/v1", "j")})
    assert judge("--client-processes", value) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --client-processes must be at least 1, got {value}"]


def test_answers_and_until_decided_go_through_client_processes_too(tmp_path, monkeypatch):
    one, two = Project(tmp_path / "one"), Project(tmp_path / "two")
    with FakeServer() as server:
        for project in (one, two):
            project.simple_questions(6)
            project.write_api({"cand": entry(server.base_url, "c", parallel=4)})
            project.write_answer_config(["cand"])
        monkeypatch.chdir(one.root)
        assert answer() == 0
        monkeypatch.chdir(two.root)
        assert answer("--client-processes", "2") == 0
        texts = [{r["question_id"]: r["choices"][0]["turns"][0]["content"] for r in p.records("model_answer/cand.jsonl")}
                 for p in (one, two)]
        assert texts[0] == texts[1] and len(texts[0]) == 6
        assert two.records("runs.jsonl")[0]["client_processes_cpu_seconds"] > 0

        # --until-decided: a batch at a time, each through its own children
        decided = Project(tmp_path / "decided")
        judgment_project(decided, 40)
        decided.write_api({"judge": judge_entry([server], parallel=4)})
        monkeypatch.chdir(decided.root)
        server.received.clear()
        assert judge("--until-decided", "m1", "m2", "--batch", "10", "--client-processes", "2") == 0
        [run] = decided.records("runs.jsonl")
        assert run["requests"] == len(server.chat_requests()) == 2 * 2 * len(run["until_decided"]["questions"]) > 0
        assert run["client_processes_cpu_seconds"] > 0


def test_the_faster_replica_gets_more_requests_across_the_processes(project):
    judgment_project(project, 30)
    with FakeServer(Script(delay=0.01)) as fast, FakeServer(Script(delay=0.15)) as slow:
        project.write_api({"judge": judge_entry([fast, slow], parallel=4)})
        assert judge("--client-processes", "2") == 0
        # the choice of endpoint stays in the parent, so a slot freed on the fast replica is taken again at once
        assert len(fast.chat_requests()) > 3 * len(slow.chat_requests()) > 0
        assert len(fast.chat_requests()) + len(slow.chat_requests()) == 2 * 30 * 2
