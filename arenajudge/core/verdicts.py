"""Verdict labels: what the judge may say, and how stored scores are read.

Kept free of heavy imports: the judging engine needs it, pandas is not needed there.
"""

from __future__ import annotations

import functools
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


# How a constrained label may be written, tried in this order against the judge config's regex_pattern
CHOICE_FORMS = ("[[{label}]]", "[{label}]", "{label}")


def verdict_choices(pattern: re.Pattern[str]) -> list[str] | None:
    """The five labels written in the first form `pattern` reads back as those labels (for a constrained reply),
    or None when it reads none of the forms."""
    for form in CHOICE_FORMS:
        choices = [form.format(label=label) for label in LABELS]
        if all(parse_verdict(choice, pattern) == (label, True) for choice, label in zip(choices, LABELS, strict=True)):
            return choices
    return None


def parse_verdict(text: str, pattern: re.Pattern[str]) -> tuple[str | None, bool]:
    """(label, found_any) from a judge's text. Several different labels conflict: no verdict."""
    labels = {label_from_judge(m if isinstance(m, str) else m[0]) for m in pattern.findall(text)}
    labels.discard(None)
    if len(labels) == 1:
        return labels.pop(), True
    return None, bool(labels)


# A label inside a verbatim copy of our own prompt is an echo when the copy is long (this many
# characters around the label) or starts where a line of our prompt starts (a list item, an example line).
ECHO_CHARS = 40
_ECHO_LEAD = 3  # characters a copy must have before the label to count as starting a line of ours
_OTHER_SPACES = re.compile(r"[\t\r\f\v]")
_SPACE_RUNS = re.compile(r"  +")
_BREAK_RUNS = re.compile(r"\n[ \n]+")


def _squash(text: str) -> str:
    """Runs of spaces as one space, runs of line breaks as one; lines stay lines.

    That is: each run of spaces, tabs, carriage returns, form feeds, vertical tabs and line breaks
    becomes one line break if it holds one, else one space. Done in passes whose patterns start
    with a fixed string, each skipped when there is nothing to do: on real prompts one pattern over
    all whitespace cost 4-6 times as much (it tested every single space).
    """
    if "\t" in text or "\r" in text or "\f" in text or "\v" in text:
        text = _OTHER_SPACES.sub(" ", text)
    if "  " in text:
        text = _SPACE_RUNS.sub(" ", text)
    if " \n" in text:
        text = text.replace(" \n", "\n")  # spaces are single now: a run's leading space goes
    if "\n " in text or "\n\n" in text:
        text = _BREAK_RUNS.sub("\n", text)
    return text


@functools.lru_cache(maxsize=64)
def _squashed_prompt(ours: str) -> str:
    """_squash of our prompt, kept: a game's prompt is read again after every reply."""
    return _squash(ours)


def _longest(fits: Any, limit: int) -> int:
    """The largest k <= limit with fits(k), for a property that holds up to some k and not beyond (bisection)."""
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def is_echo(ours: str, left: str, label: str, right: str) -> bool:
    """Whether `label`, with the reply's text `left` and `right` of it, sits in a passage copied from `ours`.

    All four are squashed alike. The copy is grown to the left, then to the right, while it still
    occurs verbatim in `ours`.
    """
    if label not in ours:
        return False
    k_left = _longest(lambda k: left[len(left) - k:] + label in ours, len(left))
    lead = left[len(left) - k_left:]
    k_right = _longest(lambda k: lead + label + right[:k] in ours, len(right))
    if k_left + k_right >= ECHO_CHARS or "\n" in lead:
        return True
    return len(lead.strip()) >= _ECHO_LEAD and ("\n" + lead.lstrip() + label) in "\n" + ours


def parse_own_verdict(text: str, pattern: re.Pattern[str], ours: str) -> tuple[str | None, bool]:
    """parse_verdict over the judge's own words only: a label inside text copied from `ours` (our system
    prompt, prompt and follow-up) is an echo, not a verdict (see is_echo)."""
    labels: set[str | None] = set()
    for match in pattern.finditer(text):
        squashed_ours = _squashed_prompt(ours)  # only when there is a label to check: the prompt is long
        start, end = match.span()
        left = _squash(text[max(0, start - 4 * ECHO_CHARS):start])
        right = _squash(text[end:end + 4 * ECHO_CHARS])
        if is_echo(squashed_ours, left, _squash(match.group(0)), right):
            continue
        groups = match.groups()  # as parse_verdict's findall: the first group, else the whole match
        labels.add(label_from_judge((groups[0] or "") if groups else match.group(0)))
    labels.discard(None)
    if len(labels) == 1:
        return labels.pop(), True
    return None, bool(labels)
