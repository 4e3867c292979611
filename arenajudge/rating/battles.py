"""Judgments -> battles.

Each judged game is a battle between the baseline (model_a) and the judged model
(model_b). In game 1 the baseline's answer is shown as Assistant A; game 2 swaps
the positions, so its verdict is read mirrored. A strong verdict (`A>>B`, `B>>A`)
counts `weight` times; a tie is its own outcome. This is arena-hard-auto's rule,
kept exactly so that scores match arena-hard-local on the same judgments.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from arenajudge.core.errors import UserError
from arenajudge.core.verdicts import LABELS, clean_label, label_from_judge  # noqa: F401  (re-exported)
from arenajudge.records.storage import read_jsonl, replace_atomically

# Outcome of a label from the point of view of (model_a=baseline, model_b=judged model),
# for game 1 (baseline shown first) and game 2 (positions swapped).
_GAME1 = {"A>>B": ("model_a", True), "A>B": ("model_a", False), "A=B": ("tie", False),
          "B>A": ("model_b", False), "B>>A": ("model_b", True)}
_FLIP = {"model_a": "model_b", "model_b": "model_a", "tie": "tie"}


def outcome(label: str, game_index: int) -> tuple[str, bool]:
    """(winner, strong) for a clean label in game 0 (baseline is A) or game 1 (swapped)."""
    winner, strong = _GAME1[label]
    return (winner if game_index == 0 else _FLIP[winner]), strong


# A game's verdict in words of the judged model against the baseline, whichever position each had: every
# readout (report, browser) shows these rather than the judge's A/B label, which game 2 reverses.
_OUTCOME_WORDS = {"model_b": "model better", "tie": "tie", "model_a": "baseline better"}


def outcome_words(winner: str, strong: bool) -> str:
    """'model better', 'model much better', 'tie', 'baseline better' or 'baseline much better'."""
    words = _OUTCOME_WORDS[winner]
    return words.replace(" better", " much better") if strong else words


def game_words(score: Any, game_index: int) -> str:
    """A stored game score (game_index 0: baseline shown first) in the model's frame; 'no verdict' if unreadable."""
    label = clean_label(score)
    return "no verdict" if label is None else outcome_words(*outcome(label, game_index))


@dataclass
class BattleSet:
    """Battles plus the bookkeeping users need to trust them."""

    battles: pd.DataFrame  # one row per battle copy: question_id, model_a, model_b, winner, judge, game
    games: Counter[str] = field(default_factory=Counter)  # model -> games read
    missing: Counter[str] = field(default_factory=Counter)  # model -> games with no verdict
    invalid: Counter[str] = field(default_factory=Counter)  # model -> of those, scores outside the label set
    invalid_example: str = ""  # the first such score, where it is
    # model -> judgments left out whole (arena-hard-auto v2's rule: one game without a verdict drops both)
    dropped_judgments: Counter[str] = field(default_factory=Counter)

    @property
    def total_missing(self) -> int:
        return sum(self.missing.values())

    def missing_note(self) -> str | None:
        if not self.total_missing:
            return None
        per_model = ", ".join(f"{m}: {n}" for m, n in sorted(self.missing.items()) if n)
        if self.dropped_judgments:
            dropped = sum(self.dropped_judgments.values())
            return (f"note: {self.total_missing} of {sum(self.games.values())} games had no verdict ({per_model}); "
                    f"as arena-hard-auto v2 does, the {dropped} judgments holding them were dropped whole")
        return (f"note: {self.total_missing} of {sum(self.games.values())} games had no verdict "
                f"and were dropped ({per_model})")

    def invalid_note(self) -> str | None:
        """Scores that are neither a label nor null (a hand-edited or foreign file): said apart from null ones."""
        total = sum(self.invalid.values())
        if not total:
            return None
        return (f"note: {total} of those games have a score outside the labels {', '.join(LABELS)} "
                f"(first: {self.invalid_example}); they count as no verdict")


BATTLE_COLUMNS = ["question_id", "model_a", "model_b", "winner", "judge", "game"]


def battles_from_judgments(
    judgments: dict[str, list[dict[str, Any]]],
    baseline: str,
    judge: str,
    *,
    weight: int = 3,
    first_game_only: bool = False,
    whole_judgments: bool = False,
) -> BattleSet:
    """Turn one judge's records ({model: [records]}) into battles against `baseline`.

    With `whole_judgments` a judgment counts only when every game read has a verdict
    (arena-hard-auto v2's rule); otherwise each game without a verdict is dropped alone.
    """
    rows: list[tuple[Any, str, str, str, str, int]] = []
    repeats: list[int] = []
    result = BattleSet(battles=pd.DataFrame(columns=BATTLE_COLUMNS))
    for file_model, records in judgments.items():
        for record in records:
            model = record.get("model") or file_model
            games = record["games"][:1] if first_game_only else record["games"][:2]
            raws = [game.get("score") if isinstance(game, dict) else game for game in games]
            labels = [clean_label(raw) if isinstance(game, dict) else None for raw, game in zip(raws, games, strict=True)]
            whole_dropped = whole_judgments and None in labels
            if whole_dropped:
                result.dropped_judgments[model] += 1
            for index, (raw, label) in enumerate(zip(raws, labels, strict=True)):
                result.games[model] += 1
                if label is None:
                    result.missing[model] += 1
                    if raw is not None:
                        result.invalid[model] += 1
                        result.invalid_example = result.invalid_example or (
                            f"{raw!r} for {model}, question {record['question_id']}, game {index + 1}")
                    continue
                if whole_dropped:
                    continue
                winner, strong = outcome(label, index)
                rows.append((record["question_id"], baseline, model, winner, judge, index + 1))
                repeats.append(weight if strong else 1)
    if rows:
        frame = pd.DataFrame(rows, columns=BATTLE_COLUMNS)
        result.battles = frame.loc[np.repeat(np.arange(len(frame)), repeats)].reset_index(drop=True)
    return result


def save_battles(battles: pd.DataFrame, path: Path) -> None:
    """The seed's battles cache: one JSON object per battle copy (extra columns are harmless)."""
    replace_atomically(path, battles.to_json(orient="records", lines=True, force_ascii=False))


def load_battles(path: Path) -> pd.DataFrame:
    records = read_jsonl(path)
    for i, record in enumerate(records, start=1):
        for key in ("model_a", "model_b", "winner"):
            if key not in record:
                raise UserError(f"{path}:{i}: battle is missing key {key!r}")
    frame = pd.DataFrame.from_records(records)
    if frame.empty:
        raise UserError(f"{path}: holds no battles")
    return frame
