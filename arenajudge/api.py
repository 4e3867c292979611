"""The library API: answer, judge, rate and report from Python (a notebook), with typed inputs and results.

    from arenajudge import api

    api.answer("config/gen_answer_config.yaml")            # -> RunReport
    api.judge("config/judge_config.yaml")                  # -> RunReport
    board = api.rate(bench="arena-hard-v0.1", judge="judge", baseline="base")   # -> BoardResult
    print(board.rows[0])                                   # BoardRow(model=..., score=..., lower=..., upper=...)
    api.report(board, "report.html")                       # -> Path

Configs are objects (`load_answer_config`, `load_judge_config`, `load_api_config`) or paths to the
YAML files the commands read; bad input raises `UserError` with the message the commands print.
The commands (gen_answer.py, gen_judgment.py, show_result.py, run_eval.py) are faces over the same
functions: answering and judging behave exactly as there (locks, managed servers, resume, stale
records moved aside, runs.jsonl), and print the same progress and summary lines on stderr.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arenajudge.answer.run import answer_bench
from arenajudge.config.models import (
    AnswerConfig,
    JudgeConfig,
    ModelEntry,
    load_answer_config,
    load_api_config,
    load_judge_config,
    require_entry,
)
from arenajudge.core.errors import UserError
from arenajudge.endpoints.engine import RunReport
from arenajudge.endpoints.run_options import RunOptions
from arenajudge.judge.run import judge_bench
from arenajudge.present.leaderboard import BoardResult, BoardSpec, build_board
from arenajudge.present.report import BoardRow
from arenajudge.present.report_page import write_board_report
from arenajudge.rating.judge_card import JudgeCard
from arenajudge.rating.until_decided import UntilDecided, UntilDecidedResult, judge_until_decided

__all__ = [
    "AnswerConfig", "BoardResult", "BoardRow", "BoardSpec", "Configs", "JudgeConfig", "ModelEntry", "RunOptions",
    "RunReport", "UntilDecided", "UntilDecidedResult", "UserError", "answer", "judge", "load_answer_config",
    "load_api_config", "load_configs", "load_judge_config", "rate", "report", "until_decided",
]

DEFAULT_ANSWER_CONFIG = Path("config/gen_answer_config.yaml")
DEFAULT_JUDGE_CONFIG = Path("config/judge_config.yaml")
DEFAULT_API_CONFIG = Path("config/api_config.yaml")

Entries = dict[str, ModelEntry]


@dataclass(frozen=True)
class Configs:
    """A project's configs, loaded and checked: the answer and judge configs (None when their file is absent)
    and the api config's entries."""

    answer: AnswerConfig | None
    judge: JudgeConfig | None
    entries: Entries
    api_file: Path


def load_configs(answer: str | Path = DEFAULT_ANSWER_CONFIG, judge: str | Path = DEFAULT_JUDGE_CONFIG,
                 api: str | Path = DEFAULT_API_CONFIG) -> Configs:
    """The configs the commands read by default, checked as they check them (the api config must exist)."""
    answer, judge, api = Path(answer), Path(judge), Path(api)
    return Configs(answer=load_answer_config(answer) if answer.exists() else None,
                   judge=load_judge_config(judge) if judge.exists() else None,
                   entries=load_api_config(api), api_file=api)


def _entries(api_config: Entries | str | Path) -> tuple[Entries, Path]:
    if isinstance(api_config, dict):
        return api_config, Path("(api config given in Python)")
    return load_api_config(Path(api_config)), Path(api_config)


def _judging(config: JudgeConfig | str | Path, api_config: Entries | str | Path) -> tuple[JudgeConfig, ModelEntry]:
    """The judge config (loaded when a path) and its judge's entry, with its keys."""
    config = config if isinstance(config, JudgeConfig) else load_judge_config(Path(config))
    entries, api_file = _entries(api_config)
    return config, require_entry(entries, config.judge_model, config.path, "judge_model", api_file)


def answer(config: AnswerConfig | str | Path = DEFAULT_ANSWER_CONFIG, *, api_config: Entries | str | Path = DEFAULT_API_CONFIG,
           data_dir: str | Path = "data", options: RunOptions | None = None) -> RunReport:
    """Every model of the answer config answers every question of its bench (gen_answer.py).

    Questions already answered are skipped, so a second call completes an interrupted run. The report counts
    what was done, skipped and failed; `report.exit_code` is what gen_answer.py would exit with."""
    config = config if isinstance(config, AnswerConfig) else load_answer_config(Path(config))
    entries, api_file = _entries(api_config)
    models = [require_entry(entries, name, config.path, f"model_list[{i}]", api_file)
              for i, name in enumerate(config.model_list)]
    return answer_bench(config, models, data_dir=Path(data_dir), options=options)


def judge(config: JudgeConfig | str | Path = DEFAULT_JUDGE_CONFIG, *, api_config: Entries | str | Path = DEFAULT_API_CONFIG,
          data_dir: str | Path = "data", options: RunOptions | None = None, sample: int | None = None,
          sample_seed: int = 0, rejudge_missing: bool = False) -> RunReport:
    """Judge the answers under the judge config (gen_judgment.py): Arena-Hard pairs against the baseline, or
    its MT-Bench `mode:`. Judgments that still count are kept and skipped; `sample` judges a fixed random
    sample of that many questions; `rejudge_missing` judges again the games without a verdict."""
    config, judge_entry = _judging(config, api_config)
    return judge_bench(config, judge_entry, data_dir=Path(data_dir), options=options, sample=sample,
                       sample_seed=sample_seed, rejudge_missing=rejudge_missing)


def until_decided(until: UntilDecided, config: JudgeConfig | str | Path = DEFAULT_JUDGE_CONFIG, *,
                  api_config: Entries | str | Path = DEFAULT_API_CONFIG, data_dir: str | Path = "data",
                  options: RunOptions | None = None, rejudge_missing: bool = False) -> UntilDecidedResult:
    """Judge `until.models` in batches until every pair is decided (gen_judgment.py --until-decided); the result
    holds each pair's decision (`decisions`) and the lines gen_judgment.py prints (`lines()`)."""
    config, judge_entry = _judging(config, api_config)
    return judge_until_decided(config, judge_entry, until, data_dir=Path(data_dir),
                               options=options, rejudge_missing=rejudge_missing)


def rate(bench: str | None = None, judge: str | None = None, baseline: str | None = None, *,
         config: JudgeConfig | str | Path | None = None, data_dir: str | Path = "data", spec: BoardSpec | None = None,
         **settings: Any) -> BoardResult:
    """The leaderboard (show_result.py's board) as a typed result: `rows` (BoardRow: model, score, lower, upper,
    avg_tokens, ...), `header`, `notes`, the battles and the rating.

    Bench, judge and baseline default to the judge config's (`config`, a JudgeConfig or its path). `settings` are
    BoardSpec's fields (method, unit, rounds, seed, weight, ci_level, category, style, length_controlled,
    compare, ...); or pass a whole `spec`. Nothing is written (no caches). `board.empty` is true when no game
    has a verdict that counts; `board.notes` say why."""
    if spec is None:
        if config is not None and not isinstance(config, JudgeConfig):
            config = load_judge_config(Path(config))
        bench = bench or (config.bench_name if config else None)
        judge = judge or (config.judge_model if config else None)
        baseline = baseline or (config.baseline_model if config else None)
        missing = [name for name, value in (("bench", bench), ("judge", judge), ("baseline", baseline)) if not value]
        if missing:
            raise UserError(f"rate: name the {', '.join(missing)} (or pass the judge config that names them)")
        assert bench and judge and baseline
        spec = BoardSpec(bench=bench, data_dir=Path(data_dir), judges=(judge,), baseline=baseline, **settings)
    elif settings or bench or judge or baseline or config is not None:
        raise UserError("rate: pass either a BoardSpec or the board's names and settings, not both")
    return build_board(spec)


def report(board: BoardResult, path: str | Path, *, card: JudgeCard | None = None, top: int = 5) -> Path:
    """Write the board's self-contained HTML report (show_result.py --report's page) and return its path: the
    board, its category boards (spec.category), the comparison (spec.compare, `top` questions per pair),
    judge diagnostics, the runs' cost and how it was made; `card` adds a judge card."""
    spec = board.spec
    command = (f"arenajudge.api.rate(bench={spec.bench!r}, judge={spec.judge_label!r}, baseline={spec.baseline!r}, "
               f"data_dir={str(spec.data_dir)!r})")
    return write_board_report(Path(path), board, command=command, top=top, card=card)
