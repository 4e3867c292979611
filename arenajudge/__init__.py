"""arenajudge: Arena-Hard style evaluation of chat models with a local judge.

Data flows one way through the modules:
config -> storage (questions, answers) -> client/answering/judging (requests)
-> storage (records on disk) -> battles -> rating -> report.
"""

__version__ = "0.1.0"
