"""Import rules at run time, beside the static contracts that `lint-imports` checks (setup.cfg)."""

from __future__ import annotations

import configparser
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import edoc_axis

ROOT = Path(__file__).resolve().parent.parent
WATCHED = ("lxml", "signxml", "pika", "sqlite3", "xmlschema", "http.server", "aiohttp",
           "edoc_axis.gateway.server")


def _loaded_after_import(*modules: str) -> set[str]:
    """Which of WATCHED a fresh interpreter holds after importing ``modules``."""
    code = (f"import sys\nimport {', '.join(modules)}\n"
            f"print(' '.join(m for m in {WATCHED!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                          text=True, timeout=60)
    return set(done.stdout.split())


def test_config_loads_no_xml_signature_broker_or_database_library() -> None:
    """Importing the config package's modules loads none of lxml, signxml, xmlschema, pika,
    sqlite3."""
    config = ROOT / "edoc_axis" / "config"
    modules = [f"edoc_axis.config.{info.name}" for info in pkgutil.iter_modules([str(config)])]
    assert {"edoc_axis.config.load", "edoc_axis.config.render"} <= set(modules)
    assert _loaded_after_import("edoc_axis.config", *modules) == set()


def test_dms_client_loads_no_http_server() -> None:
    """The DMS client and its conformance kit load neither an HTTP server nor the gateway's."""
    loaded = _loaded_after_import("edoc_axis.gateway.client", "edoc_axis.gateway.conformance")
    assert not loaded & {"http.server", "aiohttp", "edoc_axis.gateway.server", "pika", "sqlite3"}


@pytest.mark.parametrize(("module", "library"), [
    ("edoc_axis.edxml.model", "lxml"),
    ("edoc_axis.transport.message", "pika"),
    ("edoc_axis.trust.policy", "signxml"),
])
def test_pure_values_load_no_outside_system(module: str, library: str) -> None:
    """Value modules (the package model, broker messages, the signature policy) load no library."""
    assert library not in _loaded_after_import(module)


def test_every_subsystem_has_a_place_in_the_layers_contract() -> None:
    """Each top-level module and subpackage of edoc_axis is named in the layers contract."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    layers = config["importlinter:contract:layers"]["layers"]
    named = {name.strip() for line in layers.splitlines() for name in line.split("|")} - {""}
    present = {f"edoc_axis.{info.name}" for info in pkgutil.iter_modules(edoc_axis.__path__)
               if info.name not in {"__main__", "schemas"}}
    assert present - named == set(), "place these in [importlinter:contract:layers]"
    assert named - present == set(), "the layers contract names modules that do not exist"
