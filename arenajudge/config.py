"""YAML configs, validated at the edge into typed objects.

Three files, with arena-hard-local's keys (configs written for it load unchanged):
- api config: {model key: {model_name, endpoints: [{api_base, api_key, api_version}],
  api_type, parallel, system_prompt?, tokenizer?, server?}}
- answer config: bench_name, temperature, max_tokens, num_choices, model_list
- judge config: bench_name, judge_model, reference, ref_model, baseline, baseline_model,
  pairwise, temperature, max_tokens, regex_pattern, system_prompt, prompt_template, model_list

Every problem is a UserError naming the file and key.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from .errors import UserError

# The seed's verdict pattern: accepts [[A>B]] and [A>B], any case.
DEFAULT_REGEX = r"\[(\[?[AB<>=ab]+\]?)\]"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def load_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not valid UTF-8 (byte {exc.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}{where}: YAML syntax error: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of keys at the top level, got {type(data).__name__}")
    return data


class _Keys:
    """Typed access to one mapping, with errors that name file and key."""

    def __init__(self, path: Path, data: dict[str, Any], prefix: str = "") -> None:
        self.path, self.data, self.prefix = path, data, prefix

    def fail(self, key: str, problem: str) -> UserError:
        return UserError(f"{self.path}: key '{self.prefix}{key}': {problem}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        """The value of `key` checked against `kind`; absent or null gives `default`."""
        value = self.data.get(key)
        if value is None:
            if default is ...:
                raise self.fail(key, "missing (required)")
            return default
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # YAML's true/false are ints to Python; never accept them as numbers
        if isinstance(value, bool) and bool not in kinds:
            raise self.fail(key, f"expected {_kind_name(kinds)}, got {value!r}")
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds):
            raise self.fail(key, f"expected {_kind_name(kinds)}, got {value!r}")
        return value

    def positive_int(self, key: str, default: Any = ...) -> int:
        value = self.get(key, int, default)
        if value < 1:
            raise self.fail(key, f"must be a positive integer, got {value!r}")
        return value

    def str_list(self, key: str, default: Any = ...) -> list[str]:
        value = self.get(key, list, default)
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item:
                raise self.fail(f"{key}[{i}]", f"expected a model name, got {item!r}")
        return list(value)


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "a mapping"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def resolve_secret(value: str | None, path: Path, key: str) -> str | None:
    """Expand ${ENV_VAR} references; a missing variable is an error (its name, never a value)."""
    if value is None:
        return None

    def expand(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise UserError(f"{path}: key '{key}': environment variable {name} is not set")
        return os.environ[name]

    return _ENV_REF.sub(expand, value)


@dataclass(frozen=True)
class Endpoint:
    api_base: str | None
    api_key: str | None = field(repr=False)  # never printed
    api_version: str | None = None

    def describe(self) -> str:
        return self.api_base or "the default OpenAI endpoint"


@dataclass(frozen=True)
class ModelEntry:
    """One entry of the api config: how to reach a model."""

    name: str  # the config key: file names and records use it
    model_name: str  # what the server calls it: the request's `model`
    endpoints: tuple[Endpoint, ...]
    api_type: str = "openai"
    parallel: int = 1
    system_prompt: str | None = None
    tokenizer: str | None = None
    server: dict[str, Any] | None = None
    source: Path = Path("config/api_config.yaml")

    def with_secrets(self) -> ModelEntry:
        """The entry with ${ENV_VAR} keys expanded (done only for the models a run uses)."""
        endpoints = tuple(
            replace(ep, api_key=resolve_secret(ep.api_key, self.source, f"{self.name}.endpoints[{i}].api_key")
                    if ep.api_key is not None else os.environ.get("OPENAI_API_KEY"))
            for i, ep in enumerate(self.endpoints))
        return replace(self, endpoints=endpoints)


SUPPORTED_API_TYPES = ("openai",)


def load_api_config(path: Path) -> dict[str, ModelEntry]:
    data = load_yaml(path)
    entries: dict[str, ModelEntry] = {}
    for name, raw in data.items():
        if not isinstance(raw, dict):
            raise UserError(f"{path}: key '{name}': expected a mapping with model_name and endpoints")
        keys = _Keys(path, raw, f"{name}.")
        api_type = keys.get("api_type", str, "openai")
        if api_type not in SUPPORTED_API_TYPES:
            raise keys.fail("api_type", f"unsupported {api_type!r} (supported: {', '.join(SUPPORTED_API_TYPES)}; "
                                        "any OpenAI-compatible server uses 'openai')")
        raw_endpoints = keys.get("endpoints", list, None) or [{}]
        endpoints = []
        for i, ep in enumerate(raw_endpoints):
            if not isinstance(ep, dict):
                raise keys.fail(f"endpoints[{i}]", "expected a mapping with api_base and api_key")
            ek = _Keys(path, ep, f"{name}.endpoints[{i}].")
            base = ek.get("api_base", str, None)
            if base is not None:
                parsed = urlparse(base)
                if parsed.scheme not in ("http", "https") or not parsed.netloc:
                    raise ek.fail("api_base", f"not a well-formed http(s) URL: {base!r}")
            key = ek.get("api_key", (str, int), None)
            endpoints.append(Endpoint(base, str(key) if key is not None else None,
                                      ek.get("api_version", (str, int, float), None)))
        server = keys.get("server", dict, None)
        entries[name] = ModelEntry(
            name=name,
            model_name=str(keys.get("model_name", (str, int, float))),
            endpoints=tuple(endpoints),
            api_type=api_type,
            parallel=keys.positive_int("parallel", 1),
            system_prompt=keys.get("system_prompt", str, None),
            tokenizer=keys.get("tokenizer", str, None),
            server=server,
            source=path,
        )
    return entries


@dataclass(frozen=True)
class AnswerConfig:
    path: Path
    bench_name: str
    temperature: float
    max_tokens: int
    num_choices: int
    model_list: list[str]
    # per-category temperatures (MT-Bench style); absent means `temperature` for all
    category_temperature: dict[str, float] = field(default_factory=dict)


def load_answer_config(path: Path) -> AnswerConfig:
    keys = _Keys(path, load_yaml(path))
    cat_temp = keys.get("category_temperature", dict, {})
    for cat, value in cat_temp.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise keys.fail(f"category_temperature.{cat}", f"expected a number, got {value!r}")
    return AnswerConfig(
        path=path,
        bench_name=keys.get("bench_name", str),
        temperature=keys.get("temperature", float, 0.0),
        max_tokens=keys.positive_int("max_tokens", 4096),
        num_choices=keys.positive_int("num_choices", 1),
        model_list=keys.str_list("model_list"),
        category_temperature={str(k): float(v) for k, v in cat_temp.items()},
    )


@dataclass(frozen=True)
class JudgeConfig:
    path: Path
    bench_name: str
    judge_model: str
    baseline: bool
    baseline_model: str | None
    pairwise: bool
    temperature: float
    max_tokens: int
    regex_pattern: re.Pattern[str]
    system_prompt: str
    prompt_template: list[str]
    model_list: list[str]
    reference: bool = False
    ref_model: str | None = None
    # MT-Bench style judging (None: arena-hard pairwise judging with the prompt above)
    mode: str | None = None
    judge_prompts: Path | None = None  # a judge_prompts.jsonl of FastChat's shape; None: ours
    reference_categories: tuple[str, ...] = ("math", "reasoning", "coding")


MT_BENCH_MODES = ("single", "pairwise-baseline", "pairwise-all")


def load_judge_config(path: Path) -> JudgeConfig:
    keys = _Keys(path, load_yaml(path))
    bench_name = keys.get("bench_name", str)
    judge_model = keys.get("judge_model", str)
    mode = keys.get("mode", str, None)
    if mode is not None and mode not in MT_BENCH_MODES:
        raise keys.fail("mode", f"unknown mode {mode!r} (one of: {', '.join(MT_BENCH_MODES)}; omit it for arena-hard)")
    regex = keys.get("regex_pattern", str, DEFAULT_REGEX)
    try:
        pattern = re.compile(regex)
    except re.error as exc:
        raise keys.fail("regex_pattern", f"not a valid regular expression ({exc})") from None
    if pattern.groups < 1:
        raise keys.fail("regex_pattern", "needs one capturing group around the verdict label")
    template = keys.get("prompt_template", (list, str), ... if mode is None else [])
    templates = [template] if isinstance(template, str) else template
    for i, t in enumerate(templates):
        if not isinstance(t, str):
            raise keys.fail(f"prompt_template[{i}]", f"expected a string, got {t!r}")
    baseline = keys.get("baseline", bool, mode in (None, "pairwise-baseline"))
    baseline_model = keys.get("baseline_model", str, None)
    if baseline and not baseline_model and mode in (None, "pairwise-baseline"):
        raise keys.fail("baseline_model", "missing: baseline is true, so name the baseline model")
    return JudgeConfig(
        path=path,
        bench_name=bench_name,
        judge_model=judge_model,
        baseline=baseline,
        baseline_model=baseline_model,
        pairwise=keys.get("pairwise", bool, True),
        temperature=keys.get("temperature", float, 0.0),
        max_tokens=keys.positive_int("max_tokens", 512),
        regex_pattern=pattern,
        system_prompt=keys.get("system_prompt", str, ... if mode is None else ""),
        prompt_template=templates,
        model_list=keys.str_list("model_list"),
        reference=keys.get("reference", bool, False),
        ref_model=keys.get("ref_model", str, None),
        mode=mode,
        judge_prompts=_optional_path(keys, "judge_prompts"),
        reference_categories=tuple(keys.str_list("reference_categories", ["math", "reasoning", "coding"])),
    )


def _optional_path(keys: _Keys, key: str) -> Path | None:
    value = keys.get(key, str, None)
    if value is None:
        return None
    found = Path(value)
    if not found.exists():
        raise keys.fail(key, f"no such file: {value}")
    return found
