"""MT-Bench judging protocols (single grading, pairwise): the items to judge, their records on disk, and the tables
or battles show_result.py prints from them.

The judge's asking, prompts and record shapes are mtbench.py's; this module decides what is judged
(every model, or pair of models, on every turn of every question), what on disk already counts
(the rule of gen_judgment.py: a record counts only for what it was made from), and what the
stored records add up to.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from arenajudge.config.models import JudgeConfig, ModelEntry
from arenajudge.core.errors import UserError
from arenajudge.endpoints.client import ModelClient
from arenajudge.judge.judge_run import require_answers
from arenajudge.judge.kinds import OneFileKind, register_kind
from arenajudge.judge.mtbench import (
    JudgePrompt,
    PairItem,
    SingleItem,
    check_prompts,
    judge_pair,
    judge_single,
    judgment_file,
    load_judge_prompts,
    load_references,
    needs_reference,
    record_key,
)
from arenajudge.records import locks
from arenajudge.records.provenance import (
    REASONS,
    Basis,
    answer_fingerprint,
    answer_fingerprints,
    judge_settings_fingerprint,
    mtbench_mismatch,
    question_fingerprints,
    rerun_hint,
    texts_fingerprint,
)
from arenajudge.records.storage import BenchPaths, load_questions, read_jsonl, write_jsonl_atomic
from arenajudge.records.turns import answer_turns

if TYPE_CHECKING:
    import pandas as pd

    from arenajudge.endpoints.context_budget import ContextBudget


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


@dataclass
class MTBenchJudging(OneFileKind[Any]):
    """What MT-Bench's modes share: inputs, the one judgment file per judge and mode (FastChat's names), sort."""

    config: JudgeConfig
    judge_entry: ModelEntry  # the judge model's api config entry
    paths: BenchPaths
    questions: list[dict[str, Any]]
    prompts: dict[str, JudgePrompt]
    answers: dict[str, dict[Any, list[str]]]  # model -> question id -> answer turns (thinking removed)
    refs: dict[Any, list[str]]  # question id -> reference answer turns
    basis: Basis

    @classmethod
    def load(cls, config: JudgeConfig, judge: ModelEntry, paths: BenchPaths, questions: list[dict[str, Any]],
             all_questions: list[dict[str, Any]]) -> Self:
        """The protocol with its inputs read and checked (prompts, answers, references): a UserError before anything is written."""
        assert config.mode is not None
        prompts = load_judge_prompts(config.judge_prompts)
        check_prompts(prompts, config.mode, config.judge_prompts)
        fps: dict[str, dict[str, str]] = {}
        answers = {m: _answers(paths, config, m, questions, f"model_list[{i}]", fps)
                   for i, m in enumerate(config.model_list)}
        if config.mode == "pairwise-baseline":
            if not config.baseline_model:
                raise UserError(f"{config.path}: key 'baseline_model': missing; mode pairwise-baseline needs one")
            answers[config.baseline_model] = _answers(paths, config, config.baseline_model, questions, "baseline_model",
                                                      fps)
        refs = load_references(paths, config, questions)
        absent_refs = [q["question_id"] for q in questions if needs_reference(config, q) and q["question_id"] not in refs]
        if absent_refs:
            raise UserError(f"{paths.bench_dir / 'reference_answer'}: no reference answer ({config.ref_model or 'gpt-4'}) "
                            f"for {len(absent_refs)} questions of {', '.join(config.reference_categories)} "
                            f"(first: {absent_refs[0]})")
        basis = Basis(baseline="", questions=question_fingerprints(all_questions), answers=fps,
                      settings=judge_settings_fingerprint(config, prompts),
                      references={str(q["question_id"]): texts_fingerprint(refs[q["question_id"]]) for q in questions
                                  if needs_reference(config, q) and q["question_id"] in refs})
        return cls(config, judge, paths, questions, prompts, answers, refs, basis)

    # ------------------------------------------------------------ where the records live
    def lock_files(self) -> list[locks.OutputLock]:
        return [locks.mtbench_lock(self.paths, self.out), *locks.server_locks(self.paths, [self.judge_entry])]

    def record_files(self) -> list[Path]:
        assert self.config.mode is not None
        return [judgment_file(self.paths, self.config.judge_model, self.config.mode)]

    def sort_records(self, path: Path, order: list[Any]) -> None:
        """One record per key, ordered by model(s), question order and turn."""
        if not path.exists():
            return
        latest = {record_key(r): r for r in read_jsonl(path, allow_torn_tail=True)}
        rank = {str(qid): i for i, qid in enumerate(order)}

        def sort_key(k: tuple[Any, ...]) -> tuple[Any, ...]:
            return (*k[:-2], rank.get(k[-2], len(rank)), k[-2], k[-1])

        write_jsonl_atomic(path, [latest[k] for k in sorted(latest, key=sort_key)])

    # ------------------------------------------------------------ what is done, what is left
    def is_missing(self, record: dict[str, Any]) -> bool:
        """A rating, or a game of a pair, without a verdict (--rejudge-missing judges it again)."""
        if "score" in record:
            return record["score"] is None
        return record.get("g1_winner") is None or record.get("g2_winner") is None

    def record_key(self, record: dict[str, Any]) -> Hashable:
        return record_key(record)

    def mismatch(self, record: dict[str, Any]) -> str | None:
        return mtbench_mismatch(record, self.basis)

    def candidates(self, question: dict[str, Any]) -> list[tuple[Any, Hashable]]:
        return self._candidates(question, self._reference(question))

    def _candidates(self, q: dict[str, Any], ref: list[str] | None) -> list[tuple[Any, Hashable]]:
        raise NotImplementedError

    def _reference(self, q: dict[str, Any]) -> list[str] | None:
        """The reference answer's turns for `q` when its category is judged with one, else None."""
        return self.refs.get(q["question_id"]) if needs_reference(self.config, q) else None

    def _provenance(self, q: dict[str, Any], ref: list[str] | None, **models: str) -> dict[str, Any]:
        qid = str(q["question_id"])
        made = {"judge_model_name": self.judge_entry.model_name, "judge_settings": self.basis.settings,
                "question": self.basis.questions[qid]}  # type: ignore[index]
        made |= {key: self.basis.answers[model][qid] for key, model in models.items()}
        if ref is not None:
            made["reference"] = texts_fingerprint(ref)
        return made

    # ------------------------------------------------------------ the run
    def announce(self, count: int) -> str:
        return f"{count} MT-Bench items ({self.config.mode}) with {self.config.judge_model}"

    def log_fields(self, sample: int | None) -> dict[str, Any]:
        return {"judge": self.config.judge_model, "mode": self.config.mode, "models": self.config.model_list,
                "bench": self.config.bench_name}

    # ------------------------------------------------------------ records on disk, for show_result.py
    @staticmethod
    def stored_records(paths: BenchPaths, judge: str, mode: str) -> tuple[Path, list[dict[str, Any]]]:
        """The judgment file of `judge` in `mode` and its records; a UserError naming the files there if it is absent."""
        path = judgment_file(paths, judge, mode)
        if not path.exists():
            found = sorted(p.name for p in paths.judgment_root.glob("*.jsonl")) if paths.judgment_root.is_dir() else []
            raise UserError(f"{path}: no {mode} judgments by {judge!r} (files found: {', '.join(found) or 'none'})")
        return path, read_jsonl(path, allow_torn_tail=True)

    @staticmethod
    def current_records(records: list[dict[str, Any]], paths: BenchPaths, answers: dict[str, dict[Any, Any]]
                        ) -> tuple[list[dict[str, Any]], str | None]:
        """The records that match question.jsonl and the answers on disk now, and a note on the rest (the rule of
        show_result.py; judge settings are not checked here, gen_judgment.py redoes records made with others)."""
        questions = load_questions(paths.question_file) if paths.question_file.exists() else None
        basis = Basis(baseline="", questions=question_fingerprints(questions) if questions is not None else None,
                      answers=answer_fingerprints(answers))
        left_out: Counter[str] = Counter()
        kept = []
        for record in records:
            reason = mtbench_mismatch(record, basis)
            if reason is None:
                kept.append(record)
            else:
                left_out[reason] += 1
        if not left_out:
            return kept, None
        parts = ", ".join(f"{n} {REASONS[key]}" for key, n in left_out.items())
        return kept, (f"note: left out {sum(left_out.values())} judgments that do not match what is on disk now: {parts}"
                      + rerun_hint(left_out))


@register_kind
class MTBenchSingle(MTBenchJudging):
    """mode single: the judge rates each model's answer 1-10, turn by turn (records in <judge>_single.jsonl)."""

    mode = "single"

    def _candidates(self, q: dict[str, Any], ref: list[str] | None) -> list[tuple[Any, Hashable]]:
        qid = q["question_id"]
        return [(SingleItem(q, m, self.answers[m][qid], t, ref, self._provenance(q, ref, answer=m)), (m, str(qid), t))
                for m in self.config.model_list for t in range(1, len(q["turns"]) + 1)]

    async def judge(self, client: ModelClient, item: SingleItem, budget: ContextBudget | None) -> dict[str, Any]:
        """One rating record. MT-Bench prompts are sent whole: `budget` is not used."""
        return await judge_single(client, self.config, self.prompts, item)

    def describe(self, item: SingleItem) -> str:
        return f"{item.model} / question {item.question['question_id']} turn {item.turn}"

    def in_flight(self, capacity: int) -> int:
        return capacity

    @staticmethod
    def valid_ratings(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
        """Ratings that are not a number from 1 to 10 (a hand-edited or foreign file) read as unreadable, with a note."""
        out, bad, first = [], 0, ""
        for r in records:
            score = r.get("score")
            if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))
                                      or not 1 <= score <= 10):
                bad += 1
                first = first or f"{score!r} for {r.get('model')}, question {r.get('question_id')}, turn {r.get('turn')}"
                out.append({**r, "score": None})
            else:
                out.append(r)
        if not bad:
            return out, None
        return out, f"note: {bad} ratings are not a number from 1 to 10 (first: {first}); they count as no verdict"

    @staticmethod
    def tables(records: Iterable[dict[str, Any]], questions: list[dict[str, Any]]) -> dict[str, pd.DataFrame]:
        """The seed's three tables (first turn, second turn, average) plus a per-category table.

        Ratings that could not be read (null) are left out of the means and counted in `missing`.
        """
        import pandas as pd  # here: a judging run never needs it (~0.6 s to import)

        frame = pd.DataFrame.from_records(list(records), columns=["question_id", "model", "score", "turn"])
        category = {str(q["question_id"]): q.get("category", "") for q in questions}
        frame["category"] = frame["question_id"].astype(str).map(category)
        missing = frame[frame["score"].isna()].groupby("model").size()
        rated = frame.dropna(subset=["score"]).astype({"score": float})
        tables = {}
        for turn in (1, 2):
            part = rated[rated["turn"] == turn][["model", "score", "turn"]]
            tables[f"turn{turn}"] = part.groupby(["model", "turn"]).mean().sort_values(by="score", ascending=False)
        tables["average"] = rated[["model", "score"]].groupby("model").mean().sort_values(by="score", ascending=False)
        per_category = rated.pivot_table(index="model", columns="category", values="score", aggfunc="mean")
        tables["category"] = per_category.loc[tables["average"].index]
        tables["missing"] = missing.rename("missing").to_frame()
        return tables


_WINNERS = ("model_1", "model_2", "tie")


class MTBenchPairwise(MTBenchJudging):
    """modes pairwise-baseline (each model against baseline_model) and pairwise-all (every pair of model_list):
    two games per turn, positions swapped (records in <judge>_pair.jsonl)."""

    def _candidates(self, q: dict[str, Any], ref: list[str] | None) -> list[tuple[Any, Hashable]]:
        qid = q["question_id"]
        return [(PairItem(q, m1, m2, self.answers[m1][qid], self.answers[m2][qid], t, ref,
                          self._provenance(q, ref, answer_1=m1, answer_2=m2)), (m1, m2, str(qid), t))
                for m1, m2 in self.pairs() for t in range(1, len(q["turns"]) + 1)]

    def pairs(self) -> list[tuple[str, str]]:
        """The pairs of models judged, (model_1, model_2)."""
        raise NotImplementedError

    async def judge(self, client: ModelClient, item: PairItem, budget: ContextBudget | None) -> dict[str, Any]:
        """One pair record (both games). MT-Bench prompts are sent whole: `budget` is not used."""
        return await judge_pair(client, self.config, self.prompts, item)

    def describe(self, item: PairItem) -> str:
        return f"{item.model_1} vs {item.model_2} / question {item.question['question_id']} turn {item.turn}"

    def in_flight(self, capacity: int) -> int:
        return capacity // 2 + 1

    @staticmethod
    def fastchat_table(records: Iterable[dict[str, Any]], baseline: str | None) -> tuple[pd.DataFrame, int]:
        """FastChat's pairwise table (llm_judge/show_result.py) and the records left out for a missing verdict.

        Each record (a question, a turn, two models) counts once for both its models: a win and a loss when its
        two games name the same winner, a tie for both otherwise (game 1 a tie, or the games disagree). win_rate
        and loss_rate are shares of the model's records; win_rate_adjusted = (win + 0.5 * tie) / (win + loss +
        tie); best adjusted first. With `baseline` (pairwise-baseline) only records with the baseline count and
        its own row is left out. A record with a game without a verdict (null here, "error" in FastChat's files)
        is left out, as FastChat leaves out its "error" records.
        """
        import pandas as pd  # here: a judging run never needs it (~0.6 s to import)

        tally: dict[str, list[int]] = {}  # model -> [win, loss, tie]
        left_out = 0
        for r in records:
            first, second = r.get("g1_winner"), r.get("g2_winner")
            if first not in _WINNERS or second not in _WINNERS:
                left_out += 1
                continue
            models = (r["model_1"], r["model_2"])
            if baseline is not None and baseline not in models:
                continue
            if first == "tie" or first != second:
                for model in models:
                    tally.setdefault(model, [0, 0, 0])[2] += 1
            else:
                winner = models[0] if first == "model_1" else models[1]
                loser = models[1] if first == "model_1" else models[0]
                tally.setdefault(winner, [0, 0, 0])[0] += 1
                tally.setdefault(loser, [0, 0, 0])[1] += 1
        if baseline is not None:
            tally.pop(baseline, None)
        frame = pd.DataFrame.from_dict(tally, orient="index", columns=["win", "loss", "tie"]).sort_index()
        frame.index.name = "model"
        total = frame["win"] + frame["loss"] + frame["tie"]
        frame["win_rate"] = frame["win"] / total
        frame["loss_rate"] = frame["loss"] / total
        frame["win_rate_adjusted"] = (frame["win"] + 0.5 * frame["tie"]) / total
        return frame.sort_values(by="win_rate_adjusted", ascending=False, kind="stable"), left_out

    @staticmethod
    def battles(records: Iterable[dict[str, Any]]) -> tuple[pd.DataFrame, int]:
        """Pairwise records as battles (model_a = model_1) for the Arena-Hard rating; and games without a verdict."""
        import pandas as pd  # here: a judging run never needs it (~0.6 s to import)

        rows, missing = [], 0
        code = {"model_1": "model_a", "model_2": "model_b", "tie": "tie"}
        for r in records:
            for game in ("g1_winner", "g2_winner"):
                winner = code.get(r.get(game) or "")
                if winner is None:
                    missing += 1
                    continue
                rows.append((r["question_id"], r["model_1"], r["model_2"], winner))
        return pd.DataFrame(rows, columns=["question_id", "model_a", "model_b", "winner"]), missing


@register_kind
class MTBenchPairwiseBaseline(MTBenchPairwise):
    """mode pairwise-baseline: each model of model_list against baseline_model."""

    mode = "pairwise-baseline"

    def pairs(self) -> list[tuple[str, str]]:
        baseline = self.config.baseline_model
        assert baseline is not None
        return [(m, baseline) for m in self.config.model_list if m != baseline]


@register_kind
class MTBenchPairwiseAll(MTBenchPairwise):
    """mode pairwise-all: every pair of models in model_list."""

    mode = "pairwise-all"

    def pairs(self) -> list[tuple[str, str]]:
        return list(itertools.combinations(self.config.model_list, 2))
