"""What a judging run starts from: which stored judgments still count, and the items left to judge.

A stored judgment counts when it was made from what is on disk now (provenance.Basis); one that
does not is moved aside (stale.py) and judged again, unless the archive holds one that matches
(made earlier against the same baseline, answers and settings): that one is taken back instead.
gen_judgment, --until-decided and run_eval's overlapped judge all start this way, so none of them
can count a judgment the others would redo.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arenajudge.config.models import JudgeConfig, ModelEntry
from arenajudge.core.errors import UserError
from arenajudge.endpoints.engine import RunReport
from arenajudge.judge.arena_hard import JudgeItem
from arenajudge.records.provenance import (
    Basis,
    answer_fingerprint,
    answer_fingerprints,
    judge_settings_fingerprint,
    question_fingerprints,
)
from arenajudge.records.stale import move_aside, split_stale, take_back_latest
from arenajudge.records.storage import BenchPaths, answer_problem, line_of, load_answer_file, load_judgment_file, repair_tail


def require_answers(paths: BenchPaths, setting_file: Path, model: str, questions: list[dict[str, Any]], key: str
                    ) -> dict[Any, dict[str, Any]]:
    """A model's answers, which must cover every question to be judged."""
    path = paths.answer_file(model)
    if not path.exists():
        raise UserError(f"{setting_file}: key '{key}': {model!r} has no answers ({path} is missing); run gen_answer.py first")
    answers = load_answer_file(path)
    absent = [q["question_id"] for q in questions if q["question_id"] not in answers]
    if absent:
        raise UserError(f"{setting_file}: key '{key}': {model!r} has no answers to {len(absent)} of {len(questions)} "
                        f"questions in {path} (first: {absent[0]}); run gen_answer.py first")
    check_answer_texts(path, answers, [q["question_id"] for q in questions])
    return answers


def check_answer_texts(path: Path, answers: dict[Any, dict[str, Any]], question_ids: list[Any]) -> None:
    """Every answer to be judged has text in every turn (`content: null` would reach the judge as "None")."""
    for qid in question_ids:
        problem = answer_problem(answers[qid])
        if problem is not None:
            raise UserError(f"{path}:{line_of(path, qid)}: question {qid}: {problem}; "
                            "delete this line and rerun gen_answer.py to answer it again")


def require_baseline(config: JudgeConfig) -> str:
    """The baseline model arena-hard judging compares with, or a UserError naming the key."""
    if not config.baseline or not config.baseline_model:
        raise UserError(f"{config.path}: key 'baseline': arena-hard judging needs a baseline "
                        "(or set `mode:` for MT-Bench judging)")
    return config.baseline_model


def load_references(paths: BenchPaths, config: JudgeConfig) -> list[dict[Any, dict[str, Any]]]:
    """The reference answers arena-hard judging shows the judge: none, or those of `ref_model`."""
    if not config.reference:
        return []
    if not config.ref_model:
        raise UserError(f"{config.path}: key 'ref_model': missing; reference is true")
    ref_path = paths.reference_file(config.ref_model)
    if not ref_path.exists():
        raise UserError(f"{config.path}: key 'ref_model': {ref_path} is missing")
    return [load_answer_file(ref_path)]


def has_missing_game(record: dict[str, Any]) -> bool:
    """True when a game of a pairwise judgment has no verdict (--rejudge-missing judges it again)."""
    return any(g.get("score") is None for g in record["games"])


def judgment_basis(config: JudgeConfig, questions: list[dict[str, Any]], baseline: dict[Any, dict[str, Any]],
                   answers: dict[str, dict[Any, dict[str, Any]]], references: list[dict[Any, dict[str, Any]]]) -> Basis:
    """What a stored judgment must have been made from to count as done in this run."""
    assert config.baseline_model is not None
    return Basis(
        baseline=config.baseline_model,
        questions=question_fingerprints(questions),
        answers=answer_fingerprints({**answers, config.baseline_model: baseline}),
        settings=judge_settings_fingerprint(config),
        references={str(qid): answer_fingerprint(r) for qid, r in references[0].items()} if references else None,
    )


def resume(paths: BenchPaths, judge: str, model: str, questions: list[dict[str, Any]], basis: Basis,
           rejudge_missing: bool, report: RunReport) -> set[Any]:
    """Question ids already judged for this run; stale judgments of these questions are moved aside first."""
    path = paths.judgment_file(judge, model)
    repair_tail(path)
    records = load_judgment_file(path) if path.exists() else []
    wanted = {str(q["question_id"]) for q in questions}
    keep, stale = split_stale(records, lambda r: basis.mismatch(r, model) if str(r["question_id"]) in wanted else None)
    if stale:
        move_aside(path, paths.replaced_file(path), keep, stale)

    def counts(record: dict[str, Any]) -> bool:  # with --rejudge-missing, a game without a verdict is not done
        return not (rejudge_missing and has_missing_game(record))

    done = {r["question_id"] for r in keep if counts(r)}
    back = take_back_latest(path, paths.replaced_file(path), load_judgment_file, wanted - {str(qid) for qid in done},
                            lambda r: str(r["question_id"]), lambda r: counts(r) and basis.mismatch(r, model) is None)
    restored = {r["question_id"] for r in back}
    done |= restored
    if stale or restored:
        report.stale_where = str(paths.replaced_root)
    report.restored += len(restored)
    report.stale += len({r["question_id"] for r, _ in stale} - done)
    return done


def judge_item_for(config: JudgeConfig, judge: ModelEntry, basis: Basis, question: dict[str, Any], model: str,
                   answers: dict[str, dict[Any, dict[str, Any]]], baseline: dict[Any, dict[str, Any]],
                   references: list[dict[Any, dict[str, Any]]]) -> JudgeItem:
    """The work of judging `model` on `question`, with the provenance its record will carry."""
    assert basis.questions is not None and config.baseline_model is not None
    qid = question["question_id"]
    refs = [r[qid] for r in references if qid in r]
    provenance = {"judge_model_name": judge.model_name, "judge_settings": basis.settings,
                  "question": basis.questions[str(qid)], "answer": basis.answers[model][str(qid)],
                  "baseline_answer": basis.answers[config.baseline_model][str(qid)]}
    if refs:
        provenance["reference"] = answer_fingerprint(refs[0])
    return JudgeItem(question, model, answers[model][qid], baseline[qid], refs, provenance)
