"""Judge prompt templates: which {placeholders} they use, checked before any request.

A misspelled placeholder (`{answr_1}`) would otherwise reach the judge as literal text and
its verdicts would be counted. Templates are checked when the config loads (unknown names,
names the mode cannot fill) and filled strictly: a placeholder without a value fails that
item instead of being sent.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable

from arenajudge.core.errors import UserError

# arena-hard judging (judging.build_messages): question turns, the two answers' turns, reference turns
ARENA_FIELDS = re.compile(r"question_[1-9]\d*|answer_[1-9]\d*")
# MT-Bench judging (mtbench._fields and the prompt builders): per kind of prompt
MTBENCH_FIELDS = {
    "single": re.compile(r"question(_[1-9]\d*)?|answer(_[1-9]\d*)?"),
    "pairwise": re.compile(r"question(_[1-9]\d*)?|answer_[ab](_[1-9]\d*)?"),
}
REFERENCE_FIELD = re.compile(r"ref_answer_[1-9]\d*")


class UnfilledPlaceholder(KeyError):
    """A template asked for a value the item does not have (never sent to a model)."""


def placeholders(template: str, where: str) -> list[str]:
    """The field names of `template` in order; a malformed one is a UserError naming `where`."""
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    except ValueError as exc:
        raise UserError(f"{where}: not a valid template ({exc}); write a literal brace as {{{{ or }}}}") from None
    return fields


def check_names(names: Iterable[str], allowed: re.Pattern[str], where: str, why: str,
                reference: re.Pattern[str] | None = None) -> None:
    """Every name must match `allowed` (or `reference`, when references are given)."""
    for name in names:
        if allowed.fullmatch(name) or (reference is not None and reference.fullmatch(name)):
            continue
        if REFERENCE_FIELD.fullmatch(name):
            raise UserError(f"{where}: placeholder {{{name}}} needs reference answers ({why})")
        shown = "{" + name + "}" if name else "{} (a positional placeholder)"
        raise UserError(f"{where}: unknown placeholder {shown} ({why})")


def fill(template: str, fields: dict[str, str]) -> str:
    """`template` with every placeholder filled; one without a value raises UnfilledPlaceholder."""
    try:
        return template.format_map(fields)
    except KeyError as exc:
        raise UnfilledPlaceholder(str(exc.args[0])) from None
    except (IndexError, AttributeError, ValueError) as exc:
        raise UnfilledPlaceholder(str(exc)) from None
