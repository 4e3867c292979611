"""gen_answer.py: every model of the answer config answers every question of the bench."""

from __future__ import annotations

import argparse
import sys

from arenajudge.answer.run import answer_bench
from arenajudge.cli.common import command_parser, require_entry, run_options
from arenajudge.config.models import load_answer_config, load_api_config
from arenajudge.core.errors import run_cli


def build_parser() -> argparse.ArgumentParser:
    return command_parser(
        "gen_answer.py",
        "Ask each model of model_list every question of the bench; answers go to "
        "data/<bench>/model_answer/<model>.jsonl. Questions already answered are skipped, "
        "so a rerun completes an interrupted or partly failed run.",
        "config/gen_answer_config.yaml", "answer config")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = run_options(args)
    config = load_answer_config(args.setting_file)
    entries = load_api_config(args.endpoint_file)
    models = [require_entry(entries, name, args.setting_file, f"model_list[{i}]", args.endpoint_file)
              for i, name in enumerate(config.model_list)]
    return answer_bench(config, models, data_dir=args.data_dir, options=options).exit_code


def run() -> None:
    sys.exit(run_cli(main))
