#!/usr/bin/env python3
"""Answers, judgments and leaderboard in one command, with managed vLLM servers (see --help)."""

from arenajudge.cli.run_eval import run

if __name__ == "__main__":
    run()
