"""The wheel ships the XSDs, and a non-editable install validates packages from anywhere."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
XSDS = {"edxml-common.xsd", "edxml-document.xsd", "edxml-status.xsd"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of this checkout, built without network (the venv's setuptools)."""
    out = tmp_path_factory.mktemp("wheel")
    # Build from a copy so the build leaves nothing (build/, *.egg-info) in the checkout.
    source = out / "src"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".*cache", "var"
        ),
    )
    # Without build isolation pip needs no network: setuptools and wheel come from the venv.
    isolation = [] if importlib.util.find_spec("wheel") is None else ["--no-build-isolation"]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q",
         "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    [built] = out.glob("edoc_axis-*.whl")
    return built


def test_wheel_contains_the_schemas(wheel: Path) -> None:
    """Every XSD is inside the wheel under edoc_axis/schemas/."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {f"edoc_axis/schemas/{name}" for name in XSDS} <= names


def test_installed_wheel_validates_the_corpus(wheel: Path, tmp_path: Path) -> None:
    """pip install --target, then `python -m edoc_axis validate` outside the repo: exit 0."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)],
        check=True,
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run(
        [sys.executable, "-c", "import edoc_axis.edxml.schema as s; print(s.__file__)"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert where.stdout.strip().startswith(str(target))
    result = subprocess.run(
        [sys.executable, "-m", "edoc_axis", "validate", str(ROOT / "tests" / "data" / "valid")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": valid") >= 20
    invalid = subprocess.run(
        [sys.executable, "-m", "edoc_axis", "validate", str(ROOT / "tests" / "data" / "invalid")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert invalid.returncode == 65
