"""Running a node: its Link in a thread until stopped (``edoc-axis run``, the sandbox, tests),
with its audit chain sealed on a timer and at the stop, and reading a package file for
submission."""

from __future__ import annotations

import threading
from pathlib import Path

from edoc_axis.audit.sealing import SealTimer
from edoc_axis.errors import ErrorCode, NotFound
from edoc_axis.log import get_logger
from edoc_axis.node.node import Node

log = get_logger(__name__)


class Runner:
    """Runs a node's Link in a thread until ``stop``, and its audit ``SealTimer`` beside it."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.link = node.link()
        self.sealing = SealTimer(node.audit)
        self._thread = threading.Thread(target=self.link.run, name=f"link-{node.organ_id}",
                                        daemon=True)

    def start(self) -> Runner:
        """Start the Link thread and the seal timer (after deleting partial chunk transfers
        abandoned while the node was down)."""
        self.node.chunk_receiver.sweep()
        self._thread.start()
        self.sealing.start()
        log.info("node_started", organ_id=self.node.organ_id)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Stop consuming, wait briefly for confirms, close the connection, join the thread,
        then seal every audit entry still unsealed (a clean stop leaves no unsealed tail)."""
        self.link.stop()
        self._thread.join(timeout)
        self.sealing.stop()
        log.info("node_stopped", organ_id=self.node.organ_id,
                 outbox=self.node.store.outbox_counts()["pending"])


def data_file(path: Path) -> bytes:
    """Read a package file for submission (a clear error when it cannot be read)."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise NotFound(f"cannot read {path}: {exc.strerror}",
                       code=ErrorCode.FILE_UNREADABLE) from exc
