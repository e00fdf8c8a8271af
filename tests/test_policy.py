"""Tests for trust.policy: the one signature policy type, also the [signature] settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edoc_axis.config.load import load_settings
from edoc_axis.config.render import render_example
from edoc_axis.trust.policy import SignaturePolicy

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "node.example.toml"


def test_policy_is_frozen() -> None:
    """SignaturePolicy is an immutable value object."""
    policy = SignaturePolicy()
    with pytest.raises(AttributeError):
        policy.allow_sha1 = True  # type: ignore[misc]


def test_status_policy_follows_accept_unsigned_status() -> None:
    """for_status requires a signature unless unsigned statuses are accepted, all else kept."""
    strict = SignaturePolicy(require_signature=False, allow_sha1=True)
    assert strict.for_status() == SignaturePolicy(require_signature=True, allow_sha1=True)
    lenient = SignaturePolicy(accept_unsigned_status=True)
    assert lenient.for_status().require_signature is False


def test_sha1_only_by_the_legacy_switch() -> None:
    """SHA-1 signature and digest methods are accepted only with allow_sha1."""
    strong, legacy = SignaturePolicy(), SignaturePolicy(allow_sha1=True)
    assert not any("sha1" in m for m in strong.signature_methods | strong.digest_methods)
    assert "http://www.w3.org/2000/09/xmldsig#rsa-sha1" in legacy.signature_methods
    assert "http://www.w3.org/2000/09/xmldsig#sha1" in legacy.digest_methods
    assert strong.signature_methods < legacy.signature_methods


def test_settings_signature_section_is_the_policy() -> None:
    """[signature] loads as a SignaturePolicy, every field a documented config key."""
    env = {
        "EDOC_AXIS_SIGNATURE_ACCEPT_EDXML_NAMESPACE": "yes",
        "EDOC_AXIS_SIGNATURE_ALLOW_SHA1": "1",
    }
    policy = load_settings(EXAMPLE, env=env).signature
    assert type(policy) is SignaturePolicy
    assert policy == SignaturePolicy(accept_edxml_namespace=True, allow_sha1=True)
    example = render_example()
    for name in SignaturePolicy.__dataclass_fields__:
        assert f"\n{name} = " in example, name


def test_importing_the_policy_loads_no_xml_library() -> None:
    """trust.policy (imported by the config) loads neither lxml nor signxml."""
    code = (
        "import sys, edoc_axis.trust.policy\n"
        "print(sorted(m for m in ('lxml', 'signxml') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
