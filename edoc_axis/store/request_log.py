"""The DMS gateway's request ledger in the node's store: signed state-changing calls answered.

One ``dms_request`` row per signed sendEdoc/updateStatus the gateway answered (and per
updateStatus that failed), keyed by system id and HMAC signature, so that an exact repeat of
the request, even after a restart, gets the first answer again and changes nothing
(``gateway.service``; the argument is in the README's DMS gateway section). Rows are small
(no bodies) and kept: with no timestamp age limit a signed request stays valid for as long as
the DMS's SDK object lives. Rows go in and out as plain values (``RequestRow``): the gateway's
``ledger.RequestRecord`` is built from them by ``gateway.backend``, so the store imports nothing
of the gateway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the Store imports nothing of this module; only annotations need it
    from edoc_axis.store import Store

# call, body_sha256, subject, answer (None: not succeeded), seq
RequestRow = tuple[str, str, str | None, bytes | None, int]

_INSERT = (
    "INSERT INTO dms_request (systemid, signature, call, body_sha256, subject, answer, seq, at)"
    " VALUES (?, ?, ?, ?, ?, ?, (SELECT coalesce(max(seq), 0) + 1 FROM dms_request), ?)"
    " ON CONFLICT (systemid, signature)"
)
_INSERT_FAILURE = _INSERT + " DO NOTHING"
_INSERT_SUCCESS = (
    _INSERT + " DO UPDATE SET answer = excluded.answer, seq = excluded.seq, at = excluded.at"
)


class RequestLog:
    """The rows of the ``dms_request`` table of one store (the gateway's durable ledger)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def recall(self, systemid: str, signature: str) -> RequestRow | None:
        """The row of this signed request, or None."""
        row = self.store.conn.execute(
            "SELECT call, body_sha256, subject, answer, seq FROM dms_request"
            " WHERE systemid = ? AND signature = ?",
            (systemid, signature),
        ).fetchone()
        if row is None:
            return None
        answer = None if row[3] is None else str(row[3]).encode("utf-8")
        return str(row[0]), str(row[1]), row[2], answer, int(row[4])

    def remember(self, systemid: str, signature: str, row: RequestRow) -> None:
        """Store a success (replacing an earlier failure) or a first failure (never replacing);
        ``row``'s seq is ignored: the store numbers outcomes itself."""
        call, body_sha256, subject, answer_bytes, _ = row
        answer = None if answer_bytes is None else answer_bytes.decode("utf-8")
        with self.store.transaction() as txn:
            self.store.conn.execute(  # this thread's connection: inside the transaction
                _INSERT_FAILURE if answer is None else _INSERT_SUCCESS,
                (systemid, signature, call, body_sha256, subject, answer, txn.at),
            )

    def applied_since(self, subject: str, seq: int) -> bool:
        """Whether a request about ``subject`` succeeded after outcome ``seq``."""
        row = self.store.conn.execute(
            "SELECT 1 FROM dms_request WHERE subject = ? AND seq > ? AND answer IS NOT NULL"
            " LIMIT 1",
            (subject, seq),
        ).fetchone()
        return row is not None
