"""The gateway's memory of answered signed requests, so an exact repeat changes nothing.

The Java SDK resends the same signed headers for as long as its object lives, so a retry after
a lost answer is byte for byte the first request. ``gateway.service`` applies a state-changing
call (sendEdoc, updateStatus) at most once per signed request: it keeps a ``RequestRecord`` per
``(systemid, hash-header)`` in a ``RequestLedger`` and answers an exact repeat from it. This
module holds the record, the ledger's interface and ``MemoryLedger``, the ledger of a gateway
without a store; the node's durable one is ``store.request_log`` behind ``gateway.backend``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

MEMORY_LEDGER_SIZE = 200_000  # requests a MemoryLedger keeps


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What the gateway remembers of one signed state-changing request.

    ``answer`` is the JSON it was answered with, None while it has not succeeded (only failed
    updateStatus calls are remembered: ``subject``, their docId, lets a later acknowledgement
    of the same package overtake them). ``seq`` orders outcomes: a success takes a new one.
    """

    call: str
    body_sha256: str
    subject: str | None
    answer: bytes | None
    seq: int


class RequestLedger(Protocol):
    """Where the gateway keeps ``RequestRecord``s: in memory, or durably in the node's store."""

    def recall(self, systemid: str, signature: str) -> RequestRecord | None:
        """The record of this signed request, or None."""
        ...

    def remember(self, systemid: str, signature: str, record: RequestRecord) -> None:
        """Store a success (replacing an earlier failure) or a first failure (kept if one is
        already stored); ``record.seq`` is ignored: the ledger numbers outcomes itself."""
        ...

    def applied_since(self, subject: str, seq: int) -> bool:
        """Whether a request about ``subject`` succeeded after outcome ``seq``."""
        ...


class MemoryLedger:
    """A ``RequestLedger`` in memory, the newest ``size`` requests (gateways without a store)."""

    def __init__(self, size: int = MEMORY_LEDGER_SIZE) -> None:
        self._size = size
        self._records: OrderedDict[tuple[str, str], RequestRecord] = OrderedDict()
        self._seq = 0
        self._lock = threading.Lock()

    def recall(self, systemid: str, signature: str) -> RequestRecord | None:
        """The record of this signed request, or None."""
        with self._lock:
            return self._records.get((systemid, signature))

    def remember(self, systemid: str, signature: str, record: RequestRecord) -> None:
        """Keep a success, or a first failure."""
        key = (systemid, signature)
        with self._lock:
            earlier = self._records.get(key)
            if record.answer is None and earlier is not None:
                return
            self._seq += 1
            self._records[key] = RequestRecord(
                record.call, record.body_sha256, record.subject, record.answer, self._seq
            )
            self._records.move_to_end(key)
            while len(self._records) > self._size:
                self._records.popitem(last=False)

    def applied_since(self, subject: str, seq: int) -> bool:
        """Whether a request about ``subject`` succeeded after outcome ``seq``."""
        with self._lock:
            return any(
                r.subject == subject and r.answer is not None and r.seq > seq
                for r in self._records.values()
            )
