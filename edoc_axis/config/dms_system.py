"""Adding a DMS system to a node's config file: a ``[[dms]]`` table appended, its secret file.

``edoc-axis dms add`` and ``edoc-axis init --dms-systemid`` use it. The file is not re-rendered
(that would drop the administrator's comments and order): a well-formed table is appended, the
result must load as a whole before it replaces the file (atomically, keeping the file's mode),
and a systemid already configured is refused. The secret stays out of the config: the table
names a ``secret_file``, which is made here (mode 0600, a random secret) when asked.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from edoc_axis.config.dms import MIN_DMS_SECRET_CHARS
from edoc_axis.config.load import load_settings
from edoc_axis.errors import ConfigError, ErrorCode

SECRET_BYTES = 32  # 43 URL-safe characters


@dataclass(frozen=True, slots=True)
class AddedSystem:
    """The DMS system written into a config: what its DMS vendor is to be told."""

    systemid: str
    organ_id: str
    secret_file: Path
    secret_generated: bool
    listen: str


def add_dms_system(config: Path, systemid: str, secret_file: Path, *,
                   generate_secret: bool) -> AddedSystem:
    """Append a ``[[dms]]`` table for ``systemid`` to the config file ``config``.

    With ``generate_secret`` the secret file is created with a random secret (refused when it
    exists); without it the file must already hold a secret of at least 16 characters.
    """
    config = config.expanduser().absolute()
    settings = load_settings(config, env={})  # the file as it is must load, env aside
    systemid = systemid.strip()
    if not systemid or any(c.isspace() or ord(c) < 32 for c in systemid):
        raise ConfigError(f"systemid {systemid!r} must be a non-empty name without spaces",
                          code=ErrorCode.CONFIG_DMS, element="dms.systemid")
    if any(system.systemid == systemid for system in settings.dms):
        raise ConfigError(f"{config} already has a [[dms]] table with systemid '{systemid}'",
                          code=ErrorCode.DMS_SYSTEM_EXISTS, element="dms.systemid")
    secret_file = secret_file.expanduser().absolute()
    if generate_secret:
        _write_secret(secret_file)
    else:
        _check_secret(secret_file)
    try:
        _append_table(config, _table(systemid, settings.organ_id, secret_file, config.parent))
    except BaseException:
        if generate_secret:
            secret_file.unlink(missing_ok=True)
        raise
    return AddedSystem(systemid, settings.organ_id, secret_file, generate_secret,
                       settings.api.listen)


def _table(systemid: str, organ_id: str, secret_file: Path, base: Path) -> str:
    try:
        shown = secret_file.relative_to(base).as_posix()  # the node folder moves as a whole
    except ValueError:
        shown = secret_file.as_posix()
    # A JSON string is a valid TOML basic string.
    return (f"\n[[dms]]\nsystemid = {json.dumps(systemid, ensure_ascii=False)}\n"
            f"secret_file = {json.dumps(shown, ensure_ascii=False)}\n"
            f"organ_id = {json.dumps(organ_id)}\n")


def _append_table(config: Path, table: str) -> None:
    text = config.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text += "\n"
    tmp = config.with_name(f".{config.name}.dms.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, config.stat().st_mode & 0o777)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text + table)
        load_settings(tmp, env={})  # what replaces the file must load, the new table too
        os.replace(tmp, config)
    finally:
        tmp.unlink(missing_ok=True)


def _write_secret(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise ConfigError(f"the secret file {path} exists; refused to overwrite it",
                          code=ErrorCode.DMS_SECRET_EXISTS) from exc
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secrets.token_urlsafe(SECRET_BYTES) + "\n")


def _check_secret(path: Path) -> None:
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the secret file {path}: {exc} (--generate-secret "
                          "makes one)", code=ErrorCode.DMS_SECRET_FILE) from exc
    if len(secret) < MIN_DMS_SECRET_CHARS:
        raise ConfigError(f"the secret in {path} is shorter than {MIN_DMS_SECRET_CHARS} "
                          "characters", code=ErrorCode.DMS_SECRET_FILE)
