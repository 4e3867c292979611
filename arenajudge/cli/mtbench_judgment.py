"""gen_judgment.py for MT-Bench modes (judge config `mode: single | pairwise-baseline | pairwise-all`)."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
from typing import Any

from .. import locks
from ..client import ModelClient
from ..config import JudgeConfig, ModelEntry
from ..engine import Lane, RunReport, finish_files, log_run, run_lanes
from ..errors import UserError
from ..mtbench import (
    PairItem,
    SingleItem,
    answer_turns,
    check_prompts,
    judge_pair,
    judge_single,
    judgment_file,
    load_judge_prompts,
    load_references,
    needs_reference,
    record_key,
)
from ..probe import probe_endpoints
from ..provenance import (
    Basis,
    answer_fingerprint,
    judge_settings_fingerprint,
    mtbench_mismatch,
    question_fingerprints,
    texts_fingerprint,
)
from ..stale import move_aside, split_stale
from ..storage import BenchPaths, read_jsonl, repair_tail, write_jsonl_atomic
from ..vllm.servers import ServerSession
from .common import Appenders, require_answers


def _answers(paths: BenchPaths, config: JudgeConfig, model: str, questions: list[dict[str, Any]], key: str,
             fingerprints: dict[str, dict[str, str]]) -> dict[Any, list[str]]:
    """A model's answer turns per question; every question's turns must all be answered.

    Fills fingerprints[model] (question_id as str -> answer fingerprint)."""
    records = require_answers(paths, config.path, model, questions, key)
    short = [q["question_id"] for q in questions if len(answer_turns(records[q["question_id"]])) < len(q["turns"])]
    if short:
        raise UserError(f"{paths.answer_file(model)}: {model!r} answered fewer turns than question {short[0]} has "
                        f"({len(short)} such questions); rerun gen_answer.py for them")
    fingerprints[model] = {str(qid): answer_fingerprint(r) for qid, r in records.items()}
    return {qid: answer_turns(r) for qid, r in records.items()}


def run(args: argparse.Namespace, config: JudgeConfig, judge: ModelEntry, paths: BenchPaths,
        questions: list[dict[str, Any]], order: list[Any], client: ModelClient, session: ServerSession,
        all_questions: list[dict[str, Any]] | None = None) -> int:
    assert config.mode is not None
    prompts = load_judge_prompts(config.judge_prompts)
    check_prompts(prompts, config.mode, config.judge_prompts)
    fps: dict[str, dict[str, str]] = {}
    answers = {m: _answers(paths, config, m, questions, f"model_list[{i}]", fps) for i, m in enumerate(config.model_list)}
    if config.mode == "pairwise-baseline":
        if not config.baseline_model:
            raise UserError(f"{config.path}: key 'baseline_model': missing; mode pairwise-baseline needs one")
        answers[config.baseline_model] = _answers(paths, config, config.baseline_model, questions, "baseline_model", fps)
    refs = load_references(paths, config, questions)
    absent_refs = [q["question_id"] for q in questions if needs_reference(config, q) and q["question_id"] not in refs]
    if absent_refs:
        raise UserError(f"{paths.bench_dir / 'reference_answer'}: no reference answer ({config.ref_model or 'gpt-4'}) "
                        f"for {len(absent_refs)} questions of {', '.join(config.reference_categories)} "
                        f"(first: {absent_refs[0]})")

    basis = Basis(baseline="", questions=question_fingerprints(all_questions or questions), answers=fps,
                  settings=judge_settings_fingerprint(config, prompts),
                  references={str(q["question_id"]): texts_fingerprint(refs[q["question_id"]]) for q in questions
                              if needs_reference(config, q) and q["question_id"] in refs})
    out = judgment_file(paths, config.judge_model, config.mode)
    # one writer per MT-Bench judgment file, taken after the checks above: bad input writes nothing
    with locks.hold([locks.mtbench_lock(paths, out)], wait=args.wait):
        repair_tail(out)
        report = RunReport()
        wanted = {str(q["question_id"]) for q in questions}
        keep, stale = split_stale(read_jsonl(out, allow_torn_tail=True) if out.exists() else [],
                                  lambda r: mtbench_mismatch(r, basis) if str(r["question_id"]) in wanted else None)
        if stale:
            move_aside(out, paths.replaced_file(out), keep, stale)
            report.stale_where = str(paths.replaced_root)
        done = {record_key(r) for r in keep if not (args.rejudge_missing and _has_missing(r))}
        report.stale += len({record_key(r) for r, _ in stale} - done)
        made_from = {"judge_model_name": judge.model_name, "judge_settings": basis.settings}

        def provenance(q: dict[str, Any], ref: list[str] | None, **models: str) -> dict[str, Any]:
            qid = str(q["question_id"])
            made = {**made_from, "question": basis.questions[qid]}  # type: ignore[index]
            made |= {key: fps[model][qid] for key, model in models.items()}
            if ref is not None:
                made["reference"] = texts_fingerprint(ref)
            return made

        items: list[Any] = []
        for q in questions:
            qid = q["question_id"]
            ref = refs.get(qid) if needs_reference(config, q) else None
            turns = range(1, len(q["turns"]) + 1)
            if config.mode == "single":
                candidates = [SingleItem(q, m, answers[m][qid], t, ref, provenance(q, ref, answer=m))
                              for m in config.model_list for t in turns]
                key = [(i.model, str(qid), i.turn) for i in candidates]
            else:
                if config.mode == "pairwise-baseline":
                    pairs = [(m, config.baseline_model) for m in config.model_list if m != config.baseline_model]
                else:
                    pairs = list(itertools.combinations(config.model_list, 2))
                candidates = [PairItem(q, m1, m2, answers[m1][qid], answers[m2][qid], t, ref,
                                       provenance(q, ref, answer_1=m1, answer_2=m2))
                              for m1, m2 in pairs for t in turns]
                key = [(i.model_1, i.model_2, str(qid), i.turn) for i in candidates]
            for item, k in zip(candidates, key, strict=True):
                if k in done:
                    report.skipped += 1
                else:
                    items.append(item)

        appenders = Appenders()
        single = config.mode == "single"

        def write(_item: Any, record: dict[str, Any]) -> None:
            appenders.write(out, record)
            report.missing_verdicts += _has_missing(record)

        lane: Lane[Any] = Lane(
            name=config.judge_model, client=client, items=items,
            work=((lambda i: judge_single(client, config, prompts, i)) if single
                  else (lambda i: judge_pair(client, config, prompts, i))),
            write=write,
            describe=_describe,
            max_items=client.capacity if single else client.capacity // 2 + 1,
        )
        probe_endpoints([judge] if items else [])
        print(f"judging {len(items)} MT-Bench items ({config.mode}) with {config.judge_model} "
              f"({report.skipped} already judged"
              + (f", {report.stale} stale ones moved to {report.stale_where} to be judged again" if report.stale else "")
              + ")", file=sys.stderr)
        interrupted = False
        try:
            with session.serving([judge] if items else []):  # a managed judge server starts only when needed
                asyncio.run(run_lanes([lane], report, quiet=args.quiet))
        except BaseException:
            interrupted = True
            raise
        finally:
            appenders.close()
            finish_files(report, [lambda: _sort(out, order)])
            log_run(paths.runs_file, "gen_judgment", report, {"judge": config.judge_model, "mode": config.mode,
                                                              "models": config.model_list, "bench": config.bench_name,
                                                              **session.log_fields()}, interrupted=interrupted)
        print(report.summary("judgments"), file=sys.stderr)
        return 0 if report.ok else 1


def _describe(item: SingleItem | PairItem) -> str:
    who = item.model if isinstance(item, SingleItem) else f"{item.model_1} vs {item.model_2}"
    return f"{who} / question {item.question['question_id']} turn {item.turn}"


def _has_missing(record: dict[str, Any]) -> bool:
    if "score" in record:
        return record["score"] is None
    return record.get("g1_winner") is None or record.get("g2_winner") is None


def _sort(path: Any, order: list[Any]) -> None:
    """One record per key, ordered by model(s), question order and turn."""
    if not path.exists():
        return
    latest = {record_key(r): r for r in read_jsonl(path, allow_torn_tail=True)}
    rank = {str(qid): i for i, qid in enumerate(order)}

    def sort_key(k: tuple[Any, ...]) -> tuple[Any, ...]:
        return (*k[:-2], rank.get(k[-2], len(rank)), k[-2], k[-1])

    write_jsonl_atomic(path, [latest[k] for k in sorted(latest, key=sort_key)])
