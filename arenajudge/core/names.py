"""Model, judge and bench names as file names: reversible, and always inside the data directory.

Names are config keys, and people use Hugging Face ids (`meta-llama/Meta-Llama-3-8B-Instruct`).
A name becomes one path component by percent-encoding the few characters a file name cannot
hold as they are: `/`, `\\`, `%` and control characters (`/` -> `%2F`, so the id above is stored
as `meta-llama%2FMeta-Llama-3-8B-Instruct.jsonl`). Every other character stays, so a name that
is already safe (all of arena-hard-local's) is its own file name, and `from_file_name` gives the
name back exactly.

Refused with a UserError, because they would point outside the data directory or nowhere:
an empty name, an absolute path (`/x`, `\\x`), a `.` or `..` part (`../x`, `a/../../b`), and a
name whose file name would exceed what file systems allow.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from arenajudge.core.errors import UserError

_UNSAFE = re.compile(r"[/\\%\x00-\x1f\x7f]")
MAX_FILE_NAME_BYTES = 200  # file systems allow 255; room for suffixes such as `_single.jsonl.tmp`


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a file name under the data directory, or None when it can."""
    if not isinstance(name, str) or not name.strip():
        return "an empty name"
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[/\\]", name):
        return f"{name!r} is an absolute path; names stay inside the data directory"
    if any(part in (".", "..") for part in re.split(r"[/\\]", name)):
        return f"{name!r} has a '.' or '..' part, which would climb out of the data directory"
    if len(to_file_name_unchecked(name).encode("utf-8")) > MAX_FILE_NAME_BYTES:
        return f"{name[:40]!r}... is too long for a file name (at most {MAX_FILE_NAME_BYTES} bytes once encoded)"
    return None


def check_name(name: str, what: str = "name") -> str:
    """`name` itself, or a UserError saying why it cannot be used."""
    problem = name_problem(name)
    if problem is not None:
        raise UserError(f"{what} refused: {problem}")
    return name


def to_file_name_unchecked(name: str) -> str:
    return _UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", name)


def to_file_name(name: str, what: str = "name") -> str:
    """The path component that stores `name` (without a suffix); refuses names that would escape."""
    return to_file_name_unchecked(check_name(name, what))


def from_file_name(component: str) -> str:
    """The name a file or folder name stands for (inverse of to_file_name)."""
    return unquote(component) if "%" in component else component
