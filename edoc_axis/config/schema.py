"""The config file's schema: every key, the settings field it fills, its type and its variable.

One table for the loader (``config.load``) and the renderer (``config.render``): three top-level
keys, then one ``[section]`` per settings type (``settings.Settings``' fields), each key named as
its field unless ``_FILE_NAMES`` keeps an older name (``limits.max_package_bytes`` fills
``XmlLimits.max_bytes``). A key's environment variable is ``EDOC_AXIS_`` + the dotted key in
upper case with ``_`` for the dot; ``OTHER_VARIABLES`` lists the ``EDOC_AXIS_*`` names read
elsewhere, so that a name in neither set can be reported as a likely typo.
"""

from __future__ import annotations

import typing
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

from edoc_axis.config.settings import (
    ApiSettings,
    AuditSettings,
    BrokerSettings,
    KeySettings,
    TrustSettings,
    ValidationSettings,
)
from edoc_axis.edxml.limits import XmlLimits
from edoc_axis.trust.policy import SignaturePolicy

ENV_PREFIX = "EDOC_AXIS_"
CONFIG_ENV = "EDOC_AXIS_CONFIG"
# EDOC_AXIS_* variables that are not settings: the config file's name, and options of the
# `edoc-axis` commands (click's envvar=; a test keeps this list equal to the CLI's).
OTHER_VARIABLES = frozenset({
    CONFIG_ENV,
    "EDOC_AXIS_LOG_LEVEL",
    "EDOC_AXIS_BROKER_ADMIN_URL",
    "EDOC_AXIS_DMS_ENDPOINT",
    "EDOC_AXIS_DMS_SYSTEMID",
    "EDOC_AXIS_DMS_SECRET",
})

SECTIONS: dict[str, type[Any]] = {
    "broker": BrokerSettings,
    "keys": KeySettings,
    "trust": TrustSettings,
    "signature": SignaturePolicy,
    "limits": XmlLimits,
    "validation": ValidationSettings,
    "api": ApiSettings,
    "audit": AuditSettings,
}
# (section, field) -> the key's name in the file, where the two differ.
_FILE_NAMES = {("limits", "max_bytes"): "max_package_bytes"}
ZERO_ALLOWED = frozenset({"api.max_timestamp_age"})  # integers where 0 means "no limit"

DMS_TABLE = "dms"  # [[dms]] tables come from the file only (config.dms reads them)


@dataclass(frozen=True, slots=True)
class Key:
    """One key of the file: ``dotted`` as written (``broker.url``), the ``section`` it sits in
    (None at the top level), the settings ``attr`` it fills, its Python ``kind``, and whether
    it is ``required``."""

    dotted: str
    section: str | None
    attr: str
    kind: Any
    required: bool

    @property
    def variable(self) -> str:
        """The environment variable overriding this key."""
        return env_name(self.dotted)


TOP_KEYS = (
    Key("organ_id", None, "organ_id", str, True),
    Key("data_dir", None, "data_dir", Path, True),
    Key("directory", None, "directory_path", Path, True),
)


def env_name(dotted: str) -> str:
    """The variable overriding a dotted key: ``broker.url`` -> ``EDOC_AXIS_BROKER_URL``."""
    return ENV_PREFIX + dotted.replace(".", "_").upper()


def section_keys(section: str) -> tuple[Key, ...]:
    """The keys of one ``[section]``, in the settings type's field order."""
    cls = SECTIONS[section]
    hints = typing.get_type_hints(cls)
    return tuple(
        Key(f"{section}.{_FILE_NAMES.get((section, f.name), f.name)}", section, f.name,
            hints[f.name], f.default is MISSING and f.default_factory is MISSING)
        for f in fields(cls)
    )


def all_keys() -> dict[str, Key]:
    """Every key the file may hold, by its dotted name."""
    keys = list(TOP_KEYS)
    for section in SECTIONS:
        keys.extend(section_keys(section))
    return {key.dotted: key for key in keys}
