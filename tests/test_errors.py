"""The error tree and its one registry of codes (edoc_axis.errors.ErrorCode)."""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TypeGuard

import pytest

from edoc_axis import errors
from edoc_axis.errors import (
    AuditProblem,
    EdocAxisError,
    ErrorCode,
    NotFound,
    PackageRejected,
    PackageTooLarge,
    RequestRefused,
    SignatureInvalid,
    SpoofedSender,
    TemporaryFailure,
)
from edoc_axis.log import configure_logging, get_logger
from edoc_axis.store import Store

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "edoc_axis"
CODE_SHAPE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
ERROR_CLASSES = {
    name: cls for name, cls in vars(errors).items()
    if isinstance(cls, type) and issubclass(cls, EdocAxisError)
}


def _codes_table() -> ModuleType:
    spec = importlib.util.spec_from_file_location("codes_table", ROOT / "scripts/codes_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the registry itself -----------------------------------------------------------------------


def test_each_code_is_registered_once_with_class_status_and_meaning() -> None:
    """A member's value is its name; it names an error class, an HTTP status and one line."""
    assert len(ErrorCode) >= 180
    assert len({code.value for code in ErrorCode}) == len(ErrorCode)
    for code in ErrorCode:
        assert code.value == code.name
        assert CODE_SHAPE.fullmatch(code) or code in {ErrorCode.CARDINALITY, ErrorCode.UNROUTABLE}
        assert issubclass(code.error, EdocAxisError), code
        assert code.exit_code == code.error.exit_code
        assert 400 <= code.http_status <= 599, code
        assert code.meaning.strip() and "\n" not in code.meaning, code


def test_http_status_follows_the_class_except_the_gateways_own_refusals() -> None:
    """Outside RequestRefused the status is the class's, as the gateway answered before."""
    by_class = ((NotFound, 404), (PackageTooLarge, 413), (SpoofedSender, 403),
                (PackageRejected, 422), (TemporaryFailure, 503), (errors.ConfigError, 500))
    for code in ErrorCode:
        if code.error is RequestRefused:
            continue
        expected = next((s for cls, s in by_class if issubclass(code.error, cls)), 400)
        assert code.http_status == expected, code
    assert ErrorCode.AUTH_BAD_HMAC.http_status == 401
    assert ErrorCode.REQUEST_IN_PROGRESS.http_status == 409
    assert ErrorCode.BAD_REQUEST.http_status == 400


def test_each_class_carries_its_own_code() -> None:
    """An error raised without a code carries its class's own, registered for that class."""
    for cls in ERROR_CLASSES.values():
        if cls is AuditProblem:  # never raised: only its problems' codes are used
            continue
        assert cls.code.error is cls, cls
        assert cls("x").code is cls.code
    assert SignatureInvalid("bad").code == "SIG_INVALID"
    assert EdocAxisError("x").exit_code == 1 and PackageRejected("x").exit_code == 65


def test_an_unregistered_code_is_refused_at_construction() -> None:
    """A code missing from the registry is a programming error; a registered text becomes its
    member, and a code from outside goes through lookup."""
    with pytest.raises(ValueError, match="unregistered error code 'SIG_NEW'"):
        SignatureInvalid("x", code="SIG_NEW")
    assert SignatureInvalid("x", code="SIG_MISSING").code is ErrorCode.SIG_MISSING
    assert ErrorCode.lookup("AUTH_BAD_HMAC") is ErrorCode.AUTH_BAD_HMAC
    assert ErrorCode.lookup("SOMETHING_ELSE") is ErrorCode.REMOTE_REFUSED
    assert ErrorCode.lookup("FAIL") is ErrorCode.REMOTE_REFUSED


def test_codes_read_as_plain_text_everywhere(tmp_path: Path) -> None:
    """JSON, f-strings, str(), comparisons, dict keys, SQLite and structlog all see the name."""
    exc = SignatureInvalid("no signature", code=ErrorCode.SIG_MISSING, element="Signature")
    code = exc.code
    assert code == "SIG_MISSING" and hash(code) == hash("SIG_MISSING")
    assert {"SIG_MISSING": 1}[code] == 1 and {code: 1}["SIG_MISSING"] == 1
    assert f"{code}" == str(code) == "SIG_MISSING"
    assert str(exc) == "SIG_MISSING: no signature (Signature)"
    assert json.dumps(exc.to_dict()) == (
        '{"code": "SIG_MISSING", "message": "no signature", "element": "Signature"}'
    )
    assert json.loads(json.dumps({"c": code})) == {"c": "SIG_MISSING"}

    store = Store(tmp_path / "node.sqlite3")
    try:
        with store.transaction() as txn:
            txn.add_rejection(message_id="m1", broker_user=None, claimed_sender=None,
                              identified_sender=None, document_id=None, code=code,
                              reason=exc.message, sha256="0" * 64, body=b"<x/>")
        (row,) = store.rejections()
        assert row.code == "SIG_MISSING" and type(row.code) is str
    finally:
        store.close()

    for as_json in (True, False):
        out = io.StringIO()
        configure_logging("info", json=as_json, stream=out)
        get_logger("test").warning("message_rejected", code=code)
        line = out.getvalue()
        if as_json:
            assert json.loads(line)["code"] == "SIG_MISSING"
        else:
            assert "code=SIG_MISSING" in line and "ErrorCode" not in line


# --- the README --------------------------------------------------------------------------------


def test_readme_table_is_the_registry() -> None:
    """README.md's "Error codes" table equals the one generated from the registry."""
    table = _codes_table()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## Error codes" in readme and "## Exit codes" in readme
    assert table.readme_table(readme) == table.render(), (
        "run .venv/bin/python scripts/codes_table.py --write"
    )


# --- every code in the tree is registered --------------------------------------------------------


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _is_text(node: ast.AST) -> TypeGuard[ast.Constant]:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _code_literals(tree: ast.AST) -> Iterator[tuple[ast.Constant, str]]:
    """String constants used as codes: ``code=`` keywords, ``code = ...`` class attributes, and
    code-shaped literals passed to a call (positionally, or as a keyword other than envvar)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for arg in node.args:
                if _is_text(arg) and CODE_SHAPE.fullmatch(arg.value):
                    yield arg, "argument"
            for kw in node.keywords:
                shaped = _is_text(kw.value) and CODE_SHAPE.fullmatch(kw.value.value)
                if _is_text(kw.value) and (kw.arg == "code" or (kw.arg != "envvar" and shaped)):
                    yield kw.value, f"{kw.arg}="
        elif isinstance(node, ast.ClassDef):
            is_error = any(isinstance(b, ast.Name) and b.id in ERROR_CLASSES for b in node.bases)
            for stmt in node.body:
                targets = (stmt.targets if isinstance(stmt, ast.Assign)
                           else [stmt.target] if isinstance(stmt, ast.AnnAssign) else [])
                value = getattr(stmt, "value", None)
                if (any(isinstance(t, ast.Name) and t.id == "code" for t in targets)
                        and isinstance(value, ast.Constant) and isinstance(value.value, str)
                        and (is_error or CODE_SHAPE.fullmatch(value.value))):
                    yield value, "class attribute code"


def _sources() -> Iterator[tuple[str, ast.AST]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield str(path.relative_to(ROOT)), ast.parse(path.read_text(encoding="utf-8"))


def test_every_code_raised_in_the_tree_is_registered() -> None:
    """No code literal in edoc_axis/ names a code missing from the registry (register new codes
    in edoc_axis/errors.py: one row with class, HTTP status and meaning)."""
    unregistered = [
        f"{where}:{const.lineno} {const.value} ({how})"
        for where, tree in _sources()
        for const, how in _code_literals(tree)
        if const.value not in ErrorCode._value2member_map_
    ]
    assert unregistered == []


def test_no_code_is_left_as_a_free_string() -> None:
    """Raise sites, tables and comparisons name ErrorCode members, never a code's text
    (docstrings aside)."""
    free = []
    for where, tree in _sources():
        docs = _docstrings(tree)
        free += [f"{where}:{node.lineno} {node.value!r}" for node in ast.walk(tree)
                 if _is_text(node) and node.value in ErrorCode._value2member_map_
                 and id(node) not in docs]
    assert free == []


def _helpers(trees: list[ast.AST]) -> dict[str, type[EdocAxisError]]:
    """Functions that build an error from a ``code`` parameter: name -> the class they build."""
    found: dict[str, set[type[EdocAxisError]]] = {}
    for tree in trees:
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef):
                continue
            params = {a.arg for a in fn.args.args + fn.args.kwonlyargs}
            for node in ast.walk(fn):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                        and node.func.id in ERROR_CLASSES
                        and any(kw.arg == "code" and isinstance(kw.value, ast.Name)
                                and kw.value.id in params for kw in node.keywords)):
                    found.setdefault(fn.name, set()).add(ERROR_CLASSES[node.func.id])
    return {name: next(iter(classes)) for name, classes in found.items() if len(classes) == 1}


def test_each_code_is_raised_as_its_registered_class() -> None:
    """An error built with a registered code (directly, or through a helper such as
    ``structure.invalid``) is of the class the registry names for it."""
    sources = list(_sources())
    helpers = _helpers([tree for _, tree in sources])
    assert {"invalid", "_fail", "_refused", "evidence_error"} <= set(helpers)
    wrong, checked = [], 0
    for where, tree in sources:
        for call in ast.walk(tree):
            if not isinstance(call, ast.Call):
                continue
            name = (call.func.id if isinstance(call.func, ast.Name)
                    else call.func.attr if isinstance(call.func, ast.Attribute) else "")
            cls = ERROR_CLASSES.get(name) or helpers.get(name)
            if cls is None:
                continue
            for arg in [*call.args, *(kw.value for kw in call.keywords if kw.arg == "code")]:
                if (isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name)
                        and arg.value.id == "ErrorCode"):
                    code = ErrorCode[arg.attr]
                    checked += 1
                    if code.error is not cls:
                        wrong.append(f"{where}:{call.lineno} {code} raised as {cls.__name__}, "
                                     f"registered as {code.error.__name__}")
    assert wrong == []
    assert checked > 200
