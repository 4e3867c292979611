"""gen_judgment.py: judge the answers under the judge config's protocol (Arena-Hard pairwise, or an MT-Bench `mode:`)."""

from __future__ import annotations

import argparse
import sys

from arenajudge.cli import until_decided
from arenajudge.cli.common import command_parser, require_entry, run_options
from arenajudge.config.models import load_api_config, load_judge_config
from arenajudge.core.errors import run_cli
from arenajudge.judge.arena_hard import ORDERS
from arenajudge.judge.run import judge_bench
from arenajudge.rating.until_decided import judge_until_decided


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(
        "gen_judgment.py",
        "Judge every model of model_list against the baseline on every question (two games, "
        "positions swapped); judgments go to data/<bench>/model_judgment/<judge>/<model>.jsonl. "
        "Existing judgments are kept and skipped, so a rerun completes an interrupted run.",
        "config/judge_config.yaml", "judge config")
    p.add_argument("--sample", type=int, metavar="N",
                   help="judge only a fixed random sample of N questions (the same for every model and judge); "
                        "a later full run reuses these judgments and asks only for the rest")
    p.add_argument("--sample-seed", type=int, default=0,
                   help="seed of --sample and of the question order of --until-decided (default: %(default)s)")
    p.add_argument("--judge-order", choices=ORDERS, default="question-major", help=argparse.SUPPRESS)  # tests, benches
    p.add_argument("--rejudge-missing", action="store_true",
                   help="judge again the questions whose stored judgment has a game without a verdict")
    until_decided.add_flags(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    until = until_decided.until_decided(args)
    options = run_options(args)
    config = load_judge_config(args.setting_file)
    entries = load_api_config(args.endpoint_file)
    judge = require_entry(entries, config.judge_model, args.setting_file, "judge_model", args.endpoint_file)
    if until is not None:
        result = judge_until_decided(config, judge, until, data_dir=args.data_dir, options=options,
                                     rejudge_missing=args.rejudge_missing)
        if not result.report.ok:
            return result.exit_code
        for line in result.lines():
            print(line)
        return 0
    return judge_bench(config, judge, data_dir=args.data_dir, options=options, sample=args.sample,
                       sample_seed=args.sample_seed, rejudge_missing=args.rejudge_missing,
                       judge_order=args.judge_order).exit_code


def run() -> None:
    sys.exit(run_cli(main))
