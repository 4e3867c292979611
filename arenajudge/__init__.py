"""arenajudge: Arena-Hard style evaluation of chat models with a local judge.

Data flows one way through the sub-packages, each a layer that imports only those before it:
core -> config -> records (questions, answers, judgments on disk) -> endpoints (requests)
-> answer -> judge -> rating (battles, Bradley-Terry) -> present (board, report, browser) -> api (the library
API for Python: answer, judge, rate, report) -> cli.
"""

__version__ = "0.4.0"
