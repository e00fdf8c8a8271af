"""The ``[[dms]]`` tables: the DMS systems allowed to call the gateway, each with its secret.

Each table has ``systemid``, ``organ_id`` (this node's: a DMS speaks only for the agency of the
node it calls) and exactly one of ``secret`` or ``secret_file`` (a file, relative to the config
file, holding the secret). They come from the file only: no environment override.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edoc_axis.config.convert import to_path
from edoc_axis.config.problems import Problems
from edoc_axis.config.schema import DMS_TABLE
from edoc_axis.config.settings import DmsSystemSettings
from edoc_axis.errors import ErrorCode

DMS_KEYS = ("systemid", "secret", "secret_file", "organ_id")
MIN_DMS_SECRET_CHARS = 16


def dms_systems(
    raw: Any, organ_id: Any, base: Path, problems: Problems
) -> tuple[DmsSystemSettings, ...]:
    """The ``[[dms]]`` tables as settings; what is wrong with them goes to ``problems``."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        problems.add(ErrorCode.CONFIG_TYPE, DMS_TABLE, "'dms' must be an array of tables ([[dms]])")
        return ()
    systems: list[DmsSystemSettings] = []
    seen: set[str] = set()
    for number, table in enumerate(raw, start=1):
        where = f"dms[{number}]"
        for key in table:
            if key not in DMS_KEYS:
                problems.add(ErrorCode.CONFIG_UNKNOWN_KEY, f"{where}.{key}",
                             f"unknown key '{key}' in {where} (allowed: {', '.join(DMS_KEYS)})")
        systemid, organ = table.get("systemid"), table.get("organ_id")
        secret = _dms_secret(table, where, base, problems)
        if not isinstance(systemid, str) or not systemid.strip() or any(
            c.isspace() or ord(c) < 32 for c in systemid.strip()
        ):
            problems.add(ErrorCode.CONFIG_DMS, f"{where}.systemid",
                         f"{where}.systemid must be a non-empty name without spaces")
            continue
        systemid = systemid.strip()
        if systemid in seen:
            problems.add(ErrorCode.CONFIG_DMS, f"{where}.systemid",
                         f"{where}.systemid '{systemid}' is configured twice")
        seen.add(systemid)
        if not isinstance(organ, str) or organ.strip() != organ_id:
            problems.add(ErrorCode.CONFIG_DMS, f"{where}.organ_id",
                         f"{where}.organ_id must be this node's organ_id '{organ_id}' (a DMS "
                         f"speaks only for the agency of the node it calls), not {organ!r}")
            continue
        if secret is not None:
            systems.append(DmsSystemSettings(systemid, secret, organ.strip()))
    return tuple(systems)


def _dms_secret(
    table: Mapping[str, Any], where: str, base: Path, problems: Problems
) -> str | None:
    secret, secret_file = table.get("secret"), table.get("secret_file")
    if (secret is None) == (secret_file is None):
        problems.add(ErrorCode.CONFIG_DMS, f"{where}.secret",
                     f"{where} needs exactly one of secret or secret_file")
        return None
    if secret_file is not None:
        try:
            secret = to_path(secret_file, base).read_text(encoding="utf-8").strip()
        except (ValueError, OSError) as exc:
            problems.add(ErrorCode.CONFIG_DMS, f"{where}.secret_file",
                         f"{where}.secret_file cannot be read: {exc}")
            return None
    if not isinstance(secret, str) or len(secret.strip()) < MIN_DMS_SECRET_CHARS:
        problems.add(ErrorCode.CONFIG_DMS, f"{where}.secret",
                     f"{where}.secret must be at least {MIN_DMS_SECRET_CHARS} characters")
        return None
    return secret.strip()
