#!/usr/bin/env python3
"""Browse battles and audit the judge in a local web app (see --help)."""

from arenajudge.cli.qa_browser import run

if __name__ == "__main__":
    run()
