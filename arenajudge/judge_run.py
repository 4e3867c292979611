"""What a judging run starts from: which stored judgments still count, and the items left to judge.

A stored judgment counts when it was made from what is on disk now (provenance.Basis); one that
does not is moved aside (stale.py) and judged again. gen_judgment, --until-decided and run_eval's
overlapped judge all start this way, so none of them can count a judgment the others would redo.
"""

from __future__ import annotations

from typing import Any

from .config import JudgeConfig, ModelEntry
from .engine import RunReport
from .judging import JudgeItem
from .provenance import Basis, answer_fingerprint, answer_fingerprints, judge_settings_fingerprint, question_fingerprints
from .stale import move_aside, split_stale
from .storage import BenchPaths, load_judgment_file, repair_tail


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
        report.stale_where = str(paths.replaced_root)
    done = {r["question_id"] for r in keep
            if not (rejudge_missing and any(g.get("score") is None for g in r["games"]))}
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
