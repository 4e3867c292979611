"""Verdict labels: what the judge may say, and how stored scores are read.

Kept free of heavy imports: the judging engine needs it, pandas is not needed there.
"""

from __future__ import annotations

import re
from typing import Any

LABELS = ("A>>B", "A>B", "A=B", "B>A", "B>>A")

# Mirrored spellings a judge may write; normalised when a new judgment is stored.
_SYNONYMS = {"B<A": "A>B", "B<<A": "A>>B", "B=A": "A=B", "A<B": "B>A", "A<<B": "B>>A"}


def clean_label(raw: Any) -> str | None:
    """A stored score as one of LABELS, or None (no verdict).

    Accepts what arena-hard-local wrote: `A>B`, `[A>B]`, any case. Only the five
    labels count, as in the seed, so old files score exactly as before.
    """
    if not isinstance(raw, str):
        return None
    label = raw.replace("[", "").replace("]", "").strip().upper()
    return label if label in LABELS else None


def label_from_judge(raw: str) -> str | None:
    """Like clean_label, but also reads mirrored spellings (`A<B` means `B>A`)."""
    label = raw.replace("[", "").replace("]", "").strip().upper()
    label = _SYNONYMS.get(label, label)
    return label if label in LABELS else None


def parse_verdict(text: str, pattern: re.Pattern[str]) -> tuple[str | None, bool]:
    """(label, found_any) from a judge's text. Several different labels conflict: no verdict."""
    labels = {label_from_judge(m if isinstance(m, str) else m[0]) for m in pattern.findall(text)}
    labels.discard(None)
    if len(labels) == 1:
        return labels.pop(), True
    return None, bool(labels)
