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
from urllib.parse import urlsplit, urlunsplit

import yaml

from .errors import UserError
from .names import name_problem
from .templates import ARENA_FIELDS, REFERENCE_FIELD, check_names, placeholders

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

    def name(self, key: str, default: Any = ...) -> Any:
        """A model, judge or bench name: a string that can name a file under the data directory."""
        value = self.get(key, str, default)
        if value is not None and value is not default and (problem := name_problem(value)):
            raise self.fail(key, f"refused: {problem}")
        return value

    def name_list(self, key: str, default: Any = ...) -> list[str]:
        names = self.str_list(key, default)
        for i, item in enumerate(names):
            if problem := name_problem(item):
                raise self.fail(f"{key}[{i}]", f"refused: {problem}")
        return names


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


def url_secrets(url: str | None) -> list[str]:
    """The password (and the whole user:password pair) inside a URL such as http://user:pw@host/v1."""
    if not url:
        return []
    try:
        password = urlsplit(url).password
    except ValueError:
        return []
    if not password:
        return []
    userinfo = url.split("://", 1)[-1].split("@", 1)[0]
    return [userinfo, password]


def redact_url(url: str) -> str:
    """`url` with any password in it replaced by ***: it is shown where API keys are hidden."""
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is not None and parts.password:
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))
    if "@" in url.split("://", 1)[-1].split("/", 1)[0]:  # unparseable but carries user info: hide it all
        scheme, _, rest = url.rpartition("://")
        return f"{scheme}://***@" + rest.split("@", 1)[1] if scheme else "***@" + rest.split("@", 1)[1]
    return url


@dataclass(frozen=True)
class Endpoint:
    api_base: str | None
    api_key: str | None = field(repr=False)  # never printed
    api_version: str | None = None

    def describe(self) -> str:
        return redact_url(self.api_base) if self.api_base else "the default OpenAI endpoint"


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
    timeout: float | None = None  # seconds per request (None: --timeout, else 600)
    server: ServerSpec | None = None  # a server the tools start and stop (see servers.py)
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
                try:
                    parsed = urlsplit(base)
                    parsed.port  # noqa: B018 -- raises ValueError on a port that is not a number
                except ValueError:
                    parsed = None
                if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
                    raise ek.fail("api_base", f"not a well-formed http(s) URL: {redact_url(base)!r}")
            key = ek.get("api_key", (str, int), None)
            endpoints.append(Endpoint(base, str(key) if key is not None else None,
                                      ek.get("api_version", (str, int, float), None)))
        server = _server_spec(path, name, keys, endpoints)
        if server is not None and not endpoints[0].api_base:
            endpoints[0] = replace(endpoints[0], api_base=server.api_base)
        entries[name] = ModelEntry(
            name=name,
            model_name=str(keys.get("model_name", (str, int, float))),
            endpoints=tuple(endpoints),
            api_type=api_type,
            parallel=keys.positive_int("parallel", 1),
            system_prompt=keys.get("system_prompt", str, None),
            tokenizer=keys.get("tokenizer", str, None),
            timeout=_positive_seconds(keys, "timeout"),
            server=server,
            source=path,
        )
    return entries


def _positive_seconds(keys: _Keys, key: str) -> float | None:
    value = keys.get(key, float, None)
    if value is not None and value <= 0:
        raise keys.fail(key, f"must be a positive number of seconds, got {value!r}")
    return value


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
        bench_name=keys.name("bench_name"),
        temperature=keys.get("temperature", float, 0.0),
        max_tokens=keys.positive_int("max_tokens", 4096),
        num_choices=keys.positive_int("num_choices", 1),
        model_list=keys.name_list("model_list"),
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


def shown_mt_bench_mode(bench_name: str, mode: str | None) -> str | None:
    """The MT-Bench mode a bench's judgments are shown in: `mode` when given, else 'single' for the mt_bench
    bench (judged in MT-Bench modes), else None (an arena-hard board)."""
    return mode or ("single" if bench_name == "mt_bench" else None)


def load_judge_config(path: Path) -> JudgeConfig:
    keys = _Keys(path, load_yaml(path))
    bench_name = keys.name("bench_name")
    judge_model = keys.name("judge_model")
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
    reference = keys.get("reference", bool, False)
    if mode is None:  # MT-Bench prompts are checked where they are loaded (mtbench.check_prompts)
        for i, t in enumerate(templates):
            key = "prompt_template" if len(templates) == 1 else f"prompt_template[{i}]"
            where = f"{path}: key '{key}'"
            check_names(placeholders(t, where), ARENA_FIELDS, where,
                        "arena-hard judging fills {question_N}, {answer_N} and, with reference: true, {ref_answer_N}",
                        REFERENCE_FIELD if reference else None)
    baseline = keys.get("baseline", bool, mode in (None, "pairwise-baseline"))
    baseline_model = keys.name("baseline_model", None)
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
        model_list=keys.name_list("model_list"),
        reference=reference,
        ref_model=keys.name("ref_model", None),
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


# ----------------------------------------------------------------- managed servers

_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "0.0.0.0")
DEFAULT_SERVER_PORT = 8000


@dataclass(frozen=True)
class ServerSpec:
    """An api config entry's `server` block: a vLLM server the tools start, use and stop."""

    model: str  # what to serve: a local path or a model id (default: the entry's model_name)
    served_model_name: str  # always the entry's model_name, so requests find it
    host: str
    port: int
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    gpu_memory_utilization: float | None = None
    max_model_len: int | None = None
    dtype: str | None = None
    quantization: str | None = None
    extra_args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # added to the environment of the server process
    gpus: tuple[str, ...] | None = None  # CUDA_VISIBLE_DEVICES as a set; None: every GPU of the box
    startup_timeout: float = 1200.0  # seconds until /health and /v1/models answer
    command: tuple[str, ...] | None = None  # default: this Python's vLLM server module (servers.py)

    @property
    def api_base(self) -> str:
        host = "127.0.0.1" if self.host == "0.0.0.0" else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/v1"

    @property
    def gpu_count(self) -> int:
        return self.tensor_parallel_size * self.pipeline_parallel_size

    def shares_hardware_with(self, other: ServerSpec) -> bool:
        """True when both cannot run at once: the same port, or GPU sets that meet (unknown = all GPUs)."""
        if self.port == other.port:
            return True
        if self.gpus is None or other.gpus is None:
            return True
        return bool(set(self.gpus) & set(other.gpus))


SERVER_KEYS = ("model", "served_model_name", "port", "host", "tensor_parallel_size", "pipeline_parallel_size",
               "gpu_memory_utilization", "max_model_len", "dtype", "quantization", "extra_args", "env", "gpus",
               "startup_timeout", "command")


def _gpu_list(keys: _Keys, key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, bool):
        raise keys.fail(key, f"expected GPU indices such as 0,1 or [0, 1], got {value!r}")
    if isinstance(value, int):
        items: list[Any] = [value]
    elif isinstance(value, str):
        items = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, list):
        items = value
    else:
        raise keys.fail(key, f"expected GPU indices such as 0,1 or [0, 1], got {value!r}")
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, str)) or str(item).strip() == "":
            raise keys.fail(key, f"expected GPU indices such as 0,1 or [0, 1], got {value!r}")
        out.append(str(item).strip())
    if not out:
        raise keys.fail(key, "names no GPU")
    return tuple(out)


def _server_spec(path: Path, name: str, entry_keys: _Keys, endpoints: list[Endpoint]) -> ServerSpec | None:
    raw = entry_keys.get("server", dict, None)
    if raw is None:
        return None
    keys = _Keys(path, raw, f"{name}.server.")
    unknown = sorted(str(k) for k in raw if k not in SERVER_KEYS)
    if unknown:
        raise keys.fail(unknown[0], f"unknown key (known: {', '.join(SERVER_KEYS)})")
    model_name = str(entry_keys.get("model_name", (str, int, float)))
    served = keys.get("served_model_name", str, model_name)
    if served != model_name:
        raise keys.fail("served_model_name", f"{served!r} differs from model_name {model_name!r}, which requests use; "
                                             "set model_name to the served name")
    if len(endpoints) != 1:
        raise entry_keys.fail("endpoints", f"a managed server has one endpoint, got {len(endpoints)}")
    host, port = "127.0.0.1", None
    base = endpoints[0].api_base
    if base is not None:
        parsed = urlsplit(base)
        where = f"{name}.endpoints[0].api_base"
        if parsed.hostname not in _LOCAL_HOSTS:
            raise UserError(f"{path}: key '{where}': a managed server runs on this machine, "
                            f"so its api_base must name localhost or 127.0.0.1, got {redact_url(base)!r}")
        if parsed.path.rstrip("/") != "/v1":
            raise UserError(f"{path}: key '{where}': vLLM serves under /v1, got {redact_url(base)!r}")
        host = parsed.hostname or host
        port = parsed.port
    port_key = keys.get("port", int, None)
    if port_key is not None and not 0 < port_key < 65536:
        raise keys.fail("port", f"not a TCP port: {port_key}")
    if port is not None and port_key is not None and port != port_key:
        raise keys.fail("port", f"{port_key} differs from the port of api_base {redact_url(base)!r}")
    port = port or port_key or DEFAULT_SERVER_PORT
    host = keys.get("host", str, host)
    env_raw = keys.get("env", dict, {})
    env: dict[str, str] = {}
    for key, value in env_raw.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise keys.fail(f"env.{key}", f"expected a string or number, got {value!r}")
        env[str(key)] = str(value)
    gpus = _gpu_list(keys, "gpus", raw["gpus"]) if raw.get("gpus") is not None else None
    if "CUDA_VISIBLE_DEVICES" in env:
        visible = _gpu_list(keys, "env.CUDA_VISIBLE_DEVICES", env["CUDA_VISIBLE_DEVICES"])
        if gpus is not None and set(gpus) != set(visible):
            raise keys.fail("gpus", f"{','.join(gpus)} differs from env.CUDA_VISIBLE_DEVICES {env['CUDA_VISIBLE_DEVICES']}")
        gpus = visible
    if gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    extra = keys.get("extra_args", (list, str), [])
    extra_args = extra.split() if isinstance(extra, str) else extra
    for i, arg in enumerate(extra_args):
        if isinstance(arg, bool) or not isinstance(arg, (str, int, float)):
            raise keys.fail(f"extra_args[{i}]", f"expected a string, got {arg!r}")
    if any(str(a).split("=")[0] == "--api-key" for a in extra_args):
        raise keys.fail("extra_args", "do not pass --api-key here; the endpoint's api_key is given to the server")
    command = keys.get("command", (list, str), None)
    if isinstance(command, str):
        command = command.split()
    if command is not None:
        if not command or not all(isinstance(c, str) and c for c in command):
            raise keys.fail("command", "expected a command line such as "
                                       f"[/envs/vllm/bin/python, -m, vllm.entrypoints.openai.api_server], got {command!r}")
    spec = ServerSpec(
        model=str(keys.get("model", (str, int, float), model_name)),
        served_model_name=served,
        host=host,
        port=port,
        tensor_parallel_size=keys.positive_int("tensor_parallel_size", 1),
        pipeline_parallel_size=keys.positive_int("pipeline_parallel_size", 1),
        gpu_memory_utilization=keys.get("gpu_memory_utilization", float, None),
        max_model_len=keys.positive_int("max_model_len") if raw.get("max_model_len") is not None else None,
        dtype=keys.get("dtype", str, None),
        quantization=keys.get("quantization", str, None),
        extra_args=tuple(str(a) for a in extra_args),
        env=tuple(sorted(env.items())),
        gpus=gpus,
        startup_timeout=keys.get("startup_timeout", float, 1200.0),
        command=tuple(command) if command is not None else None,
    )
    if spec.gpu_memory_utilization is not None and not 0 < spec.gpu_memory_utilization <= 1:
        raise keys.fail("gpu_memory_utilization", f"must be in (0, 1], got {spec.gpu_memory_utilization}")
    if spec.startup_timeout <= 0:
        raise keys.fail("startup_timeout", f"must be positive, got {spec.startup_timeout}")
    if gpus is not None and len(gpus) < spec.gpu_count:
        raise keys.fail("tensor_parallel_size", f"tensor x pipeline parallel size needs {spec.gpu_count} GPUs, "
                                                f"CUDA_VISIBLE_DEVICES lists {len(gpus)}")
    return spec
