"""The server specification: an api config entry's `server` block, checked and completed from the entry.

The block may leave out what the entry already says: the served name is the entry's model_name,
host and port come from the endpoint's api_base (else 127.0.0.1:8000), and the model to serve
defaults to model_name. Validated with the entry's raw mapping in the context (`entry`), so a
problem with the endpoint is named at the endpoint's key.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationInfo, model_validator

from arenajudge.config.fields import KeyProblem, Number, PositiveInt, Str, Text, YamlModel, checked, checked_key
from arenajudge.core.urls import redact_url

_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "0.0.0.0")
DEFAULT_SERVER_PORT = 8000


class ServerSpec(YamlModel):
    """A vLLM server the tools start, use and stop."""

    model: Text  # what to serve: a local path or a model id (default: the entry's model_name)
    served_model_name: Str  # always the entry's model_name, so requests find it
    host: Str
    port: int
    env: tuple[tuple[str, str], ...] = ()  # added to the environment of the server process
    gpus: tuple[str, ...] | None = None  # CUDA_VISIBLE_DEVICES as a set; None: every GPU of the box
    extra_args: tuple[str, ...] = ()
    command: tuple[str, ...] | None = None  # default: this Python's vLLM server module (servers.py)
    tensor_parallel_size: PositiveInt = 1
    pipeline_parallel_size: PositiveInt = 1
    gpu_memory_utilization: Number | None = None
    max_model_len: PositiveInt | None = None
    dtype: Str | None = None
    quantization: Str | None = None
    startup_timeout: Number = 1200.0  # seconds until /health and /v1/models answer

    @model_validator(mode="before")
    @classmethod
    def _from_block(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, ServerSpec):
            return data
        block = cls.known_mapping(data)  # a misspelt key is named before the checks below
        entry = (info.context or {}).get("entry")
        if entry is not None:
            _complete_from_entry(block, entry)
        env = _env(block)
        gpus = _gpu_list("gpus", block["gpus"]) if block.get("gpus") is not None else None
        if "CUDA_VISIBLE_DEVICES" in env:
            visible = _gpu_list("env.CUDA_VISIBLE_DEVICES", env["CUDA_VISIBLE_DEVICES"])
            if gpus is not None and set(gpus) != set(visible):
                raise KeyProblem("gpus", f"{','.join(gpus)} differs from env.CUDA_VISIBLE_DEVICES "
                                         f"{env['CUDA_VISIBLE_DEVICES']}")
            gpus = visible
        if gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
        block["env"], block["gpus"] = tuple(sorted(env.items())), gpus
        block["extra_args"] = _extra_args(block)
        block["command"] = _command(block)
        return block

    @model_validator(mode="after")
    def _in_range(self) -> ServerSpec:
        if self.gpu_memory_utilization is not None and not 0 < self.gpu_memory_utilization <= 1:
            raise KeyProblem("gpu_memory_utilization", f"must be in (0, 1], got {self.gpu_memory_utilization}")
        if self.startup_timeout <= 0:
            raise KeyProblem("startup_timeout", f"must be positive, got {self.startup_timeout}")
        if self.gpus is not None and len(self.gpus) < self.gpu_count:
            raise KeyProblem("tensor_parallel_size", f"tensor x pipeline parallel size needs {self.gpu_count} GPUs, "
                                                     f"CUDA_VISIBLE_DEVICES lists {len(self.gpus)}")
        return self

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


def _complete_from_entry(block: dict[str, Any], entry: dict[str, Any]) -> None:
    """Served name, model, host and port from the entry (raw mapping), checked against what the block says."""
    model_name = entry.get("model_name")
    if model_name is None:
        raise KeyProblem("model_name", "missing (required)", from_root=True)
    try:
        model_name = str(checked(model_name, str, int, float))
    except ValueError as exc:
        raise KeyProblem("model_name", str(exc), from_root=True) from None
    served = checked_key(block, "served_model_name", str, default=model_name)
    if served != model_name:
        raise KeyProblem("served_model_name", f"{served!r} differs from model_name {model_name!r}, which requests "
                                              "use; set model_name to the served name")
    endpoints = entry.get("endpoints") or [{}]
    if not isinstance(endpoints, list):
        endpoints = [{}]  # the entry's own check of `endpoints` names this first
    if len(endpoints) != 1:
        raise KeyProblem("endpoints", f"a managed server has one endpoint, got {len(endpoints)}", from_root=True)
    host, port = "127.0.0.1", None
    base = endpoints[0].get("api_base") if isinstance(endpoints[0], dict) else None
    if isinstance(base, str):
        parsed = urlsplit(base)
        if parsed.hostname not in _LOCAL_HOSTS:
            raise KeyProblem("endpoints[0].api_base", "a managed server runs on this machine, so its api_base must "
                             f"name localhost or 127.0.0.1, got {redact_url(base)!r}", from_root=True)
        if parsed.path.rstrip("/") != "/v1":
            raise KeyProblem("endpoints[0].api_base", f"vLLM serves under /v1, got {redact_url(base)!r}",
                             from_root=True)
        host = parsed.hostname or host
        port = parsed.port
    port_key = checked_key(block, "port", int)
    if port_key is not None and not 0 < port_key < 65536:
        raise KeyProblem("port", f"not a TCP port: {port_key}")
    if port is not None and port_key is not None and port != port_key:
        raise KeyProblem("port", f"{port_key} differs from the port of api_base {redact_url(str(base))!r}")
    block["port"] = port or port_key or DEFAULT_SERVER_PORT
    block["host"] = checked_key(block, "host", str, default=host)
    block["served_model_name"] = served
    block.setdefault("model", model_name)


def _env(block: dict[str, Any]) -> dict[str, str]:
    raw = block.get("env", {})
    pairs = raw if isinstance(raw, tuple) else checked_key(block, "env", dict, default={}).items()
    env: dict[str, str] = {}
    for key, value in pairs:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise KeyProblem(f"env.{key}", f"expected a string or number, got {value!r}")
        env[str(key)] = str(value)
    return env


def _gpu_list(key: str, value: Any) -> tuple[str, ...]:
    wrong = KeyProblem(key, f"expected GPU indices such as 0,1 or [0, 1], got {value!r}")
    if isinstance(value, bool):
        raise wrong
    if isinstance(value, int):
        items: list[Any] = [value]
    elif isinstance(value, str):
        items = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise wrong
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, str)) or str(item).strip() == "":
            raise wrong
        out.append(str(item).strip())
    if not out:
        raise KeyProblem(key, "names no GPU")
    return tuple(out)


def _extra_args(block: dict[str, Any]) -> tuple[str, ...]:
    extra = block.get("extra_args", ())
    if not isinstance(extra, tuple):
        extra = checked_key(block, "extra_args", list, str, default=[])
    extra_args = extra.split() if isinstance(extra, str) else extra
    for i, arg in enumerate(extra_args):
        if isinstance(arg, bool) or not isinstance(arg, (str, int, float)):
            raise KeyProblem(f"extra_args[{i}]", f"expected a string, got {arg!r}")
    if any(str(a).split("=")[0] == "--api-key" for a in extra_args):
        raise KeyProblem("extra_args", "do not pass --api-key here; the endpoint's api_key is given to the server")
    return tuple(str(a) for a in extra_args)


def _command(block: dict[str, Any]) -> tuple[str, ...] | None:
    command = block.get("command")
    if command is None or isinstance(command, tuple):
        return command
    command = checked_key(block, "command", list, str)
    if isinstance(command, str):
        command = command.split()
    if not command or not all(isinstance(c, str) and c for c in command):
        raise KeyProblem("command", "expected a command line such as "
                                    f"[/envs/vllm/bin/python, -m, vllm.entrypoints.openai.api_server], got {command!r}")
    return tuple(command)

