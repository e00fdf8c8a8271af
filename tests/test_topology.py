"""Broker layout: names, password hashes, definitions JSON, and what an agency user may do."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pika
import pika.exceptions
import pytest
from click.testing import CliRunner

from edoc_axis.cli.broker import broker_group
from edoc_axis.directory import Agency, render_agency
from edoc_axis.errors import ConfigError, NotFound
from edoc_axis.transport.deadletter import dead_letters, replay_dead_letter
from edoc_axis.transport.link import Link
from edoc_axis.transport.message import Confirmation, IncomingMessage, Outcome, OutgoingMessage
from edoc_axis.transport.provision import (
    BrokerAccount,
    UserLimits,
    check_queues,
    definitions,
    password_hash,
    provision,
)
from edoc_axis.transport.topology import Topology, queue_token, url_with_vhost, vhost_of
from edoc_axis.trust.certificate import organ_id_uri

TOPOLOGY = Topology()


def _rabbitmqctl(*args: str) -> None:
    exe = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([exe, "-q", *args], check=False, capture_output=True, timeout=60)


def test_names_follow_the_organ_id() -> None:
    """Queues are edoc.in.<OrganId> and edoc.dead.<OrganId>, bounded; the inbound queue refuses
    more, the dead-letter queue drops its oldest."""
    assert TOPOLOGY.queue_for("000.00.00.G22") == "edoc.in.000.00.00.G22"
    assert TOPOLOGY.dead_queue_for("000.00.00.G22") == "edoc.dead.000.00.00.G22"
    assert TOPOLOGY.queue_arguments() == {
        "x-queue-type": "quorum", "x-delivery-limit": 5, "x-dead-letter-exchange": "edoc.dlx",
        "x-max-length": 10_000, "x-max-length-bytes": 1024 * 1024 * 1024,
        "x-overflow": "reject-publish"}
    assert TOPOLOGY.dead_queue_arguments() == {
        "x-queue-type": "quorum", "x-delivery-limit": 1_000_000, "x-max-length": 1_000,
        "x-max-length-bytes": 128 * 1024 * 1024, "x-overflow": "drop-head"}


def test_queue_tokens_make_names_nobody_else_can_derive() -> None:
    """A token is stable per key and agency, differs across both, and ends both queue names."""
    token = queue_token(b"k" * 32, "000.00.00.G22")
    assert token == queue_token(b"k" * 32, "000.00.00.G22")
    assert re.fullmatch(r"[a-z2-7]{24}", token)
    assert token != queue_token(b"k" * 32, "000.00.00.H41")
    assert token != queue_token(b"j" * 32, "000.00.00.G22")
    mine = Topology(queue_token=token)
    assert mine.queue_for("000.00.00.G22") == f"edoc.in.000.00.00.G22.{token}"
    assert mine.dead_queue_for("000.00.00.G22") == f"edoc.dead.000.00.00.G22.{token}"


def test_password_hash_is_rabbitmq_sha256() -> None:
    """base64(salt4 + sha256(salt4 + password)), with a fresh salt each time."""
    salt = bytes.fromhex("908dc60a")
    raw = base64.b64decode(password_hash("test12", salt))
    assert raw[:4] == salt and raw[4:] == hashlib.sha256(salt + b"test12").digest()
    assert password_hash("mật khẩu") != password_hash("mật khẩu")
    with pytest.raises(ValueError, match="4 bytes"):
        password_hash("x", b"12")


def test_definitions_grant_least_privilege() -> None:
    """Each agency: configure nothing, write edoc.axis only, read its own two queues only,
    a few connections and channels; policies bound every axis queue."""
    doc = definitions([BrokerAccount("000.00.00.G22", "g22", "pw")], "edoc", TOPOLOGY)
    [user] = doc["users"]
    assert user["hashing_algorithm"] == "rabbit_password_hashing_sha256" and user["tags"] == []
    assert user["limits"] == {"max-connections": 8, "max-channels": 32}
    assert {(p["name"], p["pattern"], p["definition"]["overflow"]) for p in doc["policies"]} == {
        ("edoc-inbound-bounds", r"^edoc\.in\.", "reject-publish"),
        ("edoc-dead-bounds", r"^edoc\.dead\.", "drop-head")}
    assert "pw" not in json.dumps(doc)
    [perm] = doc["permissions"]
    assert (perm["configure"], perm["write"]) == ("^$", r"^edoc\.axis$")
    assert perm["read"] == r"^(edoc\.in\.000\.00\.00\.G22|edoc\.dead\.000\.00\.00\.G22)$"
    assert {q["name"]: q["arguments"]["x-queue-type"] for q in doc["queues"]} == {
        "edoc.in.000.00.00.G22": "quorum", "edoc.dead.000.00.00.G22": "quorum"}
    assert all(q["durable"] and not q["auto_delete"] for q in doc["queues"])
    assert all("x-delivery-limit" in q["arguments"] for q in doc["queues"])
    assert {(b["source"], b["destination"], b["routing_key"]) for b in doc["bindings"]} == {
        ("edoc.axis", "edoc.in.000.00.00.G22", "000.00.00.G22"),
        ("edoc.dlx", "edoc.dead.000.00.00.G22", "000.00.00.G22")}
    assert {e["name"] for e in doc["exchanges"]} == {"edoc.axis", "edoc.dlx"}


def test_certificate_accounts_have_no_password_and_tokened_queues() -> None:
    """A certificate-login user gets no password hash; its queues and read rights carry its
    token."""
    user = "urn:qcvn102:organid:000.00.00.G22"
    doc = definitions([BrokerAccount("000.00.00.G22", user, None, "tok")], "edoc", TOPOLOGY)
    assert doc["users"][0]["name"] == user and doc["users"][0]["password_hash"] == ""
    assert "password='certificate'" not in repr(BrokerAccount("A", "u"))
    assert "password=certificate" in repr(BrokerAccount("A", "u"))
    assert {q["name"] for q in doc["queues"]} == {"edoc.in.000.00.00.G22.tok",
                                                  "edoc.dead.000.00.00.G22.tok"}
    assert doc["permissions"][0]["read"] == (r"^(edoc\.in\.000\.00\.00\.G22\.tok|"
                                             r"edoc\.dead\.000\.00\.00\.G22\.tok)$")


def test_definitions_refuse_duplicates_and_blanks() -> None:
    """Two agencies with one user, or an account without a password, is a config error."""
    with pytest.raises(ConfigError) as dup:
        definitions([BrokerAccount("A", "u", "p"), BrokerAccount("B", "u", "p")], "/")
    assert dup.value.code == "BROKER_ACCOUNT_DUPLICATE"
    with pytest.raises(ConfigError) as blank:
        definitions([BrokerAccount("A", "u", "")], "/")
    assert blank.value.code == "BROKER_ACCOUNT_INCOMPLETE"
    assert "pw" not in repr(BrokerAccount("A", "u", "pw"))


def test_provision_refuses_a_remote_broker() -> None:
    """provision only drives the local broker's rabbitmqctl."""
    with pytest.raises(ConfigError) as err:
        provision("amqp://admin:x@broker.example.gov.vn/edoc", [BrokerAccount("A", "u", "p")])
    assert err.value.code == "BROKER_NOT_LOCAL"


def test_url_vhost_helpers() -> None:
    """The vhost of a URL can be read and swapped (/ is %2F)."""
    assert vhost_of("amqp://u:p@h:5672/%2F") == "/"
    assert vhost_of("amqp://u:p@h:5672/edoc") == "edoc"
    assert vhost_of(url_with_vhost("amqp://u:p@h:5672/x", "a/b")) == "a/b"


@pytest.fixture(scope="module")
def provisioned(broker_url: str, broker_vhost: str) -> Iterator[list[BrokerAccount]]:
    """Two agencies imported with rabbitmqctl import_definitions; their users removed after."""
    tag = uuid.uuid4().hex[:8]
    accounts = [BrokerAccount(f"T{tag}.A", f"edoc-test-{tag}-a", f"pw-a-{tag}"),
                BrokerAccount(f"T{tag}.B", f"edoc-test-{tag}-b", f"pw-b {tag} ơ")]
    provision(broker_url, accounts, TOPOLOGY, broker_vhost)
    yield accounts
    for account in accounts:
        _rabbitmqctl("delete_user", account.user)


def _url(account: BrokerAccount, vhost: str) -> str:
    return (f"amqp://{quote(account.user, safe='')}:{quote(account.password, safe='')}"
            f"@127.0.0.1:5672/{quote(vhost, safe='')}")


def _refused(action: Callable[[Any], Any], url: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.confirm_delivery()
    try:
        action(channel)
    except pika.exceptions.ChannelClosedByBroker as exc:
        return int(exc.reply_code)
    finally:
        if connection.is_open:
            connection.close()
    return 0


@pytest.mark.broker
def test_agency_user_has_exactly_its_rights(provisioned: list[BrokerAccount],
                                            broker_vhost: str) -> None:
    """An imported user logs in, publishes to the axis, reads its queue, and nothing else."""
    a, b = provisioned
    url_a, url_b = _url(a, broker_vhost), _url(b, broker_vhost)
    props = pika.BasicProperties(user_id=a.user, message_id="p-1", delivery_mode=2)

    def publish_to_b(channel: Any) -> None:
        channel.basic_publish("edoc.axis", b.organ_id, b"<edXML/>", props, mandatory=True)

    assert _refused(publish_to_b, url_a) == 0
    # Passive declares work without configure rights (so the Link checks its queue with one).
    assert check_queues(url_a, TOPOLOGY, [a.organ_id])[TOPOLOGY.queue_for(a.organ_id)] == 0
    assert _refused(lambda ch: ch.basic_get(TOPOLOGY.queue_for(b.organ_id)), url_a) == 403
    assert _refused(lambda ch: ch.basic_get(TOPOLOGY.dead_queue_for(b.organ_id)), url_a) == 403
    assert _refused(lambda ch: ch.queue_declare(
        TOPOLOGY.queue_for(a.organ_id), durable=True, arguments=TOPOLOGY.queue_arguments()),
        url_a) == 403
    assert _refused(lambda ch: ch.queue_declare("edoc.mine", durable=True), url_a) == 403
    assert _refused(lambda ch: ch.basic_publish("edoc.dlx", b.organ_id, b"x", props), url_a) == 403
    spoof = pika.BasicProperties(user_id=b.user)
    assert _refused(lambda ch: ch.basic_publish("edoc.axis", b.organ_id, b"x", spoof), url_a) == 406

    connection = pika.BlockingConnection(pika.URLParameters(url_b))
    method, properties, body = connection.channel().basic_get(TOPOLOGY.queue_for(b.organ_id),
                                                              auto_ack=True)
    connection.close()
    assert method is not None and body == b"<edXML/>"
    assert (properties.user_id, properties.message_id) == (a.user, "p-1")
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(pika.URLParameters(_url(BrokerAccount("", a.user, "bad"),
                                                        broker_vhost)))


@pytest.mark.broker
def test_links_work_as_agency_users(provisioned: list[BrokerAccount], broker_vhost: str) -> None:
    """A's Link publishes to B with confirms; B's Link consumes; B replays its own dead letter."""
    a, b = provisioned
    confirmations: list[Confirmation] = []
    sent = [OutgoingMessage(1, "p-1", b.organ_id, b"<edXML/>", "edoc", {"edoc-from": a.organ_id})]
    pub = Link(_url(a, broker_vhost), TOPOLOGY, user_id=a.user,
               fetch_outgoing=lambda n: [sent.pop()] if sent else [],
               on_confirmed=confirmations.extend)
    received: list[IncomingMessage] = []

    def reject(batch: list[IncomingMessage]) -> list[Outcome]:
        received.extend(batch)
        return [Outcome.REJECT] * len(batch)

    sub = Link(_url(b, broker_vhost), TOPOLOGY, user_id=b.user,
               queue=TOPOLOGY.queue_for(b.organ_id), handle_batch=reject)
    threads = [threading.Thread(target=link.run, daemon=True) for link in (pub, sub)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while not (confirmations and received and sub.stats.rejected):
        assert time.monotonic() < deadline, "no confirmation or delivery"
        time.sleep(0.01)
    for link in (pub, sub):
        link.stop()
    for thread in threads:
        thread.join(10)
    assert confirmations[0].ok and received[0].user_id == a.user
    # The replay needs b's own user_id; a's original user travels in a header.
    url_b = _url(b, broker_vhost)
    deadline = time.monotonic() + 20
    while check_queues(url_b, TOPOLOGY, [b.organ_id])[TOPOLOGY.dead_queue_for(b.organ_id)] < 1:
        assert time.monotonic() < deadline, "rejected message never reached the dead queue"
        time.sleep(0.01)
    assert replay_dead_letter(url_b, TOPOLOGY, b.organ_id, "p-1", b.user)
    connection = pika.BlockingConnection(pika.URLParameters(url_b))
    method, properties, _ = connection.channel().basic_get(TOPOLOGY.queue_for(b.organ_id),
                                                           auto_ack=True)
    connection.close()
    assert method is not None and properties.user_id == b.user
    assert properties.headers["x-edoc-replay-of-user"] == a.user


@pytest.mark.broker
def test_cli_definitions_import_and_provision(broker_url: str, broker_vhost: str) -> None:
    """`broker definitions` prints importable JSON; `broker provision` applies it."""
    tag = uuid.uuid4().hex[:8]
    user = f"edoc-test-{tag}-cli"
    runner = CliRunner()
    try:
        result = runner.invoke(broker_group, [
            "definitions", "--vhost", broker_vhost, "--agency", f"T{tag}.C={user}:secret"])
        assert result.exit_code == 0, result.output
        doc = json.loads(result.output)
        assert doc["users"][0]["name"] == user
        exe = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
        subprocess.run([exe, "-q", "import_definitions", "--format", "json"], check=True,
                       input=result.output.encode(), capture_output=True, timeout=60)
        url = _url(BrokerAccount(f"T{tag}.C", user, "secret"), broker_vhost)
        deadline = time.monotonic() + 20
        while True:  # rabbitmqctl documents the import as possibly asynchronous
            try:
                counts = check_queues(url, TOPOLOGY, [f"T{tag}.C"])
                break
            except (ConfigError, NotFound):
                assert time.monotonic() < deadline, "imported definitions never appeared"
                time.sleep(0.1)
        assert counts == {f"edoc.in.T{tag}.C": 0, f"edoc.dead.T{tag}.C": 0}
        result = runner.invoke(broker_group, [
            "provision", "--url", broker_url, "--agency", f"T{tag}.D={user}-d:pw2"])
        assert result.exit_code == 0, result.output
        assert f"edoc.in.T{tag}.D" in result.output
        bad = runner.invoke(broker_group, ["definitions", "--agency", "no-equals-sign"])
        assert bad.exit_code == 2 and "ORGANID=USER:PASSWORD" in bad.output
    finally:
        _rabbitmqctl("delete_user", user)
        _rabbitmqctl("delete_user", f"{user}-d")


# --- zero trust between agencies (issue 11, holes 6 and 7) ---------------------------------------

TINY = Topology(max_length=3, max_bytes=1024 * 1024, dead_max_length=2, dead_max_bytes=1024 * 1024)


@pytest.fixture(scope="module")
def bounded() -> Iterator[tuple[str, list[BrokerAccount]]]:
    """Agencies A and B with secret queue tokens, in a vhost of their own whose queues take 3
    messages (dead letters: 2), and users capped at 2 connections."""
    tag = uuid.uuid4().hex[:8]
    vhost = f"edoc-bounds-{tag}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    key = uuid.uuid4().bytes
    accounts = [BrokerAccount(o, f"edoc-test-{tag}-{o}", f"pw-{o}", queue_token(key, o))
                for o in (f"T{tag}.A", f"T{tag}.B")]
    admin = f"amqp://guest:guest@127.0.0.1:5672/{quote(vhost, safe='')}"
    try:
        provision(admin, accounts, TINY, vhost, limits=UserLimits(max_connections=2))
        yield vhost, accounts
    finally:
        _rabbitmqctl("delete_vhost", vhost)
        for account in accounts:
            _rabbitmqctl("delete_user", account.user)


def _publish_all(url: str, routing_key: str, count: int, user: str) -> list[Confirmation]:
    """Publish ``count`` messages through a Link and return every confirmation."""
    pending = [OutgoingMessage(i, f"m-{i}", routing_key, b"<edXML/>", "edoc")
               for i in range(count, 0, -1)]
    confirmations: list[Confirmation] = []
    link = Link(url, TOPOLOGY, user_id=user, fetch_outgoing=lambda n: [
        pending.pop() for _ in range(min(n, len(pending), 1))],
        on_confirmed=confirmations.extend, window=1)
    thread = threading.Thread(target=link.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while len(confirmations) < count:
        assert time.monotonic() < deadline, f"{len(confirmations)} of {count} confirmed"
        time.sleep(0.01)
    link.stop()
    thread.join(10)
    return confirmations


@pytest.mark.broker
def test_a_full_inbound_queue_nacks_and_dead_letters_keep_the_newest(
    bounded: tuple[str, list[BrokerAccount]]
) -> None:
    """Hole 6: A floods B; past the bound B's queue refuses (a retryable nack, not a drop); of
    what B dead-letters, the queue keeps the newest 2; a third connection of A is refused."""
    vhost, (a, b) = bounded
    confirmations = _publish_all(_url(a, vhost), b.organ_id, 6, a.user)
    accepted = [c.token for c in confirmations if c.ok]
    refused = [c for c in confirmations if not c.ok]
    assert 3 <= len(accepted) <= 4  # quorum queues check the bound as they enqueue
    assert refused and all(c.retryable and c.code == "BROKER_NACK" for c in refused)

    layout_b = b.layout(TINY)
    connection = pika.BlockingConnection(pika.URLParameters(_url(b, vhost)))
    channel = connection.channel()
    for _ in accepted:
        method, _props, _body = channel.basic_get(layout_b.queue_for(b.organ_id))
        channel.basic_reject(method.delivery_tag, requeue=False)
    connection.close()
    dead = layout_b.dead_queue_for(b.organ_id)
    deadline = time.monotonic() + 20
    while check_queues(_url(b, vhost), layout_b, [b.organ_id])[dead] != 2:
        assert time.monotonic() < deadline, "the dead-letter queue did not settle at its bound"
        time.sleep(0.05)
    kept = [d.message_id for d in dead_letters(_url(b, vhost), layout_b, b.organ_id)]
    assert kept == [f"m-{t}" for t in accepted[-2:]]

    held = [pika.BlockingConnection(pika.URLParameters(_url(a, vhost))) for _ in range(2)]
    try:
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            pika.BlockingConnection(pika.URLParameters(_url(a, vhost)))
    finally:
        for connection in held:
            connection.close()


@pytest.mark.broker
def test_bound_policies_reach_queues_declared_without_bounds(
    bounded: tuple[str, list[BrokerAccount]]
) -> None:
    """A queue declared before bounds existed is bounded by the imported policy."""
    vhost, _ = bounded
    admin = pika.BlockingConnection(pika.URLParameters(
        f"amqp://guest:guest@127.0.0.1:5672/{quote(vhost, safe='')}"))
    try:
        channel = admin.channel()
        channel.confirm_delivery()
        channel.queue_declare("edoc.in.OLD", durable=True, arguments={"x-queue-type": "quorum"})
        outcomes = []
        for _ in range(6):
            try:
                channel.basic_publish("", "edoc.in.OLD", b"x", pika.BasicProperties(
                    delivery_mode=2), mandatory=True)
                outcomes.append("ack")
            except pika.exceptions.NackError:
                outcomes.append("nack")
        assert "nack" in outcomes and outcomes.count("ack") <= 4
    finally:
        admin.close()


@pytest.mark.broker
def test_an_agency_cannot_read_another_agencys_queue_depth(
    bounded: tuple[str, list[BrokerAccount]]
) -> None:
    """Hole 7: RabbitMQ answers a passive declare without any permission, so B's depth is
    readable by whoever can name B's queue. With tokens A can name only its own; it still learns
    that B is on the axis (its publish is routed, not returned)."""
    vhost, (a, b) = bounded
    url_a = _url(a, vhost)
    mine = a.layout(TINY)
    assert check_queues(url_a, mine, [a.organ_id]) == {
        mine.queue_for(a.organ_id): 0, mine.dead_queue_for(a.organ_id): 0}
    for guess in (TINY, mine):  # B's name without a token, or with A's own
        for queue in (guess.queue_for(b.organ_id), guess.dead_queue_for(b.organ_id)):
            with pytest.raises(NotFound):
                check_queues(url_a, Topology(queue_prefix=queue, dead_prefix=queue), [""])
    # The name is the secret: whoever has it reads the depth (the token travels only to B).
    layout_b = b.layout(TINY)
    assert layout_b.queue_for(b.organ_id) in check_queues(url_a, layout_b, [b.organ_id])
    props = pika.BasicProperties(user_id=a.user, delivery_mode=2)
    assert _refused(lambda ch: ch.basic_publish("edoc.axis", b.organ_id, b"x", props,
                                                mandatory=True), url_a) == 0
    with pytest.raises(pika.exceptions.UnroutableError):
        _refused(lambda ch: ch.basic_publish("edoc.axis", "T.NOBODY", b"x", props,
                                             mandatory=True), url_a)


def _directory_file(path: Path, users: dict[str, str]) -> Path:
    """A directory listing each OrganId with the given broker user."""
    path.write_text("".join(render_agency(Agency(o, o.replace(".", ""), f"Cơ quan {o}", None, u))
                            + "\n" for o, u in users.items()), encoding="utf-8")
    return path


def test_cli_certificate_login_maps_each_certificate_to_its_user(
    tmp_path: Path, pki: Any
) -> None:
    """--login certificate: passwordless users named as the certificates log in; --certs maps
    each agency certificate to its user; a directory naming another user is refused."""
    g22, h41 = "000.00.00.G22", "000.00.00.H41"
    users = {o: organ_id_uri(o) for o in (g22, h41)}
    directory = _directory_file(tmp_path / "directory.toml", users)
    certs = tmp_path / "certs"
    certs.mkdir()
    for organ_id in (g22, h41):
        shutil.copy(pki.agencies[organ_id].cert_path, certs / f"{organ_id}.pem")
    shutil.copy(pki.ca_path, certs / "ca.pem")
    result = CliRunner().invoke(broker_group, [
        "definitions", "--login", "certificate", "--directory", str(directory),
        "--certs", str(certs), "--vhost", "edoc"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert {(u["name"], u["password_hash"]) for u in doc["users"]} == {
        (users[g22], ""), (users[h41], "")}
    assert f"{g22}.pem -> broker user {users[g22]}" in result.stderr

    wrong = _directory_file(tmp_path / "wrong.toml", {g22: "g22", h41: users[h41]})
    refused = CliRunner().invoke(broker_group, [
        "definitions", "--login", "certificate", "--directory", str(wrong)])
    assert refused.exit_code == 78 and "BROKER_USER_NOT_CERTIFICATE" in refused.stderr
    stray = CliRunner().invoke(broker_group, [
        "definitions", "--login", "certificate", "--agency", h41, "--certs", str(certs)])
    assert stray.exit_code == 78 and "BROKER_CERT_MISMATCH" in stray.stderr
    assert f"{g22}.pem: issued to {g22}" in stray.stderr


def test_cli_queue_key_gives_each_agency_its_token(tmp_path: Path) -> None:
    """--queue-key is created once; queue names carry each agency's token, which
    `broker queue-token` prints for the agency's config."""
    key = tmp_path / "queue.key"
    args = ["definitions", "--agency", "T.A=a:pw", "--queue-key", str(key)]
    first = CliRunner().invoke(broker_group, args)
    assert first.exit_code == 0, first.output
    assert key.stat().st_mode & 0o777 == 0o600 and "created the queue-naming key" in first.stderr
    token = CliRunner().invoke(broker_group, ["queue-token", "--queue-key", str(key), "T.A"])
    assert token.exit_code == 0
    [(organ_id, value)] = [line.split("\t") for line in token.stdout.splitlines()]
    assert organ_id == "T.A"
    again = json.loads(CliRunner().invoke(broker_group, args).stdout)
    assert {q["name"] for q in again["queues"]} == {f"edoc.in.T.A.{value}",
                                                    f"edoc.dead.T.A.{value}"}
