"""Passwords inside URLs (http://user:pw@host/v1): found, to keep them out of output, and shown as ***."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit


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


def endpoint_secrets(endpoints: Iterable[tuple[str | None, str | None]]) -> list[str]:
    """What must never be shown of (api_base, api_key) pairs: the keys and any password in the URLs."""
    pairs = list(endpoints)
    return [key for _, key in pairs if key] + [s for base, _ in pairs for s in url_secrets(base)]


def hide(text: str, secrets: Iterable[str]) -> str:
    """`text` with each of `secrets` replaced by ***."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


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
