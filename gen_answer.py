#!/usr/bin/env python3
"""Generate model answers for a bench (see --help)."""

from arenajudge.cli.gen_answer import run

if __name__ == "__main__":
    run()
