"""overlap.py's pieces: reading answer files while they grow, and when a judge may run beside answer servers."""

from __future__ import annotations

import json
import os

from arenajudge.config.models import Endpoint, ModelEntry
from arenajudge.config.server_spec import ServerSpec
from arenajudge.judge.overlap import AnswerTail, judge_fits_beside, judge_shares_server


def _record(qid: str) -> str:
    return json.dumps({"question_id": qid, "choices": [{"index": 0, "turns": [{"content": qid}]}]}) + "\n"


def test_the_tail_reads_whole_lines_once_and_a_rewritten_file_anew(tmp_path):
    path = tmp_path / "a.jsonl"
    tail = AnswerTail(path)
    assert tail.read_new() == []  # not there yet
    path.write_text(_record("q1") + _record("q2")[:10])  # the second line is still being written
    assert [r["question_id"] for r in tail.read_new()] == ["q1"]
    with path.open("a") as f:
        f.write(_record("q2")[10:])
    assert [r["question_id"] for r in tail.read_new()] == ["q2"]
    assert tail.read_new() == []
    # the answer step's closing sort replaces the file: everything is read again (the reader keeps the latest)
    tmp = tmp_path / "a.jsonl.tmp"
    tmp.write_text(_record("q2") + _record("q1") + _record("q3"))
    os.replace(tmp, path)
    assert [r["question_id"] for r in tail.read_new()] == ["q2", "q1", "q3"]


def _entry(name: str, gpus: tuple[str, ...] | None, port: int) -> ModelEntry:
    spec = ServerSpec(model=name, served_model_name=name, host="127.0.0.1", port=port, gpus=gpus)
    return ModelEntry(name=name, model_name=name, endpoints=(Endpoint(f"http://127.0.0.1:{port}/v1", None),),
                      server=spec)


def test_a_judge_runs_beside_answer_servers_only_on_other_gpus_and_ports():
    a, b = _entry("a", ("0",), 8001), _entry("b", ("1",), 8002)
    assert judge_fits_beside(_entry("judge", ("2", "3"), 8010), [a, b])
    assert not judge_fits_beside(_entry("judge", ("1", "2"), 8010), [a, b])
    assert not judge_fits_beside(_entry("judge", None, 8010), [a])  # no GPU list: all GPUs
    assert not judge_fits_beside(_entry("judge", ("2",), 8001), [a])  # the same port
    assert not judge_fits_beside(a, [a, b])  # the judge is itself answering
    external = ModelEntry(name="judge", model_name="j", endpoints=(Endpoint("http://judge:8000/v1", None),))
    assert judge_fits_beside(external, [a, b])


def test_a_judge_shares_the_server_of_entries_with_its_very_server_block():
    judge = _entry("small", ("0",), 8001)  # the candidates and the judge: one model, one server block
    candidate = ModelEntry(name="terse", model_name="small", endpoints=judge.endpoints, server=judge.server,
                           system_prompt="Be brief.")
    assert judge_shares_server(judge, [candidate, judge])
    assert judge_shares_server(judge, [candidate, _entry("other", ("1",), 8002)])  # another server beside it
    assert not judge_shares_server(judge, [candidate, _entry("other", ("0",), 8002)])  # one that needs its GPU
    assert not judge_shares_server(judge, [_entry("other", ("1",), 8002)])  # nothing shared
    assert not judge_shares_server(_entry("small", ("0",), 8003), [candidate])  # another port: another server
