"""/openapi.json as a DMS integrator reads it from a running gateway: a structurally valid
OpenAPI 3 document with servers, one operationId per call, and signing rules that match what
authentication accepts (sign-header-key names without the XroadVnpt- prefix)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from test_api import SYSTEM_A, InMemoryNode, start

from edoc_axis.config.settings import ApiSettings
from edoc_axis.gateway.auth import RELIED_HEADERS
from edoc_axis.gateway.openapi import openapi_document, servers
from edoc_axis.gateway.protocol import GATEWAY_CODES
from edoc_axis.gateway.sdk import format_sdk_timestamp, sdk_json, sign_headers
from edoc_axis.gateway.server import DmsServer

_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
_PARAM_PLACES = {"query", "header", "path", "cookie"}
_OPERATION_FIELDS = {"operationId", "summary", "description", "security", "parameters",
                     "responses", "requestBody", "tags"}


@pytest.fixture
def served() -> Iterator[tuple[DmsServer, dict[str, Any]]]:
    """A gateway on a free port and the document it serves."""
    server = start(InMemoryNode())
    try:
        host, port = server.address
        conn = http.client.HTTPConnection(host, port, timeout=5)
        conn.request("GET", "/openapi.json")
        response = conn.getresponse()
        assert response.status == 200
        document = json.loads(response.read())
        conn.close()
        yield server, document
    finally:
        server.stop()


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _operation_problems(path: str, method: str, op: dict[str, Any]) -> list[str]:
    problems = []
    if not op.get("responses"):
        problems.append(f"{path} {method}: no responses")
    for status, response in op.get("responses", {}).items():
        if "description" not in response or not (status.isdigit() or status == "default"):
            problems.append(f"{path} {method} {status}: bad response")
    seen = set()
    for param in op.get("parameters", []):
        if param.get("in") not in _PARAM_PLACES or "schema" not in param:
            problems.append(f"{path} {method}: bad parameter {param.get('name')}")
        key = (param["name"].lower() if param["in"] == "header" else param["name"], param["in"])
        if key in seen:
            problems.append(f"{path} {method}: parameter {param['name']} twice")
        seen.add(key)
    problems.extend(f"{path} {method}: unknown field {extra}" for extra in op
                    if extra not in _OPERATION_FIELDS and not extra.startswith("x-"))
    return problems


def structural_problems(doc: dict[str, Any]) -> list[str]:
    """What an OpenAPI 3.0 validator would refuse, for the parts this document uses."""
    problems = []
    if not str(doc.get("openapi", "")).startswith("3.0."):
        problems.append("openapi is not 3.0.x")
    if not {"title", "version"} <= set(doc.get("info", {})):
        problems.append("info lacks title/version")
    for server in doc.get("servers", []):
        names = {part.split("}")[0] for part in server["url"].split("{")[1:]}
        variables = server.get("variables", {})
        if names != set(variables) or any("default" not in v for v in variables.values()):
            problems.append(f"server {server['url']}: variables do not match")
    ids = []
    for path, item in doc["paths"].items():
        if not path.startswith("/"):
            problems.append(f"path {path} does not start with /")
        for method, op in item.items():
            if method not in _METHODS:
                problems.append(f"{path}: {method} is not an HTTP method")
                continue
            ids.append(op.get("operationId"))
            problems.extend(_operation_problems(path, method, op))
    if None in ids or len(ids) != len(set(ids)):
        problems.append(f"operationIds missing or repeated: {ids}")
    for ref in _refs(doc):
        target: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            target = target.get(part) if isinstance(target, dict) else None
        if target is None:
            problems.append(f"$ref {ref} resolves to nothing")
    return problems


def test_served_document_is_valid_with_servers_and_operation_ids(
    served: tuple[DmsServer, dict[str, Any]],
) -> None:
    """The served document passes the structural check, names the server a client reaches (the
    bound port, not the configured 0) and gives every call its own operationId."""
    server, doc = served
    assert structural_problems(doc) == []
    assert [s["url"] for s in doc["servers"]] == [server.url]
    operations = {op["operationId"] for item in doc["paths"].values() for op in item.values()}
    assert set(RELIED_HEADERS) <= operations
    assert doc["paths"]["/sendEdoc"]["post"]["operationId"] == "sendEdoc"


def test_signing_rules_match_what_the_gateway_accepts(
    served: tuple[DmsServer, dict[str, Any]],
) -> None:
    """sign-header-key is described without the prefix and each call lists the headers to sign;
    a call signed by those rules is accepted, one listing prefixed names is refused."""
    server, doc = served
    send = doc["paths"]["/sendEdoc"]["post"]
    params = {p["name"]: p["description"] for p in send["parameters"]}
    assert "WITHOUT the XroadVnpt- prefix" in params["XroadVnpt-sign-header-key"]
    assert send["x-signed-headers"] == [
        "XroadVnpt-systemid", "XroadVnpt-timestamp", "XroadVnpt-from", "XroadVnpt-to",
        "XroadVnpt-servicetype", "XroadVnpt-messagetype", "XroadVnpt-hash-file"]
    assert doc["paths"]["/getEdoc"]["post"]["x-signed-headers"][-1] == "XroadVnpt-docId"
    assert doc["paths"]["/getAgenciesList"]["post"]["x-signed-headers"] == [
        "XroadVnpt-systemid", "XroadVnpt-timestamp"]
    rules = doc["paths"]["/getAgenciesList"]["post"]["x-signed-headers"]
    values = {"XroadVnpt-systemid": SYSTEM_A.systemid,
              "XroadVnpt-timestamp": format_sdk_timestamp(datetime.now(UTC))}
    sign_header = sdk_json({name: values[name] for name in rules})
    headers = {**values, "XroadVnpt-sign-header": sign_header,
               "XroadVnpt-hash-header": sign_headers(SYSTEM_A.secret, sign_header)}
    without = ";".join(name.removeprefix("XroadVnpt-") for name in rules)
    host, port = server.address
    answers = []
    for key_list in (without, ";".join(rules)):
        conn = http.client.HTTPConnection(host, port, timeout=5)
        conn.request("POST", "/getAgenciesList", body=b"",
                     headers={**headers, "XroadVnpt-sign-header-key": key_list})
        response = conn.getresponse()
        answers.append((response.status, json.loads(response.read())["ErrorCode"]))
        conn.close()
    assert answers[0] == (200, "0")
    assert answers[1][1] == "AUTH_HEADER_MISMATCH"


def test_servers_follow_listen_and_tls() -> None:
    """Every-interface listening becomes a host variable; TLS makes the URL https."""
    assert servers(ApiSettings(listen="10.0.0.5:8470")) == [
        {"url": "http://10.0.0.5:8470", "description": "The node's gateway ([api] listen = "
                                                       "'10.0.0.5:8470')"}]
    wildcard = servers(ApiSettings(listen="0.0.0.0:8470"))
    assert wildcard[0]["url"] == "http://{host}:8470"
    assert wildcard[0]["variables"]["host"]["default"] == "127.0.0.1"
    from pathlib import Path

    tls = servers(ApiSettings(listen="[::1]:8443", tls_cert=Path("gw.pem")))
    assert tls[0]["url"] == "https://[::1]:8443"
    assert structural_problems(openapi_document(GATEWAY_CODES, ApiSettings(
        listen="0.0.0.0:8470"))) == []
