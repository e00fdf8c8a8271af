#!/usr/bin/env python3
"""Call a node's DMS gateway with the Python standard library only: how every call is signed.

For every call a DMS (like the axis SDKs) sends:
1. the call's values as headers ``XroadVnpt-<key>``: ``timestamp`` (Vietnam time, written
   ddMMyyyy'T'HHmmss+SSSS with milliseconds after the +), ``systemid``, and the call's own
   values (``servicetype``, ``messagetype``, ``from``, ``hash-file``, ``docId``, ...);
2. ``XroadVnpt-sign-header-key``: the keys joined by ``;``;
3. ``XroadVnpt-sign-header``: the compact JSON object of the ``XroadVnpt-<key>`` headers;
4. ``XroadVnpt-hash-header``: hex HMAC-SHA256 of exactly that JSON, keyed with the secret.

Against ``edoc-axis sandbox`` (it prints the endpoint, systemid and secret file):

    python3 scripts/dms_sign_example.py --endpoint http://127.0.0.1:8470 \\
        --systemid sandbox-1a2b3c4d --secret-file edoc-sandbox/dms.secret

lists the agencies and the packages waiting for the DMS; with ``--send FILE --from ORGANID``
it also submits an .edxml document (``sendEdoc``, with its ``hash-file``). Exit 0 when every
call answered OK, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import sys
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

VIETNAM = timezone(timedelta(hours=7))  # the SDK's timestamp has no zone: it is Vietnam time


def sdk_timestamp(now: datetime) -> str:
    """26112026T061059+0201: day, month, year, T, hours, minutes, seconds, + milliseconds."""
    return now.strftime("%d%m%YT%H%M%S") + f"+{now.microsecond // 1000:04d}"


def signed_headers(systemid: str, secret: str, params: dict[str, str]) -> dict[str, str]:
    """The XroadVnpt-* headers of one call, signed with the shared secret."""
    values = {"timestamp": sdk_timestamp(datetime.now(VIETNAM)), "systemid": systemid, **params}
    headers = {f"XroadVnpt-{key}": value for key, value in values.items()}
    sign_header = json.dumps(headers, separators=(",", ":"), ensure_ascii=False)
    digest = hmac.new(secret.encode("utf-8"), sign_header.encode("utf-8"), hashlib.sha256)
    return {
        **headers,
        "XroadVnpt-sign-header-key": ";".join(values),
        "XroadVnpt-sign-header": sign_header,
        "XroadVnpt-hash-header": digest.hexdigest(),
    }


def call(endpoint: str, name: str, headers: dict[str, str], body: bytes = b"",
         content_type: str = "application/json") -> dict[str, Any]:
    """POST one call; the gateway answers JSON, refusals included (HTTP 4xx)."""
    if not endpoint.startswith(("http://", "https://")):
        raise SystemExit(f"--endpoint must be an http(s) URL, not {endpoint!r}")
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked just above
        f"{endpoint.rstrip('/')}/{name}", data=body, method="POST",
        headers={**headers, "Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - same
            answer = json.load(response)
    except urllib.error.HTTPError as refusal:
        answer = json.load(refusal)
    ok = answer.get("status") == "OK"
    print(f"{name}: {answer.get('status')} {answer.get('ErrorCode')} {answer.get('ErrorDesc')}")
    if not ok:
        raise SystemExit(1)
    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="the gateway, e.g. http://127.0.0.1:8470")
    parser.add_argument("--systemid", required=True)
    parser.add_argument("--secret-file", required=True, type=Path)
    parser.add_argument("--send", type=Path, help="an .edxml document to submit")
    parser.add_argument("--from", dest="sender", help="the DMS's agency (OrganId), for --send")
    args = parser.parse_args()
    secret = args.secret_file.read_text(encoding="utf-8").strip()

    agencies = call(args.endpoint, "getAgenciesList", signed_headers(args.systemid, secret, {}))
    for agency in agencies["data"]:
        print(f"  agency {agency['code102']}  {agency['name']}")

    waiting = call(args.endpoint, "getReceivedEdocList", signed_headers(
        args.systemid, secret, {"servicetype": "eDoc", "messagetype": "edoc"}))
    for item in waiting["data"]:
        print(f"  waiting {item['docId']} from {item['from']} ({item['status']})")

    if args.send is not None:
        if not args.sender:
            parser.error("--send needs --from ORGANID")
        body = args.send.read_bytes()
        answer = call(args.endpoint, "sendEdoc", signed_headers(args.systemid, secret, {
            "from": args.sender, "servicetype": "eDoc", "messagetype": "edoc",
            "hash-file": hashlib.sha256(body).hexdigest(),
        }), body, "application/octet-stream")
        print(f"  sent: DocId {answer['DocId']}")


if __name__ == "__main__":
    sys.exit(main())
