"""The judging-protocol seam: what gen_judgment.py needs of a way of judging, and the one place that picks it.

A protocol (Arena-Hard pairwise, MT-Bench single, MT-Bench pairwise) says which items there are to
judge, how one item is judged against a ModelClient, which stored records already count (stale
ones moved aside, matching archived ones taken back, missing verdicts under --rejudge-missing),
where its records live and how they are sorted, and what its run prints and logs. gen_judgment.py
runs any of them through one path: lock, resume, items, the lane under the server session, sort,
log. How stored records become battles or tables is the protocol's too:
MTBenchSingle.tables, MTBenchPairwise.battles, and for Arena-Hard battles.battles_from_judgments.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar

from . import locks
from .client import ModelClient
from .config import JudgeConfig, ModelEntry
from .engine import RunReport
from .judge_run import (
    judge_item_for,
    judgment_basis,
    load_references,
    require_answers,
    require_baseline,
    resume,
)
from .judging import JudgeItem, check_fillable, judge_item
from .mtbench_protocol import MTBenchPairwise, MTBenchSingle
from .provenance import Basis
from .storage import BenchPaths, sort_by_question

if TYPE_CHECKING:
    from .vllm.context_budget import ContextBudget

Item = TypeVar("Item")
Answers = dict[Any, dict[str, Any]]  # question id -> answer record


class JudgingProtocol(Protocol[Item]):
    """One way of judging, its inputs read and checked (each implementation's `load`)."""

    def lock_files(self) -> list[locks.OutputLock]:
        """The locks that make this run the only writer of its record files (and of the judge's managed server)."""
        ...

    def done(self, rejudge_missing: bool, report: RunReport) -> set[Hashable]:
        """Record keys of the stored records that count; records made from something else are moved aside
        first (counted in report.stale); with `rejudge_missing` a record with a missing verdict does not count."""
        ...

    def items(self, done: set[Hashable], report: RunReport) -> list[Item]:
        """The items left to judge, question-major; those already `done` are counted in report.skipped."""
        ...

    async def judge(self, client: ModelClient, item: Item, budget: ContextBudget | None) -> dict[str, Any]:
        """The record of one item, asked of the judge behind `client` (`budget`: the judge's context, if counted)."""
        ...

    def record_file(self, item: Item) -> Path:
        """The file the record of `item` is appended to."""
        ...

    def record_files(self) -> list[Path]:
        """Every file this run may write, sorted at its end."""
        ...

    def sort_records(self, path: Path, order: list[Any]) -> None:
        """Rewrite `path` with one record per key, in the questions' `order`."""
        ...

    def describe(self, item: Item) -> str:
        """How a failed item is named in the summary."""
        ...

    def in_flight(self, capacity: int) -> int:
        """Items judged at once by a judge that takes `capacity` requests at once."""
        ...

    def unread_verdicts(self, record: dict[str, Any]) -> int:
        """Verdicts missing from `record` that the engine does not count itself (it counts the `games` of a record)."""
        ...

    def announce(self, count: int) -> str:
        """What the run's first line says is judged: `count` items, by whom (and against what)."""
        ...

    def log_fields(self, sample: int | None) -> dict[str, Any]:
        """What runs.jsonl records of this run besides its counts."""
        ...


@dataclass
class ArenaHardPairwise:
    """Arena-Hard: each model's answer against the baseline's, two games with positions swapped
    (judging.py); one record per question in model_judgment/<judge>/<model>.jsonl."""

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


def protocol_for(mode: str | None) -> type[ArenaHardPairwise] | type[MTBenchSingle] | type[MTBenchPairwise]:
    """The protocol of a judge config's `mode:` (None: Arena-Hard pairwise against a baseline)."""
    if mode is None:
        return ArenaHardPairwise
    return MTBenchSingle if mode == "single" else MTBenchPairwise
