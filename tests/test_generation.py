"""gen_answer.py and gen_judgment.py against our OpenAI-compatible server over real HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT, line_count, run_script, signal_after_lines, start_script

from arenajudge.core.tokens import token_len
from arenajudge_testkit.fake_openai import FakeServer, Script
from arenajudge_testkit.gen_project import Project, answer, entry, judge


def _judge_setup(project: Project, server: FakeServer, n: int = 6, models=("m1", "m2")) -> list[dict]:
    qs = project.simple_questions(n)
    for m in (*models, "base"):
        project.write_answers(m, qs)
    project.write_api({"judge": entry(server.base_url, "/models/the-judge", parallel=8)})
    project.write_judge_config(list(models))
    return qs


# ---------------------------------------------------------------- answers

def test_answers_records_tokens_usage_and_served_name(project, capsys):
    qs = project.simple_questions(7)
    with FakeServer(Script(delay=0.01)) as server:
        project.write_api({"cand": entry(server.base_url, "/models/cand-7b", parallel=3)})
        project.write_answer_config(["cand"])
        assert answer() == 0
        bodies = [r.body for r in server.chat_requests()]
    assert {b["model"] for b in bodies} == {"/models/cand-7b"}  # the served name, never the config key
    assert all(b["messages"][0] == {"role": "system", "content": "You are a helpful assistant."} for b in bodies)
    records = project.records("model_answer/cand.jsonl")
    assert [r["question_id"] for r in records] == [q["question_id"] for q in qs]
    for r in records:
        assert r["model_id"] == "cand" and set(r) >= {"answer_id", "tstamp", "choices"}
        turn = r["choices"][0]["turns"][0]
        assert turn["token_len"] == token_len(turn["content"])
        assert turn["usage"]["completion_tokens"] > 0
    assert "7 done, 0 skipped" in capsys.readouterr().err
    # a rerun asks nothing
    with FakeServer() as server:
        project.write_api({"cand": entry(server.base_url, "/models/cand-7b")})
        assert answer() == 0
        assert server.chat_requests() == []


def test_multi_turn_in_one_conversation_and_several_choices(project):
    project.write_questions([{"question_id": 81, "category": "writing", "turns": ["Write a poem.", "Now shorter."]}])
    with FakeServer() as server:
        project.write_api({"cand": entry(server.base_url, "c", system_prompt="")})
        project.write_answer_config(["cand"], num_choices=2, category_temperature={"writing": 0.7})
        assert answer() == 0
        bodies = [r.body for r in server.chat_requests()]
    assert len(bodies) == 4
    second_turns = [b for b in bodies if len(b["messages"]) == 3]
    assert len(second_turns) == 2
    for b in second_turns:  # no system message; turn 2 sees turn 1 and its answer
        assert [m["role"] for m in b["messages"]] == ["user", "assistant", "user"]
        assert b["messages"][1]["content"] == "Answer (1) to: Write a poem."
    assert {b["temperature"] for b in bodies} == {0.7}
    [record] = project.records("model_answer/cand.jsonl")
    assert [c["index"] for c in record["choices"]] == [0, 1]
    assert all(len(c["turns"]) == 2 for c in record["choices"])


@pytest.mark.parametrize("status", [500, 429])
def test_transient_errors_are_retried(project, status):
    project.simple_questions(5)
    with FakeServer(Script(fail_first=2, fail_status=status)) as server:
        project.write_api({"cand": entry(server.base_url, "c")})
        project.write_answer_config(["cand"])
        assert answer() == 0
        statuses = [r.status for r in server.chat_requests()]
    assert statuses.count(status) == 10 and statuses.count(200) == 5
    assert len(project.records("model_answer/cand.jsonl")) == 5


def test_persistent_failures_are_reported_never_stored_and_completed_next_run(project, capsys):
    project.simple_questions(4)
    with FakeServer(Script(fail_first=100)) as server:
        project.write_api({"cand": entry(server.base_url, "c")})
        project.write_answer_config(["cand"])
        assert answer("--max-retries", "2") == 1
    err = capsys.readouterr().err
    assert "4 failed" in err and "failed: cand / question q000" in err and "HTTP 500" in err
    path = project.bench_dir / "model_answer" / "cand.jsonl"
    assert not path.exists() or path.read_text() == ""
    with FakeServer() as server:
        project.write_api({"cand": entry(server.base_url, "c")})
        assert answer() == 0
        assert len(server.chat_requests()) == 4
    assert len(project.records("model_answer/cand.jsonl")) == 4


def test_timeouts_are_retried_then_reported(project, capsys):
    project.simple_questions(3)
    with FakeServer(Script(hang_on=("number 1?",), hang_seconds=8)) as server:
        project.write_api({"cand": entry(server.base_url, "c")})
        project.write_answer_config(["cand"])
        assert answer("--timeout", "1.5", "--max-retries", "1") == 1
    err = capsys.readouterr().err
    assert "failed: cand / question q001" in err and "Timeout" in err
    assert [r["question_id"] for r in project.records("model_answer/cand.jsonl")] == ["q000", "q002"]


def test_wrong_key_fails_at_once_naming_the_endpoint_and_hiding_the_key(project, capsys, monkeypatch):
    project.simple_questions(20)
    monkeypatch.setenv("CAND_KEY", "sk-very-secret-123")
    with FakeServer(Script(api_key="right-key")) as server:
        project.write_api({"cand": entry(server.base_url, "c", parallel=2, api_key="${CAND_KEY}")})
        project.write_answer_config(["cand"])
        assert answer() == 1
        assert len(server.chat_requests()) <= 2  # stopped at once, no retries
        assert all(r.authorization == "Bearer sk-very-secret-123" for r in server.chat_requests())
    err = capsys.readouterr().err
    assert f"error: {server.base_url} refused model 'cand'" in err and "HTTP 401" in err
    assert "sk-very-secret-123" not in err
    for path in project.root.rglob("*.jsonl"):
        assert "sk-very-secret-123" not in path.read_text()


def test_wrong_model_name_is_a_clear_404(project, capsys):
    project.simple_questions(3)
    with FakeServer(Script(models=("/models/real",))) as server:
        project.write_api({"cand": entry(server.base_url, "cand")})
        project.write_answer_config(["cand"])
        assert answer() == 1
    err = capsys.readouterr().err
    assert "served as 'cand'" in err and "does not exist" in err


@pytest.mark.parametrize("mode", ["reasoning", "reasoning_content", "think_tags"])
def test_thinking_is_stored_apart_and_never_judged(project, mode):
    qs = project.simple_questions(2)
    script = Script(think_tags=True) if mode == "think_tags" else Script(reasoning_field=mode)
    with FakeServer(script) as server:
        project.write_api({"cand": entry(server.base_url, "c"), "base": entry(server.base_url, "b"),
                           "judge": entry(server.base_url, "j")})
        project.write_answer_config(["cand", "base"])
        assert answer() == 0
        project.write_judge_config(["cand"])
        assert judge() == 0
        judge_prompts = [r.body["messages"][1]["content"] for r in server.chat_requests() if r.body["model"] == "j"]
    for r in project.records("model_answer/cand.jsonl"):
        turn = r["choices"][0]["turns"][0]
        assert turn["reasoning"].startswith("thinking about")
        assert "think" not in turn["content"] and turn["content"].startswith("Answer (1)")
        assert turn["token_len"] == token_len(turn["content"])
    assert len(judge_prompts) == 2 * len(qs)
    assert not any("thinking about" in p for p in judge_prompts)


# ---------------------------------------------------------------- judgments

def test_judgments_two_games_swapped_served_name_and_clean_labels(project):
    qs = None
    with FakeServer(Script(verdict=lambda p: "b>a", verdict_style="[{label}]")) as server:
        qs = _judge_setup(project, server)
        assert judge() == 0
        bodies = [r.body for r in server.chat_requests()]
    assert {b["model"] for b in bodies} == {"/models/the-judge"}
    assert len(bodies) == 2 * 2 * len(qs)
    for model in ("m1", "m2"):
        records = project.records(f"model_judgment/judge/{model}.jsonl")
        assert [r["question_id"] for r in records] == [q["question_id"] for q in qs]
        for r in records:
            assert r["judge"] == "judge" and r["baseline"] == "base" and r["model"] == model
            g1, g2 = r["games"]
            assert g1["score"] == g2["score"] == "B>A"  # lower case, single brackets: read and cleaned
            a1 = g1["user_prompt"].split("<|The Start of Assistant A's Answer|>\n")[1]
            a2 = g2["user_prompt"].split("<|The Start of Assistant A's Answer|>\n")[1]
            assert a1.startswith("answer of base") and a2.startswith(f"answer of {model}")


def test_verdictless_replies_get_two_follow_ups_then_null(project, capsys):
    with FakeServer(Script(verdict=lambda p: None)) as server:
        qs = _judge_setup(project, server, n=2, models=("m1",))
        assert judge() == 0
        requests = server.chat_requests()
    assert len(requests) == 2 * len(qs) * 3
    longest = max(requests, key=lambda r: len(r.body["messages"]))
    assert [m["role"] for m in longest.body["messages"]] == ["system", "user", "assistant", "user", "assistant", "user"]
    for r in project.records("model_judgment/judge/m1.jsonl"):
        assert all(g["score"] is None and g["asks"] == 3 and g["judgment"] for g in r["games"])
    assert "4 games without a verdict" in capsys.readouterr().err


def test_a_verdict_given_on_follow_up_is_kept(project):
    def verdict(prompt: str) -> str | None:
        return "A>>B" if prompt.endswith("#followup") else None

    with FakeServer(Script(verdict=verdict)) as server:
        _judge_setup(project, server, n=2, models=("m1",))
        assert judge() == 0
    for r in project.records("model_judgment/judge/m1.jsonl"):
        assert [g["score"] for g in r["games"]] == ["A>>B", "A>>B"]
        assert all(g["asks"] == 2 for g in r["games"])


def test_conflicting_labels_are_no_verdict(project):
    with FakeServer(Script(verdict=lambda p: "A>B", verdict_style="[[{label}]] or maybe [[B>A]]")) as server:
        _judge_setup(project, server, n=2, models=("m1",))
        assert judge() == 0
        assert len(server.chat_requests()) == 4  # no follow-up: asking again would not settle it
    for r in project.records("model_judgment/judge/m1.jsonl"):
        assert all(g["score"] is None for g in r["games"])


def test_context_overflow_shortens_both_answers_evenly(project):
    qs = project.simple_questions(2)
    project.write_answers("m1", qs, text="M" * 3000)
    project.write_answers("base", qs, text="B" * 1000)
    with FakeServer(Script(max_context_chars=2500)) as server:
        project.write_api({"judge": entry(server.base_url, "j")})
        project.write_judge_config(["m1"])
        assert judge() == 0
        statuses = [r.status for r in server.chat_requests()]
    assert 400 in statuses and statuses.count(200) == 4
    for r in project.records("model_judgment/judge/m1.jsonl"):
        for g in r["games"]:
            assert g["truncated"] is True and g["score"] is not None
            assert "cut to fit the judge's context" in g["user_prompt"]
            assert len(g["user_prompt"]) + 100 < 2500 + 200
            # the longer answer gave up more: both end up about the same length
            assert g["user_prompt"].count("M") <= g["user_prompt"].count("B") + 50


def test_overflow_that_cannot_fit_fails_without_looping(project, capsys):
    qs = project.simple_questions(1)
    project.write_answers("m1", qs)
    project.write_answers("base", qs)
    with FakeServer(Script(max_context_chars=10)) as server:
        project.write_api({"judge": entry(server.base_url, "j")})
        project.write_judge_config(["m1"])
        assert judge() == 1
        assert len(server.chat_requests()) <= 2 * 4
    assert "failed: m1 / question q000" in capsys.readouterr().err


def test_sample_then_full_run_sends_exactly_the_rest(project):
    with FakeServer() as server:
        qs = _judge_setup(project, server, n=20)
        assert judge("--sample", "5", "--sample-seed", "3") == 0
        sampled = {r["question_id"] for r in project.records("model_judgment/judge/m1.jsonl")}
        assert len(sampled) == 5
        assert sampled == {r["question_id"] for r in project.records("model_judgment/judge/m2.jsonl")}
        assert len(server.chat_requests()) == 5 * 2 * 2
        assert judge() == 0
        assert len(server.chat_requests()) == 20 * 2 * 2
    for model in ("m1", "m2"):
        ids = [r["question_id"] for r in project.records(f"model_judgment/judge/{model}.jsonl")]
        assert ids == [q["question_id"] for q in qs]


def test_runs_log_matches_what_the_server_counted(project):
    with FakeServer(Script(fail_first=1)) as server:
        _judge_setup(project, server, n=4)
        assert judge() == 0
        ok = server.ok_count()
        failed_attempts = len(server.chat_requests()) - ok
    [run] = project.records("runs.jsonl")
    assert run["command"] == "gen_judgment" and run["judge"] == "judge"
    assert run["requests"] == ok == 16 and run["retried"] == failed_attempts == 16
    assert run["done"] == 8 and run["failed"] == 0 and run["prompt_tokens"] > 0


def test_requests_spread_over_endpoints_within_parallel(project):
    qs = project.simple_questions(40)
    for m in ("m1", "base"):
        project.write_answers(m, qs)
    with FakeServer(Script(delay=0.02)) as s1, FakeServer(Script(delay=0.02)) as s2:
        api = {"judge": {"model_name": "j", "parallel": 3, "endpoints": [{"api_base": s1.base_url}, {"api_base": s2.base_url}]}}
        project.write_api(api)
        project.write_judge_config(["m1"])
        assert judge() == 0
        assert s1.max_in_flight <= 3 and s2.max_in_flight <= 3
        assert s1.max_in_flight == 3 and s2.max_in_flight == 3
        assert len(s1.chat_requests()) > 20 and len(s2.chat_requests()) > 20


# ---------------------------------------------------------------- validation

def _one_line_error(capsys, *fragments: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in err[0]


def test_validation_errors_before_any_request(project, capsys):
    qs = project.simple_questions(3)
    with FakeServer() as server:
        project.write_api({"judge": entry(server.base_url, "j")})
        project.write_answer_config(["ghost"])
        assert answer() == 2
        _one_line_error(capsys, "gen_answer_config.yaml", "model_list[0]", "'ghost'", "api_config.yaml")

        project.write_judge_config(["m1"], judge="nobody")
        assert judge() == 2
        _one_line_error(capsys, "judge_config.yaml", "judge_model", "'nobody'")

        project.write_judge_config(["m1"])
        assert judge() == 2
        _one_line_error(capsys, "baseline_model", "'base'", "no answers")

        project.write_answers("base", qs)
        project.write_answers("m1", qs[:2])
        assert judge() == 2
        _one_line_error(capsys, "model_list[0]", "'m1'", "1 of 3 questions", "q002")

        project.write_api({"judge": {"model_name": "j", "endpoints": [{"api_base": "localhost:8000"}]}})
        assert judge() == 2
        _one_line_error(capsys, "judge.endpoints[0].api_base", "well-formed")

        project.write_api({"judge": {"model_name": "j", "parallel": 0, "endpoints": [{"api_base": server.base_url}]}})
        assert judge() == 2
        _one_line_error(capsys, "judge.parallel", "positive integer")

        project.write_api({"judge": {"model_name": "j", "parallel": "many"}})
        assert judge() == 2
        _one_line_error(capsys, "judge.parallel", "integer")
        assert server.chat_requests() == []


def test_utf8_round_trip_with_russian_questions(project, shared):
    lines = (shared / "data" / "arena-hard-v0.1-ru" / "question.jsonl").read_text(encoding="utf-8").splitlines()[:5]
    project.bench_dir.mkdir(parents=True)
    (project.bench_dir / "question.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    questions = [json.loads(x) for x in lines]
    with FakeServer() as server:
        project.write_api({"cand": entry(server.base_url, "c")})
        project.write_answer_config(["cand"])
        assert answer() == 0
        sent = [r.body["messages"][-1]["content"] for r in server.chat_requests()]
    assert sorted(sent) == sorted(q["turns"][0]["content"] for q in questions)
    raw = (project.bench_dir / "model_answer" / "cand.jsonl").read_text(encoding="utf-8")
    assert "\\u04" not in raw  # Cyrillic stays readable, not escaped
    for record, q in zip(project.records("model_answer/cand.jsonl"), questions, strict=True):
        assert record["choices"][0]["turns"][0]["content"] == "Answer (1) to: " + q["turns"][0]["content"][:60]


def test_tokenizer_works_without_network(tmp_path):
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(tmp_path / "empty"), "HTTPS_PROXY": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}
    code = "from arenajudge.core.tokens import token_len; print(token_len('hello world'), token_len('Привет, мир'))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["2", str(token_len("Привет, мир"))]


# ---------------------------------------------------------------- crash safety

def test_kill_minus_nine_then_rerun_leaves_every_record_once(project):
    server_proc = subprocess.Popen([sys.executable, "-m", "arenajudge_testkit.fake_openai", "--delay", "0.05"],
                                   stdout=subprocess.PIPE, text=True)
    try:
        port = int(server_proc.stdout.readline().split()[1])
        url = f"http://127.0.0.1:{port}/v1"
        qs = project.simple_questions(120)
        for m in ("m1", "m2", "base"):
            project.write_answers(m, qs)
        project.write_api({"judge": entry(url, "j", parallel=8)})
        project.write_judge_config(["m1", "m2"])
        path = project.bench_dir / "model_judgment" / "judge" / "m1.jsonl"
        signal_after_lines(start_script("gen_judgment.py", "--quiet", cwd=project.root), path, 15)
        partial = sum(line_count(p) for p in path.parent.glob("*.jsonl"))
        assert 15 <= partial < 240
        rerun = run_script("gen_judgment.py", "--quiet", cwd=project.root)
        assert rerun.returncode == 0, rerun.stderr
        assert f"{partial} skipped" in rerun.stderr
    finally:
        server_proc.kill()
        server_proc.wait()
    for model in ("m1", "m2"):
        lines = (project.bench_dir / "model_judgment" / "judge" / f"{model}.jsonl").read_text().splitlines()
        ids = [json.loads(line)["question_id"] for line in lines]  # every line valid JSON
        assert ids == [q["question_id"] for q in qs]  # each question once, in question order


def test_the_seed_configs_work_unchanged(project, shared):
    """arena-hard-local's three YAML files, as its users write them, drive a judging run."""
    reference = shared / "reference"
    qs = project.simple_questions(3)
    judge_cfg = (reference / "arena-hard-local-judge_config.yaml").read_text().replace(
        "bench_name: arena-hard-v0.1", f"bench_name: {project.bench}")
    config_dir = project.root / "config"
    config_dir.mkdir()
    (config_dir / "judge_config.yaml").write_text(judge_cfg)
    (config_dir / "gen_answer_config.yaml").write_text(
        (reference / "arena-hard-local-gen_answer_config.yaml").read_text().replace("arena-hard-v0.1", project.bench))
    models = ["Phi-3-medium-128k-instruct", "suzume-llama-3-8B-multilingual", "Vikhr-7B-instruct_0.5", "aya-23-8B",
              "Meta-Llama-3-8B-Instruct-f16", "suzume-llama-3-8B-multilingual-orpo-borda-half", "alpindale_gemma-2b-it",
              "SELM-Llama-3-8B-Instruct-iter-3", "Llama-3-Instruct-8B-SimPO", "Qwen2-7B-Instruct"]
    for m in models:
        project.write_answers(m, qs)
    with FakeServer(Script(verdict=lambda p: "A=B")) as server:
        api = (reference / "arena-hard-local-api_config.yaml").read_text().replace(
            "http://localhost:8010/v1", server.base_url)
        api += (f"\nQwen2-72B-Instruct-AWQ:\n     model_name: /home/jupyter/models/Qwen2-72B-Instruct-AWQ\n"
                f"     endpoints:\n         - api_base: {server.base_url}\n           api_key: token-abc123\n"
                "     api_type: openai\n     parallel: 16\n")
        (config_dir / "api_config.yaml").write_text(api)
        assert judge() == 0
        bodies = [r.body for r in server.chat_requests()]
    assert len(bodies) == 2 * len(models) * len(qs)
    assert {b["model"] for b in bodies} == {"/home/jupyter/models/Qwen2-72B-Instruct-AWQ"}
    assert {b["max_tokens"] for b in bodies} == {512}
    records = project.records("model_judgment/Qwen2-72B-Instruct-AWQ/aya-23-8B.jsonl")
    assert [g["score"] for r in records for g in r["games"]] == ["A=B"] * 6
