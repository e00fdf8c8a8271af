"""Sealing the audit chain of a running node: on a timer between entries, and at every clean stop.

``AuditLog`` seals when an append finds the ``CheckpointPolicy`` due, but an idle node appends
nothing: its newest entries would stay unsealed until the next event, or for good if it then
stopped, and anyone with write access to the file could rewrite them unnoticed. ``SealTimer``
asks ``AuditLog.seal_if_due`` every ``policy.timer_seconds`` in a thread of its own (so its own
store connection and transaction, never the Link's hot path); it writes a checkpoint only when
there are unsealed entries and the interval has passed. ``stop`` then seals what is left.
``seal_before_exit`` is that last seal for any process that wrote entries.

A failed seal (the store busy past its timeout, a full disk) is logged and tried again at the
next tick: the entries are stored, only their seal waits, and ``audit verify`` reports a tail
left unsealed longer than the policy allows.
"""

from __future__ import annotations

import threading

from edoc_axis.audit.checkpoint import Checkpoint
from edoc_axis.audit.log import AuditLog
from edoc_axis.errors import EdocAxisError
from edoc_axis.log import get_logger

log = get_logger(__name__)


def seal_before_exit(audit: AuditLog, *, only_written: bool = False) -> Checkpoint | None:
    """Seal the head before the process lets go of the store: always (the node's clean stop),
    or ``only_written`` when this process appended entries still unsealed. Never raises an
    ``EdocAxisError``: a failure is logged, and verification will report the tail."""
    try:
        checkpoint = audit.seal_written() if only_written else audit.seal_now()
    except EdocAxisError as exc:
        log.error("audit_seal_failed", organ_id=audit.organ_id, code=exc.code,
                  error=exc.message, when="exit")
        return None
    if checkpoint is not None:
        log.info("audit_sealed", organ_id=audit.organ_id, seq=checkpoint.seq, when="exit")
    return checkpoint


class SealTimer:
    """Seals ``audit`` in its own thread while a node runs; ``stop`` seals what is left."""

    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit
        self.period = audit.policy.timer_seconds
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"audit-seal-{audit.organ_id}",
                                        daemon=True)

    def start(self) -> SealTimer:
        """Start ticking; returns self."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 15.0) -> Checkpoint | None:
        """Stop ticking and seal every entry still unsealed (the checkpoint, or None when the
        head was already sealed or sealing failed)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return seal_before_exit(self.audit)

    def _run(self) -> None:
        while not self._stopping.wait(self.period):
            try:
                checkpoint = self.audit.seal_if_due()
            except Exception as exc:  # a tick must never end the timer
                log.warning("audit_seal_failed", organ_id=self.audit.organ_id,
                            code=getattr(exc, "code", None), error=str(exc), when="timer")
                continue
            if checkpoint is not None:
                log.debug("audit_sealed", organ_id=self.audit.organ_id, seq=checkpoint.seq,
                          when="timer")
