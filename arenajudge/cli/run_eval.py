"""run_eval.py: from checkpoints to leaderboard in one command.

Steps, each skipped when its output is already complete on disk (so a rerun resumes):
1. answers of the candidates and of the baseline (gen_answer.py; models whose managed servers
   share GPUs are served one after the other, models on disjoint GPUs at once),
2. judgments of the candidates against the baseline (gen_judgment.py; the judge's managed
   server is started only once the answer servers are down). When the judge's server shares
   no GPU (or port) with any answering model's, steps 1 and 2 run at once instead: the judge
   starts with the first answers and judges each one as it lands on disk (overlap.py;
   --no-overlap keeps them apart),
3. the leaderboard (show_result.py).

What to run comes from flags, else from a `pipeline:` section (of --pipeline-file, or of the
judge config itself), else from the judge config (model_list, judge_model, baseline_model).
The steps are the library's (answer.run, judge.run, the leaderboard service), called with
configs derived in memory from the user's (model_list, bench, judge and baseline replaced) and
checked against the user's files, so a problem is named there. A copy of each derived config is
kept in data/<bench>/pipeline/ as a record of what ran, so a step can be rerun by hand; no step
reads it.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from arenajudge.config.fields import key_error, validated
from arenajudge.config.models import (
    AnswerConfig,
    JudgeConfig,
    ModelEntry,
    PipelineDefaults,
    load_api_config,
    load_pipeline_section,
    load_yaml,
    require_entry,
)
from arenajudge.core.errors import UserError, run_cli
from arenajudge.core.names import check_name
from arenajudge.endpoints.ray_servers import RaySettings, format_replicas, ray_settings
from arenajudge.endpoints.run_options import RunOptions
from arenajudge.judge.judge_run import judgment_basis
from arenajudge.records.storage import BenchPaths, load_answer_file, load_judgment_file, load_questions

ANSWER_DEFAULTS = {"temperature": 0.0, "max_tokens": 4096, "num_choices": 1}


def build_parser() -> argparse.ArgumentParser:
    from arenajudge.cli.common import add_dead_after_flag, add_ray_flags  # here: they bring the openai client

    p = argparse.ArgumentParser(
        prog="run_eval.py",
        description="Answers, judgments and leaderboard in one command, starting and stopping the vLLM servers "
                    "of api config entries that have a `server` block. Finished steps are skipped on a rerun.")
    p.add_argument("--models", nargs="+", metavar="MODEL", help="candidates (default: pipeline.models, else the "
                                                                  "judge config's model_list)")
    p.add_argument("--judge", help="judge model (default: pipeline.judge, else judge_model)")
    p.add_argument("--baseline", help="baseline model (default: pipeline.baseline, else baseline_model)")
    p.add_argument("--bench-name", help="bench under the data dir (default: pipeline.bench_name, else the judge config's)")
    p.add_argument("--setting-file", type=Path, default=Path("config/judge_config.yaml"),
                   help="judge config: prompt, regex, judge settings (default: %(default)s)")
    p.add_argument("--answer-setting-file", type=Path, default=Path("config/gen_answer_config.yaml"),
                   help="answer config: temperature, max_tokens, ... (default: %(default)s; absent: temperature 0, "
                        "max_tokens 4096, one choice)")
    p.add_argument("--pipeline-file", type=Path, help="YAML file with a `pipeline:` section (default: the judge config's)")
    p.add_argument("--endpoint-file", type=Path, help="api config (default: pipeline.api_config, else config/api_config.yaml)")
    p.add_argument("--data-dir", type=Path, default=Path("data"), help="root of the data layout (default: %(default)s)")
    p.add_argument("--rejudge-missing", action="store_true",
                   help="judge again the games without a verdict (otherwise a judgment with a missing verdict counts as done)")
    p.add_argument("--no-overlap", action="store_true",
                   help="judge only once every answer is in, even when the judge's GPUs are free of answer servers "
                        "(by default the judge then starts with the first answers and judges while the rest come)")
    p.add_argument("--client-processes", type=int, default=1, metavar="N",
                   help="send each step's requests from N processes (see gen_judgment.py --help; default: %(default)s)")
    add_dead_after_flag(p)
    add_ray_flags(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--wait", action="store_true",
                   help="if another run is writing the same answers or judgments, wait for it instead of stopping")
    return p


def _judge_config_value(path: Path, judge_raw: dict[str, Any], key: str, *, required: bool = False) -> Any:
    """One key of the judge config, checked only when flags and the `pipeline:` section leave it open."""
    value = getattr(validated(PipelineDefaults, {key: judge_raw.get(key)}, path), key)
    if value is None and required:
        raise key_error(path, key, "missing (required)")
    return value


class Plan:
    """What the pipeline runs, resolved from flags, the `pipeline:` section and the judge config."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.judge_file: Path = args.setting_file
        judge_raw = load_yaml(self.judge_file)
        section_file = args.pipeline_file or self.judge_file
        section = load_pipeline_section(section_file)
        def fallback(key: str, required: bool = False) -> Any:
            return _judge_config_value(self.judge_file, judge_raw, key, required=required)

        self.models: list[str] = args.models or section.models or fallback("model_list")
        self.judge: str = args.judge or section.judge or fallback("judge_model", required=True)
        self.baseline: str = args.baseline or section.baseline or fallback("baseline_model") or ""
        self.bench: str = args.bench_name or section.bench_name or fallback("bench_name", required=True)
        self.api_file: Path = args.endpoint_file or Path(section.api_config)
        answer_file = self.answer_file = Path(section.answer_config or str(args.answer_setting_file))
        self.show_args: list[str] = [str(a) for a in section.show_result_args]
        # --ray wins over `pipeline.ray`; a section without an address means auto
        self.ray: str | None = args.ray or (section.ray.address or "auto" if section.ray is not None else None)
        self.ray_replicas: str = args.ray_replicas
        if args.ray_replicas == "1" and section.ray is not None and section.ray.replicas is not None:
            self.ray_replicas = format_replicas(section.ray.replicas)
        if not self.models:
            raise UserError(f"no candidate models: pass --models or set pipeline.models / model_list in {section_file}")
        if not self.baseline:
            raise UserError(f"{self.judge_file}: key 'baseline_model': missing; pass --baseline or set it")
        if judge_raw.get("mode") is not None:
            raise UserError(f"{self.judge_file}: key 'mode': run_eval.py runs arena-hard judging against a baseline; "
                            "run MT-Bench modes with gen_answer.py and gen_judgment.py")
        entries = self.entries = load_api_config(self.api_file)
        for role, name in [*(("candidate", m) for m in self.models), ("baseline", self.baseline), ("judge", self.judge)]:
            check_name(name, f"{role} name")
            if name not in entries:
                raise UserError(f"{role} {name!r} has no entry in {self.api_file} (entries: {', '.join(sorted(entries))})")
            entries[name].require_address()  # the baseline too: its answers may be missing
        self.answer_raw = load_yaml(answer_file) if answer_file.exists() else dict(ANSWER_DEFAULTS)
        self.judge_raw = {k: v for k, v in judge_raw.items() if k != "pipeline"}
        # the steps get configs derived from these two: a problem in them is named in the user's file, before any step
        if answer_file.exists():
            validated(AnswerConfig, {**self.answer_raw, "bench_name": self.bench, "model_list": self.models},
                      answer_file, given={"path": answer_file})
        validated(JudgeConfig, {**judge_raw, **self.judge_overrides(self.models)}, self.judge_file,
                  given={"path": self.judge_file})
        self.answer_raw.pop("pipeline", None)
        self.paths = BenchPaths(self.bench, args.data_dir)
        self.work_dir = self.paths.bench_dir / "pipeline"

    def ray_settings(self) -> RaySettings | None:
        return ray_settings(self.ray, self.ray_replicas, needs="--ray ADDRESS or a `pipeline.ray` section")

    def judge_overrides(self, models: list[str]) -> dict[str, Any]:
        """What the derived judge config says instead of the user's."""
        return {"bench_name": self.bench, "judge_model": self.judge, "baseline": True, "baseline_model": self.baseline,
                "model_list": models}

    def answer_settings(self, models: list[str]) -> dict[str, Any]:
        """The derived answer config, as a mapping (its record in data/<bench>/pipeline/ says the same)."""
        return {**self.answer_raw, "bench_name": self.bench, "model_list": models}

    def answer_config(self, models: list[str]) -> AnswerConfig:
        """The answer step's config: the user's answer config (or the defaults) for `models` on the bench."""
        return validated(AnswerConfig, self.answer_settings(models), self.answer_file, given={"path": self.answer_file})

    def judge_settings(self, models: list[str]) -> dict[str, Any]:
        return {**self.judge_raw, **self.judge_overrides(models)}

    def judge_config(self, models: list[str]) -> JudgeConfig:
        """The judgment step's config: the user's judge config with the pipeline's candidates, judge and baseline."""
        return validated(JudgeConfig, self.judge_settings(models), self.judge_file, given={"path": self.judge_file})

    def entry(self, name: str, setting_file: Path, key: str) -> ModelEntry:
        """A model's api config entry with its keys (checked to exist above)."""
        return require_entry(self.entries, name, setting_file, key, self.api_file)


def _missing_answers(paths: BenchPaths, model: str, qids: list[Any]) -> int:
    path = paths.answer_file(model)
    if not path.exists():
        return len(qids)
    done = load_answer_file(path)
    return sum(1 for q in qids if q not in done)


def _missing_judgments(paths: BenchPaths, config: JudgeConfig, model: str, questions: list[dict[str, Any]],
                       rejudge_missing: bool) -> int:
    """Questions without a judgment that counts: none yet, or one made from other answers, baseline or settings."""
    qids = [q["question_id"] for q in questions]
    path = paths.judgment_file(config.judge_model, model)
    if not path.exists():
        return len(qids)
    assert config.baseline_model is not None
    # an answer not on disk (yet) leaves its judgment stale: it was made from an answer that is gone
    answers = {m: load_answer_file(paths.answer_file(m)) if paths.answer_file(m).exists() else {}
               for m in {model, config.baseline_model}}
    references = ([load_answer_file(paths.reference_file(config.ref_model))]
                  if config.reference and config.ref_model and paths.reference_file(config.ref_model).exists() else [])
    basis = judgment_basis(config, questions, answers[config.baseline_model], {model: answers[model]}, references)
    done = {r["question_id"] for r in load_judgment_file(path)
            if basis.mismatch(r, model) is None
            and not (rejudge_missing and any(g.get("score") is None for g in r["games"]))}
    return sum(1 for q in qids if q not in done)


def _write_config(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# written by run_eval.py from your configs: a record of what its step ran (run_eval.py does not "
                    "read it); rerun the step by hand with --setting-file\n"
                    + yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _record_judge_config(plan: Plan, models: list[str]) -> JudgeConfig:
    """The judgment step's config, its record written to data/<bench>/pipeline/."""
    config = plan.judge_config(models)
    _write_config(plan.work_dir / "judge_config.yaml", plan.judge_settings(models))
    return config


def _record_answer_config(plan: Plan, models: list[str]) -> AnswerConfig:
    """The answer step's config, its record written to data/<bench>/pipeline/."""
    config = plan.answer_config(models)
    _write_config(plan.work_dir / "gen_answer_config.yaml", plan.answer_settings(models))
    return config


def _judgments_todo(plan: Plan, questions: list[dict[str, Any]], rejudge_missing: bool) -> list[str]:
    """The candidates with a question not yet judged by a judgment that counts."""
    candidates = [m for m in plan.models if m != plan.baseline]
    config = _record_judge_config(plan, candidates)
    return [m for m in candidates if _missing_judgments(plan.paths, config, m, questions, rejudge_missing)]


def _step(run: Callable[[], int]) -> int:
    """One step's exit code, its bad input said in one line as its command says it (run_cli's words)."""
    return run_cli(lambda _argv: run(), None)


def _answer(plan: Plan, config: AnswerConfig, data_dir: Path, options: RunOptions) -> int:
    """The answer step (answer.run), in this process."""
    from arenajudge.answer.run import answer_bench  # here: the HTTP client, which --help does not need

    models = [plan.entry(name, plan.answer_file, f"model_list[{i}]") for i, name in enumerate(config.model_list)]
    return answer_bench(config, models, data_dir=data_dir, options=options).exit_code


def _answer_and_judge_at_once(plan: Plan, args: argparse.Namespace, questions: list[dict[str, Any]], todo: list[str],
                              options: RunOptions) -> int | None:
    """Steps 1 and 2 together when the judge's server shares no GPU with an answering one (overlap.py).

    Returns the exit code, or None when they cannot overlap (the steps then run one after the other).
    """
    from arenajudge.judge.overlap import FollowingJudge, judge_fits_beside, judge_shares_server, shared_server
    from arenajudge.records import locks

    entries = plan.entries
    judged = _judgments_todo(plan, questions, args.rejudge_missing)
    answering = [entries[m] for m in todo]
    shared = judge_shares_server(entries[plan.judge], answering)  # one server for both steps, started once
    if not judged or not (shared or judge_fits_beside(entries[plan.judge], answering)):
        return None
    say(f"== 1/3 answers: {', '.join(todo)}")
    say(f"== 2/3 judgments by {plan.judge}: {', '.join(judged)} against {plan.baseline}, as the answers come "
        + ("(on the server the answers use)" if shared else "(the judge's GPUs are free of answer servers)"))
    judge_config = _record_judge_config(plan, judged)
    answer_config = _record_answer_config(plan, todo)  # bad input stops here, before the judge's server starts
    judge = plan.entry(plan.judge, plan.judge_file, "judge_model")
    follower = FollowingJudge(judge_config, judge, args.data_dir, options.policy(),
                              rejudge_missing=args.rejudge_missing, quiet=args.quiet, ray=options.ray)
    # the judge thread writes these judgment files: held here, as gen_judgment.py holds them, until it has ended
    with locks.hold([*locks.judgment_locks(plan.paths, plan.judge, judged), *locks.server_locks(plan.paths, [judge])],
                    wait=args.wait), shared_server(judge, plan.paths.bench_dir / "server_logs", shared):
        thread = threading.Thread(target=follower.run, name="judge", daemon=True)
        thread.start()
        try:
            code = _step(lambda: _answer(plan, answer_config, args.data_dir, options))
        except BaseException:
            follower.cancel()
            raise
        finally:
            follower.finish()
            while thread.is_alive():
                try:
                    thread.join(0.5)
                except KeyboardInterrupt:  # a second Ctrl-C while the judge winds down
                    follower.cancel()
    if follower.error is not None:
        raise follower.error
    if code != 0:
        say(f"run_eval: the answer step failed (exit {code}); rerun the same command to resume")
        return code
    if follower.exit_code != 0:
        say(f"run_eval: the judgment step failed (exit {follower.exit_code}); rerun the same command to resume")
        return follower.exit_code
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_pipeline(build_parser().parse_args(argv))


def run_pipeline(args: argparse.Namespace) -> int:
    """The pipeline once its settings are known (the quickstart calls it with settings of its own, not argv)."""
    # checked before any step starts; the steps get the library's options, not flags
    options = RunOptions(client_processes=args.client_processes, dead_after=args.dead_after, quiet=args.quiet,
                         wait=args.wait).check()
    plan = Plan(args)
    options = replace(options, ray=plan.ray_settings())  # --ray, else `pipeline.ray`; checked before any step starts
    questions = load_questions(plan.paths.question_file)
    qids = [q["question_id"] for q in questions]

    # 1. answers
    wanted = list(dict.fromkeys([*plan.models, plan.baseline]))
    todo = [m for m in wanted if _missing_answers(plan.paths, m, qids)]
    overlapped = False
    if todo and not args.no_overlap:
        code = _answer_and_judge_at_once(plan, args, questions, todo, options)
        if code is not None and code != 0:
            return code
        overlapped = code == 0
    if overlapped:
        pass  # answered and judged at once
    elif not todo:
        say(f"== 1/3 answers: all {len(wanted)} models have answered the {len(qids)} questions; skipped")
    else:
        say(f"== 1/3 answers: {', '.join(todo)}")
        answer_config = _record_answer_config(plan, todo)
        code = _step(lambda: _answer(plan, answer_config, args.data_dir, options))
        if code != 0:
            say(f"run_eval: the answer step failed (exit {code}); rerun the same command to resume")
            return code

    # 2. judgments
    todo = _judgments_todo(plan, questions, args.rejudge_missing)
    judge_config = _record_judge_config(plan, todo or [m for m in plan.models if m != plan.baseline])
    if overlapped:
        pass  # judged with the answers
    elif not todo:
        say(f"== 2/3 judgments: {plan.judge} has judged every candidate; skipped")
    else:
        say(f"== 2/3 judgments by {plan.judge}: {', '.join(todo)} against {plan.baseline}")
        code = _step(lambda: _judge(plan, judge_config, args, options))
        if code != 0:
            say(f"run_eval: the judgment step failed (exit {code}); rerun the same command to resume")
            return code

    # 3. leaderboard
    say("== 3/3 leaderboard")
    return _leaderboard(plan, args.data_dir)


def _judge(plan: Plan, config: JudgeConfig, args: argparse.Namespace, options: RunOptions) -> int:
    """The judgment step (judge.run), in this process."""
    from arenajudge.judge.run import judge_bench  # here: the HTTP client, which --help does not need

    judge = plan.entry(plan.judge, plan.judge_file, "judge_model")
    return judge_bench(config, judge, data_dir=args.data_dir, options=options,
                       rejudge_missing=args.rejudge_missing).exit_code


def _leaderboard(plan: Plan, data_dir: Path) -> int:
    """The leaderboard, printed as show_result.py prints it: bench, judge and baseline are the pipeline's, the
    rest are show_result.py's flags from `pipeline.show_result_args` (they are flags by definition)."""
    from arenajudge.cli import show_result

    parser = show_result.build_parser()
    given = {"bench_name": plan.bench, "judge_name": plan.judge, "baseline": plan.baseline, "data_dir": data_dir}
    parser.set_defaults(**given, setting_file=plan.judge_file)
    # the command that shows this board again, for the report's provenance
    flags = [str(part) for key, value in given.items() for part in (f"--{key.replace('_', '-')}", value)]
    command = "show_result.py " + shlex.join([*flags, *plan.show_args])
    return _step(lambda: show_result.show(parser.parse_args(plan.show_args), command))


def run() -> None:
    sys.exit(run_cli(main))
