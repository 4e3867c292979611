"""Answer style features and the per-battle columns of style and length control.

Per answer: its length in tokens and how much markdown it uses (headers, list items,
bold spans). Records that carry arena-hard-auto v2's `conv_metadata` are read as they
are; otherwise the counts come from the answer text (fenced code blocks ignored), and
computed counts are cached on disk keyed by a hash of the text.

Per battle (model_a vs model_b): length is (a - b) / (a + b); each markdown feature is
the difference of counts per token, a/len_a - b/len_b. Columns are then divided by their
standard deviation (not centred, so 0 still means equal style), so a fitted coefficient is
the effect of one standard deviation of the difference.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from arenajudge.core.errors import UserError
from arenajudge.core.tokens import token_len
from arenajudge.records.storage import replace_atomically

STYLE_GROUPS: dict[str, list[str]] = {"length": ["length"], "markdown": ["header", "list", "bold"]}
LC_FEATURE_PREFIX = "length_x_"  # per-model length columns of the length-controlled win rate

_FENCE = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
_HEADER = re.compile(r"^ {0,3}#{1,6}[ \t]+\S", re.MULTILINE)
_LIST_ITEM = re.compile(r"^[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+\S", re.MULTILINE)
_BOLD = re.compile(r"\*\*[^*\n]+?\*\*|__[^_\n]+?__")


@dataclass(frozen=True)
class AnswerStyle:
    tokens: int
    headers: int
    list_items: int
    bold: int


def markdown_counts(text: str) -> tuple[int, int, int]:
    """(headers, list items, bold spans) of a markdown text; code blocks do not count."""
    prose = _FENCE.sub("", text)
    return len(_HEADER.findall(prose)), len(_LIST_ITEM.findall(prose)), len(_BOLD.findall(prose))


def _turns(record: dict[str, Any]) -> list[Any]:
    choices = record.get("choices") or [{}]
    return choices[0].get("turns") or []


def answer_text(record: dict[str, Any]) -> str:
    return "\n".join(t["content"] if isinstance(t, dict) else str(t) for t in _turns(record))


def _from_metadata(record: dict[str, Any]) -> AnswerStyle | None:
    """arena-hard-auto v2 answers carry conv_metadata with the counts per kind."""
    meta = record.get("conv_metadata")
    if not isinstance(meta, dict):
        return None
    try:
        return AnswerStyle(tokens=int(meta["token_len"]),
                           headers=int(sum(meta["header_count"].values())),
                           list_items=int(sum(meta["list_count"].values())),
                           bold=int(sum(meta["bold_count"].values())))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


class StyleCache:
    """Computed features by text hash, in one JSON file; unreadable caches are rebuilt."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, list[int]] = {}
        self.dirty = False
        if path is not None and path.exists():
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(loaded, dict):
                    self.entries = {k: v for k, v in loaded.items() if isinstance(v, list) and len(v) == 4}
            except (OSError, ValueError):
                self.entries = {}

    def style(self, record: dict[str, Any]) -> AnswerStyle:
        if (known := _from_metadata(record)) is not None:
            return known
        text = answer_text(record)
        key = hashlib.sha1(text.encode("utf-8")).hexdigest()
        if key not in self.entries:
            self.entries[key] = [-1, *markdown_counts(text)]  # tokens are counted only when needed
            self.dirty = True
        tokens, headers, list_items, bold = self.entries[key]
        turns = _turns(record)
        # the stored token_len (tiktoken at generation time) is used when every turn has a valid one
        if turns and all(isinstance(t, dict) and isinstance(t.get("token_len"), int) and t["token_len"] >= 0
                         for t in turns):
            tokens = sum(t["token_len"] for t in turns)
        elif tokens < 0:
            tokens = self.entries[key][0] = token_len(text)
            self.dirty = True
        return AnswerStyle(tokens=tokens, headers=headers, list_items=list_items, bold=bold)

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        replace_atomically(self.path, json.dumps(self.entries))
        self.dirty = False


def answer_styles(answers: dict[str, dict[Any, dict[str, Any]]], models: Iterable[str],
                  cache: StyleCache) -> dict[tuple[str, str], AnswerStyle]:
    """(model, question_id as str) -> style, for the given models' answers."""
    styles = {}
    for model in models:
        for qid, record in (answers.get(model) or {}).items():
            styles[(model, str(qid))] = cache.style(record)
    return styles


def parse_style_groups(names: list[str]) -> list[str]:
    """--style-control values -> feature names, in a fixed order; unknown names are a UserError."""
    unknown = [n for n in names if n not in STYLE_GROUPS]
    if unknown:
        raise UserError(f"--style-control: unknown feature {unknown[0]!r} (choose from {', '.join(STYLE_GROUPS)})")
    return [f for group, features in STYLE_GROUPS.items() if group in names for f in features]


def _standardise(column: np.ndarray) -> np.ndarray:
    """Divide by the standard deviation but do not centre: the baseline is always model_a,
    so the mean difference is not 0, and centring would score models at the average style
    gap to the baseline instead of at equal style."""
    std = column.std()
    return column / std if std > 0 else np.zeros_like(column)


def _battle_styles(battles: pd.DataFrame, styles: dict[tuple[str, str], AnswerStyle],
                   answer_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(rows x 4) style arrays of model_a's and model_b's answers; a missing answer is a UserError."""
    qids = battles["question_id"].astype(str).to_numpy()
    sides = []
    for column in ("model_a", "model_b"):
        values = np.empty((len(battles), 4), dtype=float)
        for i, (model, qid) in enumerate(zip(battles[column].to_numpy(), qids, strict=True)):
            style = styles.get((model, qid))
            if style is None:
                raise UserError(f"{answer_dir / (model + '.jsonl')}: no answer to question {qid!r}, "
                                "which style/length control needs")
            values[i] = astuple(style)
        sides.append(values)
    return sides[0], sides[1]


def add_style_features(battles: pd.DataFrame, styles: dict[tuple[str, str], AnswerStyle],
                       features: list[str], answer_dir: Path) -> pd.DataFrame:
    """Battles plus one standardised column per feature (named as the feature)."""
    a, b = _battle_styles(battles, styles, answer_dir)
    len_a, len_b = np.maximum(a[:, 0], 1.0), np.maximum(b[:, 0], 1.0)
    raw = {
        "length": (a[:, 0] - b[:, 0]) / np.maximum(a[:, 0] + b[:, 0], 1.0),
        "header": a[:, 1] / len_a - b[:, 1] / len_b,
        "list": a[:, 2] / len_a - b[:, 2] / len_b,
        "bold": a[:, 3] / len_a - b[:, 3] / len_b,
    }
    out = battles.copy()
    for name in features:
        out[name] = _standardise(raw[name])
    return out


def add_length_control_features(battles: pd.DataFrame, styles: dict[tuple[str, str], AnswerStyle],
                                baseline: str, answer_dir: Path) -> tuple[pd.DataFrame, list[str]]:
    """AlpacaEval-2-like columns: for each judged model m, tanh(standardised length difference)
    on m's battles and 0 elsewhere, so each model gets its own length slope. Only battles
    against the baseline are kept. Returns the battles and the column names."""
    against = (battles["model_a"] == baseline) ^ (battles["model_b"] == baseline)
    kept = battles[against].reset_index(drop=True)
    a, b = _battle_styles(kept, styles, answer_dir)
    diff = a[:, 0] - b[:, 0]
    std = diff.std()
    term = np.tanh(diff / std) if std > 0 else np.zeros_like(diff)
    other = np.where(kept["model_a"] == baseline, kept["model_b"], kept["model_a"])
    out = kept.copy()
    names = []
    for model in sorted(set(other)):
        name = LC_FEATURE_PREFIX + model
        out[name] = np.where(other == model, term, 0.0)
        names.append(name)
    return out, names
