"""Checked YAML fields for the pydantic config models, and the one adapter to one-line errors.

A config problem reaches the user as `<file>: key 'a.b': <what is wrong>` (a UserError, exit 2).
The models here check values with our own validators (a YAML `true` is never a number, an
integer is a number, null is the same as absent), so each message is ours, not pydantic's;
`validated` takes pydantic's first error, in the order the fields are declared, and words it.
Every model knows all its keys: an unknown one (a typo such as `temprature`) is refused with the
nearest known key, before any value is checked, since a key that is ignored changes what runs.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationError, model_validator

from arenajudge.core.errors import UserError
from arenajudge.core.names import name_problem

Model = TypeVar("Model", bound=BaseModel)

_KIND_NAMES: dict[type, str] = {bool: "true/false", int: "an integer", float: "a number", str: "a string",
                                list: "a list", dict: "a mapping"}


class KeyProblem(ValueError):
    """A problem with another key than the one being validated.

    `key` is relative to the value being validated (`[0]`, `env.X`), or, with `from_root`, to
    the key prefix given to `validated` (a check of the server block that names the endpoint).
    """

    def __init__(self, key: str, problem: str, *, from_root: bool = False) -> None:
        super().__init__(problem)
        self.key, self.problem, self.from_root = key, problem, from_root


def key_error(path: Path, key: str, problem: str) -> UserError:
    return UserError(f"{path}: key '{key}': {problem}")


def _join(parent: str, key: str | int) -> str:
    """`parent.key`, `parent[key]` or `parent[0]...` (`parent` may be empty)."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    if not key or not parent:
        return parent or key
    return parent + key if key.startswith("[") else f"{parent}.{key}"


def validated(model: type[Model], data: Any, path: Path, prefix: str = "", *,
              given: dict[str, Any] | None = None, context: dict[str, Any] | None = None) -> Model:
    """`model` validated from `data`; the first problem becomes a UserError naming `path` and the key.

    `prefix` is where `data` sits in its file (`cand.`, `pipeline.`), so keys are named in full;
    `given` adds fields that come from elsewhere than the mapping (the file's path, the entry's name).
    """
    if given and isinstance(data, dict):
        # keys the loader fills are not for the file to say: refused as the model refuses the others, the
        # first in the file's order (the model sees the merged mapping, which has them)
        first_unknown = next((key for key in data if key in given or key not in model.model_fields), None)
        if first_unknown in given and issubclass(model, YamlModel):
            raise key_error(path, _join(prefix.rstrip("."), str(first_unknown)), model.unknown_key_problem(str(first_unknown)))
        data = {**data, **given}
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        first = exc.errors()[0]
    key = ""
    for part in first["loc"]:
        key = _join(key, part)
    cause = (first.get("ctx") or {}).get("error")
    if first["type"] == "missing":
        problem = "missing (required)"
    elif isinstance(cause, KeyProblem):
        key = cause.key if cause.from_root else _join(key, cause.key)
        problem = cause.problem
    elif isinstance(cause, Exception):
        problem = str(cause)
    elif first["type"] == "extra_forbidden":  # a key a validator added: YamlModel refuses the file's own first
        problem = "unknown key"
    else:  # a check of pydantic's own; the models here leave none, but say something useful
        problem = first["msg"]
    raise key_error(path, _join(prefix.rstrip("."), key), problem) from None


def kind_name(kinds: tuple[type, ...]) -> str:
    return " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)


def checked(value: Any, *kinds: type) -> Any:
    """`value` if it is one of `kinds` (an integer counts as a number, true/false only as true/false)."""
    # YAML's true/false are ints to Python; never accept them as numbers
    if isinstance(value, bool) and bool not in kinds:
        raise ValueError(f"expected {kind_name(kinds)}, got {value!r}")
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kinds):
        raise ValueError(f"expected {kind_name(kinds)}, got {value!r}")
    return value


def checked_key(data: dict[str, Any], key: str, *kinds: type, default: Any = None) -> Any:
    """data[key] checked as `checked` does, or `default` when absent; a problem names the key."""
    if data.get(key) is None:
        return default
    try:
        return checked(data[key], *kinds)
    except ValueError as exc:
        raise KeyProblem(key, str(exc)) from None


def _kind(*kinds: type) -> PlainValidator:
    return PlainValidator(lambda value: checked(value, *kinds))


def _positive_int(value: Any) -> int:
    number = checked(value, int)
    if number < 1:
        raise ValueError(f"must be a positive integer, got {number!r}")
    return number


def _text(value: Any) -> str:
    """A string, or a number taken as its text (a model name such as 7 or 1.5)."""
    return str(checked(value, str, int, float))


def _name(value: Any) -> str:
    """A model, judge or bench name: a string that can name a file under the data directory."""
    name = checked(value, str)
    if problem := name_problem(name):
        raise ValueError(f"refused: {problem}")
    return name


def str_list(value: Any) -> list[str]:
    items = value if isinstance(value, tuple) else checked(value, list)
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item:
            raise KeyProblem(f"[{i}]", f"expected a model name, got {item!r}")
    return list(items)


def _name_list(value: Any) -> list[str]:
    names = str_list(value)
    for i, item in enumerate(names):
        if problem := name_problem(item):
            raise KeyProblem(f"[{i}]", f"refused: {problem}")
    return names


Str = Annotated[str, _kind(str)]
Flag = Annotated[bool, _kind(bool)]
Number = Annotated[float, _kind(float)]
Text = Annotated[str, PlainValidator(_text)]
PositiveInt = Annotated[int, PlainValidator(_positive_int)]
Name = Annotated[str, PlainValidator(_name)]
StrList = Annotated[list[str], PlainValidator(str_list)]
NameList = Annotated[list[str], PlainValidator(_name_list)]


class YamlModel(BaseModel):
    """A mapping of a YAML config: frozen, null keys taken as absent, every key known.

    Its keys are its fields. `loader_keys` are fields the loader fills (the file's path, the entry's
    name): accepted from the loader, never suggested, refused when the file itself writes them.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)
    not_a_mapping: ClassVar[str | None] = None  # the problem when the value is not a mapping (None: its type)
    loader_keys: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _without_nulls(cls, data: Any) -> Any:
        return data if isinstance(data, BaseModel) else cls.known_mapping(data)

    @classmethod
    def known_mapping(cls, data: Any) -> dict[str, Any]:
        """`data` as a mapping without nulls; its first unknown key (in the file's order) is a KeyProblem.

        Subclasses whose own before-validators run first (pydantic runs a subclass's before the base's)
        and can fail call this first, so a typo is named rather than what it left missing."""
        mapping = as_mapping(data, cls.not_a_mapping)
        for key in mapping:
            if key not in cls.model_fields:
                raise KeyProblem(str(key), cls.unknown_key_problem(str(key)))
        return mapping

    @classmethod
    def unknown_key_problem(cls, key: str) -> str:
        """'unknown key', with the nearest key the file may write when one is close."""
        writable = [name for name in cls.model_fields if name not in cls.loader_keys]
        close = difflib.get_close_matches(key, writable, n=1)
        return f"unknown key (did you mean {close[0]!r}?)" if close else "unknown key"


def as_mapping(data: Any, not_a_mapping: str | None = None) -> dict[str, Any]:
    """`data` without its null values; a ValueError (`not_a_mapping`, else one naming its type) if not a mapping."""
    if not isinstance(data, dict):
        raise ValueError(not_a_mapping or f"expected a mapping, got {data!r}")
    return {k: v for k, v in data.items() if v is not None}
