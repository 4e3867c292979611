"""MT-Bench with a local judge: scripted ratings and verdicts give exactly known tables."""

from __future__ import annotations

import argparse
import json
import re

import pandas as pd
import pytest

from arenajudge.cli import gen_answer, gen_judgment, show_mtbench
from arenajudge.core.errors import run_cli
from arenajudge.judge.mtbench import (
    FOLLOW_UP_PAIR,
    FOLLOW_UP_RATING,
    load_judge_prompts,
    parse_pair,
    parse_rating,
)
from arenajudge.judge.mtbench_protocol import MTBenchSingle
from arenajudge_testkit.fake_openai import FakeServer, Script
from arenajudge_testkit.gen_project import Project, entry

CATEGORIES = ["writing", "math", "coding", "humanities"]
MODELS = ["alpha", "beta"]
STRENGTH = {"alpha": 8, "beta": 5, "base": 6}
ANSWER = re.compile(r"answer of (\w+) to (\w+) turn (\d)")


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = Project(tmp_path, bench="mt_bench")
    questions = [{"question_id": 100 + i, "category": CATEGORIES[i % 4], "turns": [f"First ask {i}", f"Then ask {i}"]}
                 for i in range(8)]
    p.write_questions(questions)
    refs = p.bench_dir / "reference_answer" / "gpt-4.jsonl"
    refs.parent.mkdir(parents=True)
    refs.write_text("".join(json.dumps({"question_id": q["question_id"], "model_id": "gpt-4",
                                        "choices": [{"index": 0, "turns": [f"REF-{q['question_id']}-{t}" for t in (1, 2)]}]})
                            + "\n"
                            for q in questions if q["category"] in ("math", "coding")))
    for model in [*MODELS, "base"]:
        path = p.bench_dir / "model_answer" / f"{model}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps({"question_id": q["question_id"], "model_id": model, "choices": [{"index": 0, "turns": [
            {"content": f"answer of {model} to q{q['question_id']} turn 1", "token_len": 10},
            {"content": f"answer of {model} to q{q['question_id']} turn 2", "token_len": 20}]}]}) + "\n" for q in questions))
    p.questions = questions
    return p


def expected_rating(model: str, qid: int, turn: int) -> int:
    return STRENGTH[model] - (turn - 1) + (qid % 2)


def rating_judge(messages: list[dict]) -> str:
    """Rates the last answer turn shown: a known function of (model, question, turn)."""
    prompt = messages[1]["content"] if messages[0]["role"] == "system" else messages[0]["content"]
    model, q, turn = ANSWER.findall(prompt)[-1]
    if model == "beta" and q == "q103" and turn == "2":
        return "I cannot decide."  # never a rating, even when asked again
    if model == "alpha" and q == "q100" and turn == "1" and messages[-1]["content"] != FOLLOW_UP_RATING:
        return "Rating: [[11]]"  # out of range: asked again
    return f"Fine. Rating: [[{expected_rating(model, int(q[1:]), int(turn))}]]"


def pair_judge(messages: list[dict]) -> str:
    """The stronger model's answer wins; equal strength is a tie."""
    prompt = messages[-1]["content"] if messages[-1]["content"] != FOLLOW_UP_PAIR else messages[1]["content"]
    a_part, b_part = prompt.split("Assistant B", 1) if "Assistant B's answer" in prompt else prompt.split("Assistant B:", 1)
    model_a = ANSWER.findall(a_part)[-1][0]
    model_b = ANSWER.findall(b_part)[-1][0]
    if STRENGTH[model_a] == STRENGTH[model_b]:
        return "[[C]]"
    return "[[A]]" if STRENGTH[model_a] > STRENGTH[model_b] else "[[B]]"


def _configure(project: Project, server: FakeServer, mode: str, **extra) -> None:
    project.write_api({"judge": entry(server.base_url, "j", parallel=6)})
    project.write_judge_config(MODELS, mode=mode, max_tokens=64, **extra)


def test_parse_rating_and_pair():
    assert parse_rating("so [[7]]") == 7 and parse_rating("score [6.5]") == 6.5
    assert parse_rating("[[11]]") is None and parse_rating("[[0]]") is None
    assert parse_rating("[[3]] then [[8]]") is None and parse_rating("none") is None
    assert parse_pair("[[A]]") == "A" and parse_pair("tie [C]") == "C"
    assert parse_pair("[[A]] or [[B]]") is None and parse_pair("[[D]]") is None


def test_builtin_prompts_have_every_name_and_placeholder():
    prompts = load_judge_prompts(None)
    assert {"single-v1", "single-math-v1-multi-turn", "pair-v2", "pair-math-v1-multi-turn"} <= set(prompts)
    assert "{ref_answer_2}" in prompts["single-math-v1-multi-turn"].prompt_template
    assert "{answer_b_2}" in prompts["pair-v2-multi-turn"].prompt_template


def test_single_grading_tables_are_exact(project, capsys):
    with FakeServer(Script(answer=rating_judge)) as server:
        _configure(project, server, "single")
        assert run_cli(gen_judgment.main, ["--quiet"]) == 0
        prompts = [r.body["messages"] for r in server.chat_requests()]
    records = project.records("model_judgment/judge_single.jsonl")
    assert len(records) == 2 * 8 * 2
    assert set(records[0]) >= {"question_id", "model", "judge", "user_prompt", "judgment", "score", "turn"}
    by_key = {(r["model"], r["question_id"], r["turn"]): r for r in records}
    assert by_key[("beta", 103, 2)]["score"] is None and by_key[("beta", 103, 2)]["judgment"]
    assert by_key[("alpha", 100, 1)]["score"] == expected_rating("alpha", 100, 1)
    assert by_key[("alpha", 100, 1)]["judge"] == ["judge", "single-v1"]
    assert by_key[("alpha", 101, 2)]["judge"] == ["judge", "single-math-v1-multi-turn"]
    # math/coding get their reference answers; turn 2 sees the whole conversation
    math_prompt = by_key[("alpha", 101, 2)]["user_prompt"]
    assert "REF-101-1" in math_prompt and "REF-101-2" in math_prompt and "First ask 1" in math_prompt
    assert "REF" not in by_key[("alpha", 100, 2)]["user_prompt"]
    assert sum(1 for m in prompts if m[-1]["content"] == FOLLOW_UP_RATING) == 1 + 2

    tables = MTBenchSingle.tables(records, project.questions)
    for model in MODELS:
        for turn in (1, 2):
            values = [expected_rating(model, q["question_id"], turn) for q in project.questions
                      if not (model == "beta" and q["question_id"] == 103 and turn == 2)]
            assert tables[f"turn{turn}"].loc[(model, turn), "score"] == pytest.approx(sum(values) / len(values))
        both = [expected_rating(model, q["question_id"], t) for q in project.questions for t in (1, 2)
                if not (model == "beta" and q["question_id"] == 103 and t == 2)]
        assert tables["average"].loc[model, "score"] == pytest.approx(sum(both) / len(both))
    writing = [expected_rating("alpha", q["question_id"], t) for q in project.questions for t in (1, 2)
               if q["category"] == "writing"]
    assert tables["category"].loc["alpha", "writing"] == pytest.approx(sum(writing) / len(writing))
    assert int(tables["missing"].loc["beta", "missing"]) == 1

    args = argparse.Namespace(bench_name="mt_bench", data_dir=project.root / "data", judge_name="judge", mode="single",
                              baseline=None, num_rounds=10, seed=1, bootstrap="battles", plot=str(project.root / "radar.png"))
    assert show_mtbench.show(args) == 0
    captured = capsys.readouterr()
    out = captured.out
    for header in ("First turn", "Second turn", "Average", "Per category"):
        assert f"########## {header} ##########" in out
    assert "1 of 32 ratings had no verdict and were dropped" in out
    assert out.index("alpha") < out.index("beta")  # best first
    assert (project.root / "radar.png").stat().st_size > 10_000
    assert f"wrote {project.root / 'radar.png'}" in captured.err


def test_rerun_skips_and_rejudge_missing_retries_only_those(project):
    with FakeServer(Script(answer=rating_judge)) as server:
        _configure(project, server, "single")
        assert run_cli(gen_judgment.main, ["--quiet"]) == 0
        first = len(server.chat_requests())
        assert run_cli(gen_judgment.main, ["--quiet"]) == 0
        assert len(server.chat_requests()) == first
        assert run_cli(gen_judgment.main, ["--quiet", "--rejudge-missing"]) == 0
        assert len(server.chat_requests()) == first + 3  # the one missing rating, asked 3 times
    assert len(project.records("model_judgment/judge_single.jsonl")) == 32


def test_pairwise_baseline_records_and_win_rates(project, capsys):
    with FakeServer(Script(answer=pair_judge)) as server:
        _configure(project, server, "pairwise-baseline", baseline_model="base")
        assert run_cli(gen_judgment.main, ["--quiet"]) == 0
    records = project.records("model_judgment/judge_pair.jsonl")
    assert len(records) == 2 * 8 * 2
    for r in records:
        assert r["model_2"] == "base"
        expected = "model_1" if STRENGTH[r["model_1"]] > STRENGTH["base"] else "model_2"
        assert r["g1_winner"] == r["g2_winner"] == expected  # game 2 swapped positions and was read back
        assert r["g1_user_prompt"] != r["g2_user_prompt"]
    args = argparse.Namespace(bench_name="mt_bench", data_dir=project.root / "data", judge_name="judge",
                              mode="pairwise-baseline", baseline="base", num_rounds=20, seed=1, bootstrap="battles", plot=None)
    assert show_mtbench.show(args) == 0
    out = capsys.readouterr().out
    scores = {line.split("|")[0].strip(): float(line.split("score:")[1].split("|")[0])
              for line in out.splitlines() if "| score:" in line}
    assert scores["base"] == 50.0 and scores["alpha"] > 99 and scores["beta"] < 1


def test_pairwise_all_judges_every_pair(project):
    with FakeServer(Script(answer=pair_judge)) as server:
        project.write_api({"judge": entry(server.base_url, "j", parallel=6)})
        project.write_judge_config(["alpha", "beta", "base"], mode="pairwise-all")
        assert run_cli(gen_judgment.main, ["--quiet"]) == 0
    records = project.records("model_judgment/judge_pair.jsonl")
    assert {(r["model_1"], r["model_2"]) for r in records} == {("alpha", "beta"), ("alpha", "base"), ("beta", "base")}
    assert len(records) == 3 * 8 * 2


def test_missing_reference_answers_are_a_clear_error(project, capsys):
    (project.bench_dir / "reference_answer" / "gpt-4.jsonl").unlink()
    with FakeServer(Script(answer=rating_judge)) as server:
        _configure(project, server, "single")
        assert run_cli(gen_judgment.main, ["--quiet"]) == 2
        assert server.chat_requests() == []
    err = capsys.readouterr().err
    assert "no reference answer" in err and "math, reasoning, coding" in err


def test_original_prompt_file_is_accepted(project, shared):
    with FakeServer(Script(answer=rating_judge)) as server:
        _configure(project, server, "single", judge_prompts=str(shared / "data" / "mt_bench" / "judge_prompts.jsonl"))
        assert run_cli(gen_judgment.main, ["--quiet"]) == 0
    records = project.records("model_judgment/judge_single.jsonl")
    assert len(records) == 32 and sum(r["score"] is not None for r in records) == 31


def test_answers_for_the_real_questions_use_category_temperatures(tmp_path, monkeypatch, shared):
    monkeypatch.chdir(tmp_path)
    project = Project(tmp_path, bench="mt_bench")
    lines = (shared / "data" / "mt_bench" / "question.jsonl").read_text().splitlines()
    project.write_questions([json.loads(x) for x in lines])
    temps = {"writing": 0.7, "roleplay": 0.7, "math": 0.0, "coding": 0.0, "reasoning": 0.0, "extraction": 0.0,
             "stem": 0.1, "humanities": 0.1}
    with FakeServer() as server:
        project.write_api({"cand": entry(server.base_url, "c", parallel=8)})
        project.write_answer_config(["cand"], category_temperature=temps)
        assert run_cli(gen_answer.main, ["--quiet"]) == 0
        requests = server.chat_requests()
    assert len(requests) == 160
    questions = {json.loads(x)["turns"][0]: json.loads(x)["category"] for x in lines}
    for r in requests:
        first_user = next(m["content"] for m in r.body["messages"] if m["role"] == "user")
        assert r.body["temperature"] == temps[questions[first_user]]
    records = project.records("model_answer/cand.jsonl")
    assert len(records) == 80 and all(len(r["choices"][0]["turns"]) == 2 for r in records)
    assert pd.Series([r["question_id"] for r in records]).is_monotonic_increasing


def test_every_judge_mode_has_one_kind_with_the_whole_interface():
    from arenajudge.config.models import MT_BENCH_MODES, shown_mt_bench_mode
    from arenajudge.judge.kinds import KINDS, JudgingKind
    from arenajudge.judge.mtbench_protocol import MTBenchPairwiseAll, MTBenchPairwiseBaseline
    from arenajudge.judge.protocol import ArenaHardPairwise

    chosen = {mode: KINDS[mode] for mode in (None, *MT_BENCH_MODES)}
    assert chosen == {None: ArenaHardPairwise, "single": MTBenchSingle, "pairwise-baseline": MTBenchPairwiseBaseline,
                      "pairwise-all": MTBenchPairwiseAll}
    for kind in chosen.values():
        assert issubclass(kind, JudgingKind) and not kind.__abstractmethods__, kind
    # the bench, not only --mode, says that show_result.py reads MT-Bench judgments
    assert shown_mt_bench_mode("mt_bench", None) == "single" and shown_mt_bench_mode("arena-hard-v0.1", None) is None
    assert shown_mt_bench_mode("arena-hard-v0.1", "pairwise-all") == "pairwise-all"
