"""The node's durable memory: every package in and out, deliveries, statuses, inbox and outbox.

SQLite in WAL mode with ``synchronous=FULL`` (a commit survives a power cut), a busy timeout
(``edoc-axis send`` in another process writes the same file while ``edoc-axis run`` works),
foreign keys, and migrations numbered by ``PRAGMA user_version``. Each thread gets its own
connection. Writes happen only inside ``Store.transaction()`` (``BEGIN IMMEDIATE``), so a batch
of broker deliveries is stored in one commit (group commit) before anything is acknowledged.
This module knows tables, not the journey: ``node`` decides what to write and when.

Hook for the audit chain: ``Store(on_event=...)`` is called as ``hook(txn, event)`` inside the
transaction that records the fact, so an audit entry commits (or rolls back) with it.

Who only looks never creates: ``Store(path, read_only=True)`` opens the file with SQLite's
``mode=ro`` (no migration, no write possible) and ``create=False`` opens an existing store to
write; either refuses a file that is missing or is not a store (``STORE_NOT_FOUND``, a
``ConfigError``: the config's ``data_dir`` points at the wrong place) and creates nothing.

Modules: this one (the ``Store``: connections, migrations, transactions), ``reads`` (every
query, once, for a Store, a Transaction and a snapshot), ``transaction`` (the writes),
``records`` (the rows going in and out), ``bodies`` (large package bodies as content-addressed
files beside the database), ``audit_rows`` and ``request_log`` (the audit chain's and the DMS
gateway's tables), ``transfers`` (chunks of large packages received so far),
``migrations``. No SQL outside this package; the only sqlite3 importer. Imports nothing of
edoc_axis but ``errors``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edoc_axis.errors import ConfigError, ErrorCode, StoreBusy
from edoc_axis.store.bodies import BODY_FILE_BYTES, SWEEP_GRACE_SECONDS, BodyFiles
from edoc_axis.store.migrations import MIGRATIONS
from edoc_axis.store.reads import Reads, Snapshot
from edoc_axis.store.transaction import EventHook, Transaction

BUSY_TIMEOUT_MS = 10_000


def _begin_immediate(conn: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE``, waiting up to the connection's busy timeout for another writer (a
    thread or process: the relay, ``edoc-axis send``, the gateway) in steps of 0.1 ms doubling
    to 2 ms.

    SQLite's own busy handler sleeps 1, 2, 5, 10, 15... ms between tries, so a writer that held
    the lock for a commit of half a millisecond could cost the next one several; the write lock
    then sat unused while submissions queued behind it. Only the lock is waited for so: every
    other statement keeps the connection's busy timeout.
    """
    timeout_ms = int(conn.execute("PRAGMA busy_timeout").fetchone()[0])
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        deadline = time.monotonic() + timeout_ms / 1000
        delay = 0.0001
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                busy = exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
                if not busy or time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.002)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {timeout_ms}")


def _busy(exc: sqlite3.Error) -> StoreBusy:
    return StoreBusy(f"the store is busy or unavailable: {exc}", code=ErrorCode.STORE_BUSY)


def _not_found(path: Path, why: str) -> ConfigError:
    return ConfigError(
        f"no edoc-axis store at {path}: {why} (check data_dir in the node config; "
        "`edoc-axis run` creates the store)", code=ErrorCode.STORE_NOT_FOUND)


class Store(Reads):
    """The node's SQLite file; safe to share between threads (one connection per thread).

    Its reads (``Reads``) run on the calling thread's connection. ``read_only`` opens an
    existing store that this object can never write; ``create=False`` opens an existing store
    for writing; both refuse a missing store (``STORE_NOT_FOUND``) and create no file."""

    def __init__(self, path: Path, *, on_event: EventHook | None = None, create: bool = True,
                 read_only: bool = False, body_file_bytes: int = BODY_FILE_BYTES,
                 bodies_dir: Path | None = None) -> None:
        self.path = Path(path)
        self.bodies = BodyFiles(bodies_dir or self.path.parent / "bodies", body_file_bytes)
        self.on_event = on_event
        self.read_only = read_only
        self._must_exist = read_only or not create
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        if self._must_exist:
            if not self.path.is_file():
                raise _not_found(self.path, "the file does not exist")
            self._check_existing()
            if read_only:
                return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate()

    # connections

    def _connect(self) -> sqlite3.Connection:
        try:
            if self._must_exist:
                # A URI with a mode: SQLite never creates the file (ro: never writes it either).
                mode = "ro" if self.read_only else "rw"
                conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode={mode}", uri=True,
                                       isolation_level=None, check_same_thread=False, timeout=0)
            else:
                conn = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, timeout=0
                )
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if not self.read_only:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise _busy(exc) from exc
        return conn

    def _check_existing(self) -> None:
        """Refuse a file that is not an edoc-axis store (not SQLite, or never migrated)."""
        try:
            version = self.schema_version
        except sqlite3.OperationalError as exc:  # locked, or unreadable here: not its content
            self.close()
            raise _busy(exc) from exc
        except sqlite3.DatabaseError as exc:  # "file is not a database"
            self.close()
            raise _not_found(self.path, f"not an edoc-axis store ({exc})") from exc
        except StoreBusy:
            self.close()
            raise
        if version == 0:
            self.close()
            raise _not_found(self.path, "not an edoc-axis store (no schema)")

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use). Outside the store only tests that
        tamper with the file on purpose use it: everything else goes through ``Reads``."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @property
    def _db(self) -> sqlite3.Connection:
        return self.conn

    @property
    def _files(self) -> BodyFiles:
        return self.bodies

    def sweep_body_files(self, older_than: float = SWEEP_GRACE_SECONDS) -> list[Path]:
        """Remove body files no package references (left by a crash between writing the file
        and the commit) and stale temporary files, older than ``older_than`` seconds; returns
        the paths removed. Safe while the node runs: younger files are left alone."""
        if self.read_only:
            raise ValueError(f"the store {self.path} was opened read-only")
        return self.bodies.sweep(self.body_files_in_use, older_than)

    def close(self) -> None:
        """Close every connection this store opened (call once, at shutdown)."""
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    def _migrate(self) -> None:
        conn = self.conn
        with self.transaction():
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            for number, statements in enumerate(MIGRATIONS, start=1):
                if number <= version:
                    continue
                for statement in statements:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")

    @property
    def schema_version(self) -> int:
        """The applied migration number (PRAGMA user_version)."""
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolls back on error; lock trouble -> StoreBusy."""
        if self.read_only:
            raise ValueError(f"the store {self.path} was opened read-only")
        conn = self.conn
        try:
            _begin_immediate(conn)
        except sqlite3.OperationalError as exc:
            raise _busy(exc) from exc
        try:
            yield Transaction(conn, self.on_event, self.bodies)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            conn.execute("ROLLBACK")
            raise _busy(exc) from exc

    @contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """A read-only view (deferred ``BEGIN``): every read on one consistent snapshot,
        including this thread's reads through the Store itself until the block ends."""
        conn = self.conn
        try:
            conn.execute("BEGIN")
        except sqlite3.OperationalError as exc:
            raise _busy(exc) from exc
        try:
            yield Snapshot(conn, self.bodies)
        finally:
            conn.execute("ROLLBACK")
