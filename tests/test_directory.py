"""The agency directory: loading, whole-file validation, lookups, editing."""

from __future__ import annotations

from pathlib import Path

import pytest

from edoc_axis.directory import (
    Agency,
    CertificateFacts,
    Directory,
    render_agency,
    save_agency,
    upsert_agency_text,
)
from edoc_axis.errors import ConfigError, UnknownAgency

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "directory.example.toml"
FP1, FP2, FP3 = "a" * 64, "b" * 64, "c" * 64


def _table(organ_id: str, **extra: object) -> str:
    lines = [
        "[[agency]]",
        f'organ_id = "{organ_id}"',
        f'code = "{extra.pop("code", organ_id[-3:])}"',
        f'name = "Cơ quan {organ_id}"',
        f'broker_user = "{extra.pop("broker_user", organ_id)}"',
        f'fingerprints = {extra.pop("fingerprints", [FP1 if organ_id.endswith("G22") else FP2])}'
        .replace("'", '"'),
    ]
    lines += [f'{k} = "{v}"' for k, v in extra.items()]
    return "\n".join(lines) + "\n\n"


def test_example_directory_loads() -> None:
    """The shipped example loads: Government Office, MIC (rollover), Nghệ An and a child."""
    directory = Directory.load(EXAMPLE)
    assert len(directory) == 4
    assert directory.get("000.00.00.G22").name == "Văn phòng Chính phủ"
    assert len(directory.get("000.00.00.G12").fingerprints) == 2
    child = directory.get("000.00.12.H41")
    assert child.parent == "000.00.00.H41"
    assert directory.children("000.00.00.H41") == (child,)
    assert directory.problems() == [] and directory.warnings() == []


def test_lookups() -> None:
    """get/find/by_broker_user/by_fingerprint/contains/iter behave as documented."""
    directory = Directory.parse(_table("000.00.00.G22") + _table("000.00.00.H41"))
    assert "000.00.00.G22" in directory and "000.00.00.G12" not in directory
    assert [a.organ_id for a in directory] == ["000.00.00.G22", "000.00.00.H41"]
    assert directory.find("000.00.00.G12") is None
    assert directory.by_broker_user("000.00.00.H41") is directory.get("000.00.00.H41")
    assert directory.by_broker_user("guest") is None
    assert directory.by_fingerprint(FP2.upper()) is directory.get("000.00.00.H41")
    with pytest.raises(UnknownAgency) as err:
        directory.get("000.00.00.G12")
    assert err.value.agency == "000.00.00.G12"


def test_fingerprints_normalised() -> None:
    """openssl-style AB:CD fingerprints are stored as lowercase hex."""
    colon = ":".join(["AB"] * 32)
    directory = Directory.parse(_table("000.00.00.G22", fingerprints=[colon]))
    agency = directory.get("000.00.00.G22")
    assert agency.fingerprints == ("ab" * 32,)
    assert agency.trusts(colon)


def _problems(text: str) -> str:
    with pytest.raises(ConfigError) as err:
        Directory.parse(text, source="dir.toml")
    assert err.value.code == "DIRECTORY_INVALID"
    return err.value.message


def test_duplicate_organ_id() -> None:
    """An OrganId listed twice is refused, naming both entries."""
    text = _table("000.00.00.G22") + _table("000.00.00.G22", code="X", broker_user="other",
                                            fingerprints=[FP3])
    assert "OrganId 000.00.00.G22 is already used by agency #1" in _problems(text)


def test_duplicate_broker_user_code_and_fingerprint() -> None:
    """Broker users, codes and fingerprints must each belong to one agency only."""
    text = _table("000.00.00.G22") + _table(
        "000.00.00.H41", code="G22", broker_user="000.00.00.G22", fingerprints=[FP1])
    message = _problems(text)
    assert "3 problems" in message
    assert "code G22" in message
    assert "broker_user 000.00.00.G22" in message
    assert f"fingerprint {FP1}" in message


def test_bad_organ_id() -> None:
    """A malformed OrganId is refused."""
    assert "28.22.H17: is not a valid OrganId" in _problems(_table("28.22.H17"))


def test_unknown_parent() -> None:
    """A parent that is not in the directory is refused."""
    message = _problems(_table("000.00.12.H41", parent="000.00.00.H41"))
    assert "parent 000.00.00.H41 is not in the directory" in message


def test_parent_cycle() -> None:
    """Parents must not form a cycle."""
    text = _table("000.00.00.G22", parent="000.00.00.H41") + _table(
        "000.00.00.H41", parent="000.00.00.G22")
    assert "parents form a cycle" in _problems(text)


@pytest.mark.parametrize("bad", ["abc", "z" * 64, "a" * 63, "sha256:" + "a" * 64])
def test_bad_fingerprint(bad: str) -> None:
    """Fingerprints must be 64 hex digits."""
    assert "is not 64 hex digits" in _problems(_table("000.00.00.G22", fingerprints=[bad]))


def test_every_problem_listed_at_once() -> None:
    """Table-level and cross-agency problems come back together, one per line."""
    text = (
        '[[agency]]\norgan_id = "000.00.00.G22"\nname = "x"\nbroker_user = "u"\nfax = 5\n'
        "colour = 'red'\n\n" + _table("bad") + "[meta]\nx = 1\n"
    )
    message = _problems(text)
    for needle in ("'code' is required", "'fax' must be a string", "unknown key 'colour'",
                   "bad: is not a valid OrganId", "unknown top-level key 'meta'"):
        assert needle in message
    assert message.count("\n  - ") == 6  # the five above plus the lowercase code "bad"


def test_bad_code_and_email() -> None:
    """The national code must be 0-9 A-Z and dots (<= 35) and an e-mail must look like one."""
    message = _problems(_table("000.00.00.G22", code="g22-x", email="nobody"))
    assert "code 'g22-x'" in message and "email 'nobody'" in message


def test_syntax_and_missing_file(tmp_path: Path) -> None:
    """A broken or missing file is a clear ConfigError."""
    with pytest.raises(ConfigError) as err:
        Directory.parse("[[agency]\n")
    assert err.value.code == "DIRECTORY_SYNTAX"
    with pytest.raises(ConfigError) as err:
        Directory.load(tmp_path / "none.toml")
    assert err.value.code == "DIRECTORY_NOT_FOUND"


def test_problems_and_warnings() -> None:
    """No fingerprint is a problem; a parent other than the implied one is a warning."""
    text = (_table("000.00.00.G22", fingerprints=[]) + _table("000.00.00.H41")
            + _table("000.00.12.H41", code="H41.12", parent="000.00.00.G22", fingerprints=[FP3]))
    directory = Directory.parse(text)
    assert directory.problems() == [
        "000.00.00.G22: no certificate fingerprint listed; no signature from this agency "
        "(not even a receipt) can be accepted"
    ]
    assert len(directory.warnings()) == 1
    assert "differs from 000.00.00.H41" in directory.warnings()[0]


def test_check_certificates() -> None:
    """Certificates are matched against agencies and their fingerprints."""
    directory = Directory.parse(_table("000.00.00.G22") + _table("000.00.00.H41"))
    problems, warnings = directory.check_certificates([
        CertificateFacts("g22.pem", FP1, "000.00.00.G22"),
        CertificateFacts("h41-new.pem", FP3, "000.00.00.H41"),
        CertificateFacts("stranger.pem", "d" * 64, "000.00.00.G12"),
        CertificateFacts("old.pem", FP1, "000.00.00.G22", expired=True),
        CertificateFacts("anon.pem", "e" * 64, None),
    ])
    joined = "\n".join(problems)
    assert "h41-new.pem" in joined and "not listed for 000.00.00.H41" in joined
    assert "000.00.00.G12 is not in the directory" in joined
    assert "old.pem" in joined and "expired" in joined
    assert "anon.pem" in joined and "no single OrganId" in joined
    assert "g22.pem" not in joined
    assert warnings == ["000.00.00.H41: none of its fingerprints matches a given certificate"]


def test_upsert_keeps_comments_and_other_agencies(tmp_path: Path) -> None:
    """Updating one agency rewrites its table only; comments and others stay as written."""
    text = "# header\n\n" + _table("000.00.00.G22") + "# about H41\n" + _table("000.00.00.H41")
    updated = Agency("000.00.00.G22", "G22", "VPCP", None, "000.00.00.G22", (FP3,))
    new_text = upsert_agency_text(text, updated)
    assert new_text.startswith("# header\n")
    assert "# about H41\n" in new_text
    directory = Directory.parse(new_text)
    assert directory.get("000.00.00.G22").fingerprints == (FP3,)
    assert directory.get("000.00.00.H41").fingerprints == (FP2,)
    added = upsert_agency_text(new_text, Agency("000.00.00.G12", "G12", "MIC", None, "g12"))
    assert len(Directory.parse(added)) == 3


def test_save_agency_validates_before_writing(tmp_path: Path) -> None:
    """save_agency creates the file, and never writes an entry that breaks the directory."""
    path = tmp_path / "directory.toml"
    save_agency(path, Agency("000.00.00.G22", "G22", "VPCP", None, "g22", (FP1,)))
    save_agency(path, Agency("000.00.00.H41", "H41", "Nghệ An", None, "h41", (FP2,)))
    assert len(Directory.load(path)) == 2
    before = path.read_text(encoding="utf-8")
    with pytest.raises(ConfigError):
        save_agency(path, Agency("000.00.00.G12", "G12", "MIC", None, "g22", (FP3,)))
    assert path.read_text(encoding="utf-8") == before


def test_render_agency_round_trip() -> None:
    """A rendered table parses back to the same agency."""
    agency = Agency("000.00.12.H41", "H41.12", 'Sở "TT&TT"', "000.00.00.H41", "h41-12",
                    (FP1, FP2), email="a@b.vn", phone="0238", fax="0239")
    parent = Agency("000.00.00.H41", "H41", "UBND", None, "h41", (FP3,))
    directory = Directory.parse(render_agency(parent) + render_agency(agency))
    assert directory.get("000.00.12.H41") == agency
    assert agency.to_dict()["fingerprints"] == [FP1, FP2]
