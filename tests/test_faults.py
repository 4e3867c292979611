"""Faults from servers and files, through the real scripts against our stand-in servers (issue 12).

Each case ends doing the right thing or refused in one line (exit 2), with the run's summary
printed, no traceback, and nothing already stored lost.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, free_port, run_script

from arenajudge.config.models import load_api_config
from arenajudge.endpoints.client import ModelClient, RequestPolicy
from arenajudge_testkit.fake_openai import FakeServer, Script
from arenajudge_testkit.gen_project import Project, entry


@pytest.fixture
def project(tmp_path):
    return Project(tmp_path)


def _no_traceback(proc: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in proc.stderr and "ExceptionGroup" not in proc.stderr, proc.stderr


def _one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _answer_records(project: Project, model: str = "cand") -> list[dict]:
    path = project.bench_dir / "model_answer" / f"{model}.jsonl"
    return project.records(f"model_answer/{model}.jsonl") if path.exists() else []


# ---------------------------------------------------------------- replies that are not answers

@pytest.mark.parametrize("fault", ["non_json", "broken_json", "null_content", "empty_content"])
def test_unusable_200_replies_are_retried_and_never_stored(project, fault):
    qs = project.simple_questions(4)
    with FakeServer(Script(fault=fault, fault_first=2)) as server:
        project.write_api({"cand": entry(server.base_url, "c")})
        project.write_answer_config(["cand"])
        proc = run_script("gen_answer.py", "--quiet", cwd=project.root)
        attempts = len(server.chat_requests())
    _no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    assert attempts == 3 * len(qs)  # two bad replies, then the good one
    assert "4 done" in proc.stderr and "8 retried" in proc.stderr
    records = _answer_records(project)
    assert [r["question_id"] for r in records] == [q["question_id"] for q in qs]
    assert all(r["choices"][0]["turns"][0]["content"].startswith("Answer (1)") for r in records)


@pytest.mark.parametrize("fault", ["non_json", "broken_json", "null_content"])
def test_persistently_unusable_replies_fail_the_items_with_a_summary(project, fault):
    project.simple_questions(3)
    with FakeServer(Script(fault=fault, fault_first=1000)) as server:
        project.write_api({"cand": entry(server.base_url, "c")})
        project.write_answer_config(["cand"])
        proc = run_script("gen_answer.py", "--quiet", "--max-retries", "1", cwd=project.root)
        assert len(server.chat_requests()) == 2 * 3
    _no_traceback(proc)
    assert proc.returncode == 1
    assert "answers: 0 done, 0 skipped (already on disk), 3 failed" in proc.stderr
    assert "failed: cand / question q000" in proc.stderr
    assert ("not JSON" in proc.stderr) if "json" in fault else ("without content" in proc.stderr)
    assert _answer_records(project) == []  # never stored
    [run] = project.records("runs.jsonl")
    assert run["failed"] == 3 and run["failed_requests"] == 3


def test_judge_reply_without_content_is_retried_not_judged(project):
    qs = project.simple_questions(2)
    for m in ("m1", "base"):
        project.write_answers(m, qs)
    with FakeServer(Script(fault="null_content", fault_first=1)) as server:
        project.write_api({"judge": entry(server.base_url, "j")})
        project.write_judge_config(["m1"])
        proc = run_script("gen_judgment.py", "--quiet", cwd=project.root)
    assert proc.returncode == 0, proc.stderr
    for record in project.records("model_judgment/judge/m1.jsonl"):
        assert all(g["score"] is not None and g["judgment"] and g["asks"] == 1 for g in record["games"])


_NO_CONTENT = object()


def _break_first_turn(path, line: int, content: object = _NO_CONTENT) -> None:
    """Rewrite record `line` (0-based) of an answer file: its first turn's content set, or removed."""
    lines = path.read_text().splitlines()
    broken = json.loads(lines[line])
    turn = broken["choices"][0]["turns"][0]
    if content is _NO_CONTENT:
        del turn["content"]
    else:
        turn["content"] = content
    lines[line] = json.dumps(broken)
    path.write_text("\n".join(lines) + "\n")


def _answers_with_a_null_turn(project: Project, models: tuple[str, ...], line: int) -> Path:
    """Answers of `models` to 3 questions; in the last model's file, record `line`'s first turn has content null."""
    qs = project.simple_questions(3)
    for model in models:
        project.write_answers(model, qs)
    path = project.bench_dir / "model_answer" / f"{models[-1]}.jsonl"
    _break_first_turn(path, line, content=None)
    return path


def test_answer_file_with_null_content_is_a_file_line_error_before_any_request(project):
    path = _answers_with_a_null_turn(project, ("base", "m1"), 1)
    with FakeServer() as server:
        project.write_api({"judge": entry(server.base_url, "j")})
        project.write_judge_config(["m1"])
        proc = run_script("gen_judgment.py", "--quiet", cwd=project.root)
        _one_line_error(proc, f"{path.relative_to(project.root)}:2:", "q001", "content is null")
        _break_first_turn(path, 1)  # no content key at all
        proc = run_script("gen_judgment.py", "--quiet", cwd=project.root)
        _one_line_error(proc, "m1.jsonl:2:", "has no content")
        assert server.chat_requests() == []


def test_gen_answer_asks_again_for_a_stored_answer_without_text(project):
    _answers_with_a_null_turn(project, ("cand",), 2)
    with FakeServer() as server:
        project.write_api({"cand": entry(server.base_url, "c")})
        project.write_answer_config(["cand"])
        proc = run_script("gen_answer.py", "--quiet", cwd=project.root)
        sent = [r.body["messages"][-1]["content"] for r in server.chat_requests()]
    assert proc.returncode == 0, proc.stderr
    assert sent == ["Question number 2?"] and "1 stored without text, asked again" in proc.stderr
    records = _answer_records(project)
    assert [r["question_id"] for r in records] == ["q000", "q001", "q002"]
    assert all(isinstance(r["choices"][0]["turns"][0]["content"], str) for r in records)


# ---------------------------------------------------------------- Retry-After

@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured_without_holding_a_slot(project, status):
    qs = project.simple_questions(2)
    for m in ("m1", "base"):
        project.write_answers(m, qs)
    with FakeServer(Script(fail_first=1, fail_status=status, retry_after="2")) as server:
        project.write_api({"judge": entry(server.base_url, "j", parallel=2)})
        project.write_judge_config(["m1"])
        proc = run_script("gen_judgment.py", "--quiet", cwd=project.root)
        requests = server.chat_requests()
    assert proc.returncode == 0, proc.stderr
    assert len(requests) == 2 * 4 and len(project.records("model_judgment/judge/m1.jsonl")) == 2
    by_game: dict[str, list[float]] = {}
    for r in requests:
        by_game.setdefault(json.dumps(r.body["messages"]), []).append(r.tstamp)
    assert len(by_game) == 4
    firsts = sorted(times[0] for times in by_game.values())
    # 4 games, 2 slots: had a waiting game kept its slot, the last two would start 2 s later
    assert firsts[-1] - firsts[0] < 1.0
    for first, second in by_game.values():
        assert second - first >= 1.9  # the default back-off would retry after 0.05-0.15 s


# ---------------------------------------------------------------- dead, wrong and hanging endpoints

def test_dead_endpoint_is_found_before_the_run(project):
    project.simple_questions(50)
    port = free_port()  # nothing listens there
    project.write_api({"cand": entry(f"http://127.0.0.1:{port}/v1", "c")})
    project.write_answer_config(["cand"])
    start = time.time()
    proc = run_script("gen_answer.py", "--quiet", cwd=project.root)
    _one_line_error(proc, "api_config.yaml", "'cand.endpoints[0].api_base'", f"http://127.0.0.1:{port}/v1",
                    "nothing answers")
    assert time.time() - start < 30  # not 5 retries for each of 50 questions
    assert not (project.bench_dir / "model_answer" / "cand.jsonl").exists()


def test_wrong_endpoint_path_is_found_before_the_run(project):
    qs = project.simple_questions(3)
    for m in ("m1", "base"):
        project.write_answers(m, qs)
    with FakeServer() as server:
        wrong = server.base_url.removesuffix("/v1")  # a forgotten /v1
        project.write_api({"judge": entry(wrong, "j")})
        project.write_judge_config(["m1"])
        proc = run_script("gen_judgment.py", "--quiet", cwd=project.root)
        _one_line_error(proc, "'judge.endpoints[0].api_base'", wrong, "HTTP 404")
        assert server.chat_requests() == []


def test_a_hanging_server_shows_in_the_progress_line(project):
    project.simple_questions(3)
    with FakeServer(Script(hang_on=("",), hang_seconds=90)) as server:
        project.write_api({"cand": entry(server.base_url, "c", parallel=3, timeout=7)})  # the api config's timeout
        project.write_answer_config(["cand"])
        start = time.time()
        proc = run_script("gen_answer.py", "--max-retries", "0", cwd=project.root)
        took = time.time() - start
    _no_traceback(proc)
    assert proc.returncode == 1 and 6.5 < took < 60
    assert "in flight 3 (oldest " in proc.stderr  # shown while nothing came back
    assert "failed: cand / question q000" in proc.stderr and "Timeout" in proc.stderr
    assert "answers: 0 done" in proc.stderr


def test_timeout_flag_overrides_the_api_config(project):
    project.simple_questions(1)
    with FakeServer(Script(hang_on=("",), hang_seconds=90)) as server:
        project.write_api({"cand": entry(server.base_url, "c", timeout=600)})
        project.write_answer_config(["cand"])
        start = time.time()
        proc = run_script("gen_answer.py", "--quiet", "--timeout", "1", "--max-retries", "0", cwd=project.root)
    assert proc.returncode == 1 and "Timeout" in proc.stderr and time.time() - start < 60


# ---------------------------------------------------------------- templates

@pytest.mark.parametrize(("template", "fragments"), [
    ("{question_1} A: {answr_1} B: {answer_2}", ["unknown placeholder {answr_1}"]),
    ("{question_1} A: {answer_1} B: {answer_2} ref: {ref_answer_1}", ["{ref_answer_1} needs reference answers"]),
    ("{question_1} A: {answer_1} B: {answer_2} {}", ["positional placeholder"]),
    ("{question_1} A: {answer_1 B: {answer_2}", ["not a valid template"]),
])
def test_bad_placeholders_are_refused_when_the_config_loads(project, template, fragments):
    qs = project.simple_questions(2)
    for m in ("m1", "base"):
        project.write_answers(m, qs)
    with FakeServer() as server:
        project.write_api({"judge": entry(server.base_url, "j")})
        project.write_judge_config(["m1"], prompt_template=[template])
        proc = run_script("gen_judgment.py", "--quiet", cwd=project.root)
        _one_line_error(proc, "judge_config.yaml", "'prompt_template'", *fragments)
        assert server.chat_requests() == []


def test_a_placeholder_the_questions_cannot_fill_is_refused_before_any_request(project):
    qs = project.simple_questions(2)
    for m in ("m1", "base"):
        project.write_answers(m, qs)
    with FakeServer() as server:
        project.write_api({"judge": entry(server.base_url, "j")})
        project.write_judge_config(["m1"], prompt_template="{question_1} {question_2} {answer_1} {answer_2}")
        proc = run_script("gen_judgment.py", "--quiet", cwd=project.root)
        _one_line_error(proc, "'prompt_template'", "{question_2}", "m1 / question q000")
        assert server.chat_requests() == []


def test_a_misspelled_mt_bench_prompt_is_refused(project):
    from arenajudge.judge.mtbench import load_judge_prompts

    qs = [{"question_id": 81, "category": "writing", "turns": ["Write.", "Shorter."]}]
    project.write_questions(qs)
    for m in ("m1",):
        path = project.bench_dir / "model_answer" / f"{m}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"question_id": 81, "model_id": m, "choices": [
            {"index": 0, "turns": [{"content": "a"}, {"content": "b"}]}]}) + "\n")
    prompts = [{"name": p.name, "system_prompt": p.system_prompt, "prompt_template": p.prompt_template}
               for p in load_judge_prompts(None).values()]
    for p in prompts:
        if p["name"] == "single-v1-multi-turn":
            p["prompt_template"] = p["prompt_template"].replace("{answer_2}", "{answr_2}")
    prompt_file = project.root / "judge_prompts.jsonl"
    prompt_file.write_text("".join(json.dumps(p) + "\n" for p in prompts))
    with FakeServer() as server:
        project.write_api({"judge": entry(server.base_url, "j")})
        project.write_judge_config(["m1"], mode="single", judge_prompts=str(prompt_file), prompt_template=[])
        proc = run_script("gen_judgment.py", "--quiet", cwd=project.root)
        _one_line_error(proc, "judge_prompts.jsonl", "'single-v1-multi-turn'", "{answr_2}")
        assert server.chat_requests() == []


# ---------------------------------------------------------------- passwords in api_base

def test_a_password_in_api_base_is_redacted_everywhere(project):
    secret = "s3cret-pw-42"
    project.simple_questions(3)
    port = free_port()  # nothing listens there
    project.write_api({"cand": entry(f"http://alice:{secret}@127.0.0.1:{port}/v1", "c")})
    project.write_answer_config(["cand"])
    proc = run_script("gen_answer.py", "--quiet", cwd=project.root)
    line = _one_line_error(proc, "http://alice:***@127.0.0.1")
    assert secret not in line
    project.write_api({"cand": entry(f"http://alice:{secret}@127.0.0.1:notaport/v1", "c")})
    proc = run_script("gen_answer.py", "--quiet", cwd=project.root)
    assert secret not in _one_line_error(proc, "well-formed")
    with FakeServer(Script(fail_first=1000, hang_on=("number 2",), hang_seconds=30)) as server:
        url = server.base_url.replace("http://", f"http://alice:{secret}@")
        project.write_api({"cand": entry(url, "c", timeout=6)})
        proc = run_script("gen_answer.py", "--max-retries", "1", cwd=project.root)  # progress line on
    assert proc.returncode == 1 and "HTTP 500" in proc.stderr and "in flight" in proc.stderr
    assert "alice:***@127.0.0.1" in proc.stderr
    assert secret not in proc.stderr + proc.stdout
    for path in project.root.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace") or path.name == "api_config.yaml", path


# ---------------------------------------------------------------- files that cannot be written

def _limited(max_bytes: int):
    def limit() -> None:  # in the child: files may not grow past max_bytes (EFBIG instead of SIGXFSZ)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))
    return limit


def test_a_write_error_names_the_file_keeps_what_was_stored_and_prints_the_summary(project):
    qs = project.simple_questions(20)
    for m in ("m1", "base"):
        project.write_answers(m, qs)
    with FakeServer() as server:
        project.write_api({"judge": entry(server.base_url, "j", parallel=2)})
        project.write_judge_config(["m1"])
        proc = subprocess.run([sys.executable, str(ROOT / "gen_judgment.py"), "--quiet"], cwd=project.root,
                              capture_output=True, text=True, timeout=120, preexec_fn=_limited(5000))
        first_requests = len(server.chat_requests())
        out = project.bench_dir / "model_judgment" / "judge" / "m1.jsonl"
        _no_traceback(proc)
        assert proc.returncode == 1
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and f"{out.relative_to(project.root)}: cannot write: File too large" in errors[0]
        assert "judgments: " in proc.stderr and "requests: " in proc.stderr  # the summary
        assert not list(project.root.rglob("*.tmp"))
        stored = project.records("model_judgment/judge/m1.jsonl")  # whole lines only: each parses
        assert 1 <= len(stored) < 20 and out.stat().st_size <= 5000
        assert len({r["question_id"] for r in stored}) == len(stored)

        proc = run_script("gen_judgment.py", "--quiet", cwd=project.root)
        assert proc.returncode == 0, proc.stderr
        assert f"{len(stored)} already judged" in proc.stderr
        again = project.records("model_judgment/judge/m1.jsonl")
        assert [r["question_id"] for r in again] == [q["question_id"] for q in qs]
        kept = {r["question_id"]: r for r in again}
        assert all(kept[r["question_id"]] == r for r in stored)  # what was stored is kept as it was
        assert len(server.chat_requests()) <= first_requests + 2 * (20 - len(stored))


def test_a_sort_that_cannot_be_written_leaves_the_file_and_no_tmp(project):
    qs = project.simple_questions(6)
    for m in ("m1", "base"):
        project.write_answers(m, qs)
    out = project.bench_dir / "model_judgment" / "judge" / "m1.jsonl"
    out.parent.mkdir(parents=True)
    # judgments of another tool, out of question order and larger than the limit below
    records = [{"question_id": q["question_id"], "model": "m1", "judge": "judge",
                "games": [{"user_prompt": "p" * 400, "judgment": "[[A=B]]", "score": "A=B"}] * 2}
               for q in reversed(qs[:5])]
    out.write_text("".join(json.dumps(r) + "\n" for r in records))
    before = out.read_bytes()
    with FakeServer() as server:
        project.write_api({"judge": entry(server.base_url, "j")})
        project.write_judge_config(["m1"])
        proc = subprocess.run([sys.executable, str(ROOT / "gen_judgment.py"), "--quiet"], cwd=project.root,
                              capture_output=True, text=True, timeout=120, preexec_fn=_limited(3000))
    _no_traceback(proc)
    assert proc.returncode == 1 and "cannot write: File too large" in proc.stderr and "judgments: 0 done" in proc.stderr
    assert out.read_bytes() == before
    assert not list(project.root.rglob("*.tmp"))



@pytest.mark.parametrize(("header", "cap", "low", "high"), [("3600", 1.5, 1.3, 20.0), ("date", 30.0, 1.0, 20.0)])
def test_retry_after_is_capped_and_read_as_seconds_or_a_date(tmp_path, header, cap, low, high):
    """The client itself (the cap of 60 s is RequestPolicy.max_retry_after; here lowered to keep the test short)."""
    value = header if header != "date" else email.utils.formatdate(time.time() + 3, usegmt=True)
    with FakeServer(Script(fail_first=1, fail_status=429, retry_after=value)) as server:
        Project(tmp_path).write_api({"cand": entry(server.base_url, "c")})
        cand = load_api_config(tmp_path / "config" / "api_config.yaml")["cand"].with_secrets()

        async def ask() -> float:
            client = ModelClient(cand, RequestPolicy(max_retry_after=cap))
            start = time.monotonic()
            try:
                await client.chat([{"role": "user", "content": "hi"}], temperature=0, max_tokens=8)
            finally:
                await client.close()
            return time.monotonic() - start

        took = asyncio.run(ask())
        assert [r.status for r in server.chat_requests()] == [429, 200]
    assert RequestPolicy().max_retry_after == 60.0
    assert low < took < high  # without Retry-After the first retry comes after 0.05-0.15 s
