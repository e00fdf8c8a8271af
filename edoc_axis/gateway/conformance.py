"""The DMS conformance kit behind ``edoc-axis dms selftest``: the whole cycle, from the DMS's side.

A :class:`Selftest` calls a node's gateway exactly as a DMS does (through ``DmsClient``) and
reports one :class:`Step` per stage, with what was expected and what came back:

1. ``auth``: a signed ``getAgenciesList`` is accepted (a refusal is explained: AUTH_BAD_HMAC
   means the secret is not the node's, and so on);
2. ``agencies``: the DMS's agency (``--from``, else learned from the gateway's received and sent
   lists, else the one agency besides ``--to``) and the recipient (``--to``, else the only other
   agency) are both listed;
3. ``sendEdoc``: a small generated, valid, unsigned document gets a DocId (the node signs it);
4. ``getSentEdocList``: the document has a row for the recipient;
5. ``status 01`` / ``status 03``: the recipient's statuses arrive in
   ``getReceivedEdocList(messagetype=status)`` (bounded polling) and ``getEdoc`` returns them as
   status packages about our DocumentId;
6. ``updateStatus done``: acknowledging them removes them from the list;
7. ``tracking``: ``getSentEdocList`` reports the last status as ``receiveStatus``;
8. ``reply document``: a document from the recipient answering ours (``ResponseFor``) arrives
   and is fetched and acknowledged (the sandbox's peer sends one; SKIP when none comes);
9. ``business status``: status 03 about that reply goes back with ``sendEdoc`` (messagetype
   status) and shows in ``getSentEdocList``.

The run stops at the first FAIL. Only packages about the test's own document are fetched,
acknowledged or answered, so running it against a production node leaves the DMS's real inbox
alone.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Generic, TypeVar

from edoc_axis.edxml.identifier import VN_TZ, format_date, make_document_id
from edoc_axis.edxml.model import (
    Code,
    DocumentPackage,
    DocumentType,
    Organization,
    PromulgationInfo,
    StatusPackage,
)
from edoc_axis.edxml.read import parse
from edoc_axis.edxml.status import new_status
from edoc_axis.edxml.write import append_trace_header, build
from edoc_axis.errors import EdocAxisError, ErrorCode
from edoc_axis.gateway.client import DmsClient

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
DEFAULT_TIMEOUT = 60.0
POLL_SECONDS = 0.5
REPLY_GRACE_SECONDS = 10.0
PROGRESS_EVERY_SECONDS = 5.0
TEST_NOTATION = "SELFTEST"
ACK_NOTE = "edoc-axis dms selftest"

# What a gateway refusal means for the person running the test, by the gateway's ErrorCode.
HINTS = {
    ErrorCode.AUTH_BAD_HMAC: (
        "the gateway's HMAC-SHA256 of XroadVnpt-sign-header, keyed with the secret the node "
        "holds for systemid {systemid}, differs from ours: the secret used here is not the one "
        "in the node's [[dms]] table for this systemid (compare the secret files; surrounding "
        "spaces and newlines are ignored)"),
    ErrorCode.AUTH_UNKNOWN_SYSTEM: "the node has no [[dms]] table with systemid {systemid}",
    ErrorCode.AUTH_TIMESTAMP_SKEW: (
        "the call's timestamp is outside the node's window: it is read in the node's "
        "api.timezone (Vietnam time unless set) and may be at most 300 s ahead; compare the "
        "clocks of both machines, that zone and api.max_timestamp_age"),
    ErrorCode.AUTH_HEADER_ENCODING: (
        "a signed header holds text beyond ISO-8859-1 (Vietnamese đ, ư, ậ, ...): the Java SDK "
        "writes each header character as its low byte, so what arrives is not what was signed. "
        "Send only ASCII in XroadVnpt headers: percent-encode UTF-8 text (an updateStatus "
        "description such as %C4%90%C3%A3 for Đã is decoded by the gateway), or use a client "
        "that writes headers as UTF-8"),
    ErrorCode.REQUEST_IN_PROGRESS: (
        "the gateway is still answering the first copy of this exact signed request (a retry "
        "came before its answer): wait a second (Retry-After) and send the same request "
        "again; it gets the first answer and is not applied twice"),
    ErrorCode.AUTH_BAD_TIMESTAMP: "the timestamp is not the SDK's ddMMyyyy'T'HHmmss+SSSS form",
    ErrorCode.AUTH_REPLAY: (
        "these exact signed headers were already answered, and now came with another body or "
        "call, so nothing was done (an exact repeat, same headers and same body, simply gets "
        "its first answer again). Sign the headers for the body actually sent (a new timestamp "
        "and that body's hash-file); a failed updateStatus repeated after a later one for the "
        "same docId succeeded is refused too: send a new updateStatus"),
    ErrorCode.AUTH_MISSING: "a required XroadVnpt-* header was not sent or not signed",
    ErrorCode.AUTH_HEADER_MISMATCH: "a header differs from its value in XroadVnpt-sign-header",
    ErrorCode.AUTH_BAD_SIGN_HEADER: "XroadVnpt-sign-header must be the compact JSON of the headers",
    ErrorCode.FROM_NOT_ALLOWED: (
        "systemid {systemid} speaks for another agency: use --from with the organ_id of its "
        "[[dms]] table"),
    ErrorCode.SIG_MISSING: (
        "the node does not sign unsigned submissions (signature.sign_unsigned_submissions = "
        "false), and the test document is unsigned"),
    ErrorCode.AGENCY_UNKNOWN: "the agency is not in the node's directory",
    ErrorCode.DMS_UNREACHABLE: (
        "nothing answers at the endpoint: is the node (or sandbox) running, and is the URL its "
        "api.listen address?"),
    ErrorCode.BAD_ANSWER: (
        "the endpoint does not speak the axis protocol: is it the gateway's base URL?"),
}


@dataclass(frozen=True, slots=True)
class Step:
    """One stage of the selftest and how it went."""

    name: str
    result: str  # PASS, FAIL or SKIP
    expected: str
    got: str

    def to_dict(self) -> dict[str, str]:
        """JSON-ready."""
        return {"step": self.name, "result": self.result, "expected": self.expected,
                "got": self.got}

    def line(self) -> str:
        """One line for a terminal: name, result, expected, got."""
        return f"{self.name:<18} {self.result}  expected: {self.expected} | got: {self.got}"


@dataclass(frozen=True, slots=True)
class SelftestOptions:
    """How to run: who sends to whom, how long to wait, which statuses must come back."""

    systemid: str
    from_organ: str | None = None
    to_organ: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    expect: tuple[str, ...] = ("01", "03")
    poll_seconds: float = POLL_SECONDS
    reply_grace: float = REPLY_GRACE_SECONDS


def explain(exc: EdocAxisError, systemid: str) -> str:
    """The gateway's (or the client's) error with what it means for the DMS."""
    hint = HINTS.get(exc.code)
    text = f"{exc.code}: {exc.message}"
    return f"{text} -- {hint.format(systemid=systemid)}" if hint else text


def failed(steps: Iterable[Step]) -> Step | None:
    """The failing step of a run, if any."""
    return next((s for s in steps if s.result == FAIL), None)


class _StepFailed(Exception):
    """Raised inside a step: what came back instead of what was expected."""


class _StepSkipped(Exception):
    """Raised inside a step that has nothing to do here (why)."""


class _Stop(Exception):
    """A step failed: the run ends."""


P = TypeVar("P", StatusPackage, DocumentPackage)


@dataclass(slots=True)
class _Found(Generic[P]):
    """A received package about the test document, and when it came (seconds after sending)."""

    doc_id: str
    package: P
    after: float


@dataclass(slots=True)
class _State:
    agencies: dict[str, str] = field(default_factory=dict)  # OrganId -> name
    from_organ: str = ""
    to_organ: str = ""
    document: DocumentPackage | None = None
    doc_id: str = ""
    sent_at: float = 0.0
    seen: set[str] = field(default_factory=set)  # docIds already looked at
    statuses: dict[str, _Found[StatusPackage]] = field(default_factory=dict)  # by code
    reply: _Found[DocumentPackage] | None = None


class Selftest:
    """Runs the cycle once against one gateway; ``run`` returns the steps."""

    def __init__(
        self,
        client: DmsClient,
        options: SelftestOptions,
        *,
        report: Callable[[Step], None] = lambda _: None,
        progress: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.client = client
        self.options = options
        self.report = report
        self.progress = progress
        self.steps: list[Step] = []
        self._state = _State()
        self._deadline = 0.0

    def run(self) -> list[Step]:
        """Every step in order, up to the first FAIL."""
        o, s = self.options, self._state
        try:
            self._step("auth", f"getAgenciesList signed with systemid {o.systemid} is accepted",
                       self._auth)
            self._step("agencies", "this system's agency and the recipient are listed by "
                       "getAgenciesList", self._identify)
            self._step("sendEdoc", f"a DocId for a new unsigned document from {s.from_organ} "
                       f"to {s.to_organ} (the node validates and signs it)", self._send)
            self._step("getSentEdocList", f"a row for the DocId to {s.to_organ}, not failed",
                       self._sent_row)
            self._deadline = s.sent_at + o.timeout
            for code in o.expect:
                self._step(f"status {code}", f"getReceivedEdocList(messagetype=status) lists "
                           f"status {code} from {s.to_organ} within {o.timeout:.0f} s and "
                           "getEdoc returns it as a status package about our document",
                           partial(self._await_status, code))
            self._step("updateStatus done", "the statuses are acknowledged done and leave "
                       "getReceivedEdocList", self._acknowledge_statuses)
            self._step("tracking", f"getSentEdocList gives receiveStatus {o.expect[-1]} for "
                       f"{s.to_organ}", self._tracking)
            self._step("reply document", f"a document from {s.to_organ} answering ours arrives "
                       "(getReceivedEdocList, getEdoc) and is acknowledged done",
                       self._reply_document)
            self._step("business status", "status 03 about the reply, sent with sendEdoc "
                       "(messagetype=status), gets a DocId and a getSentEdocList row",
                       self._business_status)
        except _Stop:
            pass
        return self.steps

    def _step(self, name: str, expected: str, action: Callable[[], str]) -> None:
        try:
            result, got = PASS, action()
        except _StepSkipped as exc:
            result, got = SKIP, str(exc)
        except _StepFailed as exc:
            result, got = FAIL, str(exc)
        except EdocAxisError as exc:
            result, got = FAIL, explain(exc, self.options.systemid)
        step = Step(name, result, expected, got)
        self.steps.append(step)
        self.report(step)
        if result == FAIL:
            raise _Stop

    # --- the steps -------------------------------------------------------------------------

    def _auth(self) -> str:
        agencies = self.client.agencies()
        for item in agencies:
            organ_id = str(item.get("code102") or item.get("id") or "")
            if organ_id:
                self._state.agencies[organ_id] = str(item.get("name") or organ_id)
        return f"accepted; {len(agencies)} agencies listed"

    def _identify(self) -> str:
        s, o = self._state, self.options
        listed = s.agencies
        if o.from_organ:
            s.from_organ, how_from = o.from_organ, "--from"
        else:
            s.from_organ, how_from = self._own_agency()
        if s.from_organ not in listed:
            raise _StepFailed(f"{s.from_organ} ({how_from}) is not in getAgenciesList")
        others = sorted(set(listed) - {s.from_organ})
        if o.to_organ:
            s.to_organ, how_to = o.to_organ, "--to"
        elif len(others) == 1:
            s.to_organ, how_to = others[0], "the only other agency"
        else:
            raise _StepFailed(f"{len(others)} other agencies are listed: name the recipient "
                              "with --to ORGANID")
        if s.to_organ not in listed:
            raise _StepFailed(f"recipient {s.to_organ} is not in getAgenciesList")
        if s.to_organ == s.from_organ:
            raise _StepFailed(f"the recipient {s.to_organ} is this system's own agency")
        return f"from {s.from_organ} ({how_from}), to {s.to_organ} ({how_to})"

    def _own_agency(self) -> tuple[str, str]:
        """The system's agency from the gateway: who its received packages went to, who sent
        its sent ones; else the one agency that is not ``--to``."""
        found: set[str] = set()
        for kind in ("edoc", "status"):
            found |= {str(i.get("to")) for i in self.client.received(kind) if i.get("to")}
        if not found:
            for kind in ("edoc", "status"):
                found |= {str(i.get("fromCode")) for i in self.client.sent(kind)
                          if i.get("fromCode")}
        if len(found) == 1:
            return found.pop(), "from the gateway's received/sent lists"
        others = set(self._state.agencies) - {self.options.to_organ or ""}
        if not found and self.options.to_organ and len(others) == 1:
            return others.pop(), "the only agency besides --to"
        raise _StepFailed("cannot tell which agency this system speaks for (nothing received or "
                          "sent yet): pass --from ORGANID")

    def _send(self) -> str:
        s = self._state
        s.document = self._test_document()
        doc_id = self.client.send_edoc(build(s.document), from_organ=s.from_organ,
                                       to=[s.to_organ], message_type="edoc")
        s.sent_at = time.monotonic()
        if not doc_id:
            raise _StepFailed("the answer has no DocId")
        s.doc_id = doc_id
        return f"DocId {doc_id} for DocumentId {s.document.document_id}"

    def _sent_row(self) -> str:
        s = self._state
        rows = [r for r in self.client.sent("edoc", s.doc_id)
                if r.get("senderDocId") == s.doc_id and r.get("toCode") == s.to_organ]
        if not rows:
            raise _StepFailed(f"no row with senderDocId {s.doc_id} and toCode {s.to_organ}")
        row = rows[0]
        text = f"sendStatus {row.get('sendStatus')!s}, title {row.get('title')!r}"
        if row.get("sendStatus") == "failed":
            raise _StepFailed(f"{text}: {row.get('sendStatusDesc')!s}")
        return text

    def _await_status(self, code: str) -> str:
        s = self._state
        found = self._poll(lambda: s.statuses.get(code), "status", f"status {code}",
                           self._deadline)
        if found is None:
            seen = ", ".join(sorted(s.statuses)) or "none"
            raise _StepFailed(f"no status {code} after {self.options.timeout:.0f} s (statuses "
                              f"about our document so far: {seen})")
        pkg = found.package
        signed = "signed" if pkg.signed else "UNSIGNED"
        return (f"docId {found.doc_id}: {signed} status {code} from {pkg.sender.organ_id} about "
                f"{pkg.response_for.document_id}, after {found.after:.1f} s")

    def _acknowledge_statuses(self) -> str:
        ids = [f.doc_id for f in self._state.statuses.values()]
        for doc_id in ids:
            self.client.update_status(doc_id, "done", ACK_NOTE)
        left = sorted({str(i.get("docId")) for i in self.client.received("status")} & set(ids))
        if left:
            raise _StepFailed(f"still listed after done: {', '.join(left)}")
        return f"{len(ids)} status package(s) acknowledged done; none listed any more"

    def _tracking(self) -> str:
        s = self._state
        want = self.options.expect[-1]
        rows = [r for r in self.client.sent("edoc", s.doc_id) if r.get("toCode") == s.to_organ]
        got = str(rows[0].get("receiveStatus")) if rows else "no row"
        text = f"receiveStatus {got} ({rows[0].get('receiveStatusDesc')!s})" if rows else got
        if got != want:
            raise _StepFailed(text)
        return text

    def _reply_document(self) -> str:
        s = self._state
        grace = min(self._deadline, time.monotonic() + self.options.reply_grace)
        found = self._poll(lambda: s.reply, "edoc", "a reply document", grace)
        if found is None:
            raise _StepSkipped(f"no document answering ours within {self.options.reply_grace:.0f}"
                               " s (the sandbox peer sends one; a real agency need not)")
        self.client.update_status(found.doc_id, "done", ACK_NOTE)
        if any(i.get("docId") == found.doc_id for i in self.client.received("edoc")):
            raise _StepFailed(f"docId {found.doc_id} is still listed after done")
        pkg = found.package
        return f"docId {found.doc_id}: {pkg.document_id} {pkg.subject!r}; acknowledged done"

    def _business_status(self) -> str:
        s = self._state
        if s.reply is None:
            raise _StepSkipped("no received document to answer")
        reply = s.reply.package
        me = Organization(s.from_organ, s.agencies.get(s.from_organ, s.from_organ))
        status = new_status(me, reply, "03", description="Đã tiếp nhận (" + ACK_NOTE + ")")
        doc_id = self.client.send_edoc(build(status), from_organ=s.from_organ,
                                       to=[s.to_organ], message_type="status")
        rows = [r for r in self.client.sent("status", doc_id) if r.get("toCode") == s.to_organ]
        if not rows:
            raise _StepFailed(f"DocId {doc_id}, but getSentEdocList(messagetype=status) has no "
                              f"row to {s.to_organ}")
        if rows[0].get("sendStatus") == "failed":
            raise _StepFailed(f"DocId {doc_id}: sendStatus failed: {rows[0].get('sendStatusDesc')}")
        return (f"DocId {doc_id}: status 03 about {reply.document_id} to {s.to_organ}, "
                f"sendStatus {rows[0].get('sendStatus')!s}")

    # --- polling the received lists --------------------------------------------------------

    def _poll(self, done: Callable[[], _Found[P] | None], kind: str, what: str,
              deadline: float) -> _Found[P] | None:
        """Look at new received packages of ``kind`` until ``done()`` or the deadline."""
        started = last_note = time.monotonic()
        while True:
            self._look(kind)
            found = done()
            now = time.monotonic()
            if found is not None or now >= deadline:
                return found
            if now - last_note >= PROGRESS_EVERY_SECONDS:
                last_note = now
                self.progress(f"waiting for {what} from {self._state.to_organ} "
                              f"({now - started:.0f} s, at most {deadline - started:.0f} s)")
            time.sleep(min(self.options.poll_seconds, max(deadline - now, 0.0)))

    def _look(self, kind: str) -> None:
        """Fetch (getEdoc) each new item the recipient sent and keep those about our document."""
        s = self._state
        ours = s.document.document_id if s.document is not None else None
        for item in self.client.received(kind):
            doc_id = str(item.get("docId") or "")
            if not doc_id or doc_id in s.seen or item.get("from") != s.to_organ:
                continue
            s.seen.add(doc_id)
            data = self.client.get_edoc(doc_id)
            try:
                pkg = parse(data)
            except EdocAxisError as exc:
                raise _StepFailed(f"getEdoc {doc_id}: {len(data)} bytes that are not an edXML "
                                  f"package ({exc.code}: {exc.message})") from exc
            after = time.monotonic() - s.sent_at
            if isinstance(pkg, StatusPackage) and pkg.response_for.document_id == ours:
                if pkg.status_code == "02":
                    raise _StepFailed(f"status 02 (rejected) about our document: "
                                      f"{pkg.description or 'no reason given'}")
                s.statuses.setdefault(pkg.status_code, _Found(doc_id, pkg, after))
            elif isinstance(pkg, DocumentPackage) and any(
                r.document_id == ours for r in pkg.response_for
            ):
                s.reply = s.reply or _Found(doc_id, pkg, after)

    def _test_document(self) -> DocumentPackage:
        """A small valid document, unique per run (a fresh CodeNumber in its DocumentId)."""
        s = self._state
        today = format_date(datetime.now(VN_TZ).date())
        number = f"{secrets.randbelow(10**9):09d}"
        document = DocumentPackage(
            sender=Organization(s.from_organ, s.agencies.get(s.from_organ, s.from_organ)),
            recipients=[Organization(s.to_organ, s.agencies.get(s.to_organ, s.to_organ))],
            code=Code(number, TEST_NOTATION),
            promulgation=PromulgationInfo("Hà Nội", today),
            document_type=DocumentType("1", "2", "Công văn"),
            subject="Kiểm thử kết nối DMS với trục liên thông (edoc-axis dms selftest)",
            document_id=make_document_id(s.from_organ, today, number, TEST_NOTATION),
        )
        append_trace_header(document, s.from_organ)
        return document
