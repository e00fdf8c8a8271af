"""One config value converted to its settings field's type, or a ValueError saying why not.

Values from the environment are strings and are parsed (``"no"`` is false, ``"a, b"`` a list);
values from the file must already have the right TOML type (a quoted ``"30"`` for an integer is
a mistake worth reporting). Relative paths resolve against the given base folder.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def convert(dotted: str, kind: Any, value: Any, base: Path, *, from_env: bool,
            allow_zero: bool = False) -> Any:
    """``value`` of key ``dotted`` as ``kind`` (bool, int, str, Path, an optional Path or a
    tuple of paths)."""
    if isinstance(kind, types.UnionType):  # ``Path | None``: a value given is the Path
        kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
    if kind is bool:
        return _bool(value, from_env)
    if kind is int:
        return _int(value, from_env, allow_zero=allow_zero)
    if kind is str:
        if not isinstance(value, str):
            raise ValueError("must be a string")
        return value.strip()
    if kind is Path:
        return to_path(value, base)
    if typing.get_origin(kind) is tuple:
        if from_env and isinstance(value, str):
            value = [part for part in (p.strip() for p in value.split(",")) if part]
        if not isinstance(value, list):
            raise ValueError("must be a list of paths")
        return tuple(to_path(item, base) for item in value)
    raise TypeError(f"no conversion for {dotted} ({kind})")  # pragma: no cover - schema bug


def to_path(value: Any, base: Path) -> Path:
    """A non-empty path string as a Path, ``~`` expanded, relative ones under ``base``."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty path string")
    path = Path(value.strip()).expanduser()
    return path if path.is_absolute() else (base / path)


def _bool(value: Any, from_env: bool) -> bool:
    if isinstance(value, bool):
        return value
    if from_env and isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("must be true or false")


def _int(value: Any, from_env: bool, *, allow_zero: bool = False) -> int:
    if from_env and isinstance(value, str):
        try:
            value = int(value.strip().replace("_", ""))
        except ValueError:
            raise ValueError(f"must be a whole number, not '{value}'") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be a whole number")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"must be {'zero or ' if allow_zero else ''}positive, not {value}")
    return value
