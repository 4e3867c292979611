"""Config keys: a misspelt key is refused with the nearest known one, an entry without an address is
refused where a run would send to it, and show_result.py finds the bench the judge config names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import SHARED
from conftest import fake_vllm_entry as managed
from conftest import fake_vllm_pids as pids

from arenajudge.cli import run_eval, show_result
from arenajudge.cli.main import main as arenajudge_main
from arenajudge.config.models import load_answer_config, load_api_config, load_judge_config, load_pipeline_section
from arenajudge.core.errors import UserError, run_cli
from arenajudge.endpoints.client import ModelClient
from arenajudge_testkit.fake_openai import FakeServer, Script
from arenajudge_testkit.gen_project import Project, answer, entry, judge

HOSTED = {"model_name": "gpt-4-1106-preview", "endpoints": None, "api_type": "openai", "parallel": 8}
NO_ADDRESS = ("config/api_config.yaml: model 'gpt-4-1106-preview' has no api_base and no server block: write the "
              "hosted API's address (e.g. api_base: https://api.openai.com/v1) to send to it")


class CountingServer(FakeServer):
    """The stand-in, counting every request that reaches it (GET /models too, which it does not record)."""

    def __init__(self, script: Script | None = None) -> None:
        super().__init__(script)
        self.requests = 0

    async def _handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Any:
        self.requests += 1
        return await super()._handle(method, path, headers, raw)


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FAKE_VLLM_PIDFILE", str(tmp_path / "pids"))  # managed stand-in servers write their pids
    return Project(tmp_path)


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0].removeprefix("error: ")


def _edit(file: Path, changes: dict[str, Any]) -> None:
    data = yaml.safe_load(file.read_text())
    data.update(changes)
    file.write_text(yaml.safe_dump(data))


# ---------------------------------------------------------------- unknown keys

def _judging_project(project: Project, server: FakeServer) -> None:
    qs = project.simple_questions(2)
    for model in ("m1", "base"):
        project.write_answers(model, qs)
    project.write_api({"judge": entry(server.base_url, "j"), "cand": entry(server.base_url, "c")})
    project.write_judge_config(["m1"])
    project.write_answer_config(["cand"])


@pytest.mark.parametrize(("file", "change", "expected"), [
    ("gen_answer_config.yaml", {"temprature": 0.7},
     "config/gen_answer_config.yaml: key 'temprature': unknown key (did you mean 'temperature'?)"),
    ("api_config.yaml", {"cand": {"model_name": "c", "paralel": 32, "endpoints": [{"api_base": "URL"}]}},
     "config/api_config.yaml: key 'cand.paralel': unknown key (did you mean 'parallel'?)"),
    ("api_config.yaml", {"cand": {"model_name": "c", "endpoints": [{"api_base": "URL"}, {"api_bse": "URL"}]}},
     "config/api_config.yaml: key 'cand.endpoints[1].api_bse': unknown key (did you mean 'api_base'?)"),
    ("gen_answer_config.yaml", {"path": "elsewhere"},  # filled by the loader, not the file's to say
     "config/gen_answer_config.yaml: key 'path': unknown key"),
    ("gen_answer_config.yaml", {"pipeline": {"modles": ["cand"]}},
     "config/gen_answer_config.yaml: key 'pipeline.modles': unknown key (did you mean 'models'?)"),
])
def test_a_misspelt_answer_or_api_key_is_one_line_and_nothing_is_sent(project, capsys, file, change, expected):
    with CountingServer() as server:
        _judging_project(project, server)
        change = yaml.safe_load(yaml.safe_dump(change).replace("URL", server.base_url))
        _edit(project.root / "config" / file, change)
        assert answer() == 2
        assert server.requests == 0
    assert one_line(capsys) == expected
    assert not (project.bench_dir / "model_answer" / "cand.jsonl").exists()


@pytest.mark.parametrize(("change", "expected"), [
    ({"temprature": 0.7}, "key 'temprature': unknown key (did you mean 'temperature'?)"),
    ({"structured_verdict": True}, "key 'structured_verdict': unknown key (did you mean 'structured_verdicts'?)"),
    ({"structured_verdicts": "yes"}, "key 'structured_verdicts': expected true/false, got 'yes'"),
    ({"pipeline": {"models": ["m1"], "ray": {"adress": "ray://head:10001"}}},
     "key 'pipeline.ray.adress': unknown key (did you mean 'address'?)"),
    ({"pipeline": {"ray": {"replicas": {"m1": 0}}}}, "key 'pipeline.ray.replicas.m1': expected a positive integer, got 0"),
    ({"zzz": 1}, "key 'zzz': unknown key"),  # nothing close: no hint
])
def test_a_misspelt_judge_key_is_one_line_and_nothing_is_sent(project, capsys, change, expected):
    with CountingServer() as server:
        _judging_project(project, server)
        _edit(project.root / "config" / "judge_config.yaml", change)
        assert judge() == 2
        assert server.requests == 0
    assert one_line(capsys) == f"config/judge_config.yaml: {expected}"
    assert not (project.bench_dir / "model_judgment").exists()


def test_reserved_keys_are_known_and_change_nothing(project, capsys):
    """Keys that later issues use are accepted now: structured_verdicts and the pipeline's ray section."""
    with CountingServer() as server:
        _judging_project(project, server)
        _edit(project.root / "config" / "judge_config.yaml", {
            "structured_verdicts": False, "name": "my judge config",
            "pipeline": {"models": ["m1"], "ray": {"address": "ray://head:10001", "replicas": {"m1": 2, "base": 1}}}})
        assert judge() == 0
        assert len(server.chat_requests()) == 4  # 2 questions x 2 games
    config = load_judge_config(Path("config/judge_config.yaml"))
    assert config.structured_verdicts is False and config.pipeline is not None
    assert config.pipeline.ray is not None and config.pipeline.ray.replicas == {"m1": 2, "base": 1}
    _edit(project.root / "config" / "judge_config.yaml", {"pipeline": {"ray": {"replicas": 4}}})
    assert load_pipeline_section(Path("config/judge_config.yaml")).ray.replicas == 4  # type: ignore[union-attr]


def test_a_misspelt_server_block_key_starts_no_server(project, capsys):
    project.simple_questions(1)
    project.write_api({"cand": managed(8123, tensor_paralel_size=2)})
    project.write_answer_config(["cand"])
    assert answer() == 2
    assert one_line(capsys) == ("config/api_config.yaml: key 'cand.server.tensor_paralel_size': unknown key "
                                "(did you mean 'tensor_parallel_size'?)")
    assert pids(project) == []


def test_a_misspelt_mt_bench_key_is_refused(project, capsys):
    project.bench = "mt_bench"
    project.write_questions([{"question_id": 1, "category": "writing", "turns": ["Write.", "Shorter."]}])
    project.write_answers("m1", [{"question_id": 1}])
    with CountingServer() as server:
        project.write_api({"judge": entry(server.base_url, "j"), "cand": entry(server.base_url, "c")})
        config = yaml.safe_load((Path(__file__).parent.parent / "config" / "mt_bench_judge_config.yaml").read_text())
        config.update(judge_model="judge", model_list=["m1"], reference_categoris=["math"])
        (project.root / "config" / "mt_bench_judge_config.yaml").write_text(yaml.safe_dump(config))
        assert judge("--setting-file", "config/mt_bench_judge_config.yaml") == 2
        assert one_line(capsys) == ("config/mt_bench_judge_config.yaml: key 'reference_categoris': unknown key "
                                    "(did you mean 'reference_categories'?)")
        answers = yaml.safe_load((Path(__file__).parent.parent / "config" / "mt_bench_answer_config.yaml").read_text())
        answers.update(model_list=["cand"], category_temperatur={"writing": 0.7})
        (project.root / "config" / "mt_bench_answer_config.yaml").write_text(yaml.safe_dump(answers))
        assert answer("--setting-file", "config/mt_bench_answer_config.yaml") == 2
        assert one_line(capsys) == ("config/mt_bench_answer_config.yaml: key 'category_temperatur': unknown key "
                                    "(did you mean 'category_temperature'?)")
        assert server.requests == 0


def _pipeline_project(project: Project, server: FakeServer) -> None:
    project.simple_questions(2)
    project.write_api({m: entry(server.base_url, m) for m in ("cand", "base", "judge")})
    project.write_judge_config(["cand"])
    project.write_answer_config(["cand"])


@pytest.mark.parametrize(("file", "change", "expected"), [
    ("judge_config.yaml", {"pipeline": {"modles": ["cand"]}},
     "config/judge_config.yaml: key 'pipeline.modles': unknown key (did you mean 'models'?)"),
    ("judge_config.yaml", {"pipeline": {"ray": {"replica": 2}}},
     "config/judge_config.yaml: key 'pipeline.ray.replica': unknown key (did you mean 'replicas'?)"),
    ("judge_config.yaml", {"temprature": 0.7},
     "config/judge_config.yaml: key 'temprature': unknown key (did you mean 'temperature'?)"),
    # the user's answer config is named, not the one run_eval derives from it
    ("gen_answer_config.yaml", {"temprature": 0.7},
     "config/gen_answer_config.yaml: key 'temprature': unknown key (did you mean 'temperature'?)"),
    ("pipeline.yaml", {"pipline": {"models": ["cand"]}},
     "config/pipeline.yaml: key 'pipline': unknown key (did you mean 'pipeline'?)"),
])
def test_a_misspelt_pipeline_key_stops_run_eval_before_any_step(project, capsys, file, change, expected):
    with CountingServer() as server:
        _pipeline_project(project, server)
        (project.root / "config" / "pipeline.yaml").write_text("pipeline: {models: [cand]}\n")
        _edit(project.root / "config" / file, change)
        assert run_cli(run_eval.main, ["--quiet", "--pipeline-file", "config/pipeline.yaml"]) == 2
        assert server.requests == 0
    assert one_line(capsys) == expected
    assert not (project.bench_dir / "model_answer").exists() and not (project.bench_dir / "pipeline").exists()


def test_arena_hard_local_configs_load_unchanged():
    reference = SHARED / "reference"
    if not reference.is_dir():
        pytest.skip("../shared/reference is not present here")
    entries = load_api_config(reference / "arena-hard-local-api_config.yaml")
    assert len(entries) == 15 and entries["gpt-4-0314"].endpoints[0].api_base is None  # loads; refused only at use
    assert entries["aya-23-8B"].endpoints[0].api_base == "http://localhost:8010/v1" and entries["aya-23-8B"].parallel == 16
    answers = load_answer_config(reference / "arena-hard-local-gen_answer_config.yaml")
    assert answers.model_list == ["Llama-3-Instruct-8B-SimPO"] and answers.max_tokens == 1520
    config = load_judge_config(reference / "arena-hard-local-judge_config.yaml")
    assert config.judge_model == "Qwen2-72B-Instruct-AWQ" and len(config.model_list) == 10
    assert config.baseline_model == "Phi-3-medium-128k-instruct" and not config.structured_verdicts


# ---------------------------------------------------------------- no silent third-party endpoint

@pytest.fixture
def hosted_fallback(monkeypatch):
    """Where the openai client would send an entry without api_base: the stand-in, with a key to leak."""
    with CountingServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-must-not-show")
        yield server


def test_an_entry_without_address_loads_and_shows_but_is_never_sent_to(project, capsys, hosted_fallback):
    qs = project.simple_questions(2)
    for model in ("m1", "base"):
        project.write_answers(model, qs)
    project.write_api({"gpt-4-1106-preview": HOSTED, "base": HOSTED, "m1": HOSTED})
    project.write_judge_config(["m1"], judge="gpt-4-1106-preview")
    project.write_answer_config(["m1"])
    assert load_api_config(Path("config/api_config.yaml"))["gpt-4-1106-preview"].endpoints[0].api_base is None

    assert answer() == 2
    assert one_line(capsys) == NO_ADDRESS.replace("'gpt-4-1106-preview'", "'m1'")
    assert judge() == 2
    assert one_line(capsys) == NO_ADDRESS
    assert run_cli(run_eval.main, ["--quiet"]) == 2
    assert one_line(capsys) == NO_ADDRESS.replace("'gpt-4-1106-preview'", "'m1'")  # candidates are checked first
    assert hosted_fallback.requests == 0
    assert not (project.bench_dir / "model_judgment").exists()

    # reading what is on disk needs no address
    judgment = project.bench_dir / "model_judgment" / "gpt-4-1106-preview" / "m1.jsonl"
    judgment.parent.mkdir(parents=True)
    games = [{"score": "A=B"}, {"score": "B>A"}]
    judgment.write_text("".join(json.dumps({"question_id": q["question_id"], "model": "m1", "judge": "gpt-4-1106-preview",
                                            "games": games}) + "\n" for q in qs))
    assert run_cli(show_result.main, ["--num-rounds", "5"]) == 0
    out, err = capsys.readouterr()
    assert "m1" in out and "sk-must-not-show" not in out + err


def test_an_endpoint_without_address_among_others_is_refused(project, capsys, hosted_fallback):
    project.simple_questions(1)
    project.write_api({"cand": {"model_name": "c", "endpoints": [{"api_base": hosted_fallback.base_url},
                                                                  {"api_key": "sk-must-not-show"}]}})
    project.write_answer_config(["cand"])
    assert answer() == 2
    line = one_line(capsys)
    assert line.startswith("config/api_config.yaml: key 'cand.endpoints[1]': no api_base: write the hosted API's "
                           "address") and "sk-must-not-show" not in line
    assert hosted_fallback.requests == 0


def test_no_client_is_made_for_an_entry_without_address(tmp_path, hosted_fallback):
    path = tmp_path / "api.yaml"
    path.write_text(yaml.safe_dump({"gpt-4-1106-preview": HOSTED}))
    entry_without_address = load_api_config(path)["gpt-4-1106-preview"]
    with pytest.raises(UserError, match="has no api_base and no server block"):
        ModelClient(entry_without_address)


# ---------------------------------------------------------------- show_result's bench

def _judged_bench(project: Project) -> None:
    with FakeServer() as server:
        qs = project.simple_questions(3)
        for model in ("m1", "base"):
            project.write_answers(model, qs)
        project.write_api({"judge": entry(server.base_url, "j")})
        project.write_judge_config(["m1"])
        assert judge() == 0


def test_show_takes_the_bench_from_the_judge_config(project, capsys):
    project.bench = "arena-hard-v0.1-ru"
    _judged_bench(project)
    capsys.readouterr()
    for run in (lambda: run_cli(show_result.main, []), lambda: arenajudge_main(["show"])):
        assert run() == 0
        out = capsys.readouterr().out
        assert sorted(line.split()[0] for line in out.splitlines() if "| score:" in line) == ["base", "m1"]


def test_a_missing_bench_is_named_with_the_benches_there(project, capsys):
    project.bench = "arena-hard-v0.1-ru"
    _judged_bench(project)
    (project.root / "data" / "mt_bench").mkdir()
    (project.root / "data" / "mt_bench" / "question.jsonl").write_text("")
    (project.root / "data" / "not-a-bench").mkdir()
    capsys.readouterr()
    assert run_cli(show_result.main, ["--bench-name", "arena-hard-v9"]) == 2
    assert one_line(capsys) == "data/arena-hard-v9: no such bench (benches here: arena-hard-v0.1-ru, mt_bench)"
    # neither the flag nor the config names a bench: the documented default
    (project.root / "config" / "judge_config.yaml").unlink()
    assert run_cli(show_result.main, ["--judge-name", "judge", "--baseline", "base"]) == 2
    assert one_line(capsys) == "data/arena-hard-v0.1: no such bench (benches here: arena-hard-v0.1-ru, mt_bench)"
