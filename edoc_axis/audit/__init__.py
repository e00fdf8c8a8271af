"""The tamper-evident receipt log: hash chain, signed checkpoints, verification, evidence
bundles and archives, export.

``chain`` (entries and their hash), ``checkpoint`` (signing and trusting checkpoints),
``verification`` (one streaming pass naming each break), ``receipt`` (the signed bytes behind
an entry), ``log`` (the chain of a node's store, appended in each event's transaction),
``sealing`` (a running node's seal timer and the seal at a clean stop), ``evidence`` with
``bundle`` and ``archive`` (files that leave the node), ``export`` (JSON Lines, CSV) and
``auditor`` (what ``edoc-axis audit`` runs).

Imports ``trust``, ``store`` (its public reads and ``audit_rows``: no SQL here), ``config``,
``errors`` and ``log``; never ``node``: the caller hands over the signing identity and trust
store.
"""
