"""Managed servers on a Ray cluster: a two-node cluster on this machine (ray.cluster_utils.Cluster: a head and a
worker, two logical GPUs each), the stand-in vLLM server started through `server.command` by Ray actors.

One cluster for the module (it costs several seconds to start); a test that removes the worker adds one back.
Never `ray stop` here: it would end every Ray process on the host. Skipped when Ray is not installed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, alive, free_port, live_processes, vllm_server_block

from arenajudge.cli import gen_judgment, run_eval
from arenajudge.core.errors import run_cli
from arenajudge_testkit.gen_project import Project

FAKE = [sys.executable, "-m", "arenajudge_testkit.fake_vllm"]
GPUS_PER_NODE = 2


def _ray_or_skip():
    return pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")


def wait_until(condition, seconds: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


@pytest.fixture(scope="module")
def cluster():
    _ray_or_skip()
    from ray.cluster_utils import Cluster

    # the raylets start the actors' workers with this environment: the worktree first on the path
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    made = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "num_gpus": GPUS_PER_NODE})
    made.add_node(num_cpus=2, num_gpus=GPUS_PER_NODE)
    made.wait_for_nodes()
    yield made
    import ray

    ray.shutdown()
    made.shutdown()


def worker_node(cluster):
    return next(node for node in cluster.list_all_nodes() if node is not cluster.head_node)


def restore_worker(cluster) -> None:
    """Put a worker node back after a test removed it (the next test wants two nodes)."""
    if len(cluster.list_all_nodes()) < 2:
        cluster.add_node(num_cpus=2, num_gpus=GPUS_PER_NODE)
        cluster.wait_for_nodes()


def managed(name: str, pidfile: Path, parallel: int = 4, **server: object) -> dict:
    return {"model_name": name, "endpoints": [{"api_base": "http://127.0.0.1:8000/v1"}], "parallel": parallel,
            "server": {"model": f"/ckpt/{name}", "command": FAKE, "startup_timeout": 60,
                       "env": {"FAKE_VLLM_PIDFILE": str(pidfile), **server.pop("env", {})}, **server}}


def judging_project(root: Path, questions: int, delay: float = 0.0, **server: object) -> Project:
    project = Project(root)
    qs = project.simple_questions(questions)
    for model in ("cand", "base"):
        project.write_answers(model, qs)
    env = {"FAKE_VLLM_DELAY": str(delay)} if delay else {}
    project.write_api({"judge": managed("judge-model", root / "pids", env=env, **server)})
    project.write_judge_config(["cand"])
    return project


def server_pids(project: Project) -> list[int]:
    path = project.root / "pids"
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def judgments(project: Project) -> list[str]:
    path = project.bench_dir / "model_judgment" / "judge" / "cand.jsonl"
    return [json.loads(line)["question_id"] for line in path.read_text().splitlines()] if path.exists() else []


def start_judging(project: Project, address: str, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(ROOT / "gen_judgment.py"), "--quiet", "--ray", address, *extra],
                            cwd=project.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def no_server_left(project: Project) -> bool:
    return not any(alive(pid) for pid in server_pids(project))


# ---------------------------------------------------------------- without a cluster

def test_ray_flags_are_checked_in_one_line(project, capsys, monkeypatch):
    judging_project(project.root, 2)
    assert run_cli(gen_judgment.main, ["--quiet", "--ray-replicas", "two", "--ray", "auto"]) == 2
    assert capsys.readouterr().err.strip() == "error: --ray-replicas: expected N or MODEL=N[,MODEL=N], got 'two'"
    assert run_cli(gen_judgment.main, ["--quiet", "--ray-replicas", "2"]) == 2
    assert capsys.readouterr().err.strip() == "error: --ray-replicas needs --ray ADDRESS"
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed: `import ray` fails
    assert run_cli(gen_judgment.main, ["--quiet", "--ray", "auto"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: --ray needs Ray: pip install -e '.[ray]'"), err
    assert not judgments(project)


def test_the_pipeline_ray_section_becomes_the_steps_ray_settings(project):
    project.simple_questions(1)
    project.write_judge_config(["c"], judge="j", pipeline={"ray": {"address": "10.0.0.5:6379", "replicas": {"j": 3}}})
    project.write_api({m: {"model_name": m, "endpoints": [{"api_base": "http://h:1/v1"}]} for m in ("j", "base", "c")})
    args = run_eval.build_parser().parse_args([])
    settings = run_eval.Plan(args).ray_settings()
    assert settings is not None and settings.address == "10.0.0.5:6379"
    assert settings.replicas_for("j") == 3 and settings.replicas_for("c") == 1
    args.ray = "auto"  # the flag wins
    flagged = run_eval.Plan(args).ray_settings()
    assert flagged is not None and flagged.address == "auto" and flagged.replicas_for("j") == 3


# ---------------------------------------------------------------- on the two-node cluster

def test_judging_through_ray_placed_replicas_completes_and_leaves_nothing(cluster, project, capsys):
    judging_project(project.root, 12, tensor_parallel_size=2, gpus="0,1")
    node_files = set(Path(tempfile.gettempdir()).glob("arenajudge-server-*"))  # each replica's log and pids on its node
    assert run_cli(gen_judgment.main, ["--quiet", "--ray", cluster.address, "--ray-replicas", "2"]) == 0
    err = capsys.readouterr().err
    assert sorted(judgments(project)) == [f"q{i:03d}" for i in range(12)]
    [run] = project.records("runs.jsonl")
    replicas = run["servers"]
    assert [r["replica"] for r in replicas] == [1, 2] and all(r["model"] == "judge" for r in replicas)
    assert len({r["ray_node"] for r in replicas}) == 2  # spread: one per node
    assert all(len(r["gpus"].split(",")) == 2 for r in replicas)  # tensor parallel 2: two GPUs each, chosen by Ray
    for r in replicas:
        log = Path(r["log"]).read_text()
        assert (project.root / r["log"]).parent == project.bench_dir / "server_logs"
        assert "fake vllm: model /ckpt/judge-model as judge-model" in log and "on node" in log
    assert err.count("answers at http://") == 2 and err.count("stopped replica") == 2
    assert wait_until(lambda: no_server_left(project), 10) and len(server_pids(project)) == 4  # 2 servers, 2 workers
    assert set(Path(tempfile.gettempdir()).glob("arenajudge-server-*")) == node_files  # removed once copied


def test_the_endpoint_key_reaches_each_replica_and_no_file(cluster, project, capsys, monkeypatch):
    """The server gets the key as VLLM_API_KEY (it refuses requests without it); logs brought back hide it."""
    secret = "sk-ray-test-0123456789"
    monkeypatch.setenv("RAY_TEST_KEY", secret)
    judging_project(project.root, 4)
    api = project.root / "config" / "api_config.yaml"
    entries = yaml.safe_load(api.read_text())
    entries["judge"]["endpoints"][0]["api_key"] = "${RAY_TEST_KEY}"  # as users write it: the key stays out of the file
    entries["judge"]["server"]["env"]["FAKE_VLLM_LEAK_KEY"] = "1"  # a server that prints the key it got
    api.write_text(yaml.safe_dump(entries))
    assert run_cli(gen_judgment.main, ["--quiet", "--ray", cluster.address, "--ray-replicas", "2"]) == 0
    err = capsys.readouterr().err
    assert sorted(judgments(project)) == [f"q{i:03d}" for i in range(4)]
    logs = sorted((project.bench_dir / "server_logs").glob("judge.replica*.log"))
    assert len(logs) == 2
    for log in logs:
        text = log.read_text()
        assert "api key set" in text and "debug: api key is ***" in text
    leaks = [f for f in project.root.rglob("*") if f.is_file() and secret in f.read_text(errors="replace")]
    assert not leaks and secret not in err
    assert wait_until(lambda: no_server_left(project), 10)


def test_a_model_too_big_for_one_node_is_a_one_line_error(cluster, project, capsys):
    judging_project(project.root, 2, tensor_parallel_size=2, pipeline_parallel_size=2)
    assert run_cli(gen_judgment.main, ["--quiet", "--ray", cluster.address]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: config/api_config.yaml: key 'judge.server': tensor x pipeline parallel needs 4 GPUs"
                              " on one node; the largest node of the Ray cluster has 2"), err
    assert "docs/cluster.md" in err[-1] and server_pids(project) == []


def test_a_node_lost_mid_run_completes_every_judgment_once(cluster, project):
    judging_project(project.root, 60, delay=0.1, parallel=2)
    proc = start_judging(project, cluster.address, "--ray-replicas", "2")
    try:
        assert wait_until(lambda: len(judgments(project)) >= 5, 60), proc.stderr
        removed = worker_node(cluster).node_id
        cluster.remove_node(worker_node(cluster))
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        restore_worker(cluster)
    assert proc.returncode == 0, err
    done = judgments(project)
    assert len(done) == 60 and sorted(set(done)) == [f"q{i:03d}" for i in range(60)]  # all, none twice
    assert "warning: model 'judge': endpoint http://" in err and "Ray replica" in err and "of 'judge' on node" in err
    assert f"({removed[:8]})" in err  # which node: on one host every node has the same address
    [run] = project.records("runs.jsonl")
    lost = [r for r in run["servers"] if "lost" in r]
    assert len(lost) == 1 and run["dead_endpoints"][0]["model"] == "judge"
    assert wait_until(lambda: no_server_left(project), 20)


def test_ctrl_c_stops_every_replica_and_the_rerun_resumes(cluster, project):
    judging_project(project.root, 80, delay=0.1, parallel=1)
    proc = start_judging(project, cluster.address, "--ray-replicas", "2")
    assert wait_until(lambda: len(judgments(project)) >= 3, 60)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, err
    assert err.count("stopped replica") == 2 and "rerun to resume" in err
    assert len(server_pids(project)) == 4 and wait_until(lambda: no_server_left(project), 10)
    before = judgments(project)
    assert 3 <= len(before) < 80
    assert run_cli(gen_judgment.main, ["--quiet", "--ray", cluster.address, "--ray-replicas", "2"]) == 0
    after = judgments(project)
    assert len(after) == 80 and sorted(set(after)) == [f"q{i:03d}" for i in range(80)]


def test_kill_9_of_the_driver_leaves_no_server(cluster, project):
    judging_project(project.root, 200, delay=0.1, parallel=1)
    proc = start_judging(project, cluster.address, "--ray-replicas", "2")
    assert wait_until(lambda: len(judgments(project)) >= 2, 60)
    started = server_pids(project)
    assert len(started) == 4 and all(alive(pid) for pid in started)
    proc.kill()
    proc.wait()
    # Ray ends a dead driver's actors; each server's guard then ends the server's process group
    assert wait_until(lambda: no_server_left(project), 60), [p for p in started if alive(p)]


def test_run_eval_with_a_pipeline_ray_section_answers_and_judges_on_the_cluster(cluster, project, capsys):
    qs = project.simple_questions(6)
    pids = project.root / "pids"
    project.write_api({"cand": managed("cand-model", pids), "base": managed("base-model", pids),
                       "judge": managed("judge-model", pids)})
    project.write_answer_config(["cand"])
    project.write_judge_config(["cand"], pipeline={"ray": {"address": cluster.address, "replicas": {"judge": 2}}})
    assert run_cli(run_eval.main, ["--quiet"]) == 0
    err = capsys.readouterr().err
    for model in ("cand", "base"):
        assert len(project.records(f"model_answer/{model}.jsonl")) == len(qs)
    assert sorted(judgments(project)) == sorted(q["question_id"] for q in qs)
    runs = project.records("runs.jsonl")
    placed = {(s["model"], s["replica"]) for run in runs for s in run.get("servers", [])}
    assert placed == {("cand", 1), ("base", 1), ("judge", 1), ("judge", 2)}
    assert "starting replica 2/2 of 'judge'" in err
    assert wait_until(lambda: no_server_left(project), 10) and len(server_pids(project)) == 8


def test_the_replica_watcher_keeps_live_clients_only(project):
    """until_decided makes a judge client per batch: the watcher forgets each once it is closed."""
    import asyncio

    from arenajudge.config.models import load_api_config
    from arenajudge.endpoints.client import ModelClient
    from arenajudge.endpoints.ray_servers import RaySettings
    from arenajudge.endpoints.servers import ServerSession
    from arenajudge_testkit.gen_project import entry

    project.write_api({"judge": entry("http://127.0.0.1:9/v1", "j")})
    judge = load_api_config(project.root / "config" / "api_config.yaml")["judge"].with_secrets()
    session = ServerSession(project.root / "logs", ray=RaySettings("auto"))  # no cluster is joined for this
    first = session.watch(ModelClient(judge))
    asyncio.run(first.close())
    second = session.watch(ModelClient(judge))
    third = session.watch(ModelClient(judge))
    assert session.ray is not None and session.ray.clients == [second, third]


# ---------------------------------------------------------------- a real vLLM (CPU build) as a Ray actor

@pytest.mark.vllm
def test_a_real_vllm_server_runs_as_a_ray_actor_and_leaves_nothing(cluster, smol, project):
    """vLLM's own OpenAI server (SmolLM2) placed by Ray: real answers stored, its log brought back, its
    placement on record, and every process of it gone once gen_answer.py ends."""
    questions = project.simple_questions(3)
    name = "smol-on-ray"  # in every process of this server's command line (the shared test server has another)
    port = free_port()  # what the block says; under Ray the actor takes a free port on its node
    block = vllm_server_block(smol, project.root, port, 1024, dtype="float32")
    project.write_api({name: {"model_name": name, "endpoints": [{"api_base": f"http://127.0.0.1:{port}/v1"}],
                              "parallel": 4, "server": block}})
    project.write_answer_config([name], max_tokens=24)
    proc = subprocess.Popen([sys.executable, str(ROOT / "gen_answer.py"), "--quiet", "--ray", cluster.address],
                            cwd=project.root, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    groups: set[int] = set()  # the server's process groups, seen while it runs (the engine core's name is vLLM's)
    while proc.poll() is None:
        groups |= {p.group for p in live_processes() if name in p.args}
        time.sleep(0.5)
    err = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 0, err[-3000:]
    answers = project.records(f"model_answer/{name}.jsonl")
    assert sorted(a["question_id"] for a in answers) == sorted(q["question_id"] for q in questions)
    assert all(a["choices"][0]["turns"][0]["content"].strip() for a in answers)  # the model's words, not errors
    [run] = project.records("runs.jsonl")
    [server] = run["servers"]
    assert server["model"] == name and server["replica"] == 1 and server["ray_node"] and not server.get("lost")
    log = (project.bench_dir / "server_logs" / f"{name}.replica1.log").read_text()
    assert "/v1/chat/completions" in log  # vLLM's access log, brought back from the actor's node
    assert groups, "the server's processes were never seen"
    left = lambda: [p for p in live_processes() if p.group in groups]  # noqa: E731
    assert wait_until(lambda: not left(), 40), [" ".join(p.args)[:120] for p in left()]


# ---------------------------------------------------------------- `--ray auto` with no cluster: a Ray of our own

def _marked(pid: int) -> list[int]:
    """Live processes of the Ray that the command with this pid started (they carry its mark in their environment)."""
    from arenajudge.endpoints.ray_servers import OWN_RAY_MARK

    mark = f"{OWN_RAY_MARK}={pid}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and alive(int(proc.name)):
            try:
                if mark in (proc / "environ").read_bytes().split(b"\0"):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def test_a_ray_started_for_the_run_ends_with_it_even_on_kill_9(project):
    """`--ray auto` without $RAY_ADDRESS starts a one-node Ray; after a kill -9 of the command nothing of that Ray
    (whose dashboard and runtime-env agents `ray.init()` left behind) nor of the server is left, and a rerun
    resumes and ends as cleanly."""
    _ray_or_skip()
    judging_project(project.root, 60, delay=0.1, parallel=1)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, str(ROOT / "gen_judgment.py"), "--quiet", "--ray", "auto"]
    proc = subprocess.Popen(command, cwd=project.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert wait_until(lambda: len(judgments(project)) >= 2, 120), proc.stderr
        ours = _marked(proc.pid)
        assert len(ours) >= 3  # the head's GCS, its raylet and more
    finally:
        proc.kill()
        proc.wait()
    assert wait_until(lambda: not _marked(proc.pid), 40), _marked(proc.pid)
    assert wait_until(lambda: no_server_left(project), 20)
    rerun = subprocess.Popen(command, cwd=project.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err[-2000:]
    assert sorted(judgments(project)) == [f"q{i:03d}" for i in range(60)]  # resumed: all, none twice
    assert wait_until(lambda: not _marked(rerun.pid) and no_server_left(project), 20), _marked(rerun.pid)
