"""Judging kinds: what gen_judgment.py needs of a way of judging, the defaults, and the registry by `mode:`.

A kind is one module with one subclass of `JudgingKind` (or of `OneFileKind`, which keeps every
record of a judge in one file and does resume, stale records and sorting for it) and one
`register_kind` line. It owns, with defaults here:
- its locks (one per record file it writes: another kind, judge or mode runs beside it);
- its fingerprint rule (`settings_fingerprint`: the judge settings a record was made with);
- its placeholders (`placeholders`: the prompt template names it fills, checked before any request);
- its display (`announce`, `describe`: what the run prints of the items it judges).
Arena-Hard pairwise (arena_hard_kind), MT-Bench single and pairwise (mtbench_protocol) are kinds.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar

from arenajudge.config.models import JudgeConfig, ModelEntry, add_judging_mode
from arenajudge.core.errors import UserError
from arenajudge.core.names import to_file_name
from arenajudge.core.templates import check_names, placeholders
from arenajudge.records import locks
from arenajudge.records.provenance import Basis, judge_settings_fingerprint
from arenajudge.records.stale import move_aside, split_stale, take_back_latest
from arenajudge.records.storage import BenchPaths, read_jsonl, repair_tail, write_jsonl_atomic

if TYPE_CHECKING:
    from arenajudge.endpoints.client import ModelClient
    from arenajudge.endpoints.context_budget import ContextBudget
    from arenajudge.endpoints.engine import RunReport

Item = TypeVar("Item")


class JudgingKind(ABC, Generic[Item]):
    """One way of judging, its inputs read and checked by `load`. Subclasses set `mode` and say how to judge."""

    mode: ClassVar[str | None]  # the judge config's `mode:` that picks this kind (None: Arena-Hard)
    # the prompt template's names this kind fills (a numbered question and answer by default)
    placeholders: ClassVar[re.Pattern[str]] = re.compile(r"question(_[1-9]\d*)?|answer(_[1-9]\d*)?")

    config: JudgeConfig
    judge_entry: ModelEntry
    paths: BenchPaths

    # ------------------------------------------------------------ what a kind must say
    @classmethod
    @abstractmethod
    def load(cls, config: JudgeConfig, judge: ModelEntry, paths: BenchPaths, questions: list[dict[str, Any]],
             all_questions: list[dict[str, Any]]) -> Self:
        """The kind with its inputs read and checked: a UserError before anything is written."""

    @abstractmethod
    def done(self, rejudge_missing: bool, report: RunReport) -> set[Hashable]:
        """Record keys of the stored records that count; records made from something else are moved aside
        first (counted in report.stale); with `rejudge_missing` a record with a missing verdict does not count."""

    @abstractmethod
    def items(self, done: set[Hashable], report: RunReport) -> list[Item]:
        """The items left to judge, question-major; those already `done` are counted in report.skipped."""

    @abstractmethod
    async def judge(self, client: ModelClient, item: Item, budget: ContextBudget | None) -> dict[str, Any]:
        """The record of one item, asked of the judge behind `client` (`budget`: the judge's context, if counted)."""

    # ------------------------------------------------------------ defaults a kind may override
    @classmethod
    def settings_fingerprint(cls, config: JudgeConfig) -> str:
        """The fingerprint rule: which judge settings a record was made with (changing one judges again)."""
        return judge_settings_fingerprint(config)

    @classmethod
    def check_template(cls, config: JudgeConfig) -> None:
        """The config's prompt template uses only names this kind fills."""
        why = f"mode {cls.mode} fills {cls.placeholders.pattern}"
        for i, template in enumerate(config.prompt_template):
            where = f"{config.path}: key 'prompt_template[{i}]'"
            check_names(placeholders(template, where), cls.placeholders, where, why)

    def record_files(self) -> list[Path]:
        """Every file this run may write, sorted at its end (by default one per judge and mode)."""
        return [self.paths.judgment_root / f"{to_file_name(self.config.judge_model, 'judge name')}_{self.mode}.jsonl"]

    def record_file(self, item: Item) -> Path:
        """The file the record of `item` is appended to."""
        return self.record_files()[0]

    def lock_files(self) -> list[locks.OutputLock]:
        """The locks that make this run the only writer of its records (one per record file) and the one user of
        the judge's managed server that stops it."""
        return [*(locks.record_lock(self.paths, path) for path in self.record_files()),
                *locks.server_locks(self.paths, [self.judge_entry])]

    def sort_records(self, path: Path, order: list[Any]) -> None:
        """Rewrite `path` with its records in the questions' `order` (stable within a question)."""
        if not path.exists():
            return
        rank = {str(qid): i for i, qid in enumerate(order)}
        records = read_jsonl(path, allow_torn_tail=True)
        write_jsonl_atomic(path, sorted(records, key=lambda r: rank.get(str(r.get("question_id")), len(rank))))

    def describe(self, item: Item) -> str:
        """How a failed item is named in the summary."""
        return str(item)

    def in_flight(self, capacity: int) -> int:
        """Items judged at once by a judge that takes `capacity` requests at once."""
        return capacity

    def unread_verdicts(self, record: dict[str, Any]) -> int:
        """Verdicts missing from `record` that the engine does not count itself (it counts the `games` of a record)."""
        return 0

    def announce(self, count: int) -> str:
        """What the run's first line says is judged: `count` items, by whom (and against what)."""
        return f"{count} items ({self.mode}) with {self.config.judge_model}"

    def log_fields(self, sample: int | None) -> dict[str, Any]:
        """What runs.jsonl records of this run besides its counts."""
        return {"judge": self.config.judge_model, "mode": self.mode, "models": self.config.model_list,
                "bench": self.config.bench_name, "sample": sample}


class OneFileKind(JudgingKind[Item]):
    """A kind whose records of one judge all live in one file, each under a key (`record_key`).

    Resume, stale records (moved aside, taken back when they match again) and sorting are done here;
    a subclass says which items each question has (`candidates`), how a record is keyed, why a
    record no longer counts (`mismatch`), and when it lacks a verdict (`is_missing`).
    """

    basis: Basis
    questions: list[dict[str, Any]]

    @abstractmethod
    def candidates(self, question: dict[str, Any]) -> list[tuple[Item, Hashable]]:
        """The items of `question` and the key each one's record will have."""

    @abstractmethod
    def record_key(self, record: dict[str, Any]) -> Hashable:
        """The key of a stored record (one record counts per key)."""

    @abstractmethod
    def mismatch(self, record: dict[str, Any]) -> str | None:
        """Why `record` no longer counts (a provenance.REASONS key), or None."""

    def is_missing(self, record: dict[str, Any]) -> bool:
        """The record lacks a verdict (--rejudge-missing judges it again)."""
        return record.get("score") is None

    def unread_verdicts(self, record: dict[str, Any]) -> int:
        return int(self.is_missing(record))

    @property
    def out(self) -> Path:
        return self.record_files()[0]

    def done(self, rejudge_missing: bool, report: RunReport) -> set[Hashable]:
        out = self.out
        repair_tail(out)
        wanted = {str(q["question_id"]) for q in self.questions}
        keep, stale = split_stale(read_jsonl(out, allow_torn_tail=True) if out.exists() else [],
                                  lambda r: self.mismatch(r) if str(r["question_id"]) in wanted else None)
        if stale:
            move_aside(out, self.paths.replaced_file(out), keep, stale)

        def counts(record: dict[str, Any]) -> bool:  # with --rejudge-missing, a missing verdict is not done
            return not (rejudge_missing and self.is_missing(record))

        done = {self.record_key(r) for r in keep if counts(r)}
        # archived records this run would otherwise redo, made from what is on disk now: taken back
        wanted_keys = {key for q in self.questions for _, key in self.candidates(q)} - done
        matches: Callable[[dict[str, Any]], bool] = lambda r: counts(r) and self.mismatch(r) is None  # noqa: E731
        back = take_back_latest(out, self.paths.replaced_file(out), lambda path: read_jsonl(path, allow_torn_tail=True),
                                wanted_keys, self.record_key, matches)
        done |= {self.record_key(r) for r in back}
        report.restored += len(back)
        if stale or back:
            report.stale_where = str(self.paths.replaced_root)
        report.stale += len({self.record_key(r) for r, _ in stale} - done)
        return done

    def items(self, done: set[Hashable], report: RunReport) -> list[Item]:
        items: list[Item] = []
        for q in self.questions:
            for item, key in self.candidates(q):
                if key in done:
                    report.skipped += 1
                else:
                    items.append(item)
        return items

    def sort_records(self, path: Path, order: list[Any]) -> None:
        """One record per key (the latest), in the questions' `order`, then by key."""
        if not path.exists():
            return
        latest = {self.record_key(r): r for r in read_jsonl(path, allow_torn_tail=True)}
        rank = {str(qid): i for i, qid in enumerate(order)}
        position = {key: (rank.get(str(r["question_id"]), len(rank)), str(r["question_id"]))
                    for key, r in latest.items()}
        write_jsonl_atomic(path, [latest[k] for k in sorted(latest, key=lambda k: (position[k], repr(k)))])


KINDS: dict[str | None, type[JudgingKind[Any]]] = {}


def register_kind(kind: type[JudgingKind[Any]]) -> type[JudgingKind[Any]]:
    """Make `kind` what a judge config's `mode: <kind.mode>` runs (also usable as a class decorator)."""
    if kind.mode in KINDS and KINDS[kind.mode] is not kind:
        raise ValueError(f"a judging kind for mode {kind.mode!r} is already registered")
    KINDS[kind.mode] = kind
    add_judging_mode(kind.mode)
    return kind


def kind_for(config: JudgeConfig) -> type[JudgingKind[Any]]:
    """The kind a judge config's `mode:` names; a UserError naming the key when none is registered."""
    if config.mode not in KINDS:
        modes = ", ".join(str(m) for m in KINDS if m is not None)
        raise UserError(f"{config.path}: key 'mode': unknown mode {config.mode!r} (one of: {modes}; omit it for arena-hard)")
    return KINDS[config.mode]
