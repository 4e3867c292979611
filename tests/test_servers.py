"""Managed servers with a stand-in for vLLM (arenajudge_testkit/fake_vllm.py): config, start, reuse, fail fast, stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import alive, fake_vllm_entry, fake_vllm_pids, free_port, signal_after_lines, start_script, wait_until

from arenajudge.cli import gen_answer, gen_judgment
from arenajudge.config.models import load_api_config
from arenajudge.config.server_spec import ServerSpec
from arenajudge.core.errors import UserError, run_cli
from arenajudge.endpoints import servers
from arenajudge.endpoints.prefix_cache import HITS, QUERIES, parse_counters
from arenajudge.judge.arena_hard import order_judge_items
from arenajudge_testkit.fake_openai import FakeServer, Script
from arenajudge_testkit.gen_project import Project, entry


@pytest.fixture
def project(fake_vllm_project: Project) -> Project:
    return fake_vllm_project


def answer(*args: str) -> int:
    return run_cli(gen_answer.main, ["--quiet", *args])


def one_line_error(capsys, *fragments: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in err[0], err[0]
    return err[0]


# ---------------------------------------------------------------- the server block

@pytest.mark.parametrize(("server", "fragments"), [
    ({"tensor_paralel_size": 2}, ["cand.server.tensor_paralel_size", "unknown key"]),
    ({"tensor_parallel_size": "two"}, ["cand.server.tensor_parallel_size", "integer", "'two'"]),
    ({"gpu_memory_utilization": 1.5}, ["cand.server.gpu_memory_utilization", "(0, 1]"]),
    ({"served_model_name": "other"}, ["cand.server.served_model_name", "differs from model_name"]),
    ({"env": {"CUDA_VISIBLE_DEVICES": [0]}}, ["cand.server.env.CUDA_VISIBLE_DEVICES", "string or number"]),
    ({"gpus": [0, 1], "tensor_parallel_size": 4}, ["cand.server.tensor_parallel_size", "needs 4 GPUs", "lists 2"]),
    ({"gpus": "0,1", "env": {"CUDA_VISIBLE_DEVICES": "2,3"}}, ["cand.server.gpus", "differs"]),
    ({"port": 9}, ["cand.server.port", "differs from the port of api_base"]),
    ({"extra_args": ["--api-key", "x"]}, ["cand.server.extra_args", "--api-key"]),
    ({"startup_timeout": True}, ["cand.server.startup_timeout", "number"]),
])
def test_bad_server_blocks_are_one_line_errors_naming_file_and_key(project, capsys, server, fragments):
    project.simple_questions(1)
    project.write_api({"cand": fake_vllm_entry(8123, **server)})
    project.write_answer_config(["cand"])
    assert answer() == 2
    one_line_error(capsys, "api_config.yaml", *fragments)
    assert fake_vllm_pids(project) == []


def test_remote_api_base_cannot_be_managed(project, capsys):
    project.simple_questions(1)
    api = {"cand": {"model_name": "c", "endpoints": [{"api_base": "http://gpu-box:8000/v1"}], "server": {}}}
    project.write_api(api)
    project.write_answer_config(["cand"])
    assert answer() == 2
    one_line_error(capsys, "cand.endpoints[0].api_base", "localhost")


def test_server_block_is_typed_with_defaults_from_the_entry(tmp_path):
    path = tmp_path / "api.yaml"
    path.write_text(yaml.safe_dump({
        "judge": {"model_name": "Llama-3-70B-AWQ", "endpoints": None, "server": {
            "model": "/models/llama-70b-awq", "port": 8010, "quantization": "awq", "tensor_parallel_size": 2,
            "gpus": [2, 3], "max_model_len": 8192, "extra_args": "--enable-prefix-caching --seed 1"}},
        "plain": {"model_name": "x", "endpoints": [{"api_base": "http://10.0.0.5:8000/v1"}]}}))
    entries = load_api_config(path)
    spec = entries["judge"].server
    assert isinstance(spec, ServerSpec) and entries["plain"].server is None
    assert entries["judge"].endpoints[0].api_base == "http://127.0.0.1:8010/v1"  # made from the port
    assert spec.served_model_name == "Llama-3-70B-AWQ" and spec.gpus == ("2", "3")
    assert dict(spec.env)["CUDA_VISIBLE_DEVICES"] == "2,3"
    cmd = servers.vllm_command(spec)
    assert cmd[:3] == [sys.executable, "-m", servers.default_vllm_module()]
    for flag, value in [("--model", "/models/llama-70b-awq"), ("--served-model-name", "Llama-3-70B-AWQ"),
                        ("--port", "8010"), ("--quantization", "awq"), ("--tensor-parallel-size", "2"),
                        ("--max-model-len", "8192")]:
        assert cmd[cmd.index(flag) + 1] == value
    assert cmd[-3:] == ["--enable-prefix-caching", "--seed", "1"]


def test_the_default_server_module_is_the_one_vllm_does_not_call_deprecated(tmp_path, monkeypatch):
    package = tmp_path / "vllm"
    (package / "entrypoints" / "openai").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('vLLM is not imported to find its server module')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "vllm", raising=False)
    assert servers.default_vllm_module() == "vllm.entrypoints.openai.api_server"  # an older vLLM
    launcher = package / "entrypoints" / "launchers" / "api_server"
    launcher.mkdir(parents=True)
    (launcher / "entry.py").write_text("")
    assert servers.default_vllm_module() == "vllm.entrypoints.launchers.api_server.entry"  # vLLM 0.32


def _spec(port: int, gpus: tuple[str, ...] | None) -> ServerSpec:
    return ServerSpec(model="m", served_model_name=f"m{port}", host="127.0.0.1", port=port, gpus=gpus)


def test_waves_share_nothing_inside_and_keep_order():
    a, b, c, d, e = (_spec(8001, ("0", "1")), _spec(8002, ("2",)), _spec(8003, ("1",)), _spec(8004, None),
                     _spec(8002, ("3",)))
    assert servers.plan_waves([a, b, c, d, e]) == [[a, b], [c, e], [d]]
    assert servers.plan_waves([a, a]) == [[a]]


# ---------------------------------------------------------------- start, use, stop

def test_managed_server_is_started_used_stopped_and_logged_without_the_key(project, capsys, monkeypatch):
    qs = project.simple_questions(5)
    port = free_port()
    monkeypatch.setenv("CAND_KEY", "sk-managed-secret-42")
    api = fake_vllm_entry(port, gpus="0,1", tensor_parallel_size=2, max_model_len=4096, extra_args=["--enforce-eager"],
                  env={"HF_TOKEN": "hf-env-secret-9"})
    api["endpoints"][0]["api_key"] = "${CAND_KEY}"
    project.write_api({"cand": api})
    project.write_answer_config(["cand"])
    assert answer() == 0
    err = capsys.readouterr().err
    assert "starting the server of 'cand'" in err and "stopped the server of 'cand'" in err
    assert len(project.records("model_answer/cand.jsonl")) == len(qs)
    started = fake_vllm_pids(project)
    assert len(started) == 2 and not any(alive(p) for p in started)  # the server and its worker
    [run] = project.records("runs.jsonl")
    [record] = run["servers"]
    assert record["model"] == "cand" and record["gpus"] == "0,1" and record["tensor_parallel_size"] == 2
    assert 0 < record["startup_seconds"] <= record["held_seconds"]
    log = Path(record["log"]).read_text()
    assert "api key set" in log and "--served-model-name /models/cand" in log and "--max-model-len 4096" in log
    assert "CUDA_VISIBLE_DEVICES=0,1" in log and "HF_TOKEN=***" in log and "hf-env-secret-9" not in log
    for path in project.root.rglob("*"):
        if path.is_file():
            assert "sk-managed-secret-42" not in path.read_text(errors="replace"), path
    assert "sk-managed-secret-42" not in err
    # a rerun has nothing to do and starts nothing
    assert answer() == 0
    assert len(fake_vllm_pids(project)) == 2


def test_a_server_already_answering_is_used_and_left_running(project, capsys):
    project.simple_questions(3)
    with FakeServer(Script(models=("/models/cand",))) as server:
        project.write_api({"cand": fake_vllm_entry(server.port)})
        project.write_answer_config(["cand"])
        assert answer() == 0
        assert server.ok_count() == 3
    assert "already running" in capsys.readouterr().err
    assert fake_vllm_pids(project) == []
    assert "servers" not in project.records("runs.jsonl")[0]


def test_a_port_serving_another_model_is_an_error(project, capsys):
    project.simple_questions(1)
    with FakeServer(Script(models=("someone-else",))) as server:
        project.write_api({"cand": fake_vllm_entry(server.port)})
        project.write_answer_config(["cand"])
        assert answer() == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: config/api_config.yaml: key 'cand.server'")
    assert "'someone-else', not '/models/cand'" in last


def test_a_dying_server_fails_fast_with_its_log_tail_and_no_secret(project, capsys, monkeypatch):
    project.simple_questions(2)
    monkeypatch.setenv("FAKE_VLLM_EXIT", "3")
    monkeypatch.setenv("FAKE_VLLM_LEAK_KEY", "1")
    api = fake_vllm_entry(free_port(), startup_timeout=60)
    api["endpoints"][0]["api_key"] = "sk-leaky-777"
    project.write_api({"cand": api})
    project.write_answer_config(["cand"])
    start = time.monotonic()
    assert answer() == 2
    assert time.monotonic() - start < 20
    err = capsys.readouterr().err
    assert "exited with code 3 during start-up" in err and "CUDA out of memory" in err
    assert "debug: api key is ***" in err and "sk-leaky-777" not in err
    assert not any(alive(p) for p in fake_vllm_pids(project))
    assert not (project.bench_dir / "model_answer" / "cand.jsonl").exists()


def test_a_server_that_never_answers_is_killed_after_startup_timeout(project, capsys, monkeypatch):
    project.simple_questions(1)
    monkeypatch.setenv("FAKE_VLLM_START_DELAY", "60")
    monkeypatch.setenv("FAKE_VLLM_IGNORE_TERM", "1")
    monkeypatch.setattr(servers, "STOP_GRACE_SECONDS", 1.0)
    project.write_api({"cand": fake_vllm_entry(free_port(), startup_timeout=1.5)})
    project.write_answer_config(["cand"])
    assert answer() == 2
    assert "did not answer within 1.5 s" in capsys.readouterr().err
    started = fake_vllm_pids(project)
    assert len(started) == 2 and not any(alive(p) for p in started)  # SIGKILL reached the group


def test_servers_sharing_gpus_take_turns_disjoint_ones_overlap(project, capsys):
    project.simple_questions(2)
    p1, p2, p3 = free_port(), free_port(), free_port()
    project.write_api({"a": fake_vllm_entry(p1, "ma", gpus="0"), "b": fake_vllm_entry(p2, "mb", gpus="0"),
                       "c": fake_vllm_entry(p3, "mc", gpus="1")})
    project.write_answer_config(["a", "b", "c"])
    assert answer() == 0
    events = [line for line in capsys.readouterr().err.splitlines() if line.startswith(("starting", "stopped"))]
    order = [(line.split()[0], line.split("'")[1]) for line in events]
    # a and c (GPU 0 and GPU 1) together; b (GPU 0 again) only once a has stopped
    assert order.index(("starting", "c")) < order.index(("stopped", "a"))
    assert order.index(("stopped", "a")) < order.index(("starting", "b"))
    for model in ("a", "b", "c"):
        assert len(project.records(f"model_answer/{model}.jsonl")) == 2
    assert not any(alive(p) for p in fake_vllm_pids(project))


def _answering_slowly(project: Project) -> subprocess.Popen[str]:
    """gen_answer.py started on 200 questions to a managed stand-in that takes 0.05 s an answer."""
    project.simple_questions(200)
    project.write_api({"cand": fake_vllm_entry(free_port(), parallel=1)})
    project.write_answer_config(["cand"])
    env = {**os.environ, "FAKE_VLLM_DELAY": "0.05", "FAKE_VLLM_PIDFILE": str(project.root / "pids")}
    return start_script("gen_answer.py", "--quiet", cwd=project.root, env=env)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_stop_the_server(project, sig):
    proc = _answering_slowly(project)
    _, err = signal_after_lines(proc, project.bench_dir / "model_answer" / "cand.jsonl", 3, sig)
    assert proc.returncode == 130, err
    assert "stopped the server of 'cand'" in err and "rerun to resume" in err
    started = fake_vllm_pids(project)
    assert len(started) == 2 and not any(alive(p) for p in started)


def test_the_server_dies_with_the_tool_even_on_kill_9(project):
    signal_after_lines(_answering_slowly(project), project.bench_dir / "model_answer" / "cand.jsonl", 2)
    started = fake_vllm_pids(project)
    assert len(started) == 2  # the server and its worker (in its group, as vLLM's engine process is)
    # the kernel signals the server only; the reaper ends the whole group, worker included
    wait_until(lambda: not any(alive(p) for p in started), 10, "the server and its worker gone with gen_answer.py")


# ---------------------------------------------------------------- answer length within the context

def test_max_tokens_is_capped_by_the_servers_token_count(project, capsys):
    short = {"question_id": "short", "category": "c", "turns": [{"content": "Hi?"}]}
    longer = {"question_id": "long", "category": "c", "turns": [{"content": "x" * 280}]}
    huge = {"question_id": "huge", "category": "c", "turns": [{"content": "y" * 600}]}
    project.write_questions([short, longer, huge])
    project.write_api({"cand": fake_vllm_entry(free_port(), max_model_len=120)})
    project.write_answer_config(["cand"], max_tokens=50)
    assert answer() == 1  # the huge question cannot fit at all
    err = capsys.readouterr().err
    assert "1 requests with max_tokens capped" in err
    assert "failed: cand / question huge" in err and "no room for an answer" in err
    records = {r["question_id"]: r for r in project.records("model_answer/cand.jsonl")}
    assert set(records) == {"short", "long"}
    assert "max_tokens" not in records["short"]["choices"][0]["turns"][0]
    turn = records["long"]["choices"][0]["turns"][0]
    assert turn["max_tokens"] == 120 - turn["usage"]["prompt_tokens"] < 50
    [run] = project.records("runs.jsonl")
    assert run["capped_max_tokens"] == 1


def test_without_server_or_tokenizer_key_nothing_is_counted(project):
    project.write_questions([{"question_id": "long", "category": "c", "turns": [{"content": "x" * 4000}]}])
    with FakeServer() as server:
        project.write_api({"cand": entry(server.base_url, "c")})
        project.write_answer_config(["cand"], max_tokens=50)
        assert answer() == 0
        [request] = server.chat_requests()
    assert request.body["max_tokens"] == 50


def test_tokenizer_key_turns_capping_on_and_a_server_without_tokenize_turns_it_off(project, capsys):
    project.simple_questions(3)
    with FakeServer() as server:
        project.write_api({"cand": entry(server.base_url, "c", tokenizer="meta-llama/Meta-Llama-3-8B")})
        project.write_answer_config(["cand"], max_tokens=50)
        assert answer() == 0
        assert {r.body["max_tokens"] for r in server.chat_requests()} == {50}
    err = capsys.readouterr().err
    assert err.count("answer length not capped") == 1 and "404 from /tokenize" in err


# ---------------------------------------------------------------- prefix cache

def test_prometheus_counters_are_summed_over_labels():
    text = ("# HELP vllm:prefix_cache_queries_total x\n# TYPE vllm:prefix_cache_queries_total counter\n"
            'vllm:prefix_cache_queries_total{engine="0",model_name="j"} 1000.0\n'
            'vllm:prefix_cache_queries_total{engine="1",model_name="j"} 24.0\n'
            'vllm:prefix_cache_queries_created{engine="0"} 1.79e+09\n'
            'vllm:prefix_cache_hits_total{engine="0",model_name="j"} 512.0\n'
            'vllm:external_prefix_cache_hits_total{engine="0"} 99.0\n')
    assert parse_counters(text) == {QUERIES: 1024.0, HITS: 512.0}
    assert parse_counters("garbage\n") == {}


def test_shuffled_order_is_a_permutation():
    items = list(range(50))
    shuffled = order_judge_items(items, "shuffled", seed=1)
    assert sorted(shuffled) == items and shuffled != items
    assert order_judge_items(items) == items
    with pytest.raises(ValueError):
        order_judge_items(items, "sideways")


def _judge_run(project: Project, port: int, order: str) -> dict:
    assert run_cli(gen_judgment.main, ["--quiet", "--judge-order", order]) == 0
    return project.records("runs.jsonl")[-1]


def test_judge_runs_report_a_higher_hit_rate_in_question_major_order(project, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_VLLM_CACHE_TOKENS", "3000")
    rates = {}
    for order in ("shuffled", "question-major"):
        project.bench = f"bench-{order}"
        qs = [{"question_id": f"{order}-{i}", "category": "c",
               "turns": [{"content": f"{order} question {i}: " + "explain in detail " * 20}]} for i in range(12)]
        project.write_questions(qs)
        for model in ("m1", "m2", "m3", "m4", "base"):
            project.write_answers(model, qs, text="a long answer of {model} to {qid}. " * 12)
        project.write_api({"judge": fake_vllm_entry(free_port(), "j", parallel=2)})
        project.write_judge_config(["m1", "m2", "m3", "m4"])
        run = _judge_run(project, 0, order)
        assert run["servers"][0]["model"] == "judge"
        cache = run["prefix_cache"]
        assert 0.9 * run["prompt_tokens"] < cache["queries"] <= run["prompt_tokens"]
        rates[order] = cache["hit_rate"]
    err = capsys.readouterr().err
    assert "prefix cache of judge:" in err
    assert rates["question-major"] > rates["shuffled"] + 0.1, rates


def test_log_fields_are_json_serialisable(project):
    session = servers.ServerSession(project.root / "logs")
    assert json.loads(json.dumps(session.log_fields())) == {}
    with pytest.raises(UserError):
        raise servers.ServerFailed("x")
    # a session that started a server (the stand-in) names it in what runs.jsonl keeps, and its cache counters
    project.write_api({"cand": fake_vllm_entry(free_port(), gpus="0,1", tensor_parallel_size=2)})
    cand = load_api_config(project.root / "config" / "api_config.yaml")["cand"].with_secrets()
    said: list[str] = []
    session = servers.ServerSession(project.root / "logs", prefix_cache=True, say=said.append)
    with session.serving([cand]):
        assert fake_vllm_pids(project) and all(alive(pid) for pid in fake_vllm_pids(project))
    fields = session.log_fields()
    assert json.loads(json.dumps(fields)) == fields
    [server] = fields["servers"]
    assert server["model"] == "cand" and server["gpus"] == "0,1" and server["tensor_parallel_size"] == 2
    assert server["pipeline_parallel_size"] == 1 and server["log"] == str(project.root / "logs" / "cand.log")
    assert 0 <= server["startup_seconds"] <= server["held_seconds"]
    assert fields["prefix_cache"] == {"queries": 0, "hits": 0, "hit_rate": None}
    assert any("starting the server of 'cand'" in line for line in said)
    assert not any(alive(pid) for pid in fake_vllm_pids(project))
