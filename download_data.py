#!/usr/bin/env python3
"""Download question sets (and published answers and judgments) into data/ (see --help)."""

from arenajudge.cli.download_data import run

if __name__ == "__main__":
    run()
