"""Judging that follows answering: run_eval.py's schedule when the judge's GPUs are free of answer servers.

While gen_answer.py answers (in the calling thread, its servers in waves as usual), a judge
runs in a thread of its own with its own server: it reads the answer files as the engine
appends them, and judges each (model, question) as soon as the model's and the baseline's
answers exist, so judging a candidate starts with its first answers and goes on while the next
candidate answers. When answering ends, it judges what is left and stops.

Crash safety is gen_judgment.py's: each judgment is appended as one line when both games are
in, judgments on disk are skipped, and a rerun resumes. Answers are only read here (up to the
last complete line; a file rewritten in place by the answer step's closing sort is read anew).
The records are those gen_judgment.py writes for the same items.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arenajudge.config.models import JudgeConfig, ModelEntry
from arenajudge.core.errors import UserError
from arenajudge.endpoints.client import ModelClient, RequestPolicy
from arenajudge.endpoints.context_budget import ContextBudget, wants_budget
from arenajudge.endpoints.engine import Lane, RunReport, finish_files, log_run, run_lanes
from arenajudge.endpoints.ray_servers import RaySettings
from arenajudge.endpoints.servers import ServerSession
from arenajudge.judge.arena_hard import JudgeItem, judge_item
from arenajudge.judge.judge_run import judge_item_for, judgment_basis, load_references, resume
from arenajudge.records.provenance import Basis, answer_fingerprint
from arenajudge.records.storage import BenchPaths, JsonlAppender, load_answer_file, load_questions, sort_by_question

POLL_SECONDS = 0.25  # how often the answer files are read for new records


def judge_fits_beside(judge: ModelEntry, answering: list[ModelEntry]) -> bool:
    """True when the judge's server can run while every answering model's is up (no GPU or port in common).

    A server elsewhere (no `server` block) takes none of our GPUs.
    """
    if judge.server is None:
        return True
    return all(e.server is None or (e.server != judge.server and not judge.server.shares_hardware_with(e.server))
               for e in answering)


def judge_shares_server(judge: ModelEntry, answering: list[ModelEntry]) -> bool:
    """True when the judge's managed server is the one some answering entries also describe (the same server
    block and served model) and every other answering server can run beside it: one server then serves both
    steps, started once (`shared_server`)."""
    if judge.server is None or not any(e.server == judge.server for e in answering):
        return False
    return all(e.server is None or e.server == judge.server or not judge.server.shares_hardware_with(e.server)
               for e in answering)


@contextmanager
def shared_server(judge: ModelEntry, log_dir: Path, shared: bool) -> Iterator[None]:
    """The judge's server up around both steps when `shared`: the steps' own sessions find it answering and
    use it as one already running, so it starts once and stops once (on success, error or Ctrl-C)."""
    if not shared:
        yield
        return
    session = ServerSession(log_dir)
    report, interrupted = RunReport(), True
    try:
        with session.serving([judge]):
            yield
        interrupted = False
    finally:
        # one line of its own in runs.jsonl: the steps found the server answering and record no start-up;
        # also when stopped while it started, before any step (which would log its own stop)
        log_run(log_dir.parent / "runs.jsonl", "run_eval", report,
                {"models": [judge.name], "shared_server": True, **session.log_fields()}, interrupted=interrupted)


class AnswerTail:
    """The complete records another process or thread appends to a JSONL file, read as they come."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._inode: int | None = None
        self._offset = 0
        self._line = 0

    def read_new(self) -> list[dict[str, Any]]:
        try:
            f = self.path.open("rb")
        except FileNotFoundError:
            return []
        with f:
            stat = os.fstat(f.fileno())
            if stat.st_ino != self._inode or stat.st_size < self._offset:  # replaced (sorted) or cut: read anew
                self._inode, self._offset, self._line = stat.st_ino, 0, 0
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n") + 1  # a line still being written waits for its newline
        records = []
        for raw in data[:end].split(b"\n")[:-1]:
            self._line += 1
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                raise UserError(f"{self.path}:{self._line}: not valid JSON") from None
            if not isinstance(record, dict) or "question_id" not in record or not record.get("choices"):
                raise UserError(f"{self.path}:{self._line}: expected an answer record with question_id and choices")
            records.append(record)
        self._offset += end
        return records


@dataclass
class FollowingJudge:
    """gen_judgment.py over answers that are still being written; `run` in a thread, `finish` when they are all in."""

    config: JudgeConfig  # arena-hard judging against a baseline
    judge: ModelEntry
    data_dir: Path
    policy: RequestPolicy = field(default_factory=RequestPolicy)
    rejudge_missing: bool = False
    quiet: bool = False
    report: RunReport = field(default_factory=RunReport)
    error: BaseException | None = None
    ray: RaySettings | None = None  # the judge's server as Ray replicas (ray_servers)
    answers_final: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.paths = BenchPaths(self.config.bench_name, self.data_dir)
        self.questions = load_questions(self.paths.question_file)
        self.references: list[dict[Any, dict[str, Any]]] = load_references(self.paths, self.config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ control, from the calling thread
    def finish(self) -> None:
        """No more answers will come: judge what is left, then end."""
        self.answers_final.set()

    def cancel(self) -> None:
        """Stop now (Ctrl-C): what is judged is on disk, the rest is for the next run."""
        self.answers_final.set()
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            loop.call_soon_threadsafe(task.cancel)

    @property
    def exit_code(self) -> int:
        if isinstance(self.error, UserError):
            return 2
        return 1 if self.error is not None else self.report.exit_code

    # ------------------------------------------------------------ the thread
    def run(self) -> None:
        config, paths = self.config, self.paths
        session = ServerSession(paths.bench_dir / "server_logs", prefix_cache=True, ray=self.ray)
        appenders: dict[Path, JsonlAppender] = {}  # one open judgment file per model
        try:
            self.judge = session.place(self.judge)  # under Ray: its replicas' URLs are its endpoints
            with session.serving([self.judge]):
                asyncio.run(self._judge(appenders, session))
        except asyncio.CancelledError:
            self.report.interrupted = True
        except BaseException as exc:  # reported by the calling thread
            self.error = exc
        finally:
            for appender in appenders.values():
                appender.close()
            order = [q["question_id"] for q in self.questions]
            finish_files(self.report, [functools.partial(sort_by_question, paths.judgment_file(config.judge_model, m),
                                                         order) for m in config.model_list])
            log_run(paths.runs_file, "gen_judgment", self.report,
                    {"judge": config.judge_model, "baseline": config.baseline_model, "models": config.model_list,
                     "bench": config.bench_name, "sample": None, "overlapped_with_answers": True,
                     **session.log_fields()})
            print(self.report.summary("judgments"), file=sys.stderr, flush=True)

    async def _judge(self, appenders: dict[Path, JsonlAppender], session: ServerSession) -> None:
        self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
        config = self.config
        client = session.watch(ModelClient(self.judge, self.policy))

        def write(item: JudgeItem, record: dict[str, Any]) -> None:
            path = self.paths.judgment_file(config.judge_model, item.model)
            if path not in appenders:
                appenders[path] = JsonlAppender(path)
            appenders[path].write(record)

        budget = ContextBudget(client) if wants_budget(self.judge) else None  # counted before sending
        lane: Lane[JudgeItem] = Lane(
            name=config.judge_model, client=client, items=self._items(),
            work=lambda item: judge_item(client, config, item, budget), write=write,
            describe=lambda item: f"{item.model} / question {item.question_id}",
            max_items=max(1, client.capacity // (2 if config.pairwise else 1)) + 1,
        )
        try:
            await run_lanes([lane], self.report, quiet=self.quiet)
        finally:
            self.report.capped += budget.capped if budget else 0

    def _done(self) -> tuple[dict[str, set[Any]], Basis]:
        """The judgments that count already (stale ones moved aside, as gen_judgment.py does), and the basis
        that later answers are added to as they land."""
        config = self.config
        assert config.baseline_model is not None
        on_disk = {m: load_answer_file(self.paths.answer_file(m)) if self.paths.answer_file(m).exists() else {}
                   for m in dict.fromkeys([*config.model_list, config.baseline_model])}
        basis = judgment_basis(config, self.questions, on_disk[config.baseline_model], on_disk, self.references)
        done = {model: resume(self.paths, config.judge_model, model, self.questions, basis, self.rejudge_missing,
                              self.report)
                for model in config.model_list}
        return done, basis

    async def _items(self) -> AsyncIterator[JudgeItem]:
        """Judge items as their answers appear, question-major within each read (as gen_judgment.py orders them)."""
        config = self.config
        baseline = config.baseline_model
        assert baseline is not None
        done, basis = self._done()
        self.report.skipped = sum(len(done[m] & {q["question_id"] for q in self.questions}) for m in done)
        tails = {m: AnswerTail(self.paths.answer_file(m)) for m in dict.fromkeys([*config.model_list, baseline])}
        answers: dict[str, dict[Any, dict[str, Any]]] = {m: {} for m in tails}
        sent: set[tuple[str, Any]] = set()
        while True:
            final = self.answers_final.is_set()  # read before the files: this read then sees every answer
            for model, tail in tails.items():
                for record in tail.read_new():
                    answers[model][record["question_id"]] = record
                    basis.answers.setdefault(model, {})[str(record["question_id"])] = answer_fingerprint(record)
            for q in self.questions:
                qid = q["question_id"]
                base = answers[baseline].get(qid)
                if base is None:
                    continue
                for model in config.model_list:
                    answer = answers[model].get(qid)
                    if answer is None or qid in done[model] or (model, qid) in sent:
                        continue
                    sent.add((model, qid))
                    yield judge_item_for(config, self.judge, basis, q, model, answers, answers[baseline], self.references)
            if final:
                return
            await asyncio.sleep(POLL_SECONDS)
