"""A stand-in for `python -m vllm.entrypoints.openai.api_server` in fast tests.

It takes vLLM's flags (--model, --served-model-name, --host, --port, --max-model-len; others
are accepted and ignored), serves our fake OpenAI server plus vLLM's /tokenize and /metrics,
and reads VLLM_API_KEY as vLLM does. Environment knobs for launcher tests:

  FAKE_VLLM_START_DELAY=S   seconds before it listens (a slow model load)
  FAKE_VLLM_EXIT=CODE       print a failure and exit with CODE instead of serving
  FAKE_VLLM_LEAK_KEY=1      print the api key it got (a server that logs secrets; the launcher must redact it)
  FAKE_VLLM_PIDFILE=PATH    append its pid and its worker's pid (a child in its process group)
  FAKE_VLLM_IGNORE_TERM=1   ignore SIGTERM (the launcher must escalate to SIGKILL)
  FAKE_VLLM_CACHE_TOKENS=N  capacity of the simulated prefix cache, in tokens (default 4096; 0: none)
  FAKE_VLLM_DELAY=S         seconds each chat request takes
  FAKE_VLLM_CONCURRENCY=N   chat requests served at once (the rest wait), as a GPU's batch is bounded
  FAKE_VLLM_PROMPT_TOKEN_SECONDS=S, FAKE_VLLM_COMPLETION_TOKEN_SECONDS=S
                            added seconds per prompt / completion token of each request
  FAKE_VLLM_REPLY_TOKENS=N  replies padded to at least N tokens
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections import OrderedDict
from typing import Any

from arenajudge_testkit.fake_openai import FakeServer, Script, _tokens, serve_until_killed

BLOCK = 16  # tokens per cache block (vLLM: 16 on GPUs, 128 on the CPU build)


def prompt_text(messages: list[dict[str, Any]]) -> str:
    """Our stand-in chat template; its length // 4 is the token count everywhere here."""
    return "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages) + "<|assistant|>\n"


class FakeVllm(FakeServer):
    def __init__(self, script: Script, port: int, served: str, max_model_len: int, cache_tokens: int,
                 host: str = "127.0.0.1") -> None:
        super().__init__(script, port, host)
        self.served = served
        self.max_model_len = max_model_len
        self.cache_tokens = cache_tokens
        self.cache: OrderedDict[str, int] = OrderedDict()  # prompt -> tokens, least recently used first
        self.queries = 0
        self.hits = 0

    def _prefix_cache(self, prompt: str) -> None:
        tokens = _tokens(prompt)
        best = 0
        for cached in list(self.cache):
            common = len(os.path.commonprefix([cached, prompt]))  # noqa: RUF071 (strings, not paths)
            if common // 4 > best:
                best = common // 4
                self.cache.move_to_end(cached)
        self.queries += tokens
        self.hits += min(best, tokens - 1) // BLOCK * BLOCK
        self.cache[prompt] = tokens
        while sum(self.cache.values()) > self.cache_tokens and len(self.cache) > 1:
            self.cache.popitem(last=False)

    async def _handle(self, method: str, path: str, headers: dict[str, str], raw: bytes
                      ) -> tuple[int, dict[str, Any] | bytes]:
        path = path.split("?", 1)[0]
        if path == "/metrics":
            return 200, self._metrics()  # Prometheus text, not JSON
        if path == "/tokenize" and method == "POST":
            body = json.loads(raw)
            text = prompt_text(body["messages"]) if "messages" in body else body.get("prompt", "")
            count = _tokens(text)
            return 200, {"count": count, "max_model_len": self.max_model_len, "tokens": list(range(count))}
        if path == "/v1/models" and (self.script.api_key is None
                                     or headers.get("authorization") == f"Bearer {self.script.api_key}"):
            return 200, {"object": "list", "data": [{"id": self.served, "object": "model",
                                                     "max_model_len": self.max_model_len}]}
        if path == "/v1/chat/completions" and method == "POST":
            body = json.loads(raw)
            if self.cache_tokens:  # 0: no simulated cache (benches: it costs the stand-in CPU)
                self._prefix_cache(prompt_text(body.get("messages", []))[:-len("<|assistant|>\n")])
            status, payload = await super()._handle(method, path, headers, raw)
            if status == 200 and isinstance(payload, dict):
                # vLLM fills the room the prompt leaves; our replies are short anyway
                payload["usage"]["prompt_tokens"] = _tokens(prompt_text(body["messages"]))
            return status, payload
        return await super()._handle(method, path, headers, raw)

    def _prompt_tokens(self, messages: list[dict[str, Any]]) -> int:
        return _tokens(prompt_text(messages))

    def _metrics(self) -> bytes:
        return ("# TYPE vllm:prefix_cache_queries counter\n"
                f'vllm:prefix_cache_queries_total{{engine="0",model_name="{self.served}"}} {float(self.queries)}\n'
                f'vllm:prefix_cache_queries_created{{engine="0"}} {time.time()}\n'
                f'vllm:prefix_cache_hits_total{{engine="0",model_name="{self.served}"}} {float(self.hits)}\n').encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--served-model-name")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-model-len", type=int, default=2048)
    args, rest = parser.parse_known_args()
    served = args.served_model_name or args.model
    key = os.environ.get("VLLM_API_KEY")
    print(f"fake vllm: model {args.model} as {served} on port {args.port}, other flags {rest}, "
          f"api key {'set' if key else 'not set'}", flush=True)
    if os.environ.get("FAKE_VLLM_LEAK_KEY"):
        print(f"debug: api key is {key}", flush=True)
    if os.environ.get("FAKE_VLLM_PIDFILE"):
        worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(os.environ["FAKE_VLLM_PIDFILE"], "a") as f:
            f.write(f"{os.getpid()}\n{worker.pid}\n")
    if os.environ.get("FAKE_VLLM_IGNORE_TERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(float(os.environ.get("FAKE_VLLM_START_DELAY", "0")))
    if os.environ.get("FAKE_VLLM_EXIT"):
        print("RuntimeError: CUDA out of memory while loading the weights", flush=True)
        sys.exit(int(os.environ["FAKE_VLLM_EXIT"]))
    env = os.environ.get
    script = Script(api_key=key, models=(served,), delay=float(env("FAKE_VLLM_DELAY", "0")),
                    concurrency=int(env("FAKE_VLLM_CONCURRENCY", "1000000")),
                    prompt_token_seconds=float(env("FAKE_VLLM_PROMPT_TOKEN_SECONDS", "0")),
                    completion_token_seconds=float(env("FAKE_VLLM_COMPLETION_TOKEN_SECONDS", "0")),
                    reply_tokens=int(env("FAKE_VLLM_REPLY_TOKENS", "0")))
    server = FakeVllm(script, args.port, served, args.max_model_len, int(os.environ.get("FAKE_VLLM_CACHE_TOKENS", "4096")),
                      args.host)
    serve_until_killed(server, "INFO: Application startup complete on port {port}")


if __name__ == "__main__":
    main()
