"""One process per folder: an exclusive ``flock`` on a lock file in it, held while the process
works there, with the holder's pid written in the file so a refusal can name it.

``edoc-axis run`` holds its data folder (two nodes on one store would consume, relay and seal
side by side), the sandbox its state folder. The kernel drops the lock when its process ends,
however it ends: a crash leaves nothing to clean up, and a stale pid in the file is harmless.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from edoc_axis.errors import EdocAxisError, ErrorCode

NODE_LOCK_FILE = ".edoc-axis-node.lock"


@contextmanager
def exclusive(lock_file: Path, refusal: Callable[[int | None], EdocAxisError]) -> Iterator[None]:
    """Hold ``lock_file`` (created when missing) for the block; when another process holds it,
    raise ``refusal(its pid)`` (None when the file names none) without waiting."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    with os.fdopen(fd, "r+", encoding="ascii") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise refusal(_pid(handle.read())) from None
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate(0)  # released: no pid to name (closing the file drops the lock)


def _pid(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


@contextmanager
def node_folder(data_dir: Path) -> Iterator[None]:
    """Hold ``data_dir`` for one running node; a second is refused with ``NODE_RUNNING``
    naming the first one's pid."""
    def refusal(pid: int | None) -> EdocAxisError:
        return EdocAxisError(f"another node (pid {pid if pid else 'unknown'}) is running on "
                             f"{data_dir}: stop it first, or give this node its own data_dir",
                             code=ErrorCode.NODE_RUNNING)

    with exclusive(data_dir / NODE_LOCK_FILE, refusal):
        yield
