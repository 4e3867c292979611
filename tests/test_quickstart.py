"""`arenajudge quickstart` end to end with a stand-in for vLLM (arenajudge_testkit/fake_vllm.py) run through the
server command the quickstart writes: board, comparison, report, one server, reruns, errors, Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, alive, free_port

from arenajudge.cli import main as cli_main
from arenajudge.cli import quickstart
from arenajudge.endpoints import embedded_model, serving_venv


@pytest.fixture
def stand_in(tmp_path, monkeypatch) -> dict:
    """A 'serving Python' whose vLLM server module is the stand-in, an embedded model already made, a fresh cache."""
    shim = tmp_path / "shim"
    module = shim.joinpath(*serving_venv.SERVER_MODULE.split("."))
    for parent in [shim / "vllm", *[p for p in module.parents if p != shim and shim in p.parents]]:
        parent.mkdir(parents=True, exist_ok=True)
        (parent / "__init__.py").touch()
    module.with_suffix(".py").write_text("from arenajudge_testkit.fake_vllm import main\nmain()\n")
    monkeypatch.setenv("PYTHONPATH", f"{shim}{os.pathsep}{ROOT}")
    cache = tmp_path / "cache"
    model = cache / embedded_model.MODEL_NAME
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / embedded_model.DONE_MARK).write_text("made for the test\n")
    monkeypatch.setenv("ARENAJUDGE_CACHE", str(cache))
    monkeypatch.delenv(serving_venv.SERVING_PYTHON_ENV, raising=False)
    pidfile = tmp_path / "pids"
    monkeypatch.setenv("FAKE_VLLM_PIDFILE", str(pidfile))
    monkeypatch.setenv("FAKE_VLLM_DELAY", "0.02")
    monkeypatch.chdir(tmp_path)
    return {"root": tmp_path, "pids": pidfile, "port": free_port(), "model": model}


def started(pidfile: Path) -> list[int]:
    return [int(x) for x in pidfile.read_text().split()] if pidfile.exists() else []


def test_the_quickstart_runs_the_whole_job_and_a_rerun_reuses_it(stand_in, capsys):
    args = ["quickstart", "--serving-python", sys.executable, "--port", str(stand_in["port"]), "--questions", "6"]
    assert cli_main.main(args) == 0
    out, err = capsys.readouterr()
    project = stand_in["root"] / "arenajudge-quickstart"
    board = [line for line in out.splitlines() if "| score:" in line]
    assert sorted(line.split()[0] for line in board) == sorted([*quickstart.CANDIDATES, quickstart.BASELINE])
    assert quickstart.TINY_JUDGE_NOTE in out
    assert "Is smollm2-detailed better than smollm2-terse?" in out
    assert "smollm2-detailed - smollm2-terse: " in out and len(board) == 4  # the board once, then the comparison
    report = project / "report.html"
    assert f"report: {report}" in out and report.stat().st_size > 1000
    assert f"browse --setting-file {project / 'config' / 'judge_config.yaml'}" in out
    for stage in ("quickstart: serving venv: ", "quickstart: model: ", "starting the server of",
                  "quickstart: answers: 24 new in", "quickstart: judgments: 18 new in", "quickstart: verdicts: 36/36 games",
                  "quickstart: done in"):
        assert stage in err, stage
    assert [line.split()[0] for line in err.splitlines() if line.startswith(("starting", "stopped"))] == ["starting", "stopped"]
    # whether the verdicts follow the answers or their positions: counted over the 18 pairs of games
    assert re.search(r"verdicts: 36/36 games[^;\n]*; the same winner with the answers swapped in \d+/18 judgments", err)
    assert len(started(stand_in["pids"])) == 2 and not any(alive(p) for p in started(stand_in["pids"]))
    # the candidates really differ: one model under three system prompts, all on one server block
    api = yaml.safe_load((project / "config" / "api_config.yaml").read_text())
    assert len({yaml.safe_dump(e["server"]) for e in api.values()}) == 1
    assert len({api[c]["system_prompt"] for c in quickstart.CANDIDATES}) == 3
    assert api[quickstart.JUDGE]["server"]["command"] == [sys.executable, "-m", serving_venv.SERVER_MODULE]
    judge_config = yaml.safe_load((project / "config" / "judge_config.yaml").read_text())
    assert judge_config["structured_verdicts"] is True
    # the one server's start-up is on record: a line of its own, as the steps found it answering
    runs = [json.loads(line) for line in (project / "data" / "quickstart" / "runs.jsonl").read_text().splitlines()]
    assert [r["command"] for r in runs] == ["gen_answer", "gen_judgment", "run_eval"]
    [server] = runs[-1]["servers"]
    assert runs[-1]["shared_server"] and runs[-1]["status"] == "ok" and server["model"] == quickstart.JUDGE
    assert 0 < server["startup_seconds"] <= server["held_seconds"] and not any("servers" in r for r in runs[:2])

    before = time.monotonic()
    assert cli_main.main(args) == 0
    out2, err2 = capsys.readouterr()
    assert time.monotonic() - before < 60
    assert "quickstart: answers: all reused" in err2 and "quickstart: judgments: all reused" in err2
    assert "starting the server" not in err2 and len(started(stand_in["pids"])) == 2  # no server this time
    assert [line for line in out2.splitlines() if "| score:" in line] == board


def test_a_model_folder_that_is_not_one_is_a_one_line_error(stand_in, capsys):
    code = cli_main.main(["quickstart", "--serving-python", sys.executable, "--model", str(stand_in["root"])])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: --model ") and "no config.json" in err[-1]
    assert not any(line.startswith("Traceback") for line in err)


def test_a_serving_python_without_vllm_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # no vllm here
    code = cli_main.main(["quickstart", "--serving-python", sys.executable])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: --serving-python: ") and "has no vLLM" in err[-1]


def test_ctrl_c_leaves_no_server_and_a_rerun_finishes_the_job(stand_in):
    env = {**os.environ, "FAKE_VLLM_DELAY": "0.3"}
    args = [sys.executable, "-m", "arenajudge.cli.main", "quickstart", "--serving-python", sys.executable,
            "--port", str(stand_in["port"]), "--questions", "6"]
    proc = subprocess.Popen(args, cwd=stand_in["root"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    answers = stand_in["root"] / "arenajudge-quickstart" / "data" / "quickstart" / "model_answer"
    deadline = time.time() + 60
    while time.time() < deadline and not (answers.is_dir() and any(p.stat().st_size for p in answers.glob("*.jsonl"))):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "stopped the server" in err
    assert started(stand_in["pids"]) and not any(alive(p) for p in started(stand_in["pids"]))
    done = subprocess.run(args, cwd=stand_in["root"], env={**os.environ, "FAKE_VLLM_DELAY": "0.01"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "quickstart: verdicts: 36/36 games" in done.stderr
    assert not any(alive(p) for p in started(stand_in["pids"]))
