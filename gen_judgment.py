#!/usr/bin/env python3
"""Generate pairwise judgments against the baseline (see --help)."""

from arenajudge.cli.gen_judgment import run

if __name__ == "__main__":
    run()
