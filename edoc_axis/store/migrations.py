"""Schema migrations of the node's store, numbered by ``PRAGMA user_version``.

Each migration is a list of statements applied in one transaction; ``user_version`` becomes its
number. Never edit a released migration: append a new one.
"""

from __future__ import annotations

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE packages (
            id INTEGER PRIMARY KEY,
            package_id TEXT NOT NULL UNIQUE,
            direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
            kind TEXT NOT NULL CHECK (kind IN ('edoc', 'status')),
            sender TEXT NOT NULL,
            recipients TEXT NOT NULL,
            document_id TEXT NOT NULL,
            business_op INTEGER NOT NULL DEFAULT 0,
            related_package TEXT,
            status_code TEXT,
            description TEXT,
            message_id TEXT NOT NULL,
            broker_user TEXT,
            sha256 TEXT NOT NULL,
            dedupe_digest TEXT NOT NULL,
            size INTEGER NOT NULL,
            created_at TEXT NOT NULL
        )""",
        "CREATE TABLE package_bodies (package INTEGER PRIMARY KEY REFERENCES packages(id), "
        "body BLOB NOT NULL)",
        "CREATE UNIQUE INDEX packages_message ON packages (direction, sender, message_id)",
        "CREATE UNIQUE INDEX packages_dedupe ON packages "
        "(direction, sender, document_id, business_op, dedupe_digest) WHERE kind = 'edoc'",
        "CREATE INDEX packages_document ON packages (document_id, kind)",
        """CREATE TABLE deliveries (
            id INTEGER PRIMARY KEY,
            package INTEGER NOT NULL REFERENCES packages(id),
            document_id TEXT NOT NULL,
            recipient TEXT NOT NULL,
            state TEXT NOT NULL,
            status_code TEXT,
            reason TEXT,
            updated_at TEXT NOT NULL,
            UNIQUE (package, recipient)
        )""",
        "CREATE INDEX deliveries_document ON deliveries (document_id, recipient)",
        """CREATE TABLE delivery_history (
            id INTEGER PRIMARY KEY,
            delivery INTEGER NOT NULL REFERENCES deliveries(id),
            state TEXT NOT NULL,
            status_code TEXT,
            status_package INTEGER REFERENCES packages(id),
            description TEXT,
            at TEXT NOT NULL
        )""",
        "CREATE INDEX delivery_history_delivery ON delivery_history (delivery, id)",
        """CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            package INTEGER NOT NULL REFERENCES packages(id),
            recipient TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'confirmed', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            reason TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        "CREATE INDEX outbox_pending ON outbox (id) WHERE state = 'pending'",
        """CREATE TABLE inbox (
            id INTEGER PRIMARY KEY,
            package INTEGER NOT NULL UNIQUE REFERENCES packages(id),
            kind TEXT NOT NULL,
            sender TEXT NOT NULL,
            document_id TEXT NOT NULL,
            pickup TEXT NOT NULL DEFAULT 'new'
                CHECK (pickup IN ('new', 'processing', 'done', 'fail')),
            pickup_note TEXT,
            received_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        "CREATE INDEX inbox_pickup ON inbox (pickup, id)",
        "CREATE INDEX inbox_document ON inbox (document_id, sender)",
        """CREATE TABLE rejections (
            id INTEGER PRIMARY KEY,
            message_id TEXT,
            broker_user TEXT,
            claimed_sender TEXT,
            identified_sender TEXT,
            document_id TEXT,
            code TEXT NOT NULL,
            reason TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            at TEXT NOT NULL,
            body BLOB NOT NULL
        )""",
    ),
    # 2: the audit chain (issue: audit), its signed checkpoints and archive files; lookups of
    # stored signed bytes by SHA-256 for receipt verification.
    (
        """CREATE TABLE audit_entry (
            seq INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            kind TEXT NOT NULL,
            package_id TEXT,
            document_id TEXT,
            counterpart TEXT,
            content_sha256 TEXT,
            signer TEXT,
            detail TEXT,
            prev_hash TEXT NOT NULL,
            entry_hash TEXT NOT NULL
        )""",
        "CREATE INDEX audit_entry_document ON audit_entry (document_id, seq)",
        "CREATE INDEX audit_entry_at ON audit_entry (at)",
        """CREATE TABLE audit_checkpoint (
            seq INTEGER PRIMARY KEY,
            head_hash TEXT NOT NULL,
            at TEXT NOT NULL,
            organ_id TEXT NOT NULL,
            algorithm TEXT NOT NULL,
            signature BLOB NOT NULL,
            cert_der BLOB NOT NULL
        )""",
        """CREATE TABLE audit_archive (
            last_seq INTEGER PRIMARY KEY,
            first_seq INTEGER NOT NULL,
            head_hash TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            path TEXT NOT NULL
        )""",
        "CREATE INDEX packages_sha256 ON packages (sha256)",
        "CREATE INDEX rejections_sha256 ON rejections (sha256)",
    ),
    # 3: the warnings a received package was accepted with (reception profile "received"):
    # a JSON array of findings (code, message, element, value, line); NULL when there were none.
    ("ALTER TABLE packages ADD COLUMN warnings TEXT",),
    # 4: the DMS gateway's answered signed requests (store/request_log.py): an exact repeat of
    # a sendEdoc/updateStatus gets its first answer again, also after a restart.
    (
        """CREATE TABLE dms_request (
            systemid TEXT NOT NULL,
            signature TEXT NOT NULL,
            call TEXT NOT NULL,
            body_sha256 TEXT NOT NULL,
            subject TEXT,
            answer TEXT,
            seq INTEGER NOT NULL,
            at TEXT NOT NULL,
            PRIMARY KEY (systemid, signature)
        )""",
        "CREATE INDEX dms_request_subject ON dms_request (subject, seq) WHERE subject IS NOT NULL",
    ),
    # 5: what a package is about (a document's Subject or a status's Description, and the
    # document's number/notation), so listings (the DMS gateway's getSentEdocList) read columns
    # instead of parsing bodies. NULL for packages stored before: the gateway fills them the
    # first time it lists one (the store cannot read edXML).
    (
        "ALTER TABLE packages ADD COLUMN subject TEXT",
        "ALTER TABLE packages ADD COLUMN notation TEXT",
    ),
    # 6: large bodies live as files (store/bodies.py): ``file`` is the hex SHA-256 naming the
    # file under the bodies folder, and ``body`` is then empty; NULL for a body kept as a blob.
    ("ALTER TABLE package_bodies ADD COLUMN file TEXT",
     "CREATE INDEX package_bodies_file ON package_bodies (file) WHERE file IS NOT NULL"),
    # 7: chunks of large packages received so far (store/transfers.py): one row per chunk
    # whose bytes are staged (fsynced) under the node's transfers folder, keyed by the
    # publishing broker user and the transfer (the package's message id).
    (
        """CREATE TABLE transfer_chunk (
            broker_user TEXT NOT NULL,
            transfer TEXT NOT NULL,
            idx INTEGER NOT NULL,
            count INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            total_size INTEGER NOT NULL,
            total_sha256 TEXT NOT NULL,
            received_at REAL NOT NULL,
            PRIMARY KEY (broker_user, transfer, idx)
        )""",
    ),
    # 8: the DocumentId a chunk's headers name (NULL for a status's chunks): an abandoned
    # transfer is answered with a 02 about it.
    ("ALTER TABLE transfer_chunk ADD COLUMN document_id TEXT",),
)
