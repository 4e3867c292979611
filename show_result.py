#!/usr/bin/env python3
"""Print the leaderboard: win rate vs the baseline with a 95% CI (see --help)."""

from arenajudge.cli.show_result import run

if __name__ == "__main__":
    run()
