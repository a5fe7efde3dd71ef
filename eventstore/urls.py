"""Store URLs: which file a SQLite URL names (the parts of a job must all open that one file)."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit


def sqlite_path(url: str) -> str | None:
    """The file a ``sqlite:///PATH`` URL names (None for another kind of store)."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        return None
    return unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
