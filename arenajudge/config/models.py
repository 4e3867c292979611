"""YAML configs, validated at the edge into typed (pydantic) objects.

Three files, with arena-hard-local's keys (configs written for it load unchanged):
- api config: {model key: {model_name, endpoints: [{api_base, api_key, api_version}],
  api_type, parallel, system_prompt?, tokenizer?, timeout?, server?}}
- answer config: name, bench_name, temperature, max_tokens, num_choices, model_list
- judge config: name, bench_name, judge_model, reference, ref_model, baseline, baseline_model,
  pairwise, temperature, max_tokens, regex_pattern, system_prompt, prompt_template, model_list
and run_eval's `pipeline:` section (of the judge config or its own file).

Every problem is a UserError naming the file and key (config_fields.validated words it); an
unknown key is one too, with the nearest known key. An entry without an address loads (arena-hard-local's
hosted GPT entries have none) but is refused where a run would send to it (ModelEntry.require_address).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

import yaml
from pydantic import BeforeValidator, Field, PlainValidator, create_model, model_validator

from arenajudge.config.fields import (
    Flag,
    KeyProblem,
    Name,
    NameList,
    Number,
    PositiveInt,
    Str,
    StrList,
    Text,
    YamlModel,
    as_mapping,
    checked,
    str_list,
    validated,
)
from arenajudge.config.server_spec import ServerSpec
from arenajudge.core.errors import UserError
from arenajudge.core.templates import ARENA_FIELDS, REFERENCE_FIELD, check_names, placeholders
from arenajudge.core.urls import redact_url
from arenajudge.core.verdicts import verdict_choices

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



def _api_base(value: Any) -> str:
    base = checked(value, str)
    try:
        parsed = urlsplit(base)
        parsed.port  # noqa: B018 -- raises ValueError on a port that is not a number
    except ValueError:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"not a well-formed http(s) URL: {redact_url(base)!r}")
    return base


class Endpoint(YamlModel):
    """One endpoint of an entry: where its requests go, and the key they carry."""

    not_a_mapping: ClassVar[str | None] = "expected a mapping with api_base and api_key"

    api_base: Annotated[str, PlainValidator(_api_base)] | None = None
    api_key: Annotated[str, PlainValidator(lambda value: str(checked(value, str, int)))] | None = Field(
        default=None, repr=False)  # never printed
    # arena-hard-local's, for Azure's API, which api_type does not offer: checked and otherwise ignored,
    # so configs that carry it load unchanged
    api_version: Text | None = None

    def __init__(self, api_base: str | None = None, api_key: str | None = None, **data: Any) -> None:
        # positional too, as the frozen dataclass it replaces took them
        super().__init__(api_base=api_base, api_key=api_key, **data)

    def describe(self) -> str:
        return redact_url(self.api_base) if self.api_base else "(no api_base)"


SUPPORTED_API_TYPES = ("openai",)


def _api_type(value: Any) -> str:
    api_type = checked(value, str)
    if api_type not in SUPPORTED_API_TYPES:
        raise ValueError(f"unsupported {api_type!r} (supported: {', '.join(SUPPORTED_API_TYPES)}; "
                         "any OpenAI-compatible server uses 'openai')")
    return api_type


def _endpoint_list(value: Any) -> Any:
    if isinstance(value, tuple):
        return value
    return checked(value, list) or [{}]


def _positive_seconds(value: Any) -> float:
    seconds = checked(value, float)
    if seconds <= 0:
        raise ValueError(f"must be a positive number of seconds, got {seconds!r}")
    return seconds


class ModelEntry(YamlModel):
    """One entry of the api config: how to reach a model."""

    not_a_mapping: ClassVar[str | None] = "expected a mapping with model_name and endpoints"
    loader_keys: ClassVar[tuple[str, ...]] = ("name", "source")

    name: str  # the config key: file names and records use it
    api_type: Annotated[str, PlainValidator(_api_type)] = "openai"
    endpoints: Annotated[tuple[Endpoint, ...], BeforeValidator(_endpoint_list)] = (Endpoint(),)
    server: ServerSpec | None = None  # a server the tools start and stop (vllm/servers.py)
    model_name: Text  # what the server calls it: the request's `model`
    parallel: PositiveInt = 1
    system_prompt: Str | None = None
    tokenizer: Str | None = None
    timeout: Annotated[float, PlainValidator(_positive_seconds)] | None = None  # per request (None: --timeout, else 600)
    source: Path = Path("config/api_config.yaml")

    @model_validator(mode="after")
    def _endpoint_of_the_server(self) -> ModelEntry:
        if self.server is not None and not self.endpoints[0].api_base:
            # the object is being built: this sets its field once, before anyone sees it
            object.__setattr__(self, "endpoints", (self.endpoints[0].model_copy(update={"api_base": self.server.api_base}),))
        return self

    def require_address(self) -> None:
        """A UserError unless every endpoint has an address: the openai client would send to OpenAI's own URL.

        Checked where a run is about to send, not when the file loads: arena-hard-local's api config lists
        its hosted GPT judges with `endpoints: null`, and those files load unchanged."""
        fix = "write the hosted API's address (e.g. api_base: https://api.openai.com/v1) to send to it"
        missing = [i for i, endpoint in enumerate(self.endpoints) if not endpoint.api_base]
        if len(missing) == len(self.endpoints):
            raise UserError(f"{self.source}: model {self.name!r} has no api_base and no server block: {fix}")
        if missing:
            raise UserError(f"{self.source}: key '{self.name}.endpoints[{missing[0]}]': no api_base: {fix}")

    def with_secrets(self) -> ModelEntry:
        """The entry with ${ENV_VAR} keys expanded (done only for the models a run uses)."""
        endpoints = tuple(
            ep.model_copy(update={"api_key": resolve_secret(ep.api_key, self.source, f"{self.name}.endpoints[{i}].api_key")
                                  if ep.api_key is not None else os.environ.get("OPENAI_API_KEY")})
            for i, ep in enumerate(self.endpoints))
        return self.model_copy(update={"endpoints": endpoints})


def load_api_config(path: Path) -> dict[str, ModelEntry]:
    return {name: validated(ModelEntry, raw, path, f"{name}.", given={"name": str(name), "source": path},
                            context={"entry": raw})
            for name, raw in load_yaml(path).items()}


def require_entry(entries: dict[str, ModelEntry], name: str, setting_file: Path, key: str, endpoint_file: Path) -> ModelEntry:
    """The entry a run sends to, with its keys: it must exist and have an address (never OpenAI's by default)."""
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none"
        raise UserError(f"{setting_file}: key '{key}': model {name!r} has no entry in {endpoint_file} (entries: {known})")
    entries[name].require_address()
    return entries[name].with_secrets()


def _replicas(value: Any) -> int | dict[str, int]:
    """One count for every model, or a count per model name."""
    if isinstance(value, dict):
        for model, count in value.items():
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise KeyProblem(f"{model}", f"expected a positive integer, got {count!r}")
        return {str(k): v for k, v in value.items()}
    try:
        count = checked(value, int)
    except ValueError:
        raise ValueError(f"expected a positive integer or a mapping of model to integer, got {value!r}") from None
    if count < 1:
        raise ValueError(f"must be a positive integer, got {count!r}")
    return count


class RaySection(YamlModel):
    """`pipeline.ray`: run_eval starts the managed servers as Ray actors (as --ray does; docs/cluster.md)."""

    address: Str | None = None  # the Ray cluster to join (None: auto, i.e. $RAY_ADDRESS, else a Ray started here)
    replicas: Annotated[int | dict[str, int], PlainValidator(_replicas)] | None = None  # per model, or model -> count


class PipelineSection(YamlModel):
    """run_eval's `pipeline:` section."""

    models: StrList = Field(default_factory=list)
    judge: Str | None = None
    baseline: Str | None = None
    bench_name: Str | None = None
    answer_config: Str | None = None  # None: --answer-setting-file
    api_config: Str = "config/api_config.yaml"
    show_result_args: Annotated[list[Any], PlainValidator(lambda value: checked(value, list))] = Field(
        default_factory=list)
    ray: RaySection | None = None  # managed servers on a Ray cluster (see RaySection)


def _category_temperatures(value: Any) -> dict[str, float]:
    temperatures = checked(value, dict)
    for cat, temperature in temperatures.items():
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
            raise KeyProblem(f"{cat}", f"expected a number, got {temperature!r}")
    return {str(k): float(v) for k, v in temperatures.items()}


class AnswerConfig(YamlModel):
    loader_keys: ClassVar[tuple[str, ...]] = ("path",)

    path: Path
    name: Text | None = None  # arena-hard-local's title of the file; not used
    # per-category temperatures (MT-Bench style); absent means `temperature` for all
    category_temperature: Annotated[dict[str, float], PlainValidator(_category_temperatures)] = Field(
        default_factory=dict)
    bench_name: Name
    temperature: Number = 0.0
    max_tokens: PositiveInt = 4096
    num_choices: PositiveInt = 1
    model_list: NameList
    # run_eval reads its section from any file given to --pipeline-file, this one too; checked, not used here
    pipeline: PipelineSection | None = None


def load_answer_config(path: Path) -> AnswerConfig:
    return validated(AnswerConfig, load_yaml(path), path, given={"path": path})


MT_BENCH_MODES = ("single", "pairwise-baseline", "pairwise-all")
# every `mode:` a judge config may name: MT-Bench's, and those of judging kinds registered since
# (judge.kinds.register_kind adds them; the judge layer picks the kind)
JUDGING_MODES: list[str] = list(MT_BENCH_MODES)


def add_judging_mode(mode: str | None) -> None:
    """Accept `mode:` = `mode` in judge configs (None is Arena-Hard's, always accepted)."""
    if mode is not None and mode not in JUDGING_MODES:
        JUDGING_MODES.append(mode)


def shown_mt_bench_mode(bench_name: str, mode: str | None) -> str | None:
    """The MT-Bench mode a bench's judgments are shown in: `mode` when given, else 'single' for the mt_bench
    bench (judged in MT-Bench modes), else None (an arena-hard board)."""
    return mode or ("single" if bench_name == "mt_bench" else None)


def _mode(value: Any) -> str:
    mode = checked(value, str)
    if mode not in JUDGING_MODES:
        raise ValueError(f"unknown mode {mode!r} (one of: {', '.join(JUDGING_MODES)}; omit it for arena-hard)")
    return mode


def _regex(value: Any) -> re.Pattern[str]:
    if isinstance(value, re.Pattern):
        return value
    try:
        pattern = re.compile(checked(value, str))
    except re.error as exc:
        raise ValueError(f"not a valid regular expression ({exc})") from None
    if pattern.groups < 1:
        raise ValueError("needs one capturing group around the verdict label")
    return pattern


def _templates(value: Any) -> list[str]:
    templates = [value] if isinstance(value, str) else checked(value, list, str)
    for i, template in enumerate(templates):
        if not isinstance(template, str):
            raise KeyProblem(f"[{i}]", f"expected a string, got {template!r}")
    return list(templates)


def _existing_file(value: Any) -> Path:
    found = Path(checked(value, str))
    if not found.exists():
        raise ValueError(f"no such file: {value}")
    return found


class JudgeConfig(YamlModel):
    loader_keys: ClassVar[tuple[str, ...]] = ("path",)

    path: Path
    name: Text | None = None  # arena-hard-local's title of the file; not used
    bench_name: Name
    judge_model: Name
    # MT-Bench style judging (None: arena-hard pairwise judging with the prompt below)
    mode: Annotated[str, PlainValidator(_mode)] | None = None
    regex_pattern: Annotated[re.Pattern[str], PlainValidator(_regex)] = re.compile(DEFAULT_REGEX)
    prompt_template: Annotated[list[str], PlainValidator(_templates)]  # MT-Bench modes: [] when absent
    reference: Flag = False
    baseline: Flag  # absent: true for arena-hard and MT-Bench pairwise-baseline
    baseline_model: Name | None = None
    pairwise: Flag = True
    temperature: Number = 0.0
    max_tokens: PositiveInt = 512
    system_prompt: Str  # MT-Bench modes: "" when absent
    model_list: NameList
    ref_model: Name | None = None
    judge_prompts: Annotated[Path, PlainValidator(_existing_file)] | None = None  # FastChat's judge_prompts.jsonl
    reference_categories: Annotated[tuple[str, ...], PlainValidator(lambda value: tuple(str_list(value)))] = (
        "math", "reasoning", "coding")
    pipeline: PipelineSection | None = None  # run_eval's section; checked here, used by run_eval only
    # the judge writes freely; a game without a readable label then gets one constrained follow-up whose reply is
    # one of the labels (vLLM's structured outputs; judge/arena_hard.py). Arena-Hard judging only.
    structured_verdicts: Flag = False

    @model_validator(mode="before")
    @classmethod
    def _defaults_of_the_mode(cls, data: Any) -> Any:
        data = as_mapping(data)
        mode = data.get("mode")
        if mode is not None and mode not in JUDGING_MODES:
            return data  # the mode's own check says what is wrong
        if mode is not None:
            data.setdefault("prompt_template", [])
            data.setdefault("system_prompt", "")
        data.setdefault("baseline", mode in (None, "pairwise-baseline"))
        return data

    @model_validator(mode="after")
    def _prompts_and_baseline(self) -> JudgeConfig:
        if self.mode is None:  # MT-Bench prompts are checked where they are loaded (mtbench.check_prompts)
            for i, template in enumerate(self.prompt_template):
                key = "prompt_template" if len(self.prompt_template) == 1 else f"prompt_template[{i}]"
                where = f"{self.path}: key '{key}'"
                check_names(placeholders(template, where), ARENA_FIELDS, where,
                            "arena-hard judging fills {question_N}, {answer_N} and, with reference: true, "
                            "{ref_answer_N}", REFERENCE_FIELD if self.reference else None)
        if self.structured_verdicts and self.mode is not None:
            raise KeyProblem("structured_verdicts", f"covers arena-hard judging only, not mode {self.mode!r}; "
                                                    "remove it or set it to false")
        if self.structured_verdicts and verdict_choices(self.regex_pattern) is None:
            raise KeyProblem("structured_verdicts", "regex_pattern reads none of the label forms a constrained reply "
                                                    "can take ([[A>B]], [A>B], A>B); fix the pattern or set it to false")
        if self.baseline and not self.baseline_model and self.mode in (None, "pairwise-baseline"):
            raise KeyProblem("baseline_model", "missing: baseline is true, so name the baseline model")
        return self


def load_judge_config(path: Path) -> JudgeConfig:
    return validated(JudgeConfig, load_yaml(path), path, given={"path": path})


class PipelineDefaults(YamlModel):
    """What run_eval takes from the judge config when neither flags nor the `pipeline:` section say it."""

    model_list: StrList = Field(default_factory=list)
    judge_model: Str | None = None
    baseline_model: Str | None = None
    bench_name: Str | None = None


# A file with a `pipeline:` section: the section, and the keys of the judge or answer config it may also be
# (those are checked where the file is used as such).
PipelineFile = create_model(
    "PipelineFile", __base__=YamlModel, pipeline=(PipelineSection | None, None),
    **{key: (Any, None) for model in (JudgeConfig, AnswerConfig) for key in model.model_fields
       if key not in (*model.loader_keys, "pipeline")})


def load_pipeline_section(path: Path) -> PipelineSection:
    """The `pipeline:` section of `path` (empty when absent); an unknown key anywhere in the file is refused."""
    section = validated(PipelineFile, load_yaml(path), path).pipeline
    return section if section is not None else PipelineSection()
