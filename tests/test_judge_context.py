"""What a real small judge showed (issue 14), with stand-in servers: echoed verdicts, judge prompts
counted before sending, follow-ups that no longer fit, "at least N" overflows, failure counts and
advice, run-log time across server waves, interrupted runs."""

from __future__ import annotations

import re
import signal

import pytest
import yaml
from conftest import ROOT, fake_vllm_entry, free_port, signal_after_lines, start_script

from arenajudge.cli import gen_answer
from arenajudge.core.errors import run_cli
from arenajudge.core.verdicts import parse_own_verdict
from arenajudge.judge.arena_hard import FOLLOW_UP
from arenajudge_testkit.fake_openai import FakeServer, Script
from arenajudge_testkit.fake_vllm import FakeVllm, prompt_text
from arenajudge_testkit.gen_project import Project, entry, judge

LABELS_SYSTEM = (
    "Compare the two answers below and explain which one serves the user better.\n"
    "Close with exactly one of these labels:\n"
    "1. A is far better: [[A>>B]]\n2. A is a little better: [[A>B]]\n3. About equal: [[A=B]]\n"
    "4. B is a little better: [[B>A]]\n5. B is far better: [[B>>A]]\n"
    'For instance, a reply may end: "Having weighed both, my verdict is a tie: [[A=B]]".')
REGEX = r"\[\[([AB<>=]+)\]\]"


def setup_judging(project: Project, url: str, n: int = 2, answer_text: str = "answer of {model} to {qid}", **config):
    qs = project.simple_questions(n)
    for model in ("m1", "base"):
        project.write_answers(model, qs, text=answer_text)
    project.write_api({"judge": entry(url, "the-judge", **config.pop("api", {}))})
    project.write_judge_config(["m1"], system_prompt=LABELS_SYSTEM, regex_pattern=REGEX, **config)
    return qs


# ---------------------------------------------------------------- echoes are no verdicts

def parrot(messages: list[dict]) -> str:
    """A judge that only repeats: the example line of the system prompt first, then our last message."""
    if len(messages) <= 2:
        example = LABELS_SYSTEM.splitlines()[-1]
        return f"I will follow this. {example}"
    return f"Sure. {messages[-1]['content']}"


def test_a_parroting_judge_yields_no_verdict_and_the_follow_up_names_no_label(project, capsys):
    with FakeServer(Script(judge_text=parrot)) as server:
        setup_judging(project, server.base_url)
        assert judge() == 0
        requests = server.chat_requests()
    assert re.search(REGEX, FOLLOW_UP) is None
    follow_ups = [r.body["messages"][-1]["content"] for r in requests if len(r.body["messages"]) > 2]
    assert follow_ups and all(re.search(REGEX, text) is None for text in follow_ups)
    for record in project.records("model_judgment/judge/m1.jsonl"):
        for game in record["games"]:
            assert game["score"] is None and game["asks"] == 3
            assert "[[A=B]]" in game["judgment"]  # the echo is kept in the text, never read as a verdict
    assert "4 games without a verdict" in capsys.readouterr().err


def test_a_verdict_in_the_judges_own_words_counts_even_in_the_instructed_form(project):
    def own(messages: list[dict]) -> str:
        return "A covers the question; B misses half of it. Having weighed both, my verdict is: [[A>B]]"

    with FakeServer(Script(judge_text=own)) as server:
        setup_judging(project, server.base_url)
        assert judge() == 0
        assert len(server.chat_requests()) == 4  # no follow-ups
    for record in project.records("model_judgment/judge/m1.jsonl"):
        assert [g["score"] for g in record["games"]] == ["A>B", "A>B"]


PROJECT_SYSTEM = yaml.safe_load((ROOT / "config" / "judge_config.yaml").read_text())["system_prompt"]


@pytest.mark.parametrize(("reply", "label"), [
    ("Verdict: [[B>A]]", "B>A"),  # the instructed form, in the judge's own reply
    ("Assistant A is much better: [[A>>B]]", "A>>B"),
    ("A answers, B does not. My verdict: [[A>B]]", "A>B"),
    ('For example: "Verdict: [[B>A]]".', None),  # the system prompt's example line, copied
    ("I see. For example: \"Verdict: [[B>A]]\"", None),
    ("- Assistant A is much better: [[A>>B]]", None),  # a list item of the instructions
    ("- Assistant A is much better: [[A>>B]]\n- Assistant A is a little better: [[A>B]]", None),
])
def test_labels_copied_from_the_system_prompt_are_echoes(reply, label):
    ours = "\n".join([PROJECT_SYSTEM, "<|User Prompt|>\nWhat is 2+2?", FOLLOW_UP])
    pattern = re.compile(r"\[(\[?[AB<>=ab]+\]?)\]")
    assert parse_own_verdict(reply, pattern, ours)[0] == label


# ---------------------------------------------------------------- the judge's context

@pytest.mark.parametrize("processes", ["1", "2"])  # 2: /tokenize from this process, chat from client processes
def test_judge_prompts_are_counted_first_cut_to_leave_room_and_nothing_that_fits_fails(project, processes):
    """A judge with 1,024 tokens of context, answers that overflow it, a judge that gives its label only when
    asked again: every judgment is done, no request overflows, the cut games say so, the short ones are whole."""
    max_len = 1024
    qs = [{"question_id": f"q{i}", "category": "c", "turns": [{"content": f"Question {i}?"}]} for i in range(4)]
    project.write_questions(qs)
    lengths = {"q0": 200, "q1": 1500, "q2": 2500, "q3": 4000}  # characters per answer; 4 characters a token

    def text(model: str, qid: str) -> str:
        return f"{model} says " + "w" * lengths[qid]

    for model in ("m1", "base"):
        project.write_answers(model, qs, text="{model}|{qid}")
        path = project.bench_dir / "model_answer" / f"{model}.jsonl"
        lines = path.read_text().splitlines()
        path.write_text("\n".join(line.replace(f'"{model}|{q["question_id"]}"', f'"{text(model, q["question_id"])}"')
                                  for line, q in zip(lines, qs, strict=True)) + "\n")

    def late_label(messages: list[dict]) -> str:
        return "Both try. " + ("My verdict: [[B>A]]" if len(messages) > 2 else "Weighing them " + "z" * 300)

    script = Script(judge_text=late_label, max_context_chars=4 * max_len)
    with FakeVllm(script, 0, "the-judge", max_len, 4096) as server:
        project.write_api({"judge": entry(server.base_url, "the-judge", tokenizer="any")})
        project.write_judge_config(["m1"], system_prompt=LABELS_SYSTEM, regex_pattern=REGEX, max_tokens=256)
        assert judge("--client-processes", processes) == 0
        requests = server.chat_requests()
    assert all(r.status == 200 for r in requests)
    for r in requests:  # counted by the server's own rule: the reply always had room, follow-ups included
        assert len(prompt_text(r.body["messages"])) // 4 + r.body["max_tokens"] <= max_len
    records = {r["question_id"]: r for r in project.records("model_judgment/judge/m1.jsonl")}
    assert set(records) == set(lengths)
    for qid, record in records.items():
        for game in record["games"]:
            assert game["score"] is not None and game["asks"] == 2  # the follow-up fitted
            shortened = "cut to fit the judge's context" in game["user_prompt"]
            assert shortened == bool(game.get("truncated"))
            assert shortened == (qid != "q0")
    assert project.records("runs.jsonl")[-1]["failed"] == 0


def test_a_follow_up_that_cannot_fit_ends_the_game_without_a_verdict_not_the_item(project, capsys):
    def long_first(messages: list[dict]) -> str:
        return "Thinking " + "y" * 400 if len(messages) <= 2 else "[[A>B]]"

    # the first prompt fits, the follow-up (with the first reply in it) does not
    with FakeServer(Script(judge_text=long_first, max_context_chars=800)) as server:
        setup_judging(project, server.base_url, n=2)
        assert judge() == 0
        statuses = [r.status for r in server.chat_requests()]
    assert statuses.count(200) == 4 and statuses.count(400) == 4
    for record in project.records("model_judgment/judge/m1.jsonl"):
        for game in record["games"]:
            assert game["score"] is None and game["asks"] == 1 and game["context_full"] is True
            assert "truncated" not in game
    err = capsys.readouterr().err
    assert "0 failed" in err and "4 games without a verdict" in err


def test_at_least_n_is_a_lower_bound_so_the_answers_are_cut_enough(project):
    with FakeServer(Script(max_context_chars=4000, understate_overflow=True)) as server:
        setup_judging(project, server.base_url, n=1, answer_text="{model} " + "v" * 3000)
        assert judge() == 0
    [record] = project.records("model_judgment/judge/m1.jsonl")
    assert all(g["truncated"] is True and g["score"] is not None for g in record["games"])


# ---------------------------------------------------------------- failure counts and advice

def test_after_a_fatal_404_the_summary_and_the_run_log_count_the_same_and_advise_a_fix(project, capsys):
    with FakeServer(Script(models=("served-name",))) as server:
        project.simple_questions(3)
        project.write_api({"cand": entry(server.base_url, "wrong-name")})
        project.write_answer_config(["cand"])
        assert run_cli(gen_answer.main, ["--quiet"]) == 1
    err = capsys.readouterr().err
    [run] = project.records("runs.jsonl")
    assert run["failed"] == 3 and run["done"] == 0
    assert f"0 done, 0 skipped (already on disk), {run['failed']} failed" in err
    assert "rerun the same command to complete" not in err and "fix the endpoint" in err


def test_failures_a_rerun_cannot_fix_are_not_advised_a_rerun(project, capsys):
    project.write_questions([{"question_id": "huge", "category": "c", "turns": [{"content": "y" * 4000}]}])
    with FakeVllm(Script(), 0, "c", 200, 4096) as server:
        project.write_api({"cand": entry(server.base_url, "c", tokenizer="any")})
        project.write_answer_config(["cand"], max_tokens=50)
        assert run_cli(gen_answer.main, ["--quiet"]) == 1
    err = capsys.readouterr().err
    assert "no room for an answer" in err and "a rerun cannot fix" in err
    assert "rerun the same command" not in err


def test_transient_failures_are_advised_a_rerun(project, capsys):
    with FakeServer(Script(fail_first=100, fail_status=503)) as server:
        project.simple_questions(1)
        project.write_api({"cand": entry(server.base_url, "c")})
        project.write_answer_config(["cand"])
        assert run_cli(gen_answer.main, ["--quiet", "--max-retries", "1"]) == 1
    err = capsys.readouterr().err
    assert "rerun the same command to complete exactly what failed" in err and "cannot fix" not in err


# ---------------------------------------------------------------- the run log across server waves

def test_wall_time_and_rate_cover_every_wave(project, monkeypatch):
    monkeypatch.setenv("FAKE_VLLM_DELAY", "0.25")
    project.simple_questions(4)
    # same GPU: served one after the other, each wave 4 requests of 0.25 s in a row
    project.write_api({"a": fake_vllm_entry(free_port(), "ma", parallel=1, gpus="0"),
                   "b": fake_vllm_entry(free_port(), "mb", parallel=1, gpus="0")})
    project.write_answer_config(["a", "b"])
    assert run_cli(gen_answer.main, ["--quiet"]) == 0
    [run] = project.records("runs.jsonl")
    assert len(run["servers"]) == 2
    assert run["wall_seconds"] >= 2 * 4 * 0.25
    assert run["completion_tokens_per_second"] <= run["completion_tokens"] / (2 * 4 * 0.25)


def test_an_interrupted_run_is_logged_as_interrupted(project):
    project.simple_questions(200)
    with FakeServer(Script(delay=0.05)) as server:
        project.write_api({"cand": entry(server.base_url, "c", parallel=1)})
        project.write_answer_config(["cand"])
        signal_after_lines(start_script("gen_answer.py", "--quiet", cwd=project.root),
                           project.bench_dir / "model_answer" / "cand.jsonl", 3, signal.SIGINT)
    [run] = project.records("runs.jsonl")
    assert run["interrupted"] is True and 0 < run["done"] < 200
