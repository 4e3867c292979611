#!/usr/bin/env python3
"""Answers, judgments and leaderboard in one command, with managed vLLM servers (see --help)."""

from arenajudge.pipeline import run

if __name__ == "__main__":
    run()
