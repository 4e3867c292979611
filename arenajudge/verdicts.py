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


# A label inside a verbatim copy of this many characters of our own prompt (around the label) is an echo.
ECHO_CHARS = 40


def _squash(text: str) -> str:
    return " ".join(text.split())


def _copied_reach(ours: str, left: str, label: str, right: str) -> int:
    """How many characters around `label` (left, then right) the reply shares verbatim with `ours`."""

    def longest(fits: Any, limit: int) -> int:  # the property is monotone in the length: bisect
        lo, hi = 0, limit
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits(mid):
                lo = mid
            else:
                hi = mid - 1
        return lo

    if label not in ours:
        return 0
    k_left = longest(lambda k: left[len(left) - k:] + label in ours, len(left))
    core = left[len(left) - k_left:] + label
    k_right = longest(lambda k: core + right[:k] in ours, len(right))
    return k_left + k_right


def parse_own_verdict(text: str, pattern: re.Pattern[str], ours: str) -> tuple[str | None, bool]:
    """parse_verdict over the judge's own words only: a label that sits in a passage copied from `ours`
    (our system prompt, prompt and follow-up; at least ECHO_CHARS characters around the label) is an echo."""
    squashed_ours = _squash(ours)
    labels: set[str | None] = set()
    for match in pattern.finditer(text):
        start, end = match.span()
        left = _squash(text[max(0, start - 4 * ECHO_CHARS):start])
        if text[max(0, start - 1):start].isspace():
            left += " "
        right = _squash(text[end:end + 4 * ECHO_CHARS])
        if text[end:end + 1].isspace():
            right = " " + right
        if _copied_reach(squashed_ours, left, _squash(match.group(0)), right) >= ECHO_CHARS:
            continue
        groups = match.groups()  # as parse_verdict's findall: the first group, else the whole match
        labels.add(label_from_judge((groups[0] or "") if groups else match.group(0)))
    labels.discard(None)
    if len(labels) == 1:
        return labels.pop(), True
    return None, bool(labels)
