"""Structured verdicts (judge config `structured_verdicts: true`): a game without a readable label gets one
constrained turn whose request carries vLLM's `structured_outputs.choice`; games record `constrained`."""

from __future__ import annotations

import re

import pytest

from arenajudge.core.verdicts import LABELS, verdict_choices
from arenajudge_testkit.fake_openai import FakeServer, Script
from arenajudge_testkit.gen_project import Project, entry, judge


def _setup(project: Project, server: FakeServer, n: int = 4, **judge_settings) -> list[dict]:
    qs = project.simple_questions(n)
    for m in ("m1", "base"):
        project.write_answers(m, qs)
    project.write_api({"judge": entry(server.base_url, "the-judge", parallel=8)})
    project.write_judge_config(["m1"], **judge_settings)
    return qs


def test_a_judge_without_labels_gets_constrained_labels(project):
    # this judge never writes a label in its free text (as SmolLM2 mostly does not)
    with FakeServer(Script(verdict=lambda prompt: None)) as server:
        _setup(project, server, structured_verdicts=True)
        assert judge() == 0
        bodies = [r.body for r in server.chat_requests()]
    records = project.records("model_judgment/judge/m1.jsonl")
    games = [g for r in records for g in r["games"]]
    assert len(games) == 8
    assert all(g["constrained"] is True and g["score"] in LABELS for g in games)
    assert all(g["asks"] == 2 for g in games)  # a free reply, then the constrained turn; no free follow-ups
    constrained = [b for b in bodies if "structured_outputs" in b]
    assert len(constrained) == 8 and len(bodies) == 16
    assert all(b["structured_outputs"] == {"choice": [f"[[{label}]]" for label in LABELS]} for b in constrained)
    assert all(b["max_tokens"] <= 16 and b["messages"][-2]["role"] == "assistant" for b in constrained)
    assert not any("guided_choice" in b for b in bodies)  # vLLM 0.32 ignores the old field silently


def test_a_judge_that_writes_its_label_is_not_constrained(project):
    with FakeServer() as server:  # the stand-in ends every free reply with a label
        _setup(project, server, structured_verdicts=True)
        assert judge() == 0
        bodies = [r.body for r in server.chat_requests()]
    games = [g for r in project.records("model_judgment/judge/m1.jsonl") for g in r["games"]]
    assert all(g["constrained"] is False and g["score"] in LABELS for g in games)
    assert not any("structured_outputs" in b for b in bodies) and len(bodies) == 8


def test_off_by_default_free_follow_ups_and_no_field(project):
    with FakeServer(Script(verdict=lambda prompt: None)) as server:
        _setup(project, server)
        assert judge() == 0
        bodies = [r.body for r in server.chat_requests()]
    games = [g for r in project.records("model_judgment/judge/m1.jsonl") for g in r["games"]]
    assert all(g["score"] is None and "constrained" not in g and g["asks"] == 3 for g in games)
    assert not any("structured_outputs" in b for b in bodies)


def test_switching_it_archives_the_judgments_and_back_again_finds_them(project, capsys):
    with FakeServer() as server:
        _setup(project, server, n=3)
        assert judge() == 0
        project.write_judge_config(["m1"], structured_verdicts=True)
        assert judge() == 0
        assert len(server.chat_requests()) == 3 * 2 * 2  # every judgment made again
        assert len(project.records("replaced_judgments/judge/m1.jsonl")) == 3
        capsys.readouterr()
        project.write_judge_config(["m1"], structured_verdicts=False)
        assert judge() == 0
        assert len(server.chat_requests()) == 12  # turned off again: the first judgments come back from the archive
    assert "3 restored from" in capsys.readouterr().err
    records = project.records("model_judgment/judge/m1.jsonl")
    assert len(records) == 3 and all("constrained" not in g for r in records for g in r["games"])


@pytest.mark.parametrize(("settings", "message"), [
    ({"structured_verdicts": True, "regex_pattern": r"Verdict: (\w+)"},
     "key 'structured_verdicts': regex_pattern reads none of the label forms"),
    ({"structured_verdicts": True, "mode": "single"},
     "key 'structured_verdicts': covers arena-hard judging only, not mode 'single'"),
])
def test_where_it_cannot_work_it_is_refused_in_one_line(project, capsys, settings, message):
    with FakeServer() as server:
        _setup(project, server, **settings)
        code = judge()
        assert server.chat_requests() == []
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_choices_follow_the_regex_pattern():
    assert verdict_choices(re.compile(r"\[(\[?[AB<>=ab]+\]?)\]")) == [f"[[{label}]]" for label in LABELS]
    assert verdict_choices(re.compile(r"verdict: ([AB<>=]+)")) is None
    assert verdict_choices(re.compile(r"([AB]{1}[<>=]{1,2}[AB]{1})")) == [f"[[{label}]]" for label in LABELS]
