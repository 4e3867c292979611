"""`arenajudge <command> ...`: one entry point for the commands the seed-named scripts also run."""

from __future__ import annotations

import importlib
import sys

from arenajudge.core.errors import EXIT_USAGE, run_cli

# subcommand -> (module under arenajudge.cli, the seed-named script that runs the same main, or what it does)
COMMANDS: dict[str, tuple[str, str]] = {
    "answer": ("gen_answer", "gen_answer.py"),
    "judge": ("gen_judgment", "gen_judgment.py"),
    "show": ("show_result", "show_result.py"),
    "browse": ("qa_browser", "qa_browser.py"),
    "run": ("run_eval", "run_eval.py"),
    "download": ("download_data", "download_data.py"),
    "quickstart": ("quickstart", ""),  # no seed script: the whole job on the embedded model
}


def usage() -> str:
    lines = ["usage: arenajudge COMMAND [flags]   (arenajudge COMMAND --help for its flags)", "", "commands:"]
    lines += [f"  {name:<10} same as python {script}" if script else
              f"  {name:<10} the whole job on a small embedded model, in one command (docs/quickstart.md)"
              for name, (_, script) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else EXIT_USAGE
    if args[0] not in COMMANDS:
        print(f"error: unknown command {args[0]!r} (commands: {', '.join(COMMANDS)})", file=sys.stderr)
        return EXIT_USAGE
    # Imported on demand: `arenajudge show` should not pay for gradio's import.
    module = importlib.import_module(f"arenajudge.cli.{COMMANDS[args[0]][0]}")
    return run_cli(module.main, args[1:])


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":  # `python -m arenajudge.cli.main`, where the console script is not on PATH
    entry()
