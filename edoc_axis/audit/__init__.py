"""The tamper-evident receipt log: hash chain, signed checkpoints, verification, evidence
bundles and export.

Imports ``trust`` and ``store``.
"""
