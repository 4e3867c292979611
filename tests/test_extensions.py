"""Extensions written outside the package: a rating method or a judging kind is one class and one registration line."""

from __future__ import annotations

import re
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

from arenajudge.cli import gen_judgment, show_result
from arenajudge.config.models import JUDGING_MODES, JudgeConfig, ModelEntry
from arenajudge.core.errors import run_cli
from arenajudge.endpoints.client import ModelClient
from arenajudge.endpoints.context_budget import ContextBudget
from arenajudge.judge.judge_run import require_answers
from arenajudge.judge.kinds import KINDS, OneFileKind, register_kind
from arenajudge.present.leaderboard import BoardSpec, build_board
from arenajudge.rating.bradley_terry import BootstrapUnit, RatingResult, elo_of_win_rate
from arenajudge.rating.methods import METHODS, register_method
from arenajudge.records.provenance import Basis, answer_fingerprint, question_fingerprints
from arenajudge.records.storage import BenchPaths, turn_text
from arenajudge.records.turns import answer_turns
from arenajudge_testkit.fake_openai import FakeServer, Script
from arenajudge_testkit.gen_project import Project, entry
from arenajudge_testkit.synth import make_bench


class WinShare:
    """A toy method: the share of battles against the baseline a model wins outright (ties count 0)."""

    name = "toy-win-share"
    summary = "share of outright wins against the baseline"
    label: str | None = "toy: share of outright wins against the baseline"
    whole_judgments = False

    def rate(self, battles: pd.DataFrame, baseline: str, *, rounds: int, seed: int,
             unit: BootstrapUnit) -> RatingResult:
        against = battles[(battles["model_a"] == baseline) ^ (battles["model_b"] == baseline)]
        model = np.where(against["model_a"] == baseline, against["model_b"], against["model_a"])
        won = np.where(against["model_a"] == baseline, against["winner"] == "model_b", against["winner"] == "model_a")
        share = pd.Series(won.astype(float)).groupby(model).mean()
        share[baseline] = 0.5
        rng = np.random.default_rng(seed)
        samples = pd.DataFrame({m: np.clip(s + rng.normal(0, 0.01, rounds), 0.01, 0.99) for m, s in share.items()})
        point = pd.Series({m: float(elo_of_win_rate(s)) for m, s in share.items()}).sort_values(ascending=False)
        return RatingResult(point=point, samples=pd.DataFrame(elo_of_win_rate(samples.to_numpy()), columns=samples.columns),
                            unit=unit)


@pytest.fixture
def win_share():
    method = register_method(WinShare())
    yield method
    METHODS.pop(method.name, None)


def outright_share(sb, judge: str, model: str) -> float:
    """The same number from the records, game by game: game 1 puts the baseline in A, game 2 the model;
    a strong verdict is 3 battles, as the board counts it."""
    import json

    won = total = 0
    path = sb.root / sb.bench / "model_judgment" / judge / f"{model}.jsonl"
    for line in path.read_text().splitlines():
        for index, game in enumerate(json.loads(line)["games"]):
            label = game["score"]
            battles = 3 if ">>" in label or "<<" in label else 1
            total += battles
            winner = label[0] if label != "A=B" else "="
            model_side = "B" if index == 0 else "A"
            won += battles * (winner == model_side)
    return won / total


def test_a_rating_method_from_outside_scores_the_board(tmp_path, win_share):
    sb = make_bench(tmp_path, n_questions=40, n_models=3, include_baseline_self=False)
    spec = BoardSpec(bench=sb.bench, data_dir=tmp_path, judges=("judge-a",), baseline=sb.baseline,
                     method=win_share.name, rounds=20)
    board = build_board(spec)
    assert board.header.endswith("score: toy: share of outright wins against the baseline")
    scores = {row.model: row.score for row in board.rows}
    for model in sb.models:
        assert scores[model] == pytest.approx(100 * outright_share(sb, "judge-a", model), abs=0.01)
    assert scores[sb.baseline] == 50.0


def test_show_result_offers_a_registered_method_and_refuses_it_with_load_bootstrap(tmp_path, monkeypatch, capsys,
                                                                                     win_share):
    sb = make_bench(tmp_path, n_questions=30, n_models=2, include_baseline_self=False)
    args = ["--bench-name", sb.bench, "--data-dir", str(tmp_path), "--judge-name", "judge-a",
            "--baseline", sb.baseline, "--num-rounds", "10"]
    monkeypatch.chdir(tmp_path)
    assert run_cli(show_result.main, [*args, "--method", win_share.name]) == 0
    out = capsys.readouterr().out
    assert "score: toy: share of outright wins" in out
    assert run_cli(show_result.main, [*args, "--method", win_share.name, "--load-battles", "--load-bootstrap"]) == 2
    assert "--load-bootstrap holds plain Bradley-Terry samples" in capsys.readouterr().err


# ---------------------------------------------------------------- a judging kind from outside the package

CLARITY = re.compile(r"\[\[([1-5])\]\]")


@dataclass(frozen=True)
class ClarityItem:
    question: dict[str, Any]
    model: str
    answer: str
    provenance: dict[str, Any]


@dataclass
class ClarityGrading(OneFileKind[ClarityItem]):
    """A toy kind: the judge grades how clear each answer is, 1 to 5, one record per model and question."""

    mode = "toy-clarity"
    placeholders = re.compile(r"question|answer")

    config: JudgeConfig
    judge_entry: ModelEntry
    paths: BenchPaths
    questions: list[dict[str, Any]]
    answers: dict[str, dict[Any, str]]
    basis: Basis

    @classmethod
    def load(cls, config: JudgeConfig, judge: ModelEntry, paths: BenchPaths, questions: list[dict[str, Any]],
             all_questions: list[dict[str, Any]]) -> ClarityGrading:
        cls.check_template(config)
        records = {m: require_answers(paths, config.path, m, questions, f"model_list[{i}]")
                   for i, m in enumerate(config.model_list)}
        basis = Basis(baseline="", questions=question_fingerprints(all_questions),
                      answers={m: {str(q): answer_fingerprint(r) for q, r in rs.items()} for m, rs in records.items()},
                      settings=cls.settings_fingerprint(config))
        answers = {m: {q: answer_turns(r)[0] for q, r in rs.items()} for m, rs in records.items()}
        return cls(config, judge, paths, questions, answers, basis)

    def candidates(self, question: dict[str, Any]) -> list[tuple[ClarityItem, Hashable]]:
        qid = question["question_id"]
        made = {"judge_settings": self.basis.settings, "question": self.basis.questions[str(qid)]}  # type: ignore[index]
        return [(ClarityItem(question, m, self.answers[m][qid], {**made, "answer": self.basis.answers[m][str(qid)]}),
                 (m, str(qid))) for m in self.config.model_list]

    def record_key(self, record: dict[str, Any]) -> Hashable:
        return (record["model"], str(record["question_id"]))

    def mismatch(self, record: dict[str, Any]) -> str | None:
        return self.basis.provenance_mismatch(record, [("answer", record["model"])])

    async def judge(self, client: ModelClient, item: ClarityItem, budget: ContextBudget | None) -> dict[str, Any]:
        prompt = self.config.prompt_template[0].format(question=turn_text(item.question["turns"][0]), answer=item.answer)
        reply = await client.chat([{"role": "user", "content": prompt}], temperature=self.config.temperature,
                                  max_tokens=self.config.max_tokens)
        found = CLARITY.findall(reply.content)
        return {"question_id": item.question["question_id"], "model": item.model, "judge": self.config.judge_model,
                "judgment": reply.content, "score": int(found[-1]) if found else None, "provenance": item.provenance}


def clarity_judge(messages: list[dict]) -> str:
    """Grades by the answer's model: alpha 5, beta 2; one answer never gets a grade."""
    text = messages[-1]["content"]
    if "beta to q001" in text:
        return "Hard to say."
    return "Clear enough. [[5]]" if "answer of alpha" in text else "Muddled. [[2]]"


@pytest.fixture
def clarity_kind():
    register_kind(ClarityGrading)
    yield ClarityGrading
    KINDS.pop(ClarityGrading.mode, None)
    JUDGING_MODES.remove(ClarityGrading.mode)


def test_a_judging_kind_from_outside_runs_resumes_and_locks_by_its_defaults(tmp_path, monkeypatch, capsys,
                                                                             clarity_kind):
    monkeypatch.chdir(tmp_path)
    project = Project(tmp_path)
    questions = project.simple_questions(4)
    for model in ("alpha", "beta"):
        project.write_answers(model, questions)
    with FakeServer(Script(answer=clarity_judge)) as server:
        project.write_api({"judge": entry(server.base_url, "j", parallel=3)})
        project.write_judge_config(["alpha", "beta"], mode="toy-clarity", baseline=None,
                                   prompt_template="Question: {question}\nAnswer: {answer}\nGrade clarity [[1-5]].")
        assert run_cli(gen_judgment.main, ["--quiet"]) == 0
        assert len(server.chat_requests()) >= 8
        records = project.records("model_judgment/judge_toy-clarity.jsonl")  # the default record file
        assert {(r["model"], r["question_id"]): r["score"] for r in records} == {
            **{("alpha", q["question_id"]): 5 for q in questions},
            **{("beta", q["question_id"]): 2 for q in questions}, ("beta", "q001"): None}
        # the default lock is one per record file, named after it
        assert (project.bench_dir / "locks" / "model_judgment.judge_toy-clarity.jsonl.lock").exists()
        # resume by the base class: nothing left, nothing asked
        before = len(server.chat_requests())
        assert run_cli(gen_judgment.main, ["--quiet"]) == 0
        assert len(server.chat_requests()) == before
        # the fingerprint rule: another temperature makes every record stale, judged again and archived
        project.write_judge_config(["alpha", "beta"], mode="toy-clarity", baseline=None, temperature=0.5,
                                   prompt_template="Question: {question}\nAnswer: {answer}\nGrade clarity [[1-5]].")
        assert run_cli(gen_judgment.main, ["--quiet"]) == 0
        assert len(server.chat_requests()) == before + 8
    assert len(project.records("model_judgment/judge_toy-clarity.jsonl")) == 8


def test_a_judging_kind_refuses_a_placeholder_it_does_not_fill(tmp_path, monkeypatch, capsys, clarity_kind):
    monkeypatch.chdir(tmp_path)
    project = Project(tmp_path)
    questions = project.simple_questions(2)
    project.write_answers("alpha", questions)
    with FakeServer(Script(answer=clarity_judge)) as server:
        project.write_api({"judge": entry(server.base_url, "j")})
        project.write_judge_config(["alpha"], mode="toy-clarity", baseline=None, prompt_template="{question} {answr}")
        assert run_cli(gen_judgment.main, ["--quiet"]) == 2
        assert server.chat_requests() == []
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "judge_config.yaml: key 'prompt_template[0]': unknown placeholder {answr}" in err[0], err


def test_an_unregistered_mode_is_one_line_naming_the_key(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    project = Project(tmp_path)
    project.simple_questions(1)
    project.write_api({"judge": entry("http://127.0.0.1:9/v1", "j")})
    project.write_judge_config(["alpha"], mode="toy-clarity", baseline=None)
    assert run_cli(gen_judgment.main, ["--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "key 'mode': unknown mode 'toy-clarity'" in err and "single" in err
