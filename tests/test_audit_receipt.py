"""Receipt verification: the stored signed bytes behind an audit entry, judged as of the entry's
time and signed by the party it names."""

from __future__ import annotations

import datetime as dt
import hashlib

from conftest import build_edxml_status

from edoc_axis.audit.chain import AuditEntry, genesis_hash, next_entry
from edoc_axis.audit.receipt import check_signed_bytes
from edoc_axis.ops.pki import init_ca, issue_agency_certificate, make_crl
from edoc_axis.trust.chain import TrustStore
from edoc_axis.trust.policy import SignaturePolicy
from edoc_axis.trust.signature import sign


def test_receipt_is_judged_as_of_its_entry_time() -> None:
    """A receipt whose certificate expired after it was recorded still verifies; one recorded
    after the expiry does not."""
    now = dt.datetime.now(dt.UTC)
    ca_key, ca_cert = init_ca("Old Root", key_type="p256", not_before=now - dt.timedelta(days=800))
    key, cert = issue_agency_certificate(
        ca_key, ca_cert, "000.00.00.H41", "H41 2024", key_type="p256", days=30,
        not_before=now - dt.timedelta(days=400),
    )
    body = sign(build_edxml_status(), key, cert)
    store = TrustStore([ca_cert], crls=[make_crl(ca_key, ca_cert)])
    genesis = genesis_hash("000.00.00.G22")

    def entry_at(when: dt.datetime) -> AuditEntry:
        return next_entry(
            None, kind="status_received", genesis=genesis, at=when,
            counterpart="000.00.00.H41", content_sha256=hashlib.sha256(body).hexdigest(),
        )

    policy = SignaturePolicy()
    recorded_then = entry_at(now - dt.timedelta(days=390))
    assert check_signed_bytes(recorded_then, body, store, policy, "000.00.00.G22") is None
    recorded_late = entry_at(now - dt.timedelta(days=300))
    problem = check_signed_bytes(recorded_late, body, store, policy, "000.00.00.G22")
    assert problem is not None and "CERT_EXPIRED" in problem
