"""Rating methods by name: how a board's battles against its baseline become scores with intervals.

A method is one module with one class of this shape (see bradley_terry.BradleyTerry and
mean_score.MeanScore) and one line here, or `register_method` from outside the package. Every
method returns a RatingResult on the Elo scale with the baseline at 1000, so the board, its CSV and
JSON, the report and the browser print any method the same way.
"""

from __future__ import annotations

from typing import Protocol

import pandas as pd

from arenajudge.core.errors import UserError
from arenajudge.rating.bradley_terry import BootstrapUnit, BradleyTerry, RatingResult
from arenajudge.rating.mean_score import MeanScore


class RatingMethod(Protocol):
    """What a board needs of a way of scoring."""

    name: str  # the value of show_result.py's --method
    summary: str  # its words in --help
    label: str | None  # what the board's header says the score is; None only for the seed's Bradley-Terry
    whole_judgments: bool  # a judgment with a game without a verdict is dropped whole (not game by game)

    def rate(self, battles: pd.DataFrame, baseline: str, *, rounds: int, seed: int,
             unit: BootstrapUnit) -> RatingResult:
        """Scores and `rounds` bootstrap samples (resampling `unit`) of every model in `battles`."""
        ...


METHODS: dict[str, RatingMethod] = {}


def register_method(method: RatingMethod) -> RatingMethod:
    """Make `method` a choice of --method and of BoardSpec.method (a name is registered once)."""
    if method.name in METHODS and METHODS[method.name] is not method:
        raise ValueError(f"a rating method named {method.name!r} is already registered")
    METHODS[method.name] = method
    return method


def method_named(name: str) -> RatingMethod:
    if name not in METHODS:
        raise UserError(f"unknown rating method {name!r} (methods: {', '.join(METHODS)})")
    return METHODS[name]


register_method(BradleyTerry())
register_method(MeanScore())
