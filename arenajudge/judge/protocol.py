"""The built-in judging kinds, and the one place gen_judgment.py asks which kind a judge config runs.

Arena-Hard pairwise is defined here (each model against the baseline, two games, one file per
model); MT-Bench single and pairwise live in mtbench_protocol.py. A kind says which items there are
to judge, how one is judged, which stored records count, where records live and what its run prints
(judge/kinds.py has the interface and its defaults). How stored records become battles or tables is
the kind's too: MTBenchSingle.tables, MTBenchPairwise.battles, and for Arena-Hard
battles.battles_from_judgments.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

from arenajudge.config.models import JudgeConfig, ModelEntry
from arenajudge.core.templates import ARENA_FIELDS
from arenajudge.endpoints.client import ModelClient
from arenajudge.endpoints.engine import RunReport
from arenajudge.judge.arena_hard import JudgeItem, check_fillable, judge_item
from arenajudge.judge.judge_run import (
    judge_item_for,
    judgment_basis,
    load_references,
    require_answers,
    require_baseline,
    resume,
)
from arenajudge.judge.kinds import JudgingKind, kind_for, register_kind
from arenajudge.judge.mtbench_protocol import MTBenchPairwiseAll, MTBenchPairwiseBaseline, MTBenchSingle
from arenajudge.records import locks
from arenajudge.records.provenance import Basis
from arenajudge.records.storage import BenchPaths, sort_by_question

if TYPE_CHECKING:
    from arenajudge.endpoints.context_budget import ContextBudget

Answers = dict[Any, dict[str, Any]]  # question id -> answer record


@register_kind
@dataclass
class ArenaHardPairwise(JudgingKind[JudgeItem]):
    """Arena-Hard: each model's answer against the baseline's, two games with positions swapped
    (arena_hard.py); one record per question in model_judgment/<judge>/<model>.jsonl."""

    mode: ClassVar[str | None] = None
    placeholders: ClassVar[re.Pattern[str]] = ARENA_FIELDS  # checked when the judge config loads

    config: JudgeConfig
    judge_entry: ModelEntry  # the judge model's api config entry
    paths: BenchPaths
    questions: list[dict[str, Any]]
    baseline: Answers
    answers: dict[str, Answers]
    references: list[Answers]
    basis: Basis

    @classmethod
    def load(cls, config: JudgeConfig, judge: ModelEntry, paths: BenchPaths, questions: list[dict[str, Any]],
             all_questions: list[dict[str, Any]]) -> Self:
        """The protocol with its inputs read and checked: a UserError before anything is written."""
        baseline_model = require_baseline(config)
        baseline = require_answers(paths, config.path, baseline_model, questions, "baseline_model")
        answers = {m: require_answers(paths, config.path, m, questions, f"model_list[{i}]")
                   for i, m in enumerate(config.model_list)}
        references = load_references(paths, config)
        check_fillable(config, questions, answers, baseline, references)
        basis = judgment_basis(config, all_questions, baseline, answers, references)
        return cls(config, judge, paths, questions, baseline, answers, references, basis)

    def lock_files(self) -> list[locks.OutputLock]:
        # one per model's judgment file: a run for other models under this judge goes on beside this one
        return [*locks.judgment_locks(self.paths, self.config.judge_model, self.config.model_list),
                *locks.server_locks(self.paths, [self.judge_entry])]

    def done(self, rejudge_missing: bool, report: RunReport) -> set[Hashable]:
        return {(model, qid) for model in self.config.model_list
                for qid in resume(self.paths, self.config.judge_model, model, self.questions, self.basis,
                                  rejudge_missing, report)}

    def items(self, done: set[Hashable], report: RunReport) -> list[JudgeItem]:
        # Question-major: the prompts of one question (same system prompt, question and, in game 1,
        # baseline answer first) reach the server together, which suits its prefix cache.
        items = []
        for q in self.questions:
            for model in self.config.model_list:
                if (model, q["question_id"]) in done:
                    report.skipped += 1
                    continue
                items.append(judge_item_for(self.config, self.judge_entry, self.basis, q, model, self.answers,
                                            self.baseline, self.references))
        return items

    async def judge(self, client: ModelClient, item: JudgeItem, budget: ContextBudget | None) -> dict[str, Any]:
        return await judge_item(client, self.config, item, budget)

    def record_file(self, item: JudgeItem) -> Path:
        return self.paths.judgment_file(self.config.judge_model, item.model)

    def record_files(self) -> list[Path]:
        return [self.paths.judgment_file(self.config.judge_model, model) for model in self.config.model_list]

    def sort_records(self, path: Path, order: list[Any]) -> None:
        sort_by_question(path, order)

    def describe(self, item: JudgeItem) -> str:
        return f"{item.model} / question {item.question_id}"

    def in_flight(self, capacity: int) -> int:
        return max(1, capacity // (2 if self.config.pairwise else 1)) + 1

    def unread_verdicts(self, record: dict[str, Any]) -> int:
        return 0  # the engine counts the games without a verdict

    def announce(self, count: int) -> str:
        return f"{count} answers with {self.config.judge_model} against {self.config.baseline_model}"

    def log_fields(self, sample: int | None) -> dict[str, Any]:
        return {"judge": self.config.judge_model, "baseline": self.config.baseline_model,
                "models": self.config.model_list, "bench": self.config.bench_name, "sample": sample}


# Every judging kind, registered by its module on import: a new kind's module is imported here too.
BUILT_IN_KINDS = (ArenaHardPairwise, MTBenchSingle, MTBenchPairwiseBaseline, MTBenchPairwiseAll)


def protocol_for(config: JudgeConfig) -> type[JudgingKind[Any]]:
    """The judging kind of a judge config (its `mode:`; none is Arena-Hard pairwise against a baseline)."""
    return kind_for(config)
