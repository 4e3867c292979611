"""The one exception type users see: a one-line message, exit code 2, no traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable


class UserError(Exception):
    """Bad input (config, data, flags). The message names the file, line or key."""


EXIT_USAGE = 2
EXIT_ENDPOINT_GONE = 3  # a model's endpoints stopped answering mid-run: what is stored stays, a rerun resumes


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a command's main(); turn UserError into `error: ...` on stderr and exit code 2."""
    try:
        return main(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: records written so far are kept; rerun to resume", file=sys.stderr)
        return 130
